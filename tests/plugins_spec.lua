-- Attacks and attribution methods as plug-ins (lua/cnnlab/attacks/, lua/cnnlab/attributions/):
-- the registries list what is shipped; a toy attack and a toy attribution method, each ONE
-- file written into a temporary folder, are picked up by path with no other change — through
-- the registry, and through the task scripts' --attack and --methods options.
local lab = require "cnnlab"

local BIN = os.getenv("CNNLAB_BIN") or "./cnnlab"

local helpers = require "tests.helpers"
local pixel_model, tmpdir = helpers.pixel_model, helpers.tmpdir -- the one-pixel model of attack_spec

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- The names in a folder (hidden ones left out), sorted.
local function files_in(dir)
  local names = {}
  for _, name in ipairs(lab.listdir(dir) or {}) do
    if not name:match("^%.") then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

-- Every file of the library and the scripts with its checksum: what "no other change" means.
local function source_tree()
  local p = io.popen("find lua/cnnlab scripts -type f | sort | xargs cksum")
  local text = p:read("a")
  p:close()
  return text
end

-- A toy attack: half-size signed steps, so it needs twice PGD's steps.
local TOY_ATTACK = [[
return {
  name = "halfstep",
  description = "signed-gradient steps of half the given size",
  steps = 40,
  step = function(x, grad, s) return x + grad:sign() * (s.sign * s.step_size / 2) end,
}
]]

-- A toy attribution method: the layer's activations summed over channels, gradients ignored.
local TOY_ATTRIBUTION = [[
return {
  name = "activation_sum",
  label = "activation sum",
  from_gradients = function(A, G)
    return A:sum(1), A:sum(3):sum(2)
  end,
}
]]

describe("the registries", function()
  it("list the shipped attacks and attribution methods, sorted", function()
    assert.same({"apgd", "fgsm", "pgd"}, lab.attacks.available())
    assert.same({"gradcam", "gradcampp", "saliency"}, lab.attributions.available())
  end)

  it("load a shipped plug-in by name and fill in defaults", function()
    assert.equal("pgd", lab.attacks.load("pgd").name)
    assert.equal(1, lab.attacks.load("fgsm").fixed_steps)
    local cam = lab.attributions.load("gradcam")
    assert.is_true(cam.layered and cam.smooth)
    assert.equal("Grad-CAM", cam.label)
    local sal = lab.attributions.load("saliency")
    assert.is_false(sal.layered)
    assert.equal(0.99, sal.clip_quantile)
  end)

  it("name what exists when a name is unknown, and what a bad file lacks", function()
    local ok, err = pcall(lab.attacks.load, "cw")
    assert.is_false(ok)
    assert.truthy(err:find("attack: unknown attack 'cw' (available: apgd, fgsm, pgd; or give a path", 1, true))
    ok, err = pcall(lab.attributions.load, "lime")
    assert.truthy(err:find("unknown attribution 'lime' (available: gradcam, gradcampp, saliency", 1, true))
    local dir = tmpdir()
    write(dir .. "/bad.lua", "return {steps = 0}")
    ok, err = pcall(lab.attacks.load, dir .. "/bad.lua")
    assert.truthy(err:find("field steps must be an integer ≥ 1, got 0", 1, true))
    write(dir .. "/empty.lua", "return {}")
    ok, err = pcall(lab.attributions.load, dir .. "/empty.lua")
    assert.truthy(err:find("must return a table with compute(model, x, opts) or from_gradients", 1, true))
    os.execute("rm -rf " .. lab.util.shell_quote(dir))
  end)

  it("run the shipped attacks as attack.pgd and attack.fgsm do", function()
    local x = lab.tensor({0.5, 0.52, 0.3}):reshape(3, 1, 1, 1)
    local o = {target = 3, eps = 0.1, step_size = 0.01, steps = 50}
    local a = lab.attacks.run("pgd", pixel_model(), x, o)
    local b = lab.attack.pgd(pixel_model(), x, o)
    assert.same(b.steps:totable(), a.steps:totable())
    assert.same({6, 4, 50}, a.steps:totable())
    local ok, err = pcall(lab.attacks.run, "fgsm", pixel_model(), x, {target = 3, steps = 2})
    assert.truthy(err:find("FGSM takes exactly one step, got steps = 2", 1, true))
  end)
end)

