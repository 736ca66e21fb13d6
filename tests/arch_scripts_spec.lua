-- Every script works with any model plug-in: Task 2 and Task 6 take their layers from the
-- model (cnnlab.models.feature_layers, keyed by the convolution each follows:
-- models.layer_labels), and a model without feature maps gets an error naming what to pass;
-- sweep.lua and mpi_compare.lua take --arch/--arch-opt and record the network they trained.
-- The seed network's names are what the layers resolve to for seed_cnn, so the study's files
-- keep their names.
local lab = require "cnnlab"
local util = lab.util
local models = lab.models

local BIN = os.getenv("CNNLAB_BIN") or "./cnnlab"
local tmpdir = require("tests.helpers").tmpdir

-- Runs a script with its arguments; returns whether it succeeded and its output.
local function run(dir, script, args)
  local log = dir .. "/log.txt"
  local ok = os.execute(("%s scripts/%s.lua --threads 1 %s >%s 2>&1"):format(BIN, script, args, log))
  return ok, util.read_file(log)
end
local function metrics(path) return util.json_decode(util.read_file(path .. "/metrics.json")) end

describe("the layers of a model, as the study names them", function()
  it("are relu1–relu3 keyed conv1–conv3 for the seed network", function()
    local net = models.seed_cnn{generator = lab.Generator(1)}
    local layers = models.require_feature_layers(net, "test")
    assert.same({"relu1", "relu2", "relu3"}, layers)
    local labels, titles = models.layer_labels(net)
    assert.same({relu1 = "conv1", relu2 = "conv2", relu3 = "conv3"}, labels)
    assert.equal("conv2 after ReLU (relu2)", titles.relu2)
    -- the labels of the seed network are those ablation.CONV has always given
    for _, l in ipairs(lab.ablation.LAYERS) do assert.equal(lab.ablation.CONV[l], labels[l]) end
    -- a layer after a listed one keeps its own name (pool3 follows relu3, not conv3 alone)
    labels = models.layer_labels(net, {"relu1", "relu2", "relu3", "pool3", "fc"})
    assert.equal("pool3", labels.pool3)
    assert.equal("fc", labels.fc)
  end)

  it("follow BatchNorm in bn_cnn and the widths of simple_convnet", function()
    local bn = models.load("bn_cnn").build(nil, nil, {})
    local labels, titles = models.layer_labels(bn)
    assert.equal("conv3", labels.relu3)
    assert.equal("conv3 after BatchNorm2d and ReLU (relu3)", titles.relu3)
    local sc = models.load("simple_convnet", {kernel = "3", widths = "4,8,8,16"}).build(nil, nil, {})
    assert.same({"relu1", "relu2", "relu3", "relu4"}, models.feature_layers(sc))
    assert.equal("conv4", (models.layer_labels(sc)).relu4)
  end)

  it("are missing in an MLP: the error names the networks, the options and the modules", function()
    local net = models.load("lff_mlp", {hidden = "8"}).build(nil, nil, {})
    local ok, err = pcall(models.require_feature_layers, net, "task6", "or pass --layers")
    assert.is_false(ok)
    assert.truthy(err:find("task6 needs convolutional feature maps", 1, true), err)
    assert.truthy(err:find("--arch seed_cnn, bn_cnn or simple_convnet", 1, true), err)
    assert.truthy(err:find("or pass --layers (its modules: flatten, fc1, relu1, fc2", 1, true), err)
    ok, err = pcall(models.require_feature_layers, net, "task2", false)
    assert.is_false(ok)
    assert.truthy(err:find("simple_convnet instead$"), err)
  end)
end)

-- Whole task runs on small generated sets: under the sanitizers (~10x slower) they would take
-- CI past its time; they check the wiring, not memory, and `make test` runs them.
local heavy = os.getenv("CNNLAB_SANITIZER") and function(name)
  pending(name .. " (whole task runs: run by make test, not under the sanitizers)")
end or it

