--- jtt — Just Train Twice (Liu, Haghgoo, Chen, Raghunathan, Koh, Sagawa, Liang and Finn,
-- ICML 2021). Bias-unaware: it never looks at colours.
--
--   stage 1 (epochs 1..T): plain ERM of the network — the identification model;
--   at the end of epoch T: the error set E = training samples that model misclassifies
--     (evaluation mode, the whole training set);
--   stage 2 (epochs T+1..T+E): the network is re-initialised (fresh weights from generator
--     stream 1051 of the seed, fresh optimizer state) and trained from scratch with the error
--     set up-weighted by λ_up.
--
-- Two ways to up-weight E, chosen by the option `upsample`:
--   upsample = false (the default, as before): each error sample's cross-entropy is multiplied
--     by λ_up, and the batch loss is Σ_batch w_i·CE_i / (|batch| · w̄) with w̄ the mean weight
--     over the whole training set — the unbiased estimate of the up-sampled set's mean loss,
--     so the step size matches an up-sampled run's on average; an epoch stays one pass over
--     the training set (the same number of steps as the other methods).
--   upsample = true (the paper's): each stage-2 epoch is the training set plus λ_up − 1 more
--     copies of every error sample, shuffled (generator stream 1052·1000 + epoch of the seed),
--     with the plain mean cross-entropy: an epoch then has (N + (λ_up − 1)·|E|)/batch steps,
--     more than one pass. λ_up must be a whole number.
-- Stage 1 uses the same optimizer and learning rate as stage 2 (the paper tunes them
-- separately). The run's epoch count is T + final_epochs (both options).
-- State in checkpoints: the error set (uint8 per training sample) once it exists.
local lab = require "cnnlab"

local M = {
  name = "jtt",
  description = "Just Train Twice: ERM for T epochs, then retrain with its errors up-weighted",
  options = {T = 1, up = 20.0, final_epochs = 5, upsample = false},
}

M.epochs = function(o) return math.tointeger(o.T + o.final_epochs) or (o.T + o.final_epochs) end

M.REINIT_STREAM = 1051
M.UPSAMPLE_STREAM = 1052

function M.setup(ctx)
  local o = ctx.options
  if math.type(o.T) ~= "integer" or o.T < 1 then
    error(("jtt: option T must be a positive integer, got %s"):format(tostring(o.T)), 0)
  end
  if math.type(o.final_epochs) ~= "integer" or o.final_epochs < 1 then
    error(("jtt: option final_epochs must be a positive integer, got %s")
      :format(tostring(o.final_epochs)), 0)
  end
  if not (o.up >= 1) then error(("jtt: option up must be >= 1, got %g"):format(o.up), 0) end
  if o.upsample and o.up ~= math.floor(o.up) then
    error(("jtt: option up must be a whole number with upsample=true (each error sample is "
      .. "repeated up times), got %g"):format(o.up), 0)
  end
  ctx.jtt = {weights = nil}
end

local function set_errors(ctx, errors)
  -- errors: uint8 tensor N (1 = misclassified by the identification model)
  local st = ctx.jtt
  st.errors = errors
  local up = ctx.options.up
  st.weights = errors:float() * (up - 1) + 1
  st.mean_weight = st.weights:mean():item()
  -- the positions of the up-sampled epoch before shuffling: every sample once, then up − 1
  -- more copies of each error sample
  local list, n = {}, errors:numel()
  for i = 0, n - 1 do list[#list + 1] = i end
  local flags = errors:totable()
  for _ = 2, math.floor(up) do
    for i = 1, n do if flags[i] ~= 0 then list[#list + 1] = i - 1 end end
  end
  st.upsampled = lab.tensor(list, {dtype = "int64"})
end

--- With upsample = true, a stage-2 epoch is the up-sampled list, shuffled; otherwise the
-- trainer's own order.
function M.epoch_positions(ctx, epoch, order)
  local st = ctx.jtt
  if not (ctx.options.upsample and st.upsampled) then return order end
  local perm = lab.randperm(st.upsampled:numel(), {generator = lab.Generator(ctx.opts.seed,
    M.UPSAMPLE_STREAM * 1000 + epoch)})
  return st.upsampled:index_select(0, perm)
end

function M.end_epoch(ctx, epoch, record)
  if epoch ~= ctx.options.T then return end
  local set = ctx.data.train
  local preds = lab.train.predict(ctx.model, set)
  set_errors(ctx, preds:ne(set.labels))
  local n_err = ctx.jtt.errors:sum():item()
  record.jtt_error_set = n_err
  if ctx.options.upsample then record.jtt_epoch_size = ctx.jtt.upsampled:numel() end
  if set.colors then
    -- diagnostics only: how much of the error set is bias-conflicting
    local conf = set.conflicting
    local both = (ctx.jtt.errors:long() * conf:long()):sum():item()
    record.jtt_error_conflicting = both
    record.jtt_conflicting_total = conf:sum():item()
  end
  -- Stage 2 starts from scratch: fresh weights, fresh optimizer.
  local fresh = lab.debias.new_model(ctx, {generator = lab.Generator(ctx.opts.seed, M.REINIT_STREAM)})
  ctx.model:load_state_dict(fresh:state_dict(), {strict = false})
  ctx.optimizer = lab.train.make_optimizer(ctx.model:parameters(), ctx.opts)
  ctx.model:train()
end

function M.loss(ctx, batch)
  local logits = ctx.model(batch.x)
  local st = ctx.jtt
  if not st.weights or ctx.options.upsample then return lab.cross_entropy(logits, batch.y), logits end
  local w = st.weights:index_select(0, batch.index)
  local ce = lab.cross_entropy(logits, batch.y, {reduction = "none"})
  return (ce * w):mean() / st.mean_weight, logits
end

function M.state_dict(ctx)
  if ctx.jtt.errors then return {errors = ctx.jtt.errors}, {stage = 2} end
  return {}, {stage = 1}
end

function M.load_state_dict(ctx, tensors)
  if tensors.errors then set_errors(ctx, tensors.errors) end
end

return M
