-- cnnlab.hooks: capturing activations and gradients of named layers through module hooks.
-- (tests/modules_spec.lua covers the raw register_forward_hook / register_backward_hook
-- calls; this file tests the hooks.lua API built on them.)
local lab = require "cnnlab"
local nn = lab.nn
local hooks = lab.hooks

local function max_abs_diff(a, b) return (a - b):abs():max():item() end

-- A small named network with the seed's structure, on 3×12×12 inputs.
local function small_net(seed)
  local g = lab.Generator(seed or 7)
  local net = nn.Sequential()
  net:add(nn.Conv2d(3, 4, 3, {padding = 1, generator = g}), "conv1")
  net:add(nn.ReLU(), "relu1")
  net:add(nn.MaxPool2d(2), "pool1")
  net:add(nn.Conv2d(4, 6, 3, {padding = 1, generator = g}), "conv2")
  net:add(nn.ReLU(), "relu2")
  net:add(nn.Flatten(), "flatten")
  net:add(nn.Linear(6 * 6 * 6, 5, {generator = g}), "fc")
  net:eval()
  return net
end

local function inputs(n, seed)
  return lab.rand({n, 3, 12, 12}, {generator = lab.Generator(seed or 3)})
end

local function hook_count(net)
  local c = 0
  for _, entry in ipairs(net:named_modules()) do
    c = c + #entry[2]._forward_hooks + #entry[2]._backward_hooks
  end
  return c
end

describe("hooks.capture", function()
  it("returns what the named layers really output, and the model's output", function()
    local net, x = small_net(), inputs(4)
    local acts, out = hooks.capture(net, {"conv1", "relu1", "relu2"}, x)
    local c1 = net.conv1(x)
    local r1 = net.relu1(c1)
    local r2 = net.relu2(net.conv2(net.pool1(r1)))
    assert.equal(0, max_abs_diff(acts.conv1, c1))
    assert.equal(0, max_abs_diff(acts.relu1, r1))
    assert.equal(0, max_abs_diff(acts.relu2, r2))
    assert.equal(0, max_abs_diff(out, net(x)))
    assert.same({4, 6, 6, 6}, acts.relu2.shape)
    -- relu1 really is conv1 rectified: negative parts are gone
    assert.is_true(c1:min():item() < 0)
    assert.equal(0, max_abs_diff(acts.relu1, acts.conv1:relu()))
    -- without grad = true, nothing is recorded
    assert.is_false(acts.relu1.requires_grad)
    assert.is_false(out.requires_grad)
  end)

  it("removes its hooks afterwards, also when the forward pass fails", function()
    local net = small_net()
    assert.equal(0, hook_count(net))
    hooks.capture(net, "relu1", inputs(2))
    assert.equal(0, hook_count(net))
    local ok, err = pcall(hooks.capture, net, {"relu1", "fc"}, lab.rand({2, 3, 10, 10}))
    assert.is_false(ok)
    assert.truthy(tostring(err):find("fc", 1, true)) -- 10×10 inputs do not fit fc
    assert.equal(0, hook_count(net))
  end)

  it("keeps the model's mode and the grad mode", function()
    local net = small_net()
    net:train()
    hooks.capture(net, "relu1", inputs(1))
    assert.is_true(net.training)
    assert.is_true(net.conv1.training)
    local was = lab.set_grad_enabled(true) -- returns the mode capture left behind
    assert.is_true(was)
  end)

  it("applies reduce to each captured output", function()
    local net, x = small_net(), inputs(3)
    local acts = hooks.capture(net, {"relu1", "relu2"}, x, {reduce = function(name, t)
      return t:reshape(t:size(0), t:size(1), -1):mean(2)
    end})
    local full = hooks.capture(net, "relu1", x)
    assert.same({3, 4}, acts.relu1.shape)
    assert.is_true(max_abs_diff(acts.relu1, full.relu1:reshape(3, 4, -1):mean(2)) < 1e-6)
  end)

  it("names the function, the argument and the known layers in its errors", function()
    local net = small_net()
    local ok, err = pcall(hooks.capture, net, "relu9", inputs(1))
    assert.is_false(ok)
    assert.truthy(err:find("hooks.capture: the model has no layer 'relu9'", 1, true))
    assert.truthy(err:find("conv1, relu1, pool1", 1, true))
    ok, err = pcall(hooks.capture, net, {}, inputs(1))
    assert.truthy(err:find("names must be a layer name or a non-empty list", 1, true))
    ok, err = pcall(hooks.capture, net, "relu1", {1, 2})
    assert.truthy(err:find("hooks.capture: x must be a tensor", 1, true))
    ok, err = pcall(hooks.capture, {}, "relu1", inputs(1))
    assert.truthy(err:find("hooks.capture: model must be a cnnlab.nn module", 1, true))
    ok, err = pcall(hooks.capture, net, "relu1", inputs(1), {bogus = 1})
    assert.truthy(err:find("unknown option 'bogus'", 1, true))
  end)
end)

