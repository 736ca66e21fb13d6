-- The script library (cnnlab.study): options, the one data cache, train-and-evaluate, flat
-- accuracies, picking the best model, frozen evaluation, comma lists and target classes.
local lab = require "cnnlab"
local study = lab.study
local util = lab.util
local nn = lab.nn

local tmpdir = require("tests.helpers").tmpdir

local function option(list, name)
  for _, o in ipairs(list) do if o[1] == name then return o end end
end

local function tiny_method()
  local m = {name = "tiny", options = {}}
  function m.build_model(ctx)
    local net = nn.Sequential()
    net:add(nn.Conv2d(3, 4, 3, {padding = 1, generator = ctx.init_generator}), "conv1")
    net:add(nn.ReLU()):add(nn.MaxPool2d(3, 2)):add(nn.Flatten())
    net:add(nn.Linear(4 * 13 * 13, 10, {generator = ctx.init_generator}), "fc")
    return net
  end
  function m.loss(ctx, batch)
    local logits = ctx.model(batch.x)
    return lab.cross_entropy(logits, batch.y), logits
  end
  return m
end

local BASE = {seed = 3, rho = 1.0, beta = 0.25, data = "generated", data_dir = "", quick = false,
  threads = 0, generated_n = 300}

describe("study.options", function()
  it("puts the common options first, then the task's own, filling named COMMON entries", function()
    local list = study.options({"lr", {"out", "runs/x"}, {"batch", nil, "global batch"},
      {"steps", 8, "steps"}})
    assert.same({"batch", lab.defaults.study.batch, "global batch"}, option(list, "batch"))
    assert.equal("seed", list[1][1])
    assert.same({"lr", lab.defaults.study.lr, "learning rate"}, option(list, "lr"))
    assert.same({"out", "runs/x", "output folder"}, option(list, "out"))
    assert.same({"steps", 8, "steps"}, list[#list])
  end)
  it("parses through util.parse_args", function()
    local o = util.parse_args({"--lr", "0.5", "--quick"}, {name = "t",
      options = study.options({"lr", "optimizer"})}, {exit = false})
    assert.equal(0.5, o.lr)
    assert.is_true(o.quick)
    assert.equal("adam", o.optimizer)
  end)
  it("leaves out the common options a task does not take", function()
    local list = study.options({}, {without = {"seed", "rho"}})
    assert.is_nil(option(list, "seed"))
    assert.is_nil(option(list, "rho"))
    assert.truthy(option(list, "beta"))
    assert.has_error(function() study.options({}, {without = {"sed"}}) end,
      "study.options: without names 'sed', which is not a common option")
  end)
  it("names an unknown short entry", function()
    assert.has_error(function() study.options({"nonsense"}) end,
      "study.options: entry 1 names 'nonsense', which is not in study.COMMON; give {name, default, help}")
  end)
end)

describe("study.split", function()
  it("gives the items of a comma list, possibly none", function()
    assert.same({"relu1", "flatten"}, study.split(" relu1 ,flatten,"))
    assert.same({}, study.split(""))
  end)
end)

describe("study.list", function()
  it("splits on commas and blanks, converting", function()
    assert.same({"a", "b", "c"}, study.list("a, b,,c"))
    assert.same({1, 0.99}, study.list("1,0.99", "rhos", study.number_in(0, 1)))
    assert.same({1, 2}, study.list("1,2", "seeds", study.integer))
  end)
  it("names the option and the bad item", function()
    assert.has_error(function() study.list("1,1.5", "rhos", study.number_in(0, 1)) end,
      "--rhos: expected a number in [0, 1], got '1.5'")
    assert.has_error(function() study.list("0.5", "seeds", study.integer) end,
      "--seeds: expected an integer, got '0.5'")
    assert.has_error(function() study.list("x", "layers", function() end, "a layer name") end,
      "--layers: expected a layer name, got 'x'")
    assert.has_error(function() study.list(" , ", "methods") end,
      "--methods: a comma list of at least one value expected, got ' , '")
  end)
end)

describe("study.classes", function()
  it("turns an integer into a vector and checks a tensor", function()
    assert.same({3, 3, 3}, study.classes("f", "target", 3, 3, 10):totable())
    local t = lab.tensor({1, 2}, {dtype = "int64"})
    assert.same({1, 2}, study.classes("f", "target", t, 2, 10):totable())
    assert.is_nil(study.classes("f", "target", nil, 2, 10))
  end)
  it("names the argument, what was expected and what came", function()
    assert.has_error(function() study.classes("f", "target", 10, 2, 10) end,
      "f: target must be a class in 0..9, got 10")
    assert.has_error(function() study.classes("f", "target", "3", 2, 10) end,
      "f: target must be nil (the predicted class), an integer class or an int64 tensor of 2 classes, got string")
    assert.has_error(function()
      study.classes("f", "labels", lab.tensor({1, 2, 3}, {dtype = "int64"}), 2, 10)
    end, "f: labels must hold one class per sample (2), got shape {3}")
    assert.has_error(function()
      study.classes("f", "target", lab.tensor({1, 12}, {dtype = "int64"}), 2, 10)
    end, "f: target must be classes in 0..9, got values from 1 to 12")
  end)
end)

describe("study.frozen", function()
  local net = nn.Sequential()
  net:add(nn.Linear(2, 2), "fc")
  net:add(nn.Dropout(0.5), "drop")

  it("runs fn in evaluation mode, parameters frozen, no graph; restores all three", function()
    net:train()
    local seen = study.frozen(net, function(m)
      local y = m(lab.ones({1, 2}))
      return {training = m.training, req = m:parameters()[1].requires_grad,
        graph = y.requires_grad}
    end)
    assert.same({training = false, req = false, graph = false}, seen)
    assert.is_true(net.training)
    assert.is_true(net:parameters()[1].requires_grad)
    assert.is_true(lab.ones({1}, {requires_grad = true}):sum().requires_grad)
  end)
  it("can record a graph to the input with opts.grad", function()
    local x = lab.ones({1, 2}, {requires_grad = true})
    local req = study.frozen(net, function(m) return m(x).requires_grad end, {grad = true})
    assert.is_true(req)
  end)
  it("restores the model when fn raises, and re-raises", function()
    net:train()
    assert.has_error(function() study.frozen(net, function() error("boom", 0) end) end, "boom")
    assert.is_true(net.training)
    assert.is_true(net:parameters()[1].requires_grad)
  end)
end)

describe("study.data_cache", function()
  it("holds one data set: the same seed and rho reuse it, another builds anew", function()
    local cache = study.data_cache(BASE)
    local a = cache:get(3, 1.0)
    assert.equal(a, cache:get(3, 1.0))
    assert.equal(1, cache.loads)
    local b = cache:get(4, 1.0)
    assert.are_not.equal(a, b)
    assert.equal(2, cache.loads)
    assert.equal(4, b.signature.seed)
    assert.equal(300, b.signature.generated_n)
    -- the base options are not changed by a get
    assert.equal(3, BASE.seed)
  end)
end)

describe("study.fit_options", function()
  it("passes the script's settings, SGD's study momentum, and the method's epochs for 0", function()
    local o = study.fit_options({epochs = 0, batch = 32, lr = 0.1, optimizer = "sgd", seed = 2,
      progress = false}, "m", {signature = "sig"}, {out = "d"})
    assert.equal(0.9, o.momentum)
    assert.is_nil(o.epochs)
    assert.same({32, 0.1, "sgd", 2, "sig", "d"}, {o.batch, o.lr, o.optimizer, o.seed,
      o.data_signature, o.out})
    assert.is_nil(study.fit_options({optimizer = "adam"}, "m", {}).momentum)
  end)
end)

describe("study.train_and_evaluate", function()
  it("trains, evaluates the named sets, and gives flat accuracies", function()
    local sets = study.load_data(BASE)
    local opts = {epochs = 1, batch = 64, lr = 3e-3, optimizer = "adam", seed = 3, progress = false}
    local run = study.train_and_evaluate(opts, tiny_method(), sets, {evaluate = {"val", "hard"}})
    assert.is_false(run.interrupted)
    assert.is_nil(run.ev.train)
    local m = study.accuracies(run.ev, {val = {"acc"}, hard = {"acc", "conflicting_acc"}})
    assert.same({"hard_acc", "hard_conflicting_acc", "val_acc"}, (function()
      local t = {}
      for k in pairs(m) do t[#t + 1] = k end
      table.sort(t)
      return t
    end)())
    assert.equal(lab.train.accuracy(run.model, sets.hard), m.hard_acc)
    local follows = study.follows_colour(run.ev.hard, sets.hard)
    assert.is_true(follows >= 0 and follows <= 100)
    assert.has_error(function() study.accuracies(run.ev, {train = {"acc"}}) end,
      "study.accuracies: no evaluation of set 'train' (have: hard, val)")
  end)
end)

describe("study.best_model", function()
  it("picks the highest mean among the labels with a model, skipping excluded ones", function()
    local d = tmpdir()
    util.write_json(d .. "/metrics.json", {erm_hard_acc_mean = 90, lff_hard_acc_mean = 40,
      jtt_hard_acc_mean = 60, dropout_hard_acc_mean = 80, jtt_val_acc_mean = 99})
    for _, l in ipairs({"erm", "lff", "jtt"}) do
      util.mkdir_p(d .. "/" .. l)
      util.write_file(d .. "/" .. l .. "/model.safetensors", "x")
    end
    local best = study.best_model(d, {exclude = {"erm"}})
    assert.same({path = d .. "/jtt/model.safetensors", method = "jtt", value = 60}, best)
    assert.equal("erm", study.best_model(d).method)
    local none, why = study.best_model(d .. "/nothing")
    assert.is_nil(none)
    assert.equal("there is no " .. d .. "/nothing/metrics.json", why)
    os.execute("rm -rf " .. util.shell_quote(d))
  end)
end)

describe("study.write_metrics", function()
  it("writes metrics.json atomically, leaving no temporary file", function()
    local d = tmpdir() .. "/sub"
    study.write_metrics(d, {a = 1, b = 0.5})
    assert.same({a = 1, b = 0.5}, util.json_decode(util.read_file(d .. "/metrics.json")))
    assert.same({"metrics.json"}, lab.listdir(d))
  end)
end)

describe("study.main", function()
  it("turns an error into 'name: message' on stderr and exit status 1", function()
    local bin = os.getenv("CNNLAB_BIN") or "./cnnlab"
    local script, err = os.tmpname(), os.tmpname()
    util.write_file(script, 'require("cnnlab.study").main("task9", function() error("no data", 0) end)\n')
    local _, _, code = os.execute(("%s %s 2>%s"):format(bin, script, err))
    assert.equal(1, code)
    assert.equal("task9: no data\n", util.read_file(err))
    os.remove(script)
    os.remove(err)
  end)
end)

describe("study.format_rho", function()
  it("writes rho with at least one and at most four decimals", function()
    assert.same({"1.0", "0.995", "0.9999", "0.5"}, {study.format_rho(1), study.format_rho(0.995),
      study.format_rho(0.99991), study.format_rho(0.5)})
  end)
end)
