-- BatchNorm1d/2d, AvgPool2d, AdaptiveAvgPool2d as modules, and module buffers: PyTorch's
-- numbers on a small case (computed once with PyTorch 1.13; tools/check_bn_interop.py compares
-- random cases and a whole network), the running statistics by their formula, gradients by
-- finite differences in training and evaluation mode, and state_dict round trips.
local lab = require "cnnlab"
local nn = lab.nn

local function values(t) return t:contiguous():reshape(-1):totable() end

local function assert_close(want, got, tol)
  got = type(got) == "table" and got or values(got)
  assert.equal(#want, #got, "number of values")
  for i = 1, #want do
    assert.is_true(math.abs(got[i] - want[i]) <= (tol or 1e-5) * (1 + math.abs(want[i])),
      ("value %d: got %.9g, want %.9g"):format(i, got[i], want[i]))
  end
end

-- 2×2×2×2, channel 0 = {1, 2, 3, 5, 4, 0, 1, 1}, channel 1 = {0, −1, 2, 2, 3, 3, −2, 1}
local function small()
  return lab.tensor({{{{1, 2}, {3, 5}}, {{0, -1}, {2, 2}}}, {{{4, 0}, {1, 1}}, {{3, 3}, {-2, 1}}}})
end

local function bn_small()
  local bn = nn.BatchNorm2d(2)
  lab.no_grad(function()
    bn.weight:copy_(lab.tensor({1.5, 0.5}))
    bn.bias:copy_(lab.tensor({0.1, -0.2}))
  end)
  return bn
end

describe("nn.BatchNorm2d", function()
  it("gives PyTorch's outputs and running statistics, training then evaluation", function()
    local bn = bn_small()
    assert_close({-0.94465935, -0.01607323, 0.9125129, 2.76968527, -0.48867464, -0.77734929,
      0.08867466, 0.08867466, 1.84109902, -1.87324548, -0.94465935, -0.94465935, 0.37734932,
      0.37734932, -1.06602395, -0.19999999}, bn(small()))
    assert_close({0.2125, 0.1}, bn.running_mean)
    assert_close({1.19821429, 1.2428571}, bn.running_var)
    assert.equal(1, bn.num_batches_tracked:item())
    bn:eval()
    assert_close({1.17912757, 2.54944825, 3.91976881, 6.6604104, -0.2448495, -0.69334453,
      0.65214056, 0.65214056, 5.29008961, -0.19119315, 1.17912757, 1.17912757, 1.10063553,
      1.10063553, -1.1418395, 0.20364553}, bn(small()))
    assert.equal(1, bn.num_batches_tracked:item(), "evaluation does not count batches")
  end)

  it("updates the running statistics by the formula (unbiased variance, momentum 0.3)", function()
    local bn = nn.BatchNorm2d(2, {momentum = 0.3})
    local x = lab.randn(4, 2, 3, 3, {generator = lab.Generator(5)})
    bn(x)
    for c = 0, 1 do
      local xc = values(x:narrow(1, c, 1))
      local m, v = 0, 0
      for _, e in ipairs(xc) do m = m + e end
      m = m / #xc
      for _, e in ipairs(xc) do v = v + (e - m) ^ 2 end
      v = v / (#xc - 1)
      assert_close({0.7 * 0 + 0.3 * m}, {bn.running_mean:get(c)})
      assert_close({0.7 * 1 + 0.3 * v}, {bn.running_var:get(c)})
    end
  end)

  it("with momentum = false keeps the cumulative average (PyTorch's momentum=None)", function()
    local bn = nn.BatchNorm1d(1, {momentum = false})
    bn(lab.tensor({{1}, {3}}))   -- mean 2
    bn(lab.tensor({{5}, {9}}))   -- mean 7
    bn(lab.tensor({{0}, {0}}))   -- mean 0
    assert_close({3}, bn.running_mean)
    assert.equal(3, bn.num_batches_tracked:item())
    assert.matches("momentum = none", tostring(bn), 1, true)
  end)

  it("without tracked statistics has no buffers and uses the batch's in evaluation", function()
    local bn = nn.BatchNorm2d(2, {track_running_stats = false, affine = false})
    assert.same({}, bn:buffers())
    assert.same({}, bn:parameters())
    bn:eval()
    local y = bn(small())
    local c0 = values(y:narrow(1, 0, 1))
    local s = 0
    for _, e in ipairs(c0) do s = s + e end
    assert.is_true(math.abs(s) < 1e-5, "each channel normalised to mean 0")
  end)

  it("has gradients that match finite differences, training and evaluation", function()
    for _, mode in ipairs({"train", "eval"}) do
      local bn = bn_small()
      bn.running_mean:copy_(lab.tensor({0.5, -0.3}))
      bn.running_var:copy_(lab.tensor({2, 0.7}))
      bn.momentum = 0 -- the statistics stay put while the differences are taken
      if mode == "eval" then bn:eval() end
      local x = lab.randn(3, 2, 3, 2, {generator = lab.Generator(9)}):requires_grad_(true)
      local ok, worst, msg = lab.gradcheck(function(a) return bn(a) end, {x})
      assert.is_true(ok, mode .. " input: " .. tostring(msg))
      ok, worst, msg = lab.gradcheck(function(w, b)
        return lab.batch_norm(x:detach(), bn.running_mean, bn.running_var, w, b, mode == "train", 0)
      end, {bn.weight, bn.bias})
      assert.is_true(ok, mode .. " weight, bias: " .. tostring(msg))
      assert.is_true(worst < 2e-2)
    end
  end)

  it("refuses the wrong number of dimensions, as PyTorch", function()
    assert.has_error(function() nn.BatchNorm2d(2)(lab.zeros(4, 2)) end,
      "BatchNorm2d: expected 4D input (got 2D input)")
    assert.has_error(function() nn.BatchNorm1d(2)(lab.zeros(4, 2, 1, 1)) end,
      "BatchNorm1d: expected 2D or 3D input (got 4D input)")
    assert.has_error(function() nn.BatchNorm2d(2, {momentum = 2}) end)
    assert.has_error(function() nn.BatchNorm2d(2, {eps = 0}) end)
    assert.has_error(function() nn.BatchNorm2d(2, {bogus = 1}) end)
  end)
end)

describe("nn.AvgPool2d and nn.AdaptiveAvgPool2d", function()
  local function ramp() return lab.arange and lab.arange(16):float():reshape(1, 1, 4, 4)
    or lab.tensor({{{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}, {12, 13, 14, 15}}}}) end

  it("average windows as PyTorch (padding counted as zeros)", function()
    assert_close({2.5, 4.5, 10.5, 12.5}, nn.AvgPool2d(2)(ramp()))
    -- PyTorch: F.avg_pool2d(arange(16.).view(1,1,4,4), 3, 2, 1)
    assert_close({1.111111, 2.666667, 5.666667, 10}, nn.AvgPool2d(3, 2, 1)(ramp()))
    assert_close({7.5}, nn.AdaptiveAvgPool2d(1)(ramp()))
    -- PyTorch: F.adaptive_avg_pool2d(arange(16.).view(1,1,4,4), (3, 2))
    assert_close({2.5, 4.5, 6.5, 8.5, 10.5, 12.5}, nn.AdaptiveAvgPool2d({3, 2})(ramp()))
    assert.equal("AvgPool2d(3×3, stride 2, padding 1)", tostring(nn.AvgPool2d(3, 2, 1)))
    assert.equal("AdaptiveAvgPool2d(3×2)", tostring(nn.AdaptiveAvgPool2d({3, 2})))
  end)

  it("have gradients that match finite differences", function()
    local x = lab.randn(2, 2, 5, 7, {generator = lab.Generator(3)}):requires_grad_(true)
    for _, m in ipairs({nn.AvgPool2d(3, 2, 1), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d({3, 4}),
        nn.AdaptiveAvgPool2d(1)}) do
      local ok, _, msg = lab.gradcheck(function(a) return m(a) end, {x})
      assert.is_true(ok, tostring(m) .. ": " .. tostring(msg))
    end
  end)

  it("refuse bad sizes with a message", function()
    assert.has_error(function() nn.AvgPool2d(2, 2, 2) end,
      "AvgPool2d: padding must be an integer in [0, kernel/2] = [0, 1], got 2")
    assert.has_error(function() nn.AdaptiveAvgPool2d(0) end)
    assert.has_error(function() lab.avg_pool2d(lab.zeros(1, 1, 2, 2), 3) end)
  end)
end)

describe("module buffers", function()
  local function net()
    local m = nn.Sequential()
    m:add(nn.Conv2d(2, 3, 3, {padding = 1, generator = lab.Generator(1)}), "conv1")
    m:add(nn.BatchNorm2d(3), "bn1")
    m:add(nn.ReLU(), "relu")
    m:add(nn.AdaptiveAvgPool2d(1), "gap")
    m:add(nn.Flatten(), "flat")
    m:add(nn.Linear(3, 4, {generator = lab.Generator(2)}), "fc")
    return m
  end

  it("are in state_dict under PyTorch's names, not in parameters()", function()
    local m = net()
    local names = {}
    for name in pairs(m:state_dict()) do names[#names + 1] = name end
    table.sort(names)
    assert.same({"bn1.bias", "bn1.num_batches_tracked", "bn1.running_mean", "bn1.running_var",
      "bn1.weight", "conv1.bias", "conv1.weight", "fc.bias", "fc.weight"}, names)
    assert.equal(6, #m:parameters())
    for _, p in ipairs(m:parameters()) do
      assert.is_false(p == m.bn1.running_mean or p == m.bn1.running_var)
    end
    local nbt = m:state_dict()["bn1.num_batches_tracked"]
    assert.equal("int64", nbt.dtype)
    assert.equal(0, nbt.ndim)
    assert.is_false(m.bn1.running_mean.requires_grad)
  end)

  it("are not given to optimisers and get no gradient", function()
    local m = net()
    local opt = lab.optim.Adam(m:parameters(), {lr = 0.01})
    local x = lab.randn(4, 2, 5, 5, {generator = lab.Generator(4)})
    m(x):sum():backward()
    opt:step()
    assert.is_nil(m.bn1.running_mean.grad)
    assert.equal(1, m.bn1.num_batches_tracked:item())
  end)

  it("round-trip through a safetensors file: identical evaluation outputs", function()
    local m = net()
    local g = lab.Generator(6)
    for _ = 1, 3 do m(lab.randn(5, 2, 6, 6, {generator = g})) end
    m:eval()
    local x = lab.randn(3, 2, 6, 6, {generator = g})
    local want = m(x)
    local path = os.tmpname()
    lab.save_safetensors(path, m:state_dict())
    local m2 = net()
    m2:load_state_dict(lab.load_safetensors(path))
    os.remove(path)
    m2:eval()
    assert.same(values(want), values(m2(x)))
    assert.equal(3, m2.bn1.num_batches_tracked:item())
  end)

  it("are checked on load like parameters (missing, shape)", function()
    local m = net()
    local sd = m:state_dict()
    sd["bn1.running_var"] = nil
    assert.has_error(function() net():load_state_dict(sd) end,
      "load_state_dict: missing tensor(s): bn1.running_var")
    sd = m:state_dict()
    sd["bn1.num_batches_tracked"] = lab.zeros(1)
    assert.has_error(function() net():load_state_dict(sd) end,
      "load_state_dict: 'bn1.num_batches_tracked' has shape 1 in the file but [] (a scalar) in the model")
  end)

  it("register_buffer refuses a non-tensor and a parameter's name", function()
    local m = nn.Linear(2, 2)
    assert.has_error(function() m:register_buffer("x", 3) end,
      "register_buffer: 'x' must be a tensor or nil, got number")
    assert.has_error(function() m:register_buffer("weight", lab.zeros(1)) end,
      "register_buffer: 'weight' is a parameter already")
    m:register_buffer("scale", nil)
    assert.same({}, m:buffers())
  end)
end)
