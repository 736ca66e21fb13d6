-- Allocation-failure sweeps from Lua (docs/reliability.md). A short workload — a small CNN
-- trained for two steps on generated Colored MNIST, its state saved, reloaded and exported,
-- PNG and IDX written and read — is run once to count its allocations, then once for every n
-- with allocation n failing:
--   * core allocations (lab._fail_alloc_after): the n-th cl_alloc fails once;
--   * Lua's own allocator (lab._with_lua_alloc_failing, from the cnnlab interpreter): every
--     allocation from the n-th on fails, as when memory is really exhausted;
--   * the whole interpreter (CNNLAB_FAIL_LUA_ALLOC=n) on a one-line script, start-up included;
--     one process per n, so CNNLAB_SWEEP_STRIDE=k (make check-asan sets 7: sanitized processes
--     start slowly) tries every k-th n only, always including the first and the last.
-- Every run must succeed or end in a Lua error saying "not enough memory"; afterwards the
-- core's heap is back to its size before the run (nothing leaked, even when Lua failed inside
-- a binding that had core memory in hand), grad mode is back on, and no temporary file is left.
local lab = require "cnnlab"
local nn = lab.nn
local util = lab.util

local BIN = os.getenv("CNNLAB_BIN") or "./cnnlab"

local function tmpdir()
  local base = util.exists("/dev/shm") and "/dev/shm" or (os.getenv("TMPDIR") or "/tmp")
  local d = base .. "/cnnlab-faults-" .. tostring(os.time()) .. "-" .. tostring(math.random(1 << 30))
  util.mkdir_p(d)
  return d
end

local dir = tmpdir()
teardown(function() os.execute("rm -rf " .. util.shell_quote(dir)) end)

local function workload()
  local g = lab.Generator(1)
  local net = nn.Sequential{nn.Conv2d(3, 4, 3, {padding = 1, generator = g}), nn.ReLU(),
    nn.MaxPool2d(3, 2), nn.Flatten(), nn.Linear(4 * 13 * 13, 10, {generator = g})}
  local source = lab.data.generated{n = 20, n_test = 10, seed = 2}
  local sets = lab.data.colored_mnist{seed = 2, source = source}
  local opt = lab.optim.Adam(net:parameters(), {lr = 1e-3})
  -- hooks of every kind: Lua code run from inside the C engine's backward pass
  net[1]:register_forward_hook(function(_, _, out) return out * 1 end)
  net[5]:register_backward_hook(function(_, g) return g * 1 end)
  local last
  for x, y in lab.data.batches(sets.train, 8, {generator = lab.Generator(3)}) do
    opt:zero_grad()
    x:requires_grad_()
    local h = x:register_hook(function(g) return g end)
    local loss = lab.cross_entropy(net(x), y)
    loss:backward()
    h:remove()
    opt:step()
    last = x:detach()
  end
  lab.save_safetensors(dir .. "/m.safetensors", net:state_dict(), {k = "v"})
  net:load_state_dict(lab.load_safetensors(dir .. "/m.safetensors"))
  lab.no_grad(function() return net(last) end)
  lab.data.export(sets.val, dir .. "/val.safetensors")
  lab.data.load_export(dir .. "/val.safetensors")
  lab.write_png(dir .. "/grid.png", lab.image_grid(sets.val.images, {ncol = 4}))
  lab.read_png(dir .. "/grid.png")
  lab.write_idx(dir .. "/digits.idx.gz", source.train.images)
  lab.read_idx(dir .. "/digits.idx.gz")
  lab.listdir(dir)
end

-- The core heap once everything unreachable is gone. Hooks of a freed tensor (and what their
-- closures hold, e.g. a module and its parameters) are dropped from the registry at the next
-- hook operation, so one is made between two collections.
local function heap()
  collectgarbage()
  collectgarbage()
  lab.zeros(1, {requires_grad = true}):register_hook(function() end):remove()
  collectgarbage()
  collectgarbage()
  return lab.memory().in_use
end

local function temporaries()
  local n = 0
  for _, name in ipairs(lab.listdir(dir) or {}) do
    if name:find(".tmp.", 1, true) then n = n + 1 end
  end
  return n
end

