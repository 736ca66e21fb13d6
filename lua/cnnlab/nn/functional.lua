--- cnnlab.nn.functional — the losses (PyTorch's nn.functional habit) and nn.frozen.
local core = require "cnnlab.core"

local nn = {}

-- ------------------------------------------------------------------ losses

--- cross_entropy(logits N×K, targets int64 N[, {reduction = "mean"|"sum"|"none",
-- weight = per-class K}]), PyTorch's F.cross_entropy: with weight, the mean divides by
-- Σ weight[target_i]. Per-sample weights: reduction = "none", then (ce * w):mean() or similar.
nn.cross_entropy = core.cross_entropy
nn.mse_loss = core.mse_loss

--- Runs fn(model) with the model in evaluation mode, its parameters frozen
-- (requires_grad = false) and gradient recording set to opts.grad (default false); restores
-- all three whatever happens, then returns fn's results or raises its error. For evaluating,
-- attacking or explaining a trained model without touching its parameters' gradients.
function nn.frozen(model, fn, opts)
  if type(model) ~= "table" or type(model.parameters) ~= "function" then
    error(("nn.frozen: model must be a module, got %s"):format(type(model)), 2)
  end
  if type(fn) ~= "function" then
    error(("nn.frozen: fn must be a function, got %s"):format(type(fn)), 2)
  end
  local was_training = model.training
  local params = model:parameters()
  local flags = {}
  for i, p in ipairs(params) do flags[i], p.requires_grad = p.requires_grad, false end
  model:eval()
  local was_grad = core.set_grad_enabled(opts and opts.grad or false)
  local results = table.pack(pcall(fn, model))
  core.set_grad_enabled(was_grad)
  for i, p in ipairs(params) do p.requires_grad = flags[i] end
  model:train(was_training)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

return nn
