--- lff — Learning from Failure (Nam, Cha, Ahn, Lee and Shin, NeurIPS 2020). Bias-unaware: it
-- never looks at colours. Two seed networks train side by side on the same mini-batches:
--
--   the biased model B, trained with generalized cross-entropy (GCE, q = 0.7), which
--     amplifies what is easy to learn — here colour — by weighting each sample's
--     cross-entropy gradient with p_y^q (its own confidence in the label);
--   the debiased model D (ctx.model, the one evaluated and saved), trained with
--     cross-entropy weighted per sample by the relative difficulty
--         W(x) = CE_B(x) / (CE_B(x) + CE_D(x)),
--     high for samples B gets wrong (the bias-conflicting ones) and low for the rest.
--
-- Every choice, as in the authors' code (github.com/alinlab/LfF):
--   * GCE as implemented there: loss_B = mean_i q · p_{i,y}^q · CE_B,i with p^q detached,
--     whose gradient is q × the gradient of GCE = (1 − p_y^q)/q.
--   * Per-sample losses are smoothed by an exponential moving average indexed by the sample's
--     position in the training set (batch.index): ema ← α·ema + (1 − α·seen)·loss, α = 0.7
--     (`ema`); a sample's first update sets ema to its loss. Each model's EMA is of its plain
--     (unweighted) cross-entropy.
--   * Class-wise max normalisation: before W is formed, each EMA loss is divided by the
--     largest EMA loss of that class over the whole training set (samples not seen yet count
--     as 0), separately for B and D. W uses 1e-8 in the denominator. W is a constant (no
--     gradient).
--   * Total loss = mean(GCE_B) + mean(W · CE_D); both models step with the same optimizer
--     settings (the trainer's --optimizer/--lr); B has its own optimizer, cleared in
--     begin_step and stepped in before_step. B starts from its own initial weights (generator
--     stream 1041 of the seed).
--   * With train.fit{micro_batches = K > 1} the whole batch's EMAs and W are formed in
--     begin_step (one extra forward pass of both models, without gradients) and each part
--     uses them, so a split step makes the same update as an unsplit one.
--   * Both networks come from the run's model plug-in (--arch, through debias.new_model): the
--     paper's MLP with --arch lff_mlp, the seed CNN by default; the schedule is `epochs`
--     (default 5; the benchmark table lff_colored_mnist runs the paper's 100). The class count
--     is the data set's (ctx.data.classes, else the largest training label + 1).
-- State in checkpoints: B's weights, B's optimizer, both EMAs and the seen flags (EMA values
-- are kept rounded to float32 so that a resumed run continues bit for bit).
local lab = require "cnnlab"

local M = {
  name = "lff",
  description = "Learning from Failure: GCE-trained biased model + relative-difficulty weights",
  epochs = 5,
  options = {q = 0.7, ema = 0.7},
}

M.BIAS_STREAM = 1041

--- The class count of a run's data: ctx.data.classes (the data-set plug-in's), else the largest
-- training label + 1.
function M.class_count(ctx)
  local k = ctx.data.classes
  if math.type(k) == "integer" and k > 0 then return k end
  return math.tointeger(ctx.data.train.labels:max():item()) + 1
end

local function f32(v) return (string.unpack("<f", string.pack("<f", v))) end

function M.setup(ctx)
  if ctx.comm and ctx.comm.size and ctx.comm.size() > 1 then
    error("lff: runs in one process only: its second model and per-sample losses are not synchronised across MPI ranks", 0)
  end
  local o = ctx.options
  if not (o.q > 0 and o.q <= 1) then error(("lff: option q must be in (0, 1], got %g"):format(o.q), 0) end
  if not (o.ema >= 0 and o.ema < 1) then
    error(("lff: option ema must be in [0, 1), got %g"):format(o.ema), 0)
  end
  local st = {}
  ctx.lff = st
  st.bias_model = lab.debias.new_model(ctx, {generator = lab.Generator(ctx.opts.seed, M.BIAS_STREAM)})
  st.bias_model:train()
  st.bias_optimizer = lab.train.make_optimizer(st.bias_model:parameters(), ctx.opts)
  local set = ctx.data.train
  local n = set.n or set.labels:numel()
  st.n = n
  st.labels = set.labels:totable()
  st.by_class = {}
  st.classes = M.class_count(ctx)
  for c = 0, st.classes - 1 do st.by_class[c] = {} end
  for i, y in ipairs(st.labels) do
    local list = st.by_class[y]
    list[#list + 1] = i
  end
  st.ema_b, st.ema_d, st.seen = {}, {}, {}
  for i = 1, n do st.ema_b[i], st.ema_d[i], st.seen[i] = 0.0, 0.0, 0 end
end

local function class_max(st, ema, c)
  local m = 0.0
  for _, i in ipairs(st.by_class[c]) do
    local v = ema[i]
    if v > m then m = v end
  end
  return m
end

-- Updates the EMAs of the batch's samples (sample positions idx, 0-based; labels ys; plain
-- cross-entropies lb of B and ld of D) and returns the weights W of those samples and their sum.
local function update_weights(st, o, idx, ys, lb, ld)
  local a = o.ema
  for j, i0 in ipairs(idx) do
    local i = i0 + 1
    local keep = st.seen[i] == 1 and a or 0.0
    st.ema_b[i] = f32(a * st.ema_b[i] + (1 - keep) * lb[j])
    st.ema_d[i] = f32(a * st.ema_d[i] + (1 - keep) * ld[j])
    st.seen[i] = 1
  end
  local max_b, max_d = {}, {}
  local w = {}
  local wsum = 0
  for j, i0 in ipairs(idx) do
    local i, c = i0 + 1, ys[j]
    if not max_b[c] then
      max_b[c], max_d[c] = class_max(st, st.ema_b, c), class_max(st, st.ema_d, c)
    end
    local b = st.ema_b[i] / (max_b[c] > 0 and max_b[c] or 1)
    local d = st.ema_d[i] / (max_d[c] > 0 and max_d[c] or 1)
    w[j] = b / (b + d + 1e-8)
    wsum = wsum + w[j]
  end
  return w, wsum
end

-- Once per optimiser step, before any loss: B's gradients are cleared here (not in loss, which
-- runs once per part when the trainer splits the batch). When the step is split
-- (ctx.micro_batches > 1), the whole batch's EMAs and weights W are computed here, without
-- gradients, so that every part uses the weights an unsplit step would; loss then only looks
-- them up. Unsplit, loss updates the EMAs and forms W itself, as it always did.
function M.begin_step(ctx, batch)
  local o, st = ctx.options, ctx.lff
  st.bias_optimizer:zero_grad()
  st.began = true
  st.step_w = nil
  if (ctx.micro_batches or 1) <= 1 then return end
  local lb, ld = lab.no_grad(function()
    local ce_b = lab.cross_entropy(st.bias_model(batch.x), batch.y, {reduction = "none"})
    local ce_d = lab.cross_entropy(ctx.model(batch.x), batch.y, {reduction = "none"})
    return ce_b:totable(), ce_d:totable()
  end)
  local idx = batch.index:totable()
  local w, wsum = update_weights(st, o, idx, batch.y:totable(), lb, ld)
  st.step_w = {}
  for j, i0 in ipairs(idx) do st.step_w[i0 + 1] = w[j] end
  st.last_mean_weight = wsum / #idx