describe("hooks.attach", function()
  it("a replacing hook changes the model's result; once removed it no longer runs", function()
    local net, x = small_net(), inputs(2)
    local plain = net(x)
    local calls = 0
    local h = hooks.attach(net, {"relu2"}, function(name, m, input, output)
      calls = calls + 1
      assert.equal("relu2", name)
      assert.equal(net.relu2, m)
      return output * 0
    end)
    local zeroed = net(x)
    -- with relu2 zeroed, the logits are fc's bias alone
    assert.equal(0, max_abs_diff(zeroed, net.fc.bias:reshape(1, 5):expand(2, 5)))
    assert.is_true(max_abs_diff(zeroed, plain) > 1e-3)
    assert.equal(1, calls)
    h.remove()
    h.remove() -- removing twice is harmless
    assert.equal(0, max_abs_diff(net(x), plain))
    assert.equal(1, calls)
    assert.equal(0, hook_count(net))
  end)
end)

describe("hooks.collect", function()
  it("agrees with one capture over the whole batch, for any batch size", function()
    local net, x = small_net(), inputs(7)
    local bytes = (x * 255):byte()
    local xf = bytes:float() / 255
    local whole, out = hooks.capture(net, {"relu1", "relu2"}, xf)
    local parts = hooks.collect(net, {"relu1", "relu2"}, bytes, {batch = 3})
    assert.same({7, 4, 12, 12}, parts.relu1.shape)
    assert.is_true(max_abs_diff(parts.relu1, whole.relu1) < 1e-6)
    assert.is_true(max_abs_diff(parts.relu2, whole.relu2) < 1e-6)
    assert.is_true(max_abs_diff(parts.output, out) < 1e-6)
  end)
end)

describe("hooks.gradient", function()
  -- The reference: keep relu2's output and its gradient by hand.
  local function by_hand(net, x, target)
    local kept
    local h = net.relu2:register_forward_hook(function(_, _, output)
      output:retain_grad()
      kept = output
    end)
    local xin = x:clone():requires_grad_(true)
    local out = net(xin)
    out:gather(1, target:unsqueeze(1)):sum():backward()
    h:remove()
    local grad = kept.grad:detach():clone()
    net:zero_grad()
    return kept:detach(), grad, xin.grad
  end

  it("the backward hook receives the gradient a retained intermediate shows", function()
    local net, x = small_net(), inputs(5)
    local target = lab.tensor({0, 1, 2, 3, 4}, {dtype = "int64"})
    local act, grad, xgrad = by_hand(net, x, target)
    assert.is_true(grad:abs():max():item() > 0)
    for _, cut in ipairs({true, false}) do
      local r = hooks.gradient(net, "relu2", x, {target = target, cut = cut})
      assert.equal(0, max_abs_diff(r.activation, act))
      assert.is_true(max_abs_diff(r.gradient, grad) < 1e-6)
      assert.equal(0, max_abs_diff(r.target, target))
    end
    local r = hooks.gradient(net, "relu2", x, {target = target, input_grad = true})
    assert.is_true(max_abs_diff(r.input_grad, xgrad) < 1e-6)
  end)

  it("defaults to each row's top logit; an integer target means every row", function()
    local net, x = small_net(), inputs(4)
    local r = hooks.gradient(net, "relu2", x)
    assert.equal(0, max_abs_diff(r.target, net(x):argmax(1)))
    local r3 = hooks.gradient(net, "relu2", x, {target = 3})
    assert.same({3, 3, 3, 3}, r3.target:totable())
    local _, grad = by_hand(net, x, lab.full({4}, 3, {dtype = "int64"}))
    assert.is_true(max_abs_diff(r3.gradient, grad) < 1e-6)
  end)

  it("leaves parameters, their gradients, the mode and the hooks as they were", function()
    local net, x = small_net(), inputs(2)
    net:train()
    hooks.gradient(net, "relu1", x, {input_grad = true})
    for _, p in ipairs(net:parameters()) do
      assert.is_nil(p.grad)
      assert.is_true(p.requires_grad)
    end
    assert.is_true(net.training)
    assert.equal(0, hook_count(net))
    -- also when called where recording is off, and when it fails
    lab.no_grad(function() hooks.gradient(net, "relu2", x) end)
    local ok = pcall(hooks.gradient, net, "relu2", x, {target = 9})
    assert.is_false(ok)
    assert.equal(0, hook_count(net))
    for _, p in ipairs(net:parameters()) do assert.is_true(p.requires_grad) end
  end)

  it("checks targets and layer names", function()
    local net, x = small_net(), inputs(2)
    local ok, err = pcall(hooks.gradient, net, "relu2", x, {target = 5})
    assert.truthy(err:find("hooks.gradient: target must be a class in 0..4, got 5", 1, true))
    ok, err = pcall(hooks.gradient, net, "relu2", x, {target = lab.tensor({1, 2, 3},
      {dtype = "int64"})})
    assert.truthy(err:find("target must be an int64 vector of 2 classes, got int64 3", 1, true))
    ok, err = pcall(hooks.gradient, net, "nope", x)
    assert.truthy(err:find("hooks.gradient: the model has no layer 'nope'", 1, true))
  end)
end)