-- Checks one run's aftermath; returns a problem description or nil.
local function aftermath(n, ok, err, base)
  if not ok and not tostring(err):find("not enough memory", 1, true) then
    return ("allocation %d: failed with %q"):format(n, tostring(err))
  end
  if not lab.is_grad_enabled() then
    lab.set_grad_enabled(true)
    return ("allocation %d: grad mode left off"):format(n)
  end
  local now = heap()
  if now ~= base then
    return ("allocation %d: %d bytes of core memory leaked"):format(n, now - base)
  end
  if temporaries() > 0 then
    os.execute("rm -f " .. util.shell_quote(dir) .. "/*.tmp.*")
    return ("allocation %d: temporary file left behind"):format(n)
  end
end

local threads
setup(function()
  threads = lab.get_threads()
  lab.set_threads(1) -- the n-th allocation must be the same one in every run
  workload() -- loads every module the workload needs, so the sweeps see only the workload
end)
teardown(function() lab.set_threads(threads) end)

describe("allocation failures", function()
  it("of the core, at every allocation of the workload, give 'not enough memory' and no leak",
    function()
    local base = heap()
    local before = lab.memory().allocations
    workload()
    local count = lab.memory().allocations - before
    assert.equal(base, heap())
    assert.is_true(count > 100, "the workload makes " .. count .. " core allocations")
    local problems, failed = {}, 0
    for n = 1, count do
      lab._fail_alloc_after(n)
      local ok, err = pcall(workload)
      lab._fail_alloc_after(0)
      if not ok then failed = failed + 1 end
      problems[#problems + 1] = aftermath(n, ok, err, base)
    end
    print(("\n# core sweep: %d allocations, %d runs failed cleanly"):format(count, failed))
    assert.same({}, problems)
    assert.equal(count, failed, "every injected failure must surface as an error")
  end)

  it("of Lua's allocator, at every allocation of the workload, give 'not enough memory', "
    .. "and leak no core memory", function()
    if not lab._with_lua_alloc_failing then
      pending("needs the cnnlab interpreter (lab._with_lua_alloc_failing)")
      return
    end
    local base = heap()
    local ok, err, count = lab._with_lua_alloc_failing(0, workload)
    assert.is_true(ok, tostring(err))
    assert.equal(base, heap())
    local problems, failed, survived = {}, 0, {}
    for n = 1, count + 1 do
      local ok_n, err_n = lab._with_lua_alloc_failing(n, workload)
      if not ok_n then failed = failed + 1 elseif n <= count then survived[#survived + 1] = n end
      problems[#problems + 1] = aftermath(n, ok_n, err_n, base)
    end
    print(("\n# Lua allocator sweep: %d allocations, %d runs failed cleanly, %d completed (%s)")
      :format(count, failed, #survived, table.concat(survived, " ")))
    assert.same({}, problems)
  end)

  it("of the interpreter itself, from start-up on, end with 'not enough memory', never a crash",
    function()
    local script = "local t = lab.zeros(2, 3); print((lab.nn.Linear(3, 2)(t)):sum():item())"
    local function run(n)
      local out = os.tmpname()
      local cmd = ("CNNLAB_FAIL_LUA_ALLOC=%d %s -e %s >%s 2>&1"):format(n, util.shell_quote(BIN),
        util.shell_quote(script), out)
      local _, how, code = os.execute(cmd)
      local text = util.read_file(out)
      os.remove(out)
      return how, code, text
    end
    local how, code, text = run(0)
    assert.equal(0, code, text)
    local count = tonumber(text:match("(%d+) Lua allocations"))
    assert.is_not_nil(count, text)
    local problems = {}
    local stride = math.max(1, math.tointeger(tonumber(os.getenv("CNNLAB_SWEEP_STRIDE"))) or 1)
    local ns = {}
    for n = 1, count + 1, stride do ns[#ns + 1] = n end
    if ns[#ns] ~= count + 1 then ns[#ns + 1] = count + 1 end
    for _, n in ipairs(ns) do
      how, code, text = run(n)
      if how ~= "exit" or code > 1 then
        problems[#problems + 1] = ("allocation %d: %s %d: %s"):format(n, how, code, text)
      elseif code == 1 and not text:find("not enough memory", 1, true) then
        problems[#problems + 1] = ("allocation %d: exit 1 without 'not enough memory': %s")
          :format(n, text)
      end
    end
    print(("\n# interpreter sweep: %d Lua allocations, start-up included, %d runs"):format(count,
      #ns))
    assert.same({}, problems)
  end)
end)