describe("Task 2 and Task 6 on other networks", function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute("rm -rf " .. util.shell_quote(dir)) end)

  heavy("bn_cnn: Task 2's maps and Task 6's curves at its own layers", function()
    local ok, log = run(dir, "task1_train", ("--data generated --arch bn_cnn --epochs 1 --batch 50 "
      .. "--out %s/bn1"):format(dir))
    assert.is_true(ok, log)
    local model = ("--data generated --model %s/bn1/model.safetensors"):format(dir)
    ok, log = run(dir, "task2_features", ("%s --n 100 --response_n 20 --out %s/bn2"):format(model, dir))
    assert.is_true(ok, log)
    local m2 = metrics(dir .. "/bn2")
    assert.equal("relu1,relu2,relu3", m2.feature_layers)
    assert.equal("conv1,conv2,conv3", m2.feature_labels)
    for _, l in ipairs({"relu1", "relu2", "relu3", "fc"}) do assert.is_number(m2["eta2_color_" .. l], l) end
    assert.is_number(m2.conv1_color_selectivity)
    local svg = util.read_file(dir .. "/bn2/features.svg")
    assert.truthy(svg:find("conv3 after BatchNorm2d and ReLU (relu3) — 128 channels, 6×6", 1, true))
    local t = lab.load_safetensors(dir .. "/bn2/features.safetensors")
    assert.same({3, 64, 13, 13}, t.relu2.shape)
    ok, log = run(dir, "task6_ablation", ("%s --n_easy 100 --n_hard 100 --n_probe 100 --flip_n 5 "
      .. "--n_attr 50 --random_repeats 1 --steps 2 --out %s/bn6"):format(model, dir))
    assert.is_true(ok, log)
    local m6 = metrics(dir .. "/bn6")
    assert.equal("relu1,relu3", m6.layers)
    assert.equal("relu1,relu2,relu3", m6.demo_layers)
    assert.equal("conv1,conv2,conv3", m6.layer_keys)
    assert.is_number(m6.conv2_mean_color_selectivity)
    assert.is_number(m6.conv3_hard_baseline)
    assert.truthy(util.exists(dir .. "/bn6/curves_conv1.svg"))
    assert.truthy(util.exists(dir .. "/bn6/curves_conv3.svg"))
    -- the report reads the keys from the metrics
    local rows = lab.report.sections[7].rows(m6)
    assert.truthy(rows[1][1]:find("^conv1: mean selectivity"), rows[1][1])
  end)

  heavy("simple_convnet: Task 6 curves at its first and fourth layers", function()
    local ok, log = run(dir, "task1_train", ("--data generated --generated-n 400 --arch simple_convnet "
      .. "--arch-opt kernel=3,widths=4,8,8,16 --epochs 1 --batch 50 --out %s/sc1"):format(dir))
    assert.is_true(ok, log)
    ok, log = run(dir, "task6_ablation", ("--data generated --model %s/sc1/model.safetensors "
      .. "--demo_index 0 --n_easy 60 --n_hard 60 --n_probe 60 --flip_n 3 --n_attr 30 "
      .. "--random_repeats 1 --steps 2 --out %s/sc6"):format(dir, dir))
    assert.is_true(ok, log)
    local m6 = metrics(dir .. "/sc6")
    assert.equal("relu1,relu4", m6.layers)
    assert.equal("relu1,relu2,relu3,relu4", m6.demo_layers)
    assert.equal("conv1,conv2,conv3,conv4", m6.layer_keys)
    assert.equal(16, m6.demo_conv4_channels)
    assert.truthy(util.exists(dir .. "/sc6/curves_conv4.svg"))
    assert.falsy(util.exists(dir .. "/sc6/curves_conv3.svg"))
  end)

  heavy("lff_mlp: Task 2 and Task 6 say what to pass; Task 6 runs on named layers", function()
    local ok, log = run(dir, "task1_train", ("--data generated --generated-n 400 --arch lff_mlp "
      .. "--arch-opt hidden=8 --epochs 1 --batch 50 --out %s/mlp1"):format(dir))
    assert.is_true(ok, log)
    local model = ("--data generated --model %s/mlp1/model.safetensors"):format(dir)
    ok, log = run(dir, "task2_features", model .. " --out " .. dir .. "/mlp2")
    assert.is_falsy(ok)
    assert.truthy(log:find("the model 'lff_mlp' has none", 1, true), log)
    assert.truthy(log:find("--arch seed_cnn, bn_cnn or simple_convnet", 1, true), log)
    ok, log = run(dir, "task6_ablation", model .. " --out " .. dir .. "/mlp6")
    assert.is_falsy(ok)
    assert.truthy(log:find("or pass --layers and --demo_layers with layers of the model (its "
      .. "modules: flatten, fc1, relu1", 1, true), log)
    ok, log = run(dir, "task6_ablation", ("%s --layers relu1,relu3 --demo_layers relu1 "
      .. "--demo_index 0 --n_easy 60 --n_hard 60 --n_probe 60 --flip_n 3 --n_attr 30 "
      .. "--random_repeats 1 --steps 2 --out %s/mlp6"):format(model, dir))
    assert.is_true(ok, log)
    local m6 = metrics(dir .. "/mlp6")
    assert.equal("relu1,relu3", m6.layer_keys) -- no convolution before them: their own names
    assert.equal(8, m6.demo_relu1_channels)
    assert.truthy(util.exists(dir .. "/mlp6/curves_relu3.svg"))
  end)
