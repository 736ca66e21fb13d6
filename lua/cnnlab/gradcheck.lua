--- cnnlab.gradcheck — compare autograd gradients with central finite differences.
--
--   local ok, worst = lab.gradcheck(function(x, w) return my_layer(x, w) end, {x, w})
--
-- fn maps the input tensors to a tensor; the check reduces it to a scalar with fixed random
-- weights, runs backward, then perturbs every element of every input that requires grad by
-- ±eps. Returns ok, the worst relative error and a message naming the worst element.
local core = require "cnnlab.core"

local function weighted_sum(out, w)
  return (out:detach() * w):sum():item()
end

--- lab.gradcheck(fn, inputs[, opts]) → ok, worst, where: compares autograd gradients of fn with central finite differences.
return function(fn, inputs, opts)
  opts = opts or {}
  local eps, tol = opts.eps or 1e-2, opts.tol or 2e-2
  local gen = core.Generator(opts.seed or 7)
  local out = fn(table.unpack(inputs))
  local w = core.randn(out.shape, {generator = gen})
  for _, x in ipairs(inputs) do
    if x.requires_grad then x.grad = nil end
  end
  ;(out * w):sum():backward()
  local worst, where = 0, "no input requires grad"
  local was = core.set_grad_enabled(false)
  local ok, err = pcall(function()
    for i, x in ipairs(inputs) do
      if x.requires_grad then
        local grad = x.grad
        if not grad then error(("input %d received no gradient"):format(i)) end
        local flat = x:detach():reshape(-1) -- shares storage with x: writes perturb x
        local gflat = grad:reshape(-1)
        for e = 0, flat:numel() - 1 do
          local saved = flat:get(e)
          flat:set(e, saved + eps)
          local f1 = weighted_sum(fn(table.unpack(inputs)), w)
          flat:set(e, saved - eps)
          local f2 = weighted_sum(fn(table.unpack(inputs)), w)
          flat:set(e, saved)
          local numeric = (f1 - f2) / (2 * eps)
          local analytic = gflat:get(e)
          local rel = math.abs(numeric - analytic) / (math.abs(numeric) + math.abs(analytic) + 1e-2)
          if rel > worst then
            worst = rel
            where = ("input %d element %d: numeric %.6g, analytic %.6g"):format(i, e, numeric,
              analytic)
          end
        end
      end
    end
  end)
  core.set_grad_enabled(was)
  if not ok then error(err, 2) end
  return worst <= tol, worst, where
end