describe("hooks.anova", function()
  it("is metrics.anova under its old name", function()
    local a = hooks.anova(2)
    a:add(lab.tensor({{1}, {3}}), {g = lab.tensor({0, 1}, {dtype = "int64"})})
    assert.is_true(math.abs(a:result().g.mean - 1) < 1e-6)
  end)
end)

describe("Task 2's measures through hooks (colour_response, variance_explained)", function()
  local source = lab.data.generated{n = 60, seed = 5}
  local net = lab.models.seed_cnn{generator = lab.Generator(6)}
  local grey = source.train.images:narrow(0, 0, 12)

  it("gives each channel's mean response to each colour, on blanks and on digits", function()
    local o = {beta = 0.25, seed = 1, blank_stream = 7300, digit_stream = 7400, batch = 5}
    local r = lab.hooks.colour_response(net, "relu1", grey, o)
    assert.equal(10, #r.digit_rows)
    local nch = #r.digit_rows[1]
    assert.equal(nch, #r.digit)
    assert.equal(10, #r.digit[1])
    -- colour 3 on the digits, by hand: paint, forward, spatial and batch mean
    local x = lab.colorize(grey, lab.full({12}, 3, {dtype = "int64"}), 0.25, 1, 7400)
    local acts = lab.hooks.capture(net, "relu1", x:float() / 255)
    local want = lab.hooks.channel_means(acts.relu1):mean(0):totable()
    for ch = 1, nch do
      assert.is_true(math.abs(r.digit[ch][4] - want[ch]) < 1e-5)
      assert.equal(r.digit_rows[4][ch], r.digit[ch][4])
      assert.equal(r.blank_rows[7][ch], r.blank[ch][7])
    end
    -- blanks carry no digit: their response differs from the digits'
    assert.is_true(math.abs(r.blank[1][1] - r.digit[1][1]) + math.abs(r.blank[2][1] - r.digit[2][1]) > 0)
  end)

  it("gives η² per layer, input and logits included, whatever the batch size", function()
    local images = source.train.images:narrow(0, 0, 40)
    local colours = lab.tensor((function() local t = {} for i = 1, 40 do t[i] = i % 10 end return t end)(),
      {dtype = "int64"})
    local x = lab.colorize(images, colours, 0.25, 1, 1)
    local digits = source.train.labels:narrow(0, 0, 40)
    local groups = {color = colours, digit = digits}
    local a = lab.hooks.variance_explained(net, {"input", "relu2", "fc"}, x, groups, {batch = 7})
    local b = lab.hooks.variance_explained(net, {"input", "relu2", "fc"}, x, groups, {batch = 40})
    for _, layer in ipairs({"input", "relu2", "fc"}) do
      assert.is_true(math.abs(a[layer].channel.color.mean - b[layer].channel.color.mean) < 1e-4)
      assert.is_true(math.abs(a[layer].unit.digit.mean - b[layer].unit.digit.mean) < 1e-4)
    end
    -- the input's channel means by hand
    local acc = lab.metrics.anova(10)
    acc:add(lab.hooks.channel_means(x:float() / 255), groups)
    local want = acc:result()
    assert.is_true(math.abs(want.color.mean - a.input.channel.color.mean) < 1e-6)
    assert.equal(3, a.input.channel.size)
    assert.equal(10, a.fc.unit.size)
    -- colour decides the input's channel means far more than the digit does
    assert.is_true(a.input.channel.color.mean > a.input.channel.digit.mean)
  end)
end)
