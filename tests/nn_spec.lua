-- The neural-network ops and optimizer steps from Lua (core.conv2d, ...): values on tiny
-- hand-computed inputs, gradients through backward, and misuse errors checked by message.
local core = require "cnnlab.core"

local function values(t)
  local out, flat = {}, t:contiguous():reshape(-1)
  for i = 0, flat:numel() - 1 do out[#out + 1] = flat:get(i) end
  return out
end

local function assert_values(want, t, tol)
  local got = values(t)
  assert.equal(#want, #got, "number of values")
  for i = 1, #want do
    assert.is_true(math.abs(got[i] - want[i]) <= (tol or 1e-5) * (1 + math.abs(want[i])),
      ("value %d: got %.9g, want %.9g"):format(i, got[i], want[i]))
  end
end

local function long(t) return core.tensor(t, {dtype = "int64"}) end

-- x = 1..9 as a 1×1×3×3 image
local function image3() return core.tensor({{{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}}}) end

describe("conv2d", function()
  it("computes a 2×2 kernel with bias by hand", function()
    local w, b = core.tensor({{{{1, 2}, {3, 4}}}}), core.tensor({0.5})
    local y = core.conv2d(image3(), w, b, 1, 0)
    assert.same({1, 1, 2, 2}, y.shape)
    -- y[0,0] = 1·1 + 2·2 + 3·4 + 4·5 + 0.5
    assert_values({37.5, 47.5, 67.5, 77.5}, y)
  end)

  it("defaults to stride 1 and no padding, and pads with zeros", function()
    local w = core.tensor({{{{1, 2}, {3, 4}}}})
    assert_values({37, 47, 67, 77}, core.conv2d(image3(), w))
    local ones = core.ones({1, 1, 3, 3})
    -- stride 2, padding 1: each output sums a 2×2 corner of the input
    assert_values({12, 16, 24, 28}, core.conv2d(image3(), ones, nil, 2, 1))
  end)

  it("gives gradients for input, weight and bias", function()
    local x = image3()
    x.requires_grad = true
    local w = core.tensor({{{{1, 2}, {3, 4}}}}, {requires_grad = true})
    local b = core.tensor({0.5}, {requires_grad = true})
    core.conv2d(x, w, b):sum():backward()
    -- dx: the weights of every window covering a pixel; dw: the input under each tap
    assert_values({1, 3, 2, 4, 10, 6, 3, 7, 4}, x.grad)
    assert_values({12, 16, 24, 28}, w.grad)
    assert_values({4}, b.grad)
  end)
end)

describe("max_pool2d", function()
  local function grid()
    return core.tensor({{{{1, 5, 2, 0}, {3, 4, 8, 1}, {0, 2, 6, 7}, {9, 1, 3, 2}}}})
  end

  it("takes window maxima, stride defaulting to the kernel", function()
    assert_values({5, 8, 9, 7}, core.max_pool2d(grid(), 2))
    assert_values({8, 8, 9, 8}, core.max_pool2d(grid(), 3, 1))
  end)

  it("shrinks 28 to 13 with kernel 3 and stride 2 (floor, no padding)", function()
    assert.same({2, 4, 13, 13}, core.max_pool2d(core.zeros(2, 4, 28, 28), 3, 2).shape)
  end)

  it("routes the gradient to the maxima", function()
    local x = grid()
    x.requires_grad = true
    core.max_pool2d(x, 3, 1):sum():backward()
    assert_values({0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0}, x.grad)
  end)
end)

describe("conv2d → ReLU → max-pool, fused in nn.Sequential", function()
  local nn = require "cnnlab.nn"

  -- every value of a tensor as the bytes of its double (exact for float32, and -0 ≠ +0)
  local function bits(t)
    local out = {}
    for i, v in ipairs(values(t)) do out[i] = string.pack("<d", v) end
    return table.concat(out)
  end

  -- The seed network's shape on 3×14×14 inputs, built the same from a seed each time.
  local function net_of(seed)
    local g = core.Generator(seed)
    local net = nn.Sequential()
    net:add(nn.Conv2d(3, 8, 3, {padding = 1, generator = g}), "conv1")
    net:add(nn.ReLU(), "relu1")
    net:add(nn.MaxPool2d(3, 2), "pool1")
    net:add(nn.Conv2d(8, 16, 3, {padding = 1, generator = g}), "conv2")
    net:add(nn.ReLU(), "relu2")
    net:add(nn.MaxPool2d(2), "pool2")
    net:add(nn.Flatten(), "flatten")
    net:add(nn.Linear(16 * 3 * 3, 4, {generator = g}), "fc")
    return net
  end

  -- output, and every parameter's and the input's gradient after a backward pass
  local function run(net, x)
    x = x:clone()
    x.requires_grad = true
    local out = net(x)
    core.cross_entropy(out, core.tensor({0, 1, 2, 3, 1}, {dtype = "int64"})):backward()
    local r = {out = bits(out), x = bits(x.grad)}
    for _, p in ipairs(net:named_parameters()) do r[p[1]] = bits(p[2].grad) end
    return r
  end

  local function calls(net)
    local seen, real = {}, core.conv2d_relu_pool
    core.conv2d_relu_pool = function(...) seen[#seen + 1] = true return real(...) end
    return seen, function() core.conv2d_relu_pool = real end
  end

  local x = core.rand({5, 3, 14, 14}, {generator = core.Generator(2)})

  it("gives the bits of the three modules, forward and backward", function()
    local plain = net_of(4)
    plain.fuse = false
    local want = run(plain, x)
    local net = net_of(4)
    local seen, restore = calls(net)
    local got = run(net, x)
    restore()
    assert.equal(2, #seen, "both blocks fused")
    for k, v in pairs(want) do assert.is_true(v == got[k], k .. " differs") end
  end)

  it("runs the modules themselves when a hook is registered on any of them, with the same bits",
    function()
      local plain = net_of(4)
      plain.fuse = false
      local want = run(plain, x)
      for _, name in ipairs({"conv1", "relu1", "pool1"}) do
        for _, kind in ipairs({"forward", "backward"}) do
          local net = net_of(4)
          local hooked = 0
          local h = kind == "forward"
            and net[name]:register_forward_hook(function() hooked = hooked + 1 end)
            or net[name]:register_backward_hook(function() hooked = hooked + 1 end)
          local seen, restore = calls(net)
          local got = run(net, x)
          restore()
          assert.equal(1, hooked, name .. " " .. kind .. " hook called")
          assert.equal(1, #seen, "the other block still fused")
          for k, v in pairs(want) do assert.is_true(v == got[k], k .. " differs") end
          h.remove()
          seen, restore = calls(net)
          net(x)
          restore()
          assert.equal(2, #seen, "fused again once the hook is removed")
        end
      end
    end)

  it("lets a forward hook on the ReLU see and replace its output", function()
    local net = net_of(4)
    net.relu2:register_forward_hook(function(_, _, out) return out * 0 end)
    local out = core.no_grad(function() return net(x) end)
    -- conv2's block gives zeros, so fc sees only its bias
    assert_values(values(net.fc.bias:unsqueeze(0):expand(5, 4)), out)
  end)

  it("leaves subclasses and modules with their own forward alone", function()
    local net = net_of(4)
    net.relu1.forward = function(_, t) return t:relu() * 2 end
    local seen, restore = calls(net)
    net(x)
    restore()
    assert.equal(1, #seen)
  end)

  it("names the failing child as the modules do when the shapes are wrong", function()
    local ok, err = pcall(net_of(4), core.rand({2, 5, 14, 14}))
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("child 1 (conv1", 1, true), tostring(err))
  end)
end)

describe("linear", function()
  it("computes x·wᵀ + b and its gradients", function()
    local x = core.tensor({{1, 2, 3}, {4, 5, 6}}, {requires_grad = true})
    local w = core.tensor({{1, 0, -1}, {0.5, 0.5, 0.5}}, {requires_grad = true})
    local b = core.tensor({1, -1}, {requires_grad = true})
    local y = core.linear(x, w, b)
    assert_values({-1, 2, -1, 6.5}, y)
    assert_values({-2, 3, -2, 7.5}, core.linear(x, w))
    y:sum():backward()
    assert_values({1.5, 0.5, -0.5, 1.5, 0.5, -0.5}, x.grad)
    assert_values({5, 7, 9, 5, 7, 9}, w.grad)
    assert_values({2, 2}, b.grad)
  end)
end)

describe("dropout", function()
  it("is the identity in evaluation and for p = 0", function()
    local x = core.tensor({1, 2, 3})
    assert_values({1, 2, 3}, core.dropout(x, 0.5, false))
    assert_values({1, 2, 3}, core.dropout(x, 0, true))
  end)

  it("zeroes about p of the values and scales the rest by 1/(1-p)", function()
    local x = core.ones({10000})
    local y = core.dropout(x, 0.5, true, core.Generator(3))
    local zeros, twos = 0, 0
    for _, v in ipairs(values(y)) do
      if v == 0 then zeros = zeros + 1 elseif v == 2 then twos = twos + 1 end
    end
    assert.equal(10000, zeros + twos)
    assert.is_true(math.abs(zeros / 10000 - 0.5) < 0.03, "dropped fraction " .. zeros / 10000)
  end)

  it("repeats with the same generator seed, and passes the gradient through the mask", function()
    local x = core.ones({64}, {requires_grad = true})
    local a = core.dropout(x, 0.25, true, core.Generator(9))
    local b = core.dropout(x, 0.25, true, core.Generator(9))
    assert.same(values(a), values(b))
    a:sum():backward()
    assert.same(values(a), values(x.grad)) -- dy/dx = mask/(1-p) = y for x = 1
  end)
end)

describe("cross_entropy", function()
  local l0, l1 = 0.40760596444438013, 1.0986122886681098 -- log(e+e²+e³)−3, log 3

  it("matches a hand computation for every reduction", function()
    local z, t = core.tensor({{1, 2, 3}, {1, 1, 1}}), long({2, 0})
    assert_values({(l0 + l1) / 2}, core.cross_entropy(z, t))
    assert_values({l0 + l1}, core.cross_entropy(z, t, {reduction = "sum"}))
    assert_values({l0, l1}, core.cross_entropy(z, t, {reduction = "none"}))
  end)

  it("weights classes as PyTorch, the mean dividing by the weights used", function()
    local z, t, w = core.tensor({{1, 2, 3}, {1, 1, 1}}), long({2, 0}), core.tensor({0.5, 7, 2})
    assert_values({(2 * l0 + 0.5 * l1) / 2.5}, core.cross_entropy(z, t, {weight = w}))
    assert_values({2 * l0 + 0.5 * l1}, core.cross_entropy(z, t, {weight = w, reduction = "sum"}))
    assert_values({2 * l0, 0.5 * l1}, core.cross_entropy(z, t, {weight = w, reduction = "none"}))
  end)

  it("gives (softmax − onehot)/N as the gradient of the mean", function()
    local z = core.tensor({{0, 0}, {0, 0}}, {requires_grad = true})
    core.cross_entropy(z, long({0, 1})):backward()
    assert_values({-0.25, 0.25, 0.25, -0.25}, z.grad)
  end)
end)

describe("mse_loss", function()
  it("averages, sums or keeps the squared differences, with gradients for both sides", function()
    local a = core.tensor({1, 2, 3}, {requires_grad = true})
    local b = core.tensor({1, 0, 5}, {requires_grad = true})
    assert_values({8 / 3}, core.mse_loss(a, b))
    assert_values({8}, core.mse_loss(a, b, {reduction = "sum"}))
    assert_values({0, 4, 4}, core.mse_loss(a, b, {reduction = "none"}))
    core.mse_loss(a, b):backward()
    assert_values({0, 4 / 3, -4 / 3}, a.grad)
    assert_values({0, -4 / 3, 4 / 3}, b.grad)
  end)
end)

describe("upsample_bilinear", function()
  it("interpolates like PyTorch with align_corners = false", function()
    local x = core.tensor({{{{1, 2}, {3, 4}}}}, {requires_grad = true})
    local y = core.upsample_bilinear(x, 4, 4)
    assert_values({1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5,
      2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4}, y)
    y:sum():backward()
    assert_values({4, 4, 4, 4}, x.grad) -- 16 outputs, each a convex combination
  end)
end)

describe("optimizer steps", function()
  it("sgd_step follows PyTorch's momentum with weight decay", function()
    local p, g, buf = core.tensor({1, -2}), core.tensor({0.5, 0.5}), core.zeros(2)
    core.sgd_step(p, g, buf, 0.1, 0.9, 0.01, false)
    assert_values({0.949, -2.048}, p)
    assert_values({0.51, 0.48}, buf)
    core.sgd_step(p, g, nil, 0.5) -- plain SGD needs no buffer
    assert_values({0.699, -2.298}, p)
  end)

  it("adam_step moves by lr against the gradient's sign on the first step", function()
    local p, g = core.tensor({1, 1}), core.tensor({0.5, -2})
    local m, v = core.zeros(2), core.zeros(2)
    core.adam_step(p, g, m, v, 1, 0.1, 0.9, 0.999, 1e-8, 0, false)
    assert_values({0.9, 1.1}, p)
    assert_values({0.05, -0.2}, m)
    local q, m2, v2 = core.tensor({1, 1}), core.zeros(2), core.zeros(2)
    core.adam_step(q, g, m2, v2, 1, 0.1, 0.9, 0.999, 1e-8, 0.1, true) -- AdamW shrinks first
    assert_values({0.89, 1.09}, q)
  end)
end)

describe("misuse", function()
  local x4 = function() return core.zeros(2, 3, 8, 8) end
  local w = function() return core.zeros(4, 3, 3, 3) end
  local z = function() return core.zeros(2, 3) end
  local cases = {
    {"conv2d", function() core.conv2d(nil, w()) end, "conv2d: input must be a tensor, got nil"},
    {"conv2d", function() core.conv2d(x4(), "w") end,
      "conv2d: weight must be a tensor, got the string \"w\""},
    {"conv2d", function() core.conv2d(core.zeros(3, 8, 8), w()) end,
      "conv2d: input must be N×C×H×W with C = 3 (the weight's C), got 3×8×8"},
    {"conv2d", function() core.conv2d(x4(), core.zeros(4, 3, 3)) end,
      "conv2d: weight must be O×C×K×K (square kernel), got 4×3×3"},
    {"conv2d", function() core.conv2d(x4(), w(), core.zeros(5)) end,
      "conv2d: bias must be 1-D of size O = 4"},
    {"conv2d", function() core.conv2d(x4(), w(), nil, 0) end,
      "conv2d: stride must be a positive integer, got 0"},
    {"conv2d", function() core.conv2d(x4(), w(), nil, 1, -1) end,
      "conv2d: padding must be a non-negative integer, got -1"},
    {"conv2d", function() core.conv2d(x4(), w(), nil, 1.5) end,
      "conv2d: stride must be a positive integer, got 1.5"},
    {"conv2d", function() core.conv2d(core.zeros(1, 3, 2, 2), w()) end,
      "conv2d: kernel 3×3 is larger than the padded input 2×2"},
    {"conv2d", function() core.conv2d(core.zeros({2, 3, 8, 8}, {dtype = "uint8"}), w()) end,
      "conv2d: input must be a float32 tensor, got uint8"},
    {"max_pool2d", function() core.max_pool2d(x4(), 0) end,
      "max_pool2d: kernel must be a positive integer, got 0"},
    {"max_pool2d", function() core.max_pool2d(x4(), 2, -1) end,
      "max_pool2d: stride must be a positive integer, got -1"},
    {"max_pool2d", function() core.max_pool2d(x4(), 9) end,
      "max_pool2d: kernel 9×9 is larger than the input plane 8×8"},
    {"max_pool2d", function() core.max_pool2d(z(), 2) end,
      "max_pool2d: input must be N×C×H×W, got 2×3"},
    {"linear", function() core.linear(z(), core.zeros(4, 5)) end,
      "linear: input must be N×I with I = 5 (the weight's I), got 2×3"},
    {"linear", function() core.linear(z(), core.zeros(4, 3), {1}) end,
      "linear: bias must be a tensor, got table"},
    {"dropout", function() core.dropout(z(), 1) end, "dropout: p must be in [0, 1), got 1"},
    {"dropout", function() core.dropout(z(), "half") end,
      "dropout: p must be a number, got the string \"half\""},
    {"dropout", function() core.dropout(z(), 0.5, 1) end,
      "dropout: training must be a boolean, got 1"},
    {"dropout", function() core.dropout(z(), 0.5, true, {}) end,
      "dropout: generator must be a Generator, got table"},
    {"cross_entropy", function() core.cross_entropy(z(), long({0, 3})) end,
      "cross_entropy: target 3 at position 1 is out of range [0, 3)"},
    {"cross_entropy", function() core.cross_entropy(z(), long({-1, 0})) end,
      "cross_entropy: target -1 at position 0 is out of range [0, 3)"},
    {"cross_entropy", function() core.cross_entropy(z(), core.tensor({0, 1})) end,
      "cross_entropy: targets must be an int64 tensor of class indices, got float32"},
    {"cross_entropy", function() core.cross_entropy(z(), long({0, 1, 2})) end,
      "cross_entropy: targets must be 1-D of size N = 2 (the logits' N), got 3"},
    {"cross_entropy", function() core.cross_entropy(z(), long({0, 1}), {reduce = "sum"}) end,
      "cross_entropy: unknown option 'reduce' (known: reduction, weight)"},
    {"cross_entropy", function() core.cross_entropy(z(), long({0, 1}), {reduction = "avg"}) end,
      "cross_entropy: reduction must be \"mean\", \"sum\" or \"none\", got the string \"avg\""},
    {"cross_entropy", function() core.cross_entropy(z(), long({0, 1}), {weight = core.ones(2)}) end,
      "cross_entropy: weight must be 1-D of size K = 3 (one per class, as PyTorch's"},
    {"cross_entropy", function() core.cross_entropy(z(), long({0, 1}), "sum") end,
      "cross_entropy: options must be a table, got the string \"sum\""},
    {"mse_loss", function() core.mse_loss(z(), core.zeros(3, 2)) end,
      "mse_loss: input and target must have the same shape, got 2×3 and 3×2"},
    {"mse_loss", function() core.mse_loss(z(), z(), {reduction = "all"}) end,
      "mse_loss: reduction must be"},
    {"upsample_bilinear", function() core.upsample_bilinear(x4(), 0, 4) end,
      "upsample_bilinear: out_h must be a positive integer, got 0"},
    {"upsample_bilinear", function() core.upsample_bilinear(x4(), 4) end,
      "upsample_bilinear: out_w must be a positive integer, got no value"},
    {"sgd_step", function() core.sgd_step(core.zeros(2), core.zeros(3), nil, 0.1) end,
      "sgd_step: gradient has shape 3 but the parameter has shape 2"},
    {"sgd_step", function() core.sgd_step(core.zeros(2), core.zeros(2), nil, 0.1, 0.9) end,
      "sgd_step: momentum 0.9 needs a momentum buffer"},
    {"sgd_step", function() core.sgd_step(core.zeros(2), core.zeros(2), nil) end,
      "sgd_step: lr must be a number, got no value"},
    {"adam_step", function()
      core.adam_step(core.zeros(2), core.zeros(2), core.zeros(2), core.zeros(2), 0)
    end, "adam_step: step must be a positive integer, got 0"},
    {"adam_step", function()
      core.adam_step(core.zeros(2), core.zeros(2), core.zeros(2), core.zeros(2), 1, 0.1, 1)
    end, "adam_step: beta1 must be in [0, 1), got 1"},
    {"adam_step", function()
      core.adam_step(core.zeros(2), core.zeros(2), core.zeros(3), core.zeros(2), 1, 0.1)
    end, "adam_step: first moment m has shape 3 but the parameter has shape 2"},
    {"adam_step", function() -- no default of its own: cnnlab.defaults holds the one
      core.adam_step(core.zeros(2), core.zeros(2), core.zeros(2), core.zeros(2), 1)
    end, "adam_step: lr must be a number, got no value"},
  }
  for i, case in ipairs(cases) do
    it(("%d. %s: %s"):format(i, case[1], case[3]), function()
      local ok, err = pcall(case[2])
      assert.is_false(ok, "expected an error")
      assert.is_truthy(tostring(err):find(case[3], 1, true),
        ("message %q does not contain %q"):format(tostring(err), case[3]))
    end)
  end

  it("refuses a freed tensor", function()
    local t = core.zeros(1, 3, 4, 4)
    t:free()
    local ok, err = pcall(core.max_pool2d, t, 2)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("freed", 1, true))
  end)
end)
