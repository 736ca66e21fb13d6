-- Modules: the issue's first example, parameters and names, state_dict round trips, train
-- and eval, forward and backward hooks at the module boundary, and errors that say which
-- child of a Sequential failed.
local lab = require "cnnlab"
local nn = lab.nn

local function values(t)
  local out, flat = {}, t:contiguous():reshape(-1)
  for i = 0, flat:numel() - 1 do out[#out + 1] = flat:get(i) end
  return out
end

local function max_abs_diff(a, b) return (a - b):abs():max():item() end

describe("the first example", function()
  it("runs: conv net, forward hook, cross-entropy, backward to parameters and input", function()
    lab.manual_seed(1)
    local x = lab.rand({8, 3, 28, 28}, {requires_grad = true})
    local net = nn.Sequential {
      nn.Conv2d(3, 32, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(3, 2),
      nn.Flatten(), nn.Linear(32 * 13 * 13, 10) }
    local seen
    local h = net[1]:register_forward_hook(function(m, input, output)
      seen = output.shape
      return output
    end)
    local loss = lab.cross_entropy(net(x), lab.tensor({0, 1, 2, 3, 4, 5, 6, 7}):long())
    loss:backward()
    h:remove()
    assert.same({8, 32, 28, 28}, seen)
    assert.same({8, 3, 28, 28}, x.grad.shape)
    for _, p in ipairs(net:parameters()) do assert.is_not_nil(p.grad) end
    -- chance level for 10 classes
    assert.is_true(math.abs(loss:item() - math.log(10)) < 0.5)
  end)
end)

describe("parameters and state", function()
  local function seed_net()
    local net = nn.Sequential()
    net:add(nn.Conv2d(3, 4, 3, {padding = 1}), "conv1"):add(nn.ReLU())
    net:add(nn.Flatten()):add(nn.Linear(4 * 5 * 5, 10), "fc")
    return net
  end

  it("names parameters with dotted paths in registration order", function()
    local names = {}
    for _, e in ipairs(seed_net():named_parameters()) do names[#names + 1] = e[1] end
    assert.same({"conv1.weight", "conv1.bias", "fc.weight", "fc.bias"}, names)
  end)

  it("loads a state_dict into a fresh model with identical outputs", function()
    local a, b = seed_net(), seed_net()
    local x = lab.rand({2, 3, 5, 5})
    assert.is_true(max_abs_diff(a(x), b(x)) > 0)
    b:load_state_dict(a:state_dict())
    assert.equal(0, max_abs_diff(a(x), b(x)))
  end)

  it("rejects missing, unexpected and mis-shaped tensors, naming them", function()
    local net = seed_net()
    local sd = net:state_dict()
    sd["fc.bias"] = nil
    assert.has_error(function() net:load_state_dict(sd) end,
      "load_state_dict: missing tensor(s): fc.bias")
    sd = net:state_dict()
    sd["conv9.weight"] = lab.zeros(1)
    assert.has_error(function() net:load_state_dict(sd) end,
      "load_state_dict: unexpected tensor(s): conv9.weight")
    sd = net:state_dict()
    sd["fc.weight"] = lab.zeros(10, 7)
    local ok, err = pcall(net.load_state_dict, net, sd)
    assert.is_false(ok)
    assert.truthy(err:find("'fc.weight' has shape 10×7 in the file but 10×100 in the model", 1, true))
    net:load_state_dict({["fc.bias"] = lab.zeros(10)}, {strict = false})
    assert.same({0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, values(net.fc.bias))
  end)

  it("switches dropout off in evaluation mode", function()
    local net = nn.Sequential {nn.Dropout(0.5)}
    local x = lab.ones(1000)
    net:train()
    local y = net(x)
    local zeros = (y:eq(0)):sum():item()
    assert.is_true(zeros > 400 and zeros < 600)
    net:eval()
    assert.equal(0, max_abs_diff(net(x), x))
  end)
end)

describe("hooks", function()
  local function small()
    lab.manual_seed(2)
    return nn.Sequential {nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)}
  end

  it("a forward hook sees the real output; a replacing hook changes the result", function()
    local net, x = small(), lab.rand({5, 4})
    local plain = net(x)
    local captured
    local h1 = net[1]:register_forward_hook(function(m, input, output)
      captured = output:detach()
    end)
    net(x)
    assert.equal(0, max_abs_diff(captured, net[1](x)))
    local h2 = net[2]:register_forward_hook(function(m, input, output) return output * 0 end)
    local zeroed = net(x)
    assert.equal(0, max_abs_diff(zeroed, net[3].bias:reshape(1, 2):expand(5, 2)))
    h2:remove()
    assert.equal(0, max_abs_diff(net(x), plain))
    h1:remove()
  end)

  it("a removed hook no longer runs", function()
    local net, calls = small(), 0
    local h = net[1]:register_forward_hook(function() calls = calls + 1 end)
    net(lab.rand({1, 4}))
    h:remove()
    net(lab.rand({1, 4}))
    assert.equal(1, calls)
  end)

  it("a backward hook receives the gradient a retained intermediate shows", function()
    local net, x = small(), lab.rand({5, 4}, {requires_grad = true})
    local from_hook
    net[2]:register_backward_hook(function(m, grad) from_hook = grad:detach() end)
    local retained
    net[2]:register_forward_hook(function(m, input, output)
      output:retain_grad()
      retained = output
    end)
    net(x):sum():backward()
    assert.is_not_nil(from_hook)
    assert.equal(0, max_abs_diff(from_hook, retained.grad))
  end)

  it("a backward hook can replace the gradient", function()
    local net, x = small(), lab.rand({5, 4}, {requires_grad = true})
    net[3]:register_backward_hook(function(m, grad) return grad * 0 end)
    net(x):sum():backward()
    assert.equal(0, x.grad:abs():max():item())
  end)
end)

describe("errors", function()
  it("say which child of a Sequential failed, with sizes", function()
    local net = nn.Sequential {nn.Conv2d(3, 8, 3), nn.ReLU()}
    local ok, err = pcall(net, lab.rand({2, 28, 28}))
    assert.is_false(ok)
    assert.truthy(err:find("Sequential: child 1", 1, true))
    assert.truthy(err:find("2×28×28", 1, true))
  end)

  it("reject bad layer arguments", function()
    assert.has_error(function() nn.Conv2d(3, 0, 3) end,
      "Conv2d: out_channels must be a positive integer, got 0")
    assert.has_error(function() nn.Linear(3, 2, {bais = false}) end,
      "Linear: unknown option 'bais' (known: bias, generator)")
    assert.has_error(function() nn.Dropout(1.5) end, "Dropout: p must be in [0, 1), got 1.5")
    assert.has_error(function() nn.MaxPool2d(0) end,
      "MaxPool2d: kernel must be a positive integer, got 0")
  end)
end)

describe("optimizers", function()
  it("SGD and Adam reduce a quadratic loss and keep state across a save/load", function()
    for _, make in ipairs({
      function(p) return lab.optim.SGD(p, {lr = 0.1, momentum = 0.9}) end,
      function(p) return lab.optim.Adam(p, {lr = 0.1}) end,
    }) do
      local w = lab.tensor({3, -2}, {requires_grad = true})
      local opt = make({w})
      local first
      for step = 1, 50 do
        opt:zero_grad()
        local loss = (w * w):sum()
        first = first or loss:item()
        loss:backward()
        opt:step()
      end
      assert.is_true((w * w):sum():item() < first * 0.05)
      local tensors, scalars = opt:state_dict()
      local w2 = lab.tensor(w:detach()):requires_grad_()
      local opt2 = make({w2})
      opt2:load_state_dict(tensors, scalars)
      for _, o in ipairs({{opt, w}, {opt2, w2}}) do
        o[1]:zero_grad()
        ;(o[2] * o[2]):sum():backward()
        o[1]:step()
      end
      assert.equal(0, max_abs_diff(w, w2))
    end
  end)

  it("rejects bad options", function()
    local w = lab.zeros(2, {requires_grad = true})
    assert.has_error(function() lab.optim.Adam({w}, {learning_rate = 1}) end)
    assert.has_error(function() lab.optim.SGD({w}, {lr = -1}) end, "SGD: lr must be positive, got -1")
    assert.has_error(function() lab.optim.SGD({lab.zeros(2)}) end,
      "SGD: parameter 1 does not require grad")
  end)
end)