end

function M.loss(ctx, batch)
  local o, st = ctx.options, ctx.lff
  -- a caller that does not call begin_step gets B's gradients cleared here, once per loss
  if not st.began then st.bias_optimizer:zero_grad() end
  local y = batch.y
  local logits_b = st.bias_model(batch.x)
  local logits_d = ctx.model(batch.x)
  local ce_b = lab.cross_entropy(logits_b, y, {reduction = "none"})
  local ce_d = lab.cross_entropy(logits_d, y, {reduction = "none"})
  local idx = batch.index:totable()
  local w
  if st.step_w then
    -- split step: the weights begin_step formed from the whole batch
    w = {}
    for j, i0 in ipairs(idx) do w[j] = st.step_w[i0 + 1] end
  else
    -- EMA of each sample's losses, then class-wise max normalisation.
    local wsum
    w, wsum = update_weights(st, o, idx, y:totable(), ce_b:detach():totable(),
      ce_d:detach():totable())
    st.last_mean_weight = wsum / #idx
  end
  local p_y = logits_b:detach():softmax(1):gather(1, y:unsqueeze(1)):reshape(-1)
  local gce = (ce_b * (p_y:pow(o.q) * o.q)):mean()
  local weighted = (ce_d * lab.tensor(w)):mean()
  return gce + weighted, logits_d
