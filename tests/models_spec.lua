-- Networks as plug-ins (lua/cnnlab/models/): the registry, the seed network unchanged (the
-- same parameters from the same generator as before the registry), each shipped network
-- against its definition (SPEC §3, PROTOCOLS §1 and §2), the architecture record that lets
-- study.load_model rebuild a network from its file, and the layers the analyses use.
local lab = require "cnnlab"
local nn = lab.nn
local util = require "cnnlab.util"
local models = require "cnnlab.models"
local study = require "cnnlab.study"

local function equal(a, b) return a:numel() == b:numel() and a:eq(b):sum():item() == a:numel() end
local function shapes(net)
  local out = {}
  for k, v in pairs(net:state_dict()) do out[k] = v.shape end
  return out
end

-- the seed network as lua/cnnlab/models.lua built it before the registry (512 written out)
local function old_seed_cnn(g)
  local net = nn.Sequential()
  net:add(nn.Conv2d(3, 32, 3, {padding = 1, generator = g}), "conv1")
  net:add(nn.ReLU(), "relu1")
  net:add(nn.MaxPool2d(3, 2), "pool1")
  net:add(nn.Conv2d(32, 64, 3, {padding = 1, generator = g}), "conv2")
  net:add(nn.ReLU(), "relu2")
  net:add(nn.MaxPool2d(3, 2), "pool2")
  net:add(nn.Conv2d(64, 128, 3, {padding = 1, generator = g}), "conv3")
  net:add(nn.ReLU(), "relu3")
  net:add(nn.MaxPool2d(3, 2), "pool3")
  net:add(nn.Flatten(), "flatten")
  net:add(nn.Linear(512, 10, {generator = g}), "fc")
  return net
end

describe("the model registry", function()
  it("lists the shipped networks", function()
    assert.same({"bn_cnn", "lff_mlp", "seed_cnn", "simple_convnet"}, models.available())
  end)

  it("names what exists, and the options of a network", function()
    local ok, err = pcall(models.load, "resnet")
    assert.truthy(not ok and err:find("lff_mlp, seed_cnn", 1, true), err)
    ok, err = pcall(models.load, "lff_mlp", {width = "3"})
    assert.truthy(not ok and err:find("options: hidden", 1, true), err)
    assert.equal(8, models.load("lff_mlp", {hidden = "8"}).options.hidden)
  end)
end)

describe("--arch-opt / --dataset-opt parsing", function()
  it("takes repeated and comma-separated items; a comma item without = continues a value", function()
    assert.same({kernel = "3", widths = "4,8", hidden = "7"},
      models.parse_options({"kernel=3,widths=4,8", "hidden=7"}, "--arch-opt"))
    local ok, err = pcall(models.parse_options, {"4,kernel=3"}, "--arch-opt")
    assert.truthy(not ok and err:find("--arch-opt expects key=value", 1, true), err)
  end)
end)

describe("seed_cnn (SPEC §3)", function()
  it("draws the same parameters from the same generator as before the registry", function()
    local a = models.seed_cnn{generator = lab.Generator(7, 1)}
    local b = old_seed_cnn(lab.Generator(7, 1))
    local sa, sb = a:state_dict(), b:state_dict()
    for k, v in pairs(sb) do assert.is_true(equal(v, sa[k]), k) end
    for k in pairs(sa) do assert.truthy(sb[k], k) end
    local x = lab.rand({2, 3, 28, 28})
    assert.is_true(equal(a(x), b(x)))
  end)

  it("has SPEC §4's names and shapes; its flattened size comes from the input shape", function()
    assert.same({["conv1.weight"] = {32, 3, 3, 3}, ["conv1.bias"] = {32},
      ["conv2.weight"] = {64, 32, 3, 3}, ["conv2.bias"] = {64},
      ["conv3.weight"] = {128, 64, 3, 3}, ["conv3.bias"] = {128},
      ["fc.weight"] = {10, 512}, ["fc.bias"] = {10}}, shapes(models.seed_cnn()))
    local net = models.load("seed_cnn").build({1, 32, 32}, 4, {})
    assert.same({4, 128 * 3 * 3}, net.fc.weight.shape)  -- 32 → 15 → 7 → 3
    assert.same({2, 4}, net(lab.rand({2, 1, 32, 32})).shape)
    assert.same({"relu1", "relu2", "relu3"}, models.feature_layers(net))
    assert.equal("relu3", models.gradcam_layer(net))
  end)

  it("keeps dropout out of the parameter names", function()
    local net = models.seed_cnn{dropout = 0.5, dropout_generator = lab.Generator(1, 2)}
    assert.truthy(net.drop1)
    assert.is_nil(net:state_dict()["drop1.weight"])
  end)
end)

