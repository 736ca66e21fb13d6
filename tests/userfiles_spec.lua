-- A user's data set and a user's network, each ONE file written into a temporary folder,
-- work through Task 1, Task 3 and Task 4 by path (--dataset /tmp/.../mine.lua, --arch
-- /tmp/.../net.lua) with no rebuild; the model file records the network, so Task 3's
-- --model rebuilds it; every network a method builds (LfF's biased one, JTT's two stages)
-- comes from the same file.
local lab = require "cnnlab"
local util = lab.util

local BIN = os.getenv("CNNLAB_BIN") or "./cnnlab"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(util.mkdir_p(d) ~= false)
  return d
end

local DATASET = [[
local lab = require "cnnlab"
-- digits are bars: class y lights columns y..y+3; the bias is the background level of one channel
local function split(n, seed, aligned)
  local g = lab.Generator(seed, 7)
  local labels, bias = {}, {}
  for i = 1, n do
    labels[i] = (i - 1) % 10
    bias[i] = aligned and labels[i] or g:integer(10)
  end
  local x = lab.zeros({n, 3, 16, 16})
  for i = 1, n do
    x:select(0, i - 1):select(0, bias[i] % 3):fill_(60 + 19 * bias[i])
    x:select(0, i - 1):narrow(1, labels[i], 4):narrow(2, 2, 10):fill_(250)
  end
  return {images = x:byte(), labels = lab.tensor(labels, {dtype = "int64"}),
          bias = lab.tensor(bias, {dtype = "int64"})}
end
return {
  description = "a test's tiny data set", source = "generated in the file",
  options = {n = 120},
  build = function(o, ctx)
    return {train = split(o.n, ctx.seed, true), val = split(40, ctx.seed + 1, true),
            hard = split(60, ctx.seed + 2, false)}
  end,
}
]]

local NET = [[
local nn = require "cnnlab.nn"
local models = require "cnnlab.models"
return {
  description = "a test's tiny network", options = {width = 4},
  feature_layers = {"act"},
  build = function(o, shape, classes, b)
    local log = os.getenv("NET_LOG")
    if log then local f = io.open(log, "a"); f:write(o.width, "\n"); f:close() end
    local net = nn.Sequential()
    net:add(nn.Conv2d(shape[1], o.width, 3, {padding = 1, generator = b.generator}), "conv")
    net:add(nn.ReLU(), "act")
    net:add(nn.MaxPool2d(2, 2), "pool")
    net:add(nn.Flatten(), "flat")
    net:add(nn.Linear(models.flat_size(net, shape), classes, {generator = b.generator}), "fc")
    return net
  end,
}
]]

describe("a user's data-set and network files through the task scripts", function()
  local dir, ds, net
  setup(function()
    dir = tmpdir()
    ds, net = dir .. "/mine.lua", dir .. "/net.lua"
    util.write_file(ds, DATASET)
    util.write_file(net, NET)
  end)
  teardown(function() os.execute("rm -rf " .. util.shell_quote(dir)) end)

  local function run(script, args)
    local ok = os.execute(("NET_LOG=%s/builds.txt %s scripts/%s.lua --threads 1 %s >%s/log.txt 2>&1")
      :format(dir, BIN, script, args, dir))
    if not ok then print(util.read_file(dir .. "/log.txt")) end
    return ok
  end
  local function builds()
    local n = 0
    for _ in (util.exists(dir .. "/builds.txt") and util.read_file(dir .. "/builds.txt") or ""):gmatch("\n") do
      n = n + 1
    end
    os.remove(dir .. "/builds.txt")
    return n
  end

  it("Task 1 trains the file's network on the file's data and records both", function()
    assert.truthy(run("task1_train", ("--dataset %s --dataset-opt n=100 --arch %s --arch-opt width=3 "
      .. "--epochs 1 --batch 32 --out %s/t1"):format(ds, net, dir)))
    local m = util.json_decode(util.read_file(dir .. "/t1/metrics.json"))
    assert.equal(100, m.n_train)
    assert.equal(40, m.n_val)
    assert.equal(60, m.n_hard)
    assert.equal(ds, m.dataset)
    assert.equal(net, m.arch)
    assert.equal('{"width":3}', m.arch_options)
    local t, meta = lab.load_safetensors(dir .. "/t1/model.safetensors")
    assert.equal(net, meta.arch)
    assert.equal("3,16,16", meta.input_shape)
    assert.same({3, 3, 3, 3}, t["conv.weight"].shape)
    assert.same({10, 3 * 8 * 8}, t["fc.weight"].shape) -- from the shapes, not 512
    assert.equal(1, builds())
  end)

  it("Task 3's --model rebuilds the recorded network and explains its own layer", function()
    assert.truthy(run("task3_gradcam", ("--dataset %s --model %s/t1/model.safetensors --n 20 "
      .. "--examples 2 --out %s/t3"):format(ds, dir, dir)))
    local m = util.json_decode(util.read_file(dir .. "/t3/metrics.json"))
    assert.equal("act", m.layer)
    assert.truthy(util.exists(dir .. "/t3/overlays_hard.png"))
  end)

  it("Task 4's methods build every network from the file (LfF two, JTT two stages)", function()
    assert.truthy(run("task4_debias", ("--dataset %s --arch %s --methods erm,lff,jtt --epochs 2 "
      .. "--batch 32 --gradcam-n 20 --out %s/t4"):format(ds, net, dir)))
    local m = util.json_decode(util.read_file(dir .. "/t4/metrics.json"))
    assert.is_number(m.erm_hard_acc_mean)
    assert.is_number(m.lff_hard_acc_mean)
    assert.is_number(m.jtt_hard_acc_mean)
    assert.equal(net, m.arch)
    -- erm 1, lff 2 (debiased and biased), jtt ≥ 2 (first stage and the fresh second),
    -- plus the models Grad-CAM reloads from their files
    assert.is_true(builds() >= 5)
    local _, meta = lab.load_safetensors(dir .. "/t4/lff/model.safetensors")
    assert.equal(net, meta.arch)
  end)

  it("a model without feature maps is refused by Grad-CAM with advice", function()
    assert.truthy(run("task1_train", ("--dataset %s --arch lff_mlp --arch-opt hidden=8 --epochs 1 "
      .. "--batch 32 --out %s/mlp"):format(ds, dir)))
    assert.falsy(run("task3_gradcam", ("--dataset %s --model %s/mlp/model.safetensors --n 10 "
      .. "--out %s/t3mlp"):format(ds, dir, dir)))
    local log = util.read_file(dir .. "/log.txt")
    assert.truthy(log:find("no", 1, true) and log:find("--arch seed_cnn", 1, true), log)
  end)

  it("a wrong --dataset-opt or --arch-opt names the known options", function()
    assert.falsy(run("task1_train", ("--dataset %s --dataset-opt size=3 --epochs 1 --out %s/x")
      :format(ds, dir)))
    assert.truthy(util.read_file(dir .. "/log.txt"):find("options: n", 1, true))
    assert.falsy(run("task1_train", ("--dataset %s --arch %s --arch-opt depth=3 --epochs 1 --out %s/x")
      :format(ds, net, dir)))
    assert.truthy(util.read_file(dir .. "/log.txt"):find("options: width", 1, true))
  end)
end)
