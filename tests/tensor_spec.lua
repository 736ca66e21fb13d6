-- Tensors from Lua: creation, element access, views, arithmetic with numbers on either side,
-- reductions, printing, autograd entry points, and a table of misuse cases whose error
-- messages must name the function, the argument and what came.
local lab = require "cnnlab"

local function near(a, b, tol) return math.abs(a - b) <= (tol or 1e-5) * (1 + math.abs(b)) end

local function values(t)
  local out, flat = {}, t:contiguous():reshape(-1)
  for i = 0, flat:numel() - 1 do out[#out + 1] = flat:get(i) end
  return out
end

describe("tensor creation", function()
  it("builds from nested tables with the right shape and dtype", function()
    local t = lab.tensor({{1, 2, 3}, {4, 5, 6}})
    assert.same({2, 3}, t.shape)
    assert.equal("float32", t.dtype)
    assert.equal(6, t:get(1, 2))
    local l = lab.tensor({0, 1, 2}, {dtype = "int64"})
    assert.equal("int64", l.dtype)
    assert.equal(math.type(l:get(2)), "integer")
  end)

  it("makes zeros, ones, full, arange, rand and randn", function()
    assert.same({0, 0, 0, 0}, values(lab.zeros(2, 2)))
    assert.same({1, 1}, values(lab.ones({2})))
    assert.same({7, 7, 7}, values(lab.full({3}, 7)))
    assert.same({2, 4, 6}, values(lab.arange(2, 8, 2)))
    assert.equal("int64", lab.arange(5).dtype)
    local r = lab.rand({1000})
    assert.is_true(r:min():item() >= 0 and r:max():item() < 1)
    local n = lab.randn({10000})
    assert.is_true(math.abs(n:mean():item()) < 0.05)
    assert.is_true(math.abs((n * n):mean():item() - 1) < 0.05)
  end)

  it("draws the same numbers for the same seed, on every machine", function()
    local g1, g2 = lab.Generator(5), lab.Generator(5)
    assert.same(values(lab.rand({8}, {generator = g1})), values(lab.rand({8}, {generator = g2})))
    -- PCG32 with seed 5, stream 0: the first draws are fixed forever
    local g = lab.Generator(5)
    local first = lab.rand({3}, {generator = g})
    local g3 = lab.Generator(5)
    assert.equal(first:get(0), lab.rand({1}, {generator = g3}):get(0))
    local state = g:state()
    local a = lab.randn({4}, {generator = g})
    g:set_state(state)
    assert.same(values(a), values(lab.randn({4}, {generator = g})))
  end)

  it("counts positions from 0 and argmax gives class indices directly", function()
    local logits = lab.tensor({{0.1, 3, 0.2}, {5, 1, 0}})
    assert.same({1, 0}, values(logits:argmax(1)))
    assert.same({2}, logits:argmax(1).shape)
    assert.same({2, 1}, logits:argmax(1, true).shape)
  end)
end)

describe("views", function()
  it("share storage and carry writes through", function()
    local t = lab.zeros(2, 3)
    local row = t:select(0, 1)
    row:fill_(4)
    assert.same({0, 0, 0, 4, 4, 4}, values(t))
    local col = t:narrow(1, 2, 1)
    col:fill_(9)
    assert.same({0, 0, 9, 4, 4, 9}, values(t))
  end)

  it("reshape, transpose, permute, flatten, squeeze, unsqueeze, expand", function()
    local t = lab.arange(6):float():reshape(2, 3)
    assert.same({0, 3, 1, 4, 2, 5}, values(t:transpose(0, 1)))
    assert.same({3, 2}, t:permute(1, 0).shape)
    assert.same({6}, t:flatten().shape)
    assert.same({2, 1, 3}, t:unsqueeze(1).shape)
    assert.same({2, 3}, t:unsqueeze(1):squeeze().shape)
    assert.same({4, 2, 3}, t:expand(4, 2, 3).shape)
    assert.same({2, 3}, t:reshape({-1, 3}).shape)
  end)
end)

describe("arithmetic", function()
  it("accepts numbers on either side of every operator", function()
    local t = lab.tensor({1, 2, 4})
    assert.same({2, 3, 5}, values(t + 1))
    assert.same({2, 3, 5}, values(1 + t))
    assert.same({0.5, 1, 2}, values(0.5 * t))
    assert.same({1, 0, -2}, values(2 - t))
    assert.same({4, 2, 1}, values(4 / t))
    assert.same({1, 4, 16}, values(t ^ 2))
    assert.same({-1, -2, -4}, values(-t))
  end)

  it("broadcasts a bias over rows and a per-channel scale over images", function()
    local x = lab.ones(2, 3, 2, 2)
    local scale = lab.tensor({1, 2, 3}):reshape(1, 3, 1, 1)
    local y = x * scale
    assert.equal(3, y:get(1, 2, 1, 1))
    local rows = lab.zeros(4, 3) + lab.tensor({1, 2, 3})
    assert.same({1, 2, 3}, values(rows:select(0, 3)))
  end)

  it("reduces, compares and normalises", function()
    local t = lab.tensor({{1, 5, 3}, {4, 2, 6}})
    assert.same({5, 7, 9}, values(t:sum(0)))
    assert.same({3, 4}, values(t:mean(1)))
    local v, i = t:max(1)
    assert.same({5, 6}, values(v))
    assert.same({1, 2}, values(i))
    assert.equal(6, t:max():item())
    assert.same({0, 1, 0, 1, 0, 1}, values(t:gt(3)))
    local s = t:softmax(1):sum(1)
    assert.is_true(near(s:get(0), 1) and near(s:get(1), 1))
    assert.same({2, 3, 3, 3, 2, 3}, values(t:clamp(2, 3)))
    assert.same({{1, 5, 3}, {4, 2, 6}}, t:totable())
  end)

  it("matmul, cat, index_select, gather", function()
    local a = lab.tensor({{1, 2}, {3, 4}})
    assert.same({7, 10, 15, 22}, values(a:matmul(a)))
    assert.same({4, 2}, lab.cat({a, a}, 0).shape)
    assert.same({2, 1, 4, 3}, values(a:index_select(1, lab.tensor({1, 0}):long())))
    assert.same({2, 3}, values(a:gather(1, lab.tensor({{1}, {0}}):long())))
  end)
end)

describe("printing", function()
  it("shows dtype, shape and values, and summarises large tensors", function()
    local s = tostring(lab.tensor({{1, 2}, {3, 4}}))
    assert.truthy(s:find("tensor(float32, 2×2)", 1, true))
    assert.truthy(s:find("4.0000", 1, true))
    local big = tostring(lab.zeros(100, 100))
    assert.truthy(big:find("...", 1, true))
    assert.is_true(#big < 2000)
    assert.truthy(tostring(lab.ones(2, {requires_grad = true})):find("requires_grad"))
  end)
end)

describe("autograd from Lua", function()
  it("accumulates gradients, keeps retained ones, frees the graph", function()
    local x = lab.tensor({1, 2, 3}, {requires_grad = true})
    local h = x * x
    h:retain_grad()
    local loss = (h + x):sum()
    loss:backward()
    assert.same({3, 5, 7}, values(x.grad))
    assert.same({1, 1, 1}, values(h.grad))
    assert.has_error(function() loss:backward() end,
      "backward: trying to go through the graph a second time (at sum); its buffers were freed " ..
      "by the first backward — pass retain_graph = true to the first one")
  end)

  it("runs tensor hooks that may replace the gradient, until removed", function()
    local x = lab.tensor({1, 2}, {requires_grad = true})
    local y = x * 3
    local seen
    local handle = y:register_hook(function(g) seen = g:totable() return g * 10 end)
    y:sum():backward()
    assert.same({1, 1}, seen)
    assert.same({30, 30}, values(x.grad))
    handle:remove()
    x.grad = nil
    local y2 = x * 3
    y2:sum():backward()
    assert.same({3, 3}, values(x.grad))
  end)

  it("passes a hook's error up with its message", function()
    local x = lab.tensor({1}, {requires_grad = true})
    local y = x * 2
    y:register_hook(function() error("hook exploded") end)
    assert.has_error(function() y:sum():backward() end)
    local ok, err = pcall(function() y:sum():backward() end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("hook exploded"))
  end)

  it("no_grad records nothing and restores the mode after an error", function()
    local x = lab.ones(2, {requires_grad = true})
    local y = lab.no_grad(function() return x * 2 end)
    assert.is_false(y.requires_grad)
    assert.has_error(function() lab.no_grad(function() error("inside") end) end)
    assert.is_true(lab.is_grad_enabled())
  end)

  it("no_grad calls a module like a function: lab.no_grad(model, x)", function()
    local m = lab.nn.Linear(2, 3, {generator = lab.Generator(1)})
    local x = lab.ones(4, 2)
    local y = lab.no_grad(m, x)
    assert.are.same({4, 3}, y.shape)
    assert.is_false(y.requires_grad)
    assert.are.equal(m(x):sum():item(), y:sum():item())
    assert.is_true(lab.is_grad_enabled())
  end)

  it("gives gradients with respect to inputs of a Lua-defined computation", function()
    local gen = lab.Generator(3)
    local x = lab.randn({4, 5}, {generator = gen, requires_grad = true})
    local w = lab.randn({5, 3}, {generator = gen, requires_grad = true})
    local function my_layer(a, b) return (a:matmul(b)):tanh():softmax(1) * 2 - a:sum(1, true) end
    local ok, worst, where = lab.gradcheck(my_layer, {x, w})
    assert.is_true(ok, ("gradcheck failed: %g at %s"):format(worst, where))
  end)

  it("frees explicitly and refuses use afterwards", function()
    local t = lab.zeros(1000)
    local before = lab.memory().in_use
    t:free()
    assert.is_true(lab.memory().in_use < before)
    assert.has_error(function() return t + 1 end, nil)
    local ok, err = pcall(function() return t:sum() end)
    assert.truthy(tostring(err):find("freed"))
    do
      local c <close> = lab.zeros(1000)
    end
    t:free() -- a second free is harmless
  end)
end)

-- Each entry: a call that must fail and a fragment its message must contain.
local misuse = {
  {function() lab.zeros(-1) end, "must be a non-negative integer"},
  {function() lab.zeros({2, "a"}) end, "shape entry 2 must be a non-negative integer, got string"},
  {function() lab.zeros(1, 2, 3, 4, 5, 6, 7, 8, 9) end, "at most 8 dimensions"},
  {function() lab.zeros({2}, {dtype = "complex"}) end, "unknown dtype 'complex'"},
  {function() lab.zeros({2}, {colour = 1}) end, "unknown option 'colour'"},
  {function() lab.tensor("abc") end, "number, nested table or tensor expected, got string"},
  {function() lab.tensor({{1, 2}, {3}}) end, "ragged nested table"},
  {function() lab.tensor({1, "x"}) end, "expected a number at position 2, got string"},
  {function() lab.rand({2}, {dtype = "int64"}) end, "only float32"},
  {function() lab.rand({2}, {generator = 5}) end, "must be a lab.Generator"},
  {function() lab.arange(0, 5, 0) end, "step must be non-zero"},
  {function() lab.arange() end, "number expected"},
  {function() lab.full({2}) end, "number expected"},
  {function() lab.zeros(2, 3):get(0) end, "get: 2 positions expected for a tensor of shape 2×3, got 1"},
  {function() lab.zeros(2, 3):get(2, 0) end, "index 2 out of range for dimension 0 of size 2"},
  {function() lab.zeros(2, 3):get(0, -1) end, "index -1 out of range for dimension 1"},
  {function() lab.zeros(2):set(0) end, "set: 1 position and a value expected"},
  {function() lab.zeros(2):set("a", 1) end, "argument 1 is string"},
  {function() lab.zeros(2, 2):item() end, "exactly one element, got shape 2×2"},
  {function() lab.zeros(2, 3):reshape(4, 2) end, "shape 4×2 (8 elements) does not fit a tensor of shape 2×3"},
  {function() lab.zeros(2, 3):reshape(-1, -1) end, "only one dimension can be -1"},
  {function() lab.zeros(2, 3):narrow(1, 2, 2) end, "outside dimension 1 of size 3"},
  {function() lab.zeros(2, 3):narrow(2, 0, 1) end, "dimension 2 out of range for a tensor with 2 dimensions"},
  {function() lab.zeros(2, 3):select(0, 5) end, "out of range"},
  {function() lab.zeros(2, 3):permute(0, 0) end, "each of the 2 dimensions"},
  {function() lab.zeros(2, 3):permute(0) end, "2 dimensions expected, got 1"},
  {function() lab.zeros(2, 3):expand(4, 3) end, "cannot expand 2×3 to 4×3"},
  {function() lab.zeros(2, 3):transpose(0, 5) end, "dimension 5 out of range"},
  {function() return lab.zeros(2, 3) + lab.zeros(3, 2) end, "shapes 2×3 and 3×2 cannot be broadcast"},
  {function() return lab.zeros(2) + "x" end, "add: tensor or number expected, got string"},
  {function() return lab.zeros(2) * {} end, "mul: tensor or number expected, got table"},
  {function() return lab.zeros(2, 3):matmul(lab.zeros(2, 3)) end, "expected M×K and K×N matrices, got 2×3 and 2×3"},
  {function() return lab.zeros(2, 3):matmul(5) end, "tensor expected, got number"},
  {function() lab.zeros(2, 3):sum(2) end, "dimension 2 out of range"},
  {function() lab.zeros(2, 3):softmax(3) end, "dimension 3 out of range"},
  {function() lab.zeros(0):max() end, "tensor is empty"},
  {function() lab.zeros(2, 3):clamp(3, 1) end, "lower bound 3 is above upper bound 1"},
  {function() lab.zeros(3):index_select(0, lab.tensor({3}):long()) end, "index 3 at position 0 is out of range for dimension 0 of size 3"},
  {function() lab.zeros(3):index_select(0, lab.tensor({1})) end, "index must be an int64 tensor, got float32"},
  {function() lab.zeros(2, 2):gather(1, lab.tensor({1}):long()) end, "as many dimensions as the input (2), got 1"},
  {function() lab.cat({}) end, "non-empty list"},
  {function() lab.cat({lab.zeros(2), 5}) end, "entry 2 of the list is number, not a tensor"},
  {function() lab.cat({lab.zeros(2, 2), lab.zeros(3, 3)}, 0) end, "does not match tensor 1"},
  {function() lab.zeros(2):backward() end, "does not require grad"},
  {function() (lab.ones(2, {requires_grad = true}) * 2):backward() end, "a gradient must be given for a non-scalar tensor of shape 2"},
  {function() (lab.ones(2, {requires_grad = true}) * 2):backward(lab.ones(3)) end, "gradient of shape 3 given for a tensor of shape 2"},
  {function() lab.ones(2, {requires_grad = true}):fill_(0) end, "cannot write in place into a tensor that requires grad"},
  {function() lab.arange(3):requires_grad_() end, "only float32 tensors can require grad, got int64"},
  {function() (lab.ones(2, {requires_grad = true}) * 2):requires_grad_(false) end, "only leaf tensors"},
  {function() lab.zeros(2):register_hook(print) end, "does not require grad"},
  {function() lab.ones(1, {requires_grad = true}):register_hook(5) end, "function expected"},
  {function() local t = lab.zeros(1); t.shape = 3 end, "cannot set field 'shape'"},
  {function() local t = lab.zeros(1); t.grad = lab.zeros(2) end, "float32 tensor of the tensor's shape"},
  {function() return lab.zeros(2)[0] end, "use t:get(i, ...)"},
  {function() lab.zeros(2):type("double") end, "unknown dtype 'double'"},
  {function() lab.zeros(2):backward(nil, {retain = true}) end, "unknown option 'retain'"},
  {function() lab.Generator(1):set_state("abc") end, "32 hex digits"},
  {function() lab.set_threads(-1) end, "thread count must be in 0..1024"},
  {function() lab.core.Tensor.get(5) end, "tensor expected, got number"},
}

describe("misuse", function()
  it("has at least 40 cases", function() assert.is_true(#misuse >= 40) end)
  for i, case in ipairs(misuse) do
    it(("case %d raises '%s'"):format(i, case[2]), function()
      local ok, err = pcall(case[1])
      assert.is_false(ok, "expected an error")
      assert.truthy(tostring(err):find(case[2], 1, true),
        ("message %q lacks %q"):format(tostring(err), case[2]))
    end)
  end
end)
