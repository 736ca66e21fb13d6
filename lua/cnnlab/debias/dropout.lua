--- dropout — the seed's second method: dropout with p = 0.5 after the first block (conv1 →
-- ReLU → max-pool → dropout), and a short schedule of 5 epochs. The loss is plain
-- cross-entropy on the coloured batch. Dropout is active only in training; evaluation, the
-- saved model.safetensors and every later task see the plain seed network (the dropout layer
-- has no parameters, so the names of SPEC §4 do not change). The masks come from the
-- trainer's dropout generator, so runs are reproducible and resumable.
local lab = require "cnnlab"

local M = {
  name = "dropout",
  description = "dropout p = 0.5 after the first block, 5 epochs (seed method 2)",
  epochs = 5,
  options = {p = 0.5},
}

function M.build_model(ctx)
  local p = ctx.options.p
  if not (p > 0 and p < 1) then
    error(("dropout: option p must be in (0, 1), got %g"):format(p), 0)
  end
  return lab.debias.new_model(ctx, {generator = ctx.init_generator, dropout = p,
    dropout_generator = ctx.dropout_generator})
end

function M.loss(ctx, batch)
  local logits = ctx.model(batch.x)
  return lab.cross_entropy(logits, batch.y), logits
end

return M