describe("lff_mlp (PROTOCOLS §1)", function()
  it("is Linear(2352,100)–ReLU–Linear(100,100)–ReLU–Linear(100,100)–ReLU–Linear(100,10)", function()
    local net = models.load("lff_mlp").build({3, 28, 28}, 10, {generator = lab.Generator(1, 1)})
    assert.same({["fc1.weight"] = {100, 2352}, ["fc1.bias"] = {100}, ["fc2.weight"] = {100, 100},
      ["fc2.bias"] = {100}, ["fc3.weight"] = {100, 100}, ["fc3.bias"] = {100},
      ["fc4.weight"] = {10, 100}, ["fc4.bias"] = {10}}, shapes(net))
    local kinds = {}
    for i, m in ipairs(net:children()) do kinds[i] = getmetatable(m).__name end
    assert.same({"Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear", "ReLU", "Linear"}, kinds)
    -- PyTorch's default initialisation: U(−1/√fan_in, 1/√fan_in) for weights and biases
    local w = net.fc1.weight
    local bound = 1 / math.sqrt(2352)
    assert.is_true(w:max():item() <= bound and w:min():item() >= -bound)
    assert.is_true(w:max():item() > 0.9 * bound and w:min():item() < -0.9 * bound)
    assert.same({5, 10}, net(lab.rand({5, 3, 28, 28})).shape)
  end)

  it("has no feature maps: Grad-CAM says so and what to pick instead", function()
    local net = models.load("lff_mlp").build({3, 28, 28}, 10, {})
    assert.same({}, models.feature_layers(net))
    assert.is_nil(models.gradcam_layer(net))
    local ok, err = pcall(lab.gradcam.compute, net, lab.rand({1, 3, 28, 28}))
    assert.is_false(ok)
    assert.truthy(err:find("needs convolutional feature maps", 1, true), err)
    assert.truthy(err:find("--arch seed_cnn", 1, true), err)
  end)
end)

describe("the architecture record", function()
  it("is empty for the default seed network (its files stay byte for byte)", function()
    assert.same({}, models.metadata(models.load("seed_cnn")))
    assert.same({}, models.metadata(models.load("seed_cnn"), {3, 28, 28}, 10))
    assert.equal("seed_cnn", models.metadata(models.load("seed_cnn"), {1, 28, 28}, 10).arch)
  end)

  it("lets study.load_model rebuild a network from its file", function()
    local arch = models.load("lff_mlp", {hidden = "7"})
    local net = arch.build({2, 9, 9}, 3, {generator = lab.Generator(3, 3)})
    local path = os.tmpname()
    local meta = models.metadata(arch, {2, 9, 9}, 3)
    meta.format = "cnnlab model"
    lab.save_safetensors(path, net:state_dict(), meta)
    local back = study.load_model(path)
    os.remove(path)
    assert.equal("lff_mlp", back.arch.name)
    assert.equal(7, back.arch.options.hidden)
    local x = lab.rand({4, 2, 9, 9})
    assert.is_true(equal(net(x), back(x)))
  end)
end)

