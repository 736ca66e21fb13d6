--- group_dro — Group DRO (Sagawa, Koh, Hashimoto and Liang, ICLR 2020) with the colour groups:
-- the method that knows the bias. A group is a (label, bias) pair, g = B·label + bias, with
-- K classes (the data set's, ctx.data.classes) and B bias values (the data set's
-- bias_classes, else the largest training bias + 1): K·B groups, 100 on the colour data sets
-- (with ρ = 1 only the ten aligned groups exist and this is ERM with adaptive class weights).
-- The online algorithm of the paper:
--   per batch, ℓ_g = mean cross-entropy of the batch's samples in group g (0 when absent);
--   q ← q · exp(η · ℓ_g) (detached), then q ← q / Σ q;  loss = Σ_g q_g · ℓ_g.
-- q starts uniform over the K·B groups; groups absent from a batch keep their q before the
-- renormalisation (as in the authors' code). η = `eta` (0.01 as in the paper). The paper's
-- strong ℓ2 penalty and group adjustments are not used (weight decay is the trainer's
-- --weight-decay, default 0). q is kept as a float32 tensor and saved in checkpoints.
-- With train.fit{micro_batches = K > 1} q is updated once per step, in begin_step, from the
-- whole batch's group losses, and each part's loss is its share of the whole batch's loss.
local lab = require "cnnlab"

local M = {
  name = "group_dro",
  description = "Group DRO over (label, colour) groups (knows the bias)",
  epochs = 5,
  options = {eta = 0.01},
}

function M.setup(ctx)
  if ctx.comm and ctx.comm.size and ctx.comm.size() > 1 then
    error("group_dro: runs in one process only: its group weights q are not synchronised across MPI ranks", 0)
  end
  if not (ctx.options.eta > 0) then
    error(("group_dro: option eta must be positive, got %g"):format(ctx.options.eta), 0)
  end
  if not ctx.data.train.colors then
    error("group_dro: the training set has no colours (set.colors); the groups need them", 0)
  end
  local set = ctx.data.train
  local k = ctx.data.classes
  if math.type(k) ~= "integer" then k = math.tointeger(set.labels:max():item()) + 1 end
  local dataset = ctx.data.dataset and ctx.data.dataset.module
  local b = dataset and math.tointeger(dataset.bias_classes)
    or math.tointeger(set.colors:max():item()) + 1
  local groups = k * b
  local eye = lab.zeros(groups, groups)
  for g = 0, groups - 1 do eye:set(g, g, 1) end
  ctx.group_dro = {q = lab.full({groups}, 1 / groups), eye = eye, groups = groups, bias_count = b}
end

-- The batch's one-hot groups (N×groups) and group sizes (at least 1).
local function groups_of(st, batch)
  local groups = batch.y * st.bias_count + batch.colors               -- int64 N
  local onehot = st.eye:index_select(0, groups)                       -- N×groups
  local counts = onehot:sum(0):clamp(1, math.huge)
  return onehot, counts
end

-- Once per optimiser step, before any loss. When the trainer splits the step into parts
-- (ctx.micro_batches > 1), q is updated here from the whole batch's group losses (one forward
-- pass without gradients), and the whole batch's group sizes are kept for loss; unsplit, loss
-- updates q itself, as it always did.
function M.begin_step(ctx, batch)
  local st = ctx.group_dro
  st.step_counts, st.step_n = nil, nil
  if (ctx.micro_batches or 1) <= 1 then return end
  lab.no_grad(function()
    local ce = lab.cross_entropy(ctx.model(batch.x), batch.y, {reduction = "none"})
    local onehot, counts = groups_of(st, batch)
    local group_loss = (ce:unsqueeze(1) * onehot):sum(0) / counts
    local q = st.q * (group_loss * ctx.options.eta):exp()
    st.q = q / q:sum()
    st.step_counts, st.step_n = counts, batch.y:numel()
  end)
end

function M.loss(ctx, batch)
  local st = ctx.group_dro
  local logits = ctx.model(batch.x)
  local ce = lab.cross_entropy(logits, batch.y, {reduction = "none"})
  local onehot, counts = groups_of(st, batch)
  if st.step_counts then
    -- a part of a split step: its samples' share of the whole batch's group losses, scaled by
    -- (batch size / part size) since the trainer weights the part's loss by its share; the
    -- parts' weighted losses then add up to the whole batch's Σ_g q_g·ℓ_g. q is begin_step's.
    local part_sum = (ce:unsqueeze(1) * onehot):sum(0) / st.step_counts
    return (part_sum * st.q):sum() * (st.step_n / batch.y:numel()), logits
  end
  local group_loss = (ce:unsqueeze(1) * onehot):sum(0) / counts       -- groups
  local q = st.q * (group_loss:detach() * ctx.options.eta):exp()
  st.q = q / q:sum()
  return (group_loss * st.q):sum(), logits
end

-- the split step is over: a later loss call (without begin_step) updates q itself again
function M.before_step(ctx)
  ctx.group_dro.step_counts, ctx.group_dro.step_n = nil, nil
end

function M.end_epoch(ctx, _, record)
  -- the five heaviest groups, for the run's history
  local st = ctx.group_dro
  local q = st.q:totable()
  local order = {}
  for g = 1, #q do order[g] = g end
  table.sort(order, function(a, b) return q[a] > q[b] end)
  local top = {}
  for i = 1, math.min(5, #q) do
    local g = order[i] - 1
    top[i] = ("%d/%d:%.3f"):format(g // st.bias_count, g % st.bias_count, q[order[i]])
  end
  record.group_dro_top = table.concat(top, " ")
end

function M.state_dict(ctx) return {q = ctx.group_dro.q} end

function M.load_state_dict(ctx, tensors)
  if tensors.q then ctx.group_dro.q = tensors.q:clone() end
end

return M
