--- erm — plain empirical risk minimisation: the baseline every other method is measured
-- against. Cross-entropy on the coloured batch, nothing else.
local lab = require "cnnlab"

local M = {
  name = "erm",
  description = "plain training on the coloured easy set (the baseline)",
  options = {dropout = 0.0},
}

function M.build_model(ctx)
  return lab.debias.new_model(ctx, {generator = ctx.init_generator,
    dropout = ctx.options.dropout, dropout_generator = ctx.dropout_generator})
end

function M.loss(ctx, batch)
  local logits = ctx.model(batch.x)
  return lab.cross_entropy(logits, batch.y), logits
end

return M
