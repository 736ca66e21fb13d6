-- Lua's collector cannot see the core's buffers; the binding applies memory pressure itself.
-- A training loop of the seed network must hold steady memory without any collectgarbage()
-- call: resident memory after step 1,000 within 10% of that after step 100 (batch 64,
-- generated data).
local lab = require "cnnlab"

local function resident_bytes()
  local f = assert(io.open("/proc/self/statm"))
  local _, resident = f:read("n", "n")
  f:close()
  return resident * 4096
end

-- Under the sanitizers the resident size measures ASan's quarantine and pools more than the
-- core's buffers (it grew ~10% from step 100 to 400 there); LeakSanitizer checks for leaks at
-- the exit of every spec instead, so this case runs in make test only.
local STEPS, BATCH = 1000, 64
local measured = require("tests.helpers").heavy("resident size under ASan is its quarantine's")

describe("memory", function()
  measured("stays flat over 1,000 training steps of the seed network", function()
    local gen = lab.Generator(11)
    local net = lab.models.seed_cnn{generator = gen}
    local opt = lab.optim.Adam(net:parameters(), {lr = 1e-3})
    local x = lab.rand({BATCH, 3, 28, 28}, {generator = gen})
    local labels = {}
    for i = 1, BATCH do labels[i] = (i * 7) % 10 end
    local y = lab.tensor(labels, {dtype = "int64"})
    local at100
    for step = 1, STEPS do
      opt:zero_grad()
      local loss = lab.cross_entropy(net(x), y)
      loss:backward()
      opt:step()
      if step == 100 then at100 = resident_bytes() end
    end
    local at1000 = resident_bytes()
    print(("\n# resident memory: %.1f MB after step 100, %.1f MB after step %d; core heap %.1f MB")
      :format(at100 / 2^20, at1000 / 2^20, STEPS, lab.memory().in_use / 2^20))
    assert.is_true(at1000 <= at100 * 1.10,
      ("resident memory grew from %d to %d bytes"):format(at100, at1000))
  end)
end)