end)

describe("sweep.lua and mpi_compare.lua take --arch", function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute("rm -rf " .. util.shell_quote(dir)) end)

  it("sweep trains every point with the network and will not reuse another network's", function()
    local args = ("--data generated --generated-n 300 --methods erm --rhos 1 --seeds 1 --epochs 1 "
      .. "--batch 50 --out %s/sweep"):format(dir)
    local ok, log = run(dir, "sweep", args .. " --arch lff_mlp --arch-opt hidden=8")
    assert.is_true(ok, log)
    local point = dir .. "/sweep/erm_rho1_seed1"
    local m = metrics(point)
    assert.equal("lff_mlp", m.arch)
    assert.equal('{"hidden":8}', m.arch_options)
    local t, meta = lab.load_safetensors(point .. "/model.safetensors")
    assert.equal("lff_mlp", meta.arch)
    assert.same({8, 2352}, t["fc1.weight"].shape)
    local s = util.json_decode(util.read_file(dir .. "/sweep/summary.json"))
    assert.equal("lff_mlp", s.settings.arch)
    assert.equal(1, s.rows[1].n)
    -- the same folder with the seed network: the point is not taken for its own
    ok, log = run(dir, "sweep", args)
    assert.is_falsy(ok)
    assert.truthy(log:find("was trained with --arch lff_mlp {\"hidden\":8}, not --arch seed_cnn",
      1, true), log)
    s = util.json_decode(util.read_file(dir .. "/sweep/summary.json"))
    assert.equal(0, s.rows[1].n)
    -- a wrong network stops the sweep before anything trains
    ok, log = run(dir, "sweep", args .. " --arch lff_mlp --arch-opt depth=2")
    assert.is_falsy(ok)
    assert.truthy(log:find("--arch lff_mlp: model lff_mlp has no option 'depth' (options: hidden)",
      1, true), log)
  end)

  it("mpi_compare trains the network, records it, and compares only runs of one network", function()
    local args = "--data generated --batch 300 --bench 0 --no-progress"
    local ok, log = run(dir, "mpi_compare", ("%s --arch lff_mlp --arch-opt hidden=8 --out %s/a")
      :format(args, dir))
    assert.is_true(ok, log)
    local r = util.json_decode(util.read_file(dir .. "/a/result.json"))
    assert.equal("lff_mlp", r.arch)
    assert.equal('{"hidden":8}', r.arch_options)
    local t = lab.load_safetensors(("%s/a/snapshot_%d.safetensors"):format(dir, r.steps))
    assert.same({10, 8}, t["fc4.weight"].shape)
    ok, log = run(dir, "mpi_compare", ("%s --arch lff_mlp --arch-opt hidden=8 --out %s/b")
      :format(args, dir))
    assert.is_true(ok, log)
    ok, log = run(dir, "mpi_compare", ("--compare %s/a,%s/b --out %s"):format(dir, dir, dir))
    assert.is_true(ok, log)
    ok, log = run(dir, "mpi_compare", ("%s --arch seed_cnn --epochs 1 --no-snapshots --out %s/c")
      :format(args, dir))
    assert.is_true(ok, log)
    ok, log = run(dir, "mpi_compare", ("--compare %s/a,%s/c --out %s"):format(dir, dir, dir))
    assert.is_falsy(ok)
    assert.truthy(log:find("trained --arch seed_cnn {}, the reference", 1, true), log)
  end)
end)