describe("bn_cnn and simple_convnet (BatchNorm2d, AdaptiveAvgPool2d)", function()
  local have = nn.BatchNorm2d ~= nil and nn.AdaptiveAvgPool2d ~= nil

  it("bn_cnn: the seed network with BatchNorm2d after each convolution", function()
    if not have then pending("nn.BatchNorm2d is missing in this build (the ops branch adds it)") return end
    local net = models.load("bn_cnn").build({3, 28, 28}, 10, {generator = lab.Generator(7, 1)})
    local seed = models.seed_cnn{generator = lab.Generator(7, 1)}
    for _, k in ipairs({"conv1.weight", "conv2.bias", "conv3.weight", "fc.weight"}) do
      assert.is_true(equal(seed:state_dict()[k], net:state_dict()[k]), k)
    end
    local names = {}
    for _, e in ipairs(net:named_modules()) do names[#names + 1] = e[1] end
    assert.same({"", "conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2", "pool2", "conv3",
      "bn3", "relu3", "pool3", "flatten", "fc"}, names)
    assert.same({32}, net.bn1.weight.shape)
    assert.equal(1, net.bn2.weight:min():item())
    assert.equal(0, net.bn3.bias:max():item())
    assert.same({3, 10}, net(lab.rand({3, 3, 28, 28})).shape)
  end)

  it("bn_cnn through Task 1 and Task 3: buffers saved, the network rebuilt from its file", function()
    if not have then pending("nn.BatchNorm2d is missing in this build (the ops branch adds it)") return end
    local bin = os.getenv("CNNLAB_BIN") or "./cnnlab"
    local dir = os.tmpname()
    os.remove(dir)
    util.mkdir_p(dir)
    local ok = os.execute(("%s scripts/task1_train.lua --data generated --generated-n 400 --arch bn_cnn "
      .. "--epochs 1 --batch 50 --threads 1 --out %s/t1 >%s/log 2>&1 && %s scripts/task3_gradcam.lua "
      .. "--data generated --model %s/t1/model.safetensors --n 20 --examples 1 --threads 1 "
      .. "--out %s/t3 >>%s/log 2>&1"):format(bin, dir, dir, bin, dir, dir, dir))
    local log = util.read_file(dir .. "/log")
    local t, meta = lab.load_safetensors(dir .. "/t1/model.safetensors")
    local m = util.exists(dir .. "/t3/metrics.json") and util.json_decode(util.read_file(dir .. "/t3/metrics.json"))
    os.execute("rm -rf " .. util.shell_quote(dir))
    assert.truthy(ok, log)
    assert.equal("bn_cnn", meta.arch)
    assert.truthy(t["bn1.running_mean"])
    assert.equal("relu3", m.layer)
  end)

  it("simple_convnet: PROTOCOLS §2's blocks, global pooling, Kaiming fan_out init", function()
    if not have then
      pending("nn.BatchNorm2d / nn.AdaptiveAvgPool2d are missing in this build (the ops branch adds them)")
      return
    end
    local arch = models.load("simple_convnet")
    local net = arch.build({3, 28, 28}, 10, {generator = lab.Generator(2, 2)})
    local sd = shapes(net)
    assert.same({16, 3, 7, 7}, sd["conv1.weight"])
    assert.same({32, 16, 7, 7}, sd["conv2.weight"])
    assert.same({64, 32, 7, 7}, sd["conv3.weight"])
    assert.same({128, 64, 7, 7}, sd["conv4.weight"])
    assert.same({128}, sd["bn4.weight"])
    assert.same({10, 128}, sd["fc.weight"])
    assert.same({"relu1", "relu2", "relu3", "relu4"}, arch.feature_layers)
    -- Kaiming normal, fan_out: sd √(2/(64·49)) for conv4 (131,072 weights: within 2%)
    local w = net.conv4.weight
    local sdv = math.sqrt((w * w):mean():item())
    assert.is_true(math.abs(sdv / math.sqrt(2 / (128 * 49)) - 1) < 0.02, sdv)
    -- the full plane: relu4 keeps 28×28
    local r = lab.hooks.capture(net, "relu4", lab.rand({1, 3, 28, 28}))
    assert.same({1, 128, 28, 28}, (r.relu4 or r).shape)
    local small = models.load("simple_convnet", {kernel = "3", widths = "4,8"}).build({3, 12, 12}, 5, {})
    assert.same({5, 8}, small.fc.weight.shape)
    assert.same({2, 5}, small(lab.rand({2, 3, 12, 12})).shape)
  end)
end)