describe("a toy plug-in in a temporary folder: one file, no other change", function()
  local dir, tree, shipped
  setup(function()
    tree = source_tree()
    shipped = {lab.attacks.available(), lab.attributions.available()}
    dir = tmpdir()
    write(dir .. "/halfstep.lua", TOY_ATTACK)
    write(dir .. "/activation_sum.lua", TOY_ATTRIBUTION)
  end)
  teardown(function() os.execute("rm -rf " .. lab.util.shell_quote(dir)) end)

  it("the folder holds exactly the two plug-in files, one each", function()
    assert.same({"activation_sum.lua", "halfstep.lua"}, files_in(dir))
  end)

  it("an attack file is loaded by path and run by the engine with its own step", function()
    local toy = lab.attacks.load(dir .. "/halfstep.lua")
    assert.equal("halfstep", toy.name)
    -- α = 0.02 given, the toy steps 0.01: from 0.5 it needs 6 steps (PGD at 0.02: 3)
    local x = lab.tensor({0.5}):reshape(1, 1, 1, 1)
    local r = lab.attacks.run(toy, pixel_model(), x, {target = 3, eps = 0.1, step_size = 0.02})
    assert.same({6}, r.steps:totable())
    assert.same({1}, r.success:totable())
    assert.equal("halfstep", r.settings.attack)
    assert.equal(40, lab.attacks.run(toy, pixel_model(), lab.tensor({0.3}):reshape(1, 1, 1, 1),
      {target = 3, eps = 0.1}).settings.steps)
    local pgd = lab.attacks.run("pgd", pixel_model(), x, {target = 3, eps = 0.1, step_size = 0.02})
    assert.same({3}, pgd.steps:totable())
  end)

  it("an attribution file is loaded by path and computed by the engine from its arithmetic",
    function()
      local toy = lab.attributions.load(dir .. "/activation_sum.lua")
      assert.equal("activation_sum", toy.name)
      assert.is_true(toy.layered)
      assert.equal("activation_sum", toy.saved.raw)
      local net = lab.models.seed_cnn{generator = lab.Generator(3)}
      local x = lab.rand({2, 3, 28, 28}, {generator = lab.Generator(4)})
      local r = toy.compute(net, x, {layer = "relu3"})
      assert.same({2, 6, 6}, r.maps.shape)
      assert.same({2, 28, 28}, r.upsampled.shape)
      local acts = lab.hooks.capture(net, "relu3", x)
      assert.is_true((acts.relu3:sum(1) - r.maps):abs():max():item() < 1e-4)
    end)

  local heavy = require("tests.helpers").heavy("two whole task runs")
  heavy("task 3 and task 5 take them with --methods and --attack", function()
    local out = dir .. "/runs"
    lab.util.mkdir_p(out)
    local function run(script, args)
      return os.execute(("%s %s --data generated --quick --threads 1 %s >%s/log.txt 2>&1"):format(
        BIN, script, args, out))
    end
    -- a model to explain: an untrained seed network saved where the scripts look
    local net = lab.models.seed_cnn{generator = lab.Generator(5)}
    lab.save_safetensors(out .. "/model.safetensors", net:state_dict())
    assert.is_true(run("scripts/task3_gradcam.lua", ("--model %s/model.safetensors --n 40 "
      .. "--examples 2 --compare none --methods gradcam,%s/activation_sum.lua --out %s/t3"):format(
      out, dir, out)), lab.util.read_file(out .. "/log.txt"))
    local m3 = lab.util.json_decode(lab.util.read_file(out .. "/t3/metrics.json"))
    assert.is_number(m3.activation_sum_share_easy)
    assert.is_number(m3.gradcam_share_easy)
    assert.is_nil(m3.saliency_share_easy)
    assert.is_true(run("scripts/task5_attack.lua", ("--model %s/model.safetensors --no-matrix "
      .. "--curve-n 5 --curve-eps 0,0.05 --attack %s/halfstep.lua --out %s/t5"):format(out, dir,
      out)), lab.util.read_file(out .. "/log.txt"))
    local m5 = lab.util.json_decode(lab.util.read_file(out .. "/t5/metrics.json"))
    assert.equal("halfstep", m5.attack)
    assert.same({"activation_sum.lua", "halfstep.lua", "runs"}, files_in(dir)) -- only the runs
  end)

  it("nothing else changed: the library, the scripts and the shipped registries", function()
    assert.truthy(tree:find("lua/cnnlab/attacks/pgd.lua", 1, true))
    assert.equal(tree, source_tree())
    assert.same(shipped, {lab.attacks.available(), lab.attributions.available()})
    assert.same({"apgd", "fgsm", "pgd"}, shipped[1])
    assert.same({"gradcam", "gradcampp", "saliency"}, shipped[2])
  end)
end)
