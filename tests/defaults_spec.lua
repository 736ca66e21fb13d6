-- One table of training defaults (cnnlab.defaults), read by the optimisers and the trainer:
-- PyTorch's values where the names match, SGD without a default learning rate, and the
-- study's own SGD momentum passed explicitly.
local lab = require "cnnlab"
local defaults = lab.defaults

local function leaf(...) return lab.zeros({...}, {requires_grad = true}) end

describe("cnnlab.defaults", function()
  it("holds PyTorch's optimiser defaults", function()
    assert.same({1e-3, 0.9, 0.999, 1e-8, 0.0}, {defaults.adam.lr, defaults.adam.beta1,
      defaults.adam.beta2, defaults.adam.eps, defaults.adam.weight_decay})
    assert.equal(0.01, defaults.adamw.weight_decay)
    assert.equal(0.0, defaults.sgd.momentum)
    assert.is_false(defaults.sgd.nesterov)
  end)
  it("is read-only and names a missing setting", function()
    assert.has_error(function() defaults.adam.lr = 1 end,
      "cnnlab.defaults.adam is read-only (tried to set 'lr'); pass the value where it is used")
    assert.has_error(function() return defaults.adam.betas end,
      "cnnlab.defaults.adam has no setting 'betas'")
  end)
  it("gives the study's SGD momentum 0.9 and nothing extra for Adam", function()
    assert.same({momentum = 0.9}, defaults.study_optimizer("sgd"))
    assert.same({}, defaults.study_optimizer("adam"))
  end)
end)

describe("the optimisers read cnnlab.defaults", function()
  it("Adam, AdamW and SGD fill in their defaults", function()
    local a = lab.optim.Adam({leaf(2)})
    assert.same({1e-3, 0.9, 0.999, 1e-8, 0.0, false}, {a.opts.lr, a.opts.beta1, a.opts.beta2,
      a.opts.eps, a.opts.weight_decay, a.opts.decoupled})
    local w = lab.optim.AdamW({leaf(2)})
    assert.same({0.01, true, "AdamW"}, {w.opts.weight_decay, w.opts.decoupled, w.kind})
    local s = lab.optim.SGD({leaf(2)}, {lr = 0.1})
    assert.same({0.1, 0.0, 0.0, false}, {s.opts.lr, s.opts.momentum, s.opts.weight_decay,
      s.opts.nesterov})
  end)
  it("SGD requires lr", function()
    assert.has_error(function() lab.optim.SGD({leaf(2)}) end,
      "SGD: option 'lr' is required (a number; there is no default), got nil")
  end)
end)

describe("train.fit's optimiser", function()
  local source = lab.data.generated{n = 200, n_test = 40, seed = 3}
  local sets = lab.data.colored_mnist{seed = 3, source = source}
  local method = lab.debias.load("erm")
  local function fit(o)
    local args = {method = method, data = {train = sets.train}, epochs = 1, batch = 200,
      seed = 1, progress = false, validate = false, model_factory = function()
        local net = lab.nn.Sequential()
        net:add(lab.nn.Flatten()):add(lab.nn.Linear(3 * 28 * 28, 10), "fc")
        return net
      end}
    for k, v in pairs(o) do args[k] = v end
    return lab.train.fit(args).context.optimizer
  end
  it("leaves lr to the optimiser: Adam's default, SGD's momentum 0 unless given", function()
    assert.equal(defaults.adam.lr, fit({}).opts.lr)
    local sgd = fit({optimizer = "sgd", lr = 0.05})
    assert.same({"SGD", 0.05, 0.0}, {sgd.kind, sgd.opts.lr, sgd.opts.momentum})
    assert.equal(0.9, fit({optimizer = "sgd", lr = 0.05, momentum = 0.9}).opts.momentum)
  end)
  it("says that SGD needs a learning rate", function()
    assert.has_error(function() fit({optimizer = "sgd"}) end,
      "train: optimizer sgd needs lr (SGD has no default learning rate), got nil")
  end)
end)
