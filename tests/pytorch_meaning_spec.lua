-- Where cnnlab uses a PyTorch name it means what PyTorch means. Each case here once differed;
-- the numbers are PyTorch 1.13's (tools/check_torch_interop.py --cases prints both sides).
local lab = require "cnnlab"

local function close(want, got, tol)
  assert.is_true(math.abs(want - got) <= (tol or 1e-6),
    ("got %.9g, want %.9g"):format(got, want))
end

local function values(t) return t:contiguous():reshape(-1):totable() end

describe("Adam counts steps per parameter (PyTorch's state[p]['step'])", function()
  -- a gets a gradient on steps 1-3, b only on 2 and 3: b's bias correction starts at its own
  -- first step
  local function run(kind)
    local a = lab.tensor({1.0}, {requires_grad = true})
    local b = lab.tensor({1.0}, {requires_grad = true})
    local opt = lab.optim[kind]({a, b}, {lr = 0.1})
    for step = 1, 3 do
      opt:zero_grad()
      local loss = a:sum()
      if step > 1 then loss = loss + b:sum() end
      loss:backward()
      opt:step()
    end
    return a, b, opt
  end

  it("gives PyTorch's 0.7 and 0.8 (was 0.8397 for b)", function()
    local a, b = run("Adam")
    close(0.7, a:item(), 1e-6)
    close(0.8, b:item(), 1e-6)
  end)

  it("does the same for AdamW", function()
    -- PyTorch AdamW(lr=0.1) (weight_decay 0.01): a 0.697303, b 0.798101
    local a, b = run("AdamW")
    close(0.697303, a:item(), 1e-6)
    close(0.798101, b:item(), 1e-6)
  end)

  it("saves and restores the per-parameter counts", function()
    local _, _, opt = run("Adam")
    local tensors, scalars = opt:state_dict()
    assert.same({3, 2}, tensors.param_step:totable())
    local a2 = lab.tensor({0.7}, {requires_grad = true})
    local b2 = lab.tensor({0.8}, {requires_grad = true})
    local opt2 = lab.optim.Adam({a2, b2}, {lr = 0.1})
    opt2:load_state_dict(tensors, scalars)
    assert.same({3, 2}, opt2.param_steps)
  end)

  it("loads state saved before the counts (each parameter at the optimiser's step)", function()
    local _, _, opt = run("Adam")
    local tensors, scalars = opt:state_dict()
    tensors.param_step = nil
    local opt2 = lab.optim.Adam({lab.tensor({0.7}, {requires_grad = true}),
      lab.tensor({0.8}, {requires_grad = true})}, {lr = 0.1})
    opt2:load_state_dict(tensors, scalars)
    assert.same({3, 3}, opt2.param_steps)
  end)
end)

describe("cross_entropy's weight is per class (PyTorch's)", function()
  it("gives PyTorch's 0.6395 (the per-sample reading gave 1.8124)", function()
    local z = lab.tensor({{2, 0, 0}, {0, 2, 0}, {0, 0, 2}})
    local t = lab.tensor({0, 0, 2}, {dtype = "int64"})
    close(0.6395, lab.cross_entropy(z, t, {weight = lab.tensor({1, 2, 3})}):item(), 1e-4)
  end)

  it("gives the logits PyTorch's gradient", function()
    local z = lab.tensor({{2, 0, 0}, {0, 2, 0}, {0, 0, 2}}, {requires_grad = true})
    local t = lab.tensor({0, 0, 2}, {dtype = "int64"})
    lab.cross_entropy(z, t, {weight = lab.tensor({1, 2, 3})}):backward()
    -- PyTorch 1.13
    local want = {-0.0426028036, 0.0213013943, 0.0213013943, -0.178698614, 0.157397196,
      0.0213013943, 0.0639042035, 0.0639042035, -0.127808377}
    local got = values(z.grad)
    for i = 1, 9 do close(want[i], got[i], 1e-6) end
  end)

  it("refuses N per-sample weights, pointing to reduction none", function()
    local z = lab.zeros(4, 3)
    local t = lab.tensor({0, 1, 2, 0}, {dtype = "int64"})
    assert.has_error(function() lab.cross_entropy(z, t, {weight = lab.ones(4)}) end,
      "cross_entropy: weight must be 1-D of size K = 3 (one per class, as PyTorch's; for " ..
      "per-sample weights take reduction none and weight the result), got 4")
  end)
end)

describe("ties share the gradient as in PyTorch", function()
  it("maximum/minimum of equal values give each side half", function()
    local p = lab.tensor({1, 2, 3}, {requires_grad = true})
    local q = lab.tensor({1, 5, 3}, {requires_grad = true})
    p:maximum(q):sum():backward()
    assert.same({0.5, 0, 0.5}, values(p.grad))
    assert.same({0.5, 1, 0.5}, values(q.grad))
    local r = lab.tensor({1, 2}, {requires_grad = true})
    local s = lab.tensor({1, 0}, {requires_grad = true})
    r:minimum(s):sum():backward()
    assert.same({0.5, 0}, values(r.grad))
    assert.same({0.5, 1}, values(s.grad))
  end)

  it("max() and min() over everything share it among the tied extremes", function()
    local t = lab.tensor({3, 1, 3, 3}, {requires_grad = true})
    t:max():backward()
    local g = values(t.grad)
    for i, w in ipairs({1 / 3, 0, 1 / 3, 1 / 3}) do close(w, g[i]) end
    local u = lab.tensor({{0, 1}, {0, 2}}, {requires_grad = true})
    u:min():backward()
    assert.same({0.5, 0, 0.5, 0}, values(u.grad))
  end)

  it("max(dim) still sends it to one index, as PyTorch's", function()
    local t = lab.tensor({{3, 3}}, {requires_grad = true})
    local v = t:max(1)
    v:sum():backward()
    assert.same({1, 0}, values(t.grad))
  end)

  it("max-pooling still sends it to one position, as PyTorch's", function()
    local x = lab.ones(1, 1, 2, 2):requires_grad_()
    lab.max_pool2d(x, 2, 2):sum():backward()
    local g = values(x.grad)
    table.sort(g)
    assert.same({0, 0, 0, 1}, g)
  end)
end)