end

function M.before_step(ctx)
  local st = ctx.lff
  st.bias_optimizer:step()
  st.began, st.step_w = nil, nil
end

function M.end_epoch(ctx, _, record)
  local st = ctx.lff
  -- How the biased model and the weights look now (diagnostics in the run's history).
  if ctx.data.val then record.lff_bias_val_acc = lab.train.accuracy(st.bias_model, ctx.data.val) end
  if ctx.data.hard then record.lff_bias_hard_acc = lab.train.accuracy(st.bias_model, ctx.data.hard) end
  st.bias_model:train()
  -- Mean weight W of bias-aligned and bias-conflicting training samples (colours are read
  -- only for this report, never for training).
  local set = ctx.data.train
  if set.colors then
    local conf = set.conflicting:totable()
    local mb, md = {}, {}
    for c = 0, st.classes - 1 do
      mb[c], md[c] = class_max(st, st.ema_b, c), class_max(st, st.ema_d, c)
    end
    local sums, counts = {0, 0}, {0, 0}
    for i = 1, st.n do
      local k, y = conf[i] + 1, st.labels[i]
      local b = st.ema_b[i] / (mb[y] > 0 and mb[y] or 1)
      local d = st.ema_d[i] / (md[y] > 0 and md[y] or 1)
      sums[k], counts[k] = sums[k] + b / (b + d + 1e-8), counts[k] + 1
    end
    record.lff_weight_aligned = counts[1] > 0 and sums[1] / counts[1] or nil
    record.lff_weight_conflicting = counts[2] > 0 and sums[2] / counts[2] or nil
  end
end

function M.state_dict(ctx)
  local st = ctx.lff
  local t = {}
  for name, p in pairs(st.bias_model:state_dict()) do t["bias_model." .. name] = p end
  local ot, os_ = st.bias_optimizer:state_dict()
  for name, b in pairs(ot) do t["bias_optim." .. name] = b end
  t.ema_b = lab.tensor(st.ema_b)
  t.ema_d = lab.tensor(st.ema_d)
  t.seen = lab.tensor(st.seen, {dtype = "uint8"})
  return t, {bias_optim_step = os_.step, bias_optim_kind = os_.kind}
end

function M.load_state_dict(ctx, tensors, meta)
  local st = ctx.lff
  local model_sd, optim_sd = {}, {}
  for name, t in pairs(tensors) do
    local kind, rest = name:match("^([%a_]+)%.(.+)$")
    if kind == "bias_model" then model_sd[rest] = t
    elseif kind == "bias_optim" then optim_sd[rest] = t end
  end
  st.bias_model:load_state_dict(model_sd)
  st.bias_optimizer:load_state_dict(optim_sd, {step = meta.bias_optim_step, kind = meta.bias_optim_kind})
  if not (tensors.ema_b and tensors.ema_b:numel() == st.n) then
    error(("lff: the checkpoint's per-sample state has %s entries, the training set %d")
      :format(tensors.ema_b and tensors.ema_b:numel() or "no", st.n), 0)
  end
  st.ema_b, st.ema_d = tensors.ema_b:totable(), tensors.ema_d:totable()
  st.seen = tensors.seen:totable()
end

return M
