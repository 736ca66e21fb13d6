--- cnnlab.train — the training loop, knowing nothing about any debias method.
--
--   local result = train.fit{
--     method = debias.load("erm"),   -- or any table answering the method interface
--     data = {train = set, val = set, hard = set},  -- sets from cnnlab.data
--     epochs = 5, batch = 128, optimizer = "adam", seed = 1,  -- defaults: cnnlab.defaults
--     lr = 0.01, momentum = 0.9,     -- optional for Adam (its defaults), lr required for SGD
--     out = "runs/task1",            -- checkpoints go here (nil: nothing written)
--     resume = false, progress = true,
--   }
--   result.model, result.history, result.seconds, result.interrupted
--
-- Reproducible: the model's initial weights, each epoch's shuffle and dropout masks all come
-- from generators derived from the seed, so the same seed and thread count give the same
-- weights bit for bit; a run resumed from its checkpoint (saved at every epoch end and on
-- Ctrl-C) ends exactly where an uninterrupted run would.
--
-- Data-parallel over MPI (docs/mpi.md): under `mpirun -np K ./build-mpi/cnnlab`
-- each global batch is split across the K ranks and the gradients are summed before every
-- step, so K ranks follow the single-process run (up to floating-point summation order).
-- opts.comm = lab.mpi.self trains alone even inside an MPI job (scripts/sweep.lua).
local core = require "cnnlab.core"
local mpi = require "cnnlab.mpi"
local nn = require "cnnlab.nn"
local defaults = require "cnnlab.defaults"
local optim = require "cnnlab.optim"
local util = require "cnnlab.util"

local train = {}

-- Generator streams: one per purpose, so adding randomness to one never shifts another.
train.STREAM_INIT, train.STREAM_SHUFFLE, train.STREAM_DROPOUT, train.STREAM_METHOD = 101, 102, 103, 104

--- A batch of a set as float inputs in [0,1]: {x = N×3×28×28, y = int64 labels, index =
-- positions in the set, colors = colour indices (when the set has them)}.
function train.batch_of(set, positions)
  local b = {index = positions}
  b.x = set.images:index_select(0, positions):float() / 255
  b.y = set.labels:index_select(0, positions)
  if set.colors then b.colors = set.colors:index_select(0, positions) end
  return b
end

--- Builds the optimizer named in opts.optimizer ("adam", "adamw" or "sgd"; default adam)
-- from opts.lr, opts.weight_decay and, for SGD, opts.momentum and opts.nesterov. A setting
-- left out (nil) takes the optimiser's own default (cnnlab.defaults); SGD needs opts.lr.
function train.make_optimizer(params, opts)
  local name = (opts.optimizer or defaults.fit.optimizer):lower()
  if name == "adam" or name == "adamw" then
    return optim[name == "adam" and "Adam" or "AdamW"](params, {lr = opts.lr,
      weight_decay = opts.weight_decay})
  elseif name == "sgd" then
    if opts.lr == nil then
      error("train: optimizer sgd needs lr (SGD has no default learning rate), got nil", 2)
    end
    return optim.SGD(params, {lr = opts.lr, momentum = opts.momentum,
      weight_decay = opts.weight_decay, nesterov = opts.nesterov})
  end
  error(("train: optimizer must be adam, adamw or sgd, got '%s'"):format(tostring(opts.optimizer)), 2)
end

-- ------------------------------------------------------------------ progress

local function format_time(s)
  s = math.max(0, math.floor(s + 0.5))
  return ("%d:%02d"):format(s // 60, s % 60)
end

local Progress = {}
Progress.__index = Progress

--- train.progress(enabled, label) → progress: a one-line progress display (p:update(text, final)).
function train.progress(enabled, label)
  return setmetatable({enabled = enabled, live = enabled and core.isatty(1), label = label or "",
    last = 0}, Progress)
end

--- One status line; on a terminal it rewrites itself, otherwise it prints every few seconds.
function Progress:update(text, final)
  if not self.enabled then return end
  local now = core.now()
  if self.live then
    io.stdout:write("\r\27[K", self.label, text)
    if final then io.stdout:write("\n") end
    io.stdout:flush()
  elseif final or now - self.last >= 10 then
    io.stdout:write(self.label, text, "\n")
    io.stdout:flush()
    self.last = now
  end
end

-- ------------------------------------------------------------------ checkpoints

local CHECKPOINT = "checkpoint.safetensors"

--- Writes model.safetensors (SPEC §4 names only) and, for resuming, checkpoint.safetensors
-- (model, optimizer buffers, method state and the loop's position). Both atomically.
function train.save_checkpoint(out, ctx, position)
  util.mkdir_p(out)
  local model_sd = ctx.model:state_dict()
  local model_meta = {format = "cnnlab seed_cnn", method = ctx.method.name,
    seed = tostring(ctx.opts.seed)}
  -- the architecture record (cnnlab.models.metadata; none for the default seed network)
  for k, v in pairs(ctx.opts.model_metadata or {}) do model_meta[k] = v end
  if model_meta.arch then model_meta.format = "cnnlab model" end
  core.save_safetensors(out .. "/model.safetensors", model_sd, model_meta)
  local tensors = {}
  for name, t in pairs(model_sd) do tensors["model." .. name] = t end
  local opt_tensors, opt_scalars = ctx.optimizer:state_dict()
  for name, t in pairs(opt_tensors) do tensors["optim." .. name] = t end
  local meta = {
    epoch = tostring(position.epoch), step_in_epoch = tostring(position.step_in_epoch),
    steps = tostring(ctx.steps), optim_step = tostring(opt_scalars.step),
    optim_kind = opt_scalars.kind, dropout_state = ctx.dropout_generator:state(),
    method_generator = ctx.generator:state(), seconds = tostring(ctx.seconds_before + ctx.clock()),
    history = util.json_encode(ctx.history), settings = util.json_encode(ctx.settings),
  }
  if ctx.method.state_dict then
    local mt, mm = ctx.method.state_dict(ctx)
    for name, t in pairs(mt or {}) do tensors["method." .. name] = t end
    meta.method_meta = util.json_encode(mm or {})
  end
  core.save_safetensors(out .. "/" .. CHECKPOINT, tensors, meta)
end

-- The loop position a checkpoint's metadata holds ({epoch = the next epoch, step_in_epoch}),
-- checked: integers, 1 ≤ epoch ≤ epochs + 1 (epochs + 1: the run had finished) and
-- 0 ≤ step_in_epoch ≤ steps_per_epoch (no upper bound when steps_per_epoch is nil: a method
-- whose epochs have their own length); anything else is an error naming the file and field.
function train.checkpoint_position(path, meta, epochs, steps_per_epoch)
  local function field(key, lo, hi)
    local raw = meta[key]
    local v = math.tointeger(tonumber(raw))
    if v == nil or v < lo or (hi and v > hi) then
      error(("train: checkpoint %s: metadata '%s' must be an integer in %d..%s, got %s"):format(
        path, key, lo, hi and tostring(hi) or "", raw == nil and "nothing (missing)"
        or ("'" .. tostring(raw) .. "'")), 0)
    end
    return v
  end
  local epoch = field("epoch", 1, epochs + 1)
  local step = field("step_in_epoch", 0, steps_per_epoch)
  field("steps", 0)
  return {epoch = epoch, step_in_epoch = step}
end

local function load_checkpoint(path, ctx, steps_per_epoch)
  local tensors, meta = core.load_safetensors(path)
  local position = train.checkpoint_position(path, meta, ctx.opts.epochs, steps_per_epoch)
  local model_sd, opt_sd, method_sd = {}, {}, {}
  for name, t in pairs(tensors) do
    local kind, rest = name:match("^(%a+)%.(.+)$")
    if kind == "model" then model_sd[rest] = t
    elseif kind == "optim" then opt_sd[rest] = t
    elseif kind == "method" then method_sd[rest] = t end
  end
  ctx.model:load_state_dict(model_sd)
  ctx.optimizer:load_state_dict(opt_sd, {step = tonumber(meta.optim_step), kind = meta.optim_kind})
  ctx.dropout_generator:set_state(meta.dropout_state)
  ctx.generator:set_state(meta.method_generator)
  ctx.steps = tonumber(meta.steps)
  ctx.seconds_before = tonumber(meta.seconds) or 0
  ctx.history = util.json_decode(meta.history or "[]")
  if ctx.method.load_state_dict then
    ctx.method.load_state_dict(ctx, method_sd, util.json_decode(meta.method_meta or "{}"))
  end
  return position, util.json_decode(meta.settings or "{}")
end

-- ------------------------------------------------------------------ the loop

local function shuffled_positions(n, seed, epoch)
  -- each epoch's order is a pure function of (seed, epoch): resuming needs no saved state
  return core.randperm(n, {generator = core.Generator(seed, train.STREAM_SHUFFLE * 1000 + epoch)})
end

--- The settings that must match for --resume to continue a run.
local function resume_settings(opts, optimizer)
  -- epochs is left out on purpose: resuming with more epochs continues a finished run; lr is
  -- the optimiser's, default included
  return {method = opts.method.name, batch = opts.batch, lr = optimizer.opts.lr,
    optimizer = opts.optimizer, seed = opts.seed, method_options = opts.method.options,
    data = opts.data_signature}
end

local fit

--- Trains opts.method on opts.data.train (see the top of this file); errors are reported at
-- the caller's line.
function train.fit(opts)
  if type(opts) ~= "table" then
    error(("train.fit: an options table expected, got %s"):format(type(opts)), 2)
  end
  return util.call_located(fit, opts)
end

fit = function(opts)
  if opts.method == nil then error("train.fit: method required (opts.method, e.g. debias.load(\"erm\"))", 2) end
  if type(opts.data) ~= "table" or opts.data.train == nil then
    error(("train.fit: opts.data must be a table of sets with a train set, got %s"):format(
      type(opts.data) == "table" and "no data.train" or type(opts.data)), 2)
  end
  local method, data = opts.method, opts.data
  local set = data.train
  -- opts.lr is left as given: the optimiser fills in its own default (SGD has none)
  opts.epochs = opts.epochs or method.epochs or defaults.fit.epochs
  opts.batch = opts.batch or defaults.fit.batch
  opts.optimizer = opts.optimizer or defaults.fit.optimizer
  opts.seed = opts.seed or defaults.fit.seed
  if math.type(opts.epochs) ~= "integer" or opts.epochs < 1 then
    error(("train: epochs must be a positive integer, got %s"):format(tostring(opts.epochs)), 2)
  end
  if math.type(opts.batch) ~= "integer" or opts.batch < 1 then
    error(("train: batch must be a positive integer, got %s"):format(tostring(opts.batch)), 2)
  end
  -- a set with no images would train on nothing and fail only when evaluating: refused here
  local n = set.n or (set.labels and set.labels:numel())
  if math.type(n) ~= "integer" or n < 1 then
    error(("train: the training set has %s images; at least 1 is needed (check the data "
      .. "folder)"):format(tostring(n)), 2)
  end
  for _, name in ipairs({"val", "hard"}) do
    local s = data[name]
    local k = s and (s.n or (s.labels and s.labels:numel()))
    if s and k == 0 then
      error(("train: the %s set has 0 images (training set: %d); at least 1 is needed"):format(
        name, n), 2)
    end
  end
  local t0 = core.now()
  -- MPI: the ranks this run trains over; with one (the default) nothing changes.
  local comm = opts.comm or mpi.world
  local nranks, rank = comm.size(), comm.rank()
  local root = rank == 0 -- only rank 0 prints and writes files
  local ctx = {
    comm = comm, -- MPI: methods that keep models or state of their own synchronise through it
    opts = opts, method = method, data = data, options = method.options or {},
    generator = core.Generator(opts.seed, train.STREAM_METHOD),
    dropout_generator = core.Generator(opts.seed, train.STREAM_DROPOUT),
    init_generator = core.Generator(opts.seed, train.STREAM_INIT),
    steps = 0, history = {}, seconds_before = 0,
    clock = function() return core.now() - t0 end,
  }
  ctx.model = method.build_model(ctx)
  ctx.optimizer = train.make_optimizer(ctx.model:parameters(), opts)
  ctx.settings = resume_settings(opts, ctx.optimizer)
  if method.setup then method.setup(ctx) end

  local start = {epoch = 1, step_in_epoch = 0}
  local ckpt = opts.out and (opts.out .. "/" .. CHECKPOINT)
  if opts.resume then
    if not (ckpt and util.exists(ckpt)) then
      error(("train: --resume given but there is no checkpoint at %s"):format(tostring(ckpt)), 2)
    end
    local saved
    -- a method that sets its own epoch order (method.epoch_positions) may make an epoch longer
    -- than one pass: the step within it is then not bounded by one pass's steps
    start, saved = load_checkpoint(ckpt, ctx, not method.epoch_positions
      and (n + opts.batch - 1) // opts.batch or nil)
    -- through JSON both ways, so that 64 and 64.0 compare equal
    local a = util.json_encode(saved)
    local b = util.json_encode(util.json_decode(util.json_encode(ctx.settings)))
    if a ~= b then
      error("train: the checkpoint was made with other settings:\n  checkpoint: " .. a ..
        "\n  this run:   " .. b, 2)
    end
    if opts.progress ~= false and root then
      print(("resuming from %s: epoch %d, step %d"):format(ckpt, start.epoch, start.step_in_epoch))
    end
  end
  -- MPI: every rank starts from rank 0's parameters (the same seed already gives the
  -- same ones: this makes it a fact), and ranks > 0 draw dropout masks and method randomness
  -- from streams of their own, so that their shares of a batch are not masked or augmented
  -- alike (rank 0 keeps the single-process streams).
  if nranks > 1 then
    comm:broadcast_parameters(ctx.model, 0)
    if not root then
      ctx.dropout_generator:set_state(core.Generator(opts.seed,
        train.STREAM_DROPOUT * 1000000 + rank):state())
      ctx.generator:set_state(core.Generator(opts.seed, train.STREAM_METHOD * 1000000 + rank):state())
    end
    if comm.stats then comm.stats(true) end
  end

  local progress = train.progress(opts.progress ~= false and root, "")
  local interrupted, last_epoch = false, start.epoch - 1
  core.trap_sigint(opts.trap_sigint ~= false)
  -- opts.micro_batches: split each batch as that many MPI ranks would (1: no split).
  local micro = opts.micro_batches or 1
  if math.type(micro) ~= "integer" or micro < 1 then
    error(("train: micro_batches must be a positive integer, got %s"):format(tostring(micro)), 2)
  end
  if micro > 1 and nranks > 1 then
    error("train: micro_batches splits batches in one process; under MPI the ranks do it", 2)
  end
  ctx.micro_batches = micro -- methods' begin_step reads it: > 1 when each batch is split
  local function check_finite(value, epoch, step)
    if value ~= value or value == math.huge or value == -math.huge then
      error(("train: the loss became %s at epoch %d, step %d (global step %d); the last " ..
        "good checkpoint is kept"):format(tostring(value), epoch, step + 1, ctx.steps + 1), 0)
    end
  end
  local ok, err = pcall(function()
    for epoch = start.epoch, opts.epochs do
      ctx.epoch = epoch
      ctx.model:train()
      if method.begin_epoch then method.begin_epoch(ctx, epoch) end
      local order = shuffled_positions(n, opts.seed, epoch)
      -- a method may replace the epoch's order (JTT's up-sampling repeats samples); it must be
      -- a pure function of (seed, epoch, method state) so that a resumed run repeats it
      if method.epoch_positions then order = method.epoch_positions(ctx, epoch, order) or order end
      local n_epoch = order:numel()
      local steps_this = (n_epoch + opts.batch - 1) // opts.batch
      local loss_sum, correct, seen = 0.0, 0, 0
      local epoch_start = core.now()
      local first_step = epoch == start.epoch and start.step_in_epoch or 0
      for step = first_step, steps_this - 1 do
        local count = math.min(opts.batch, n_epoch - step * opts.batch)
        local positions = order:narrow(0, step * opts.batch, count)
        -- MPI: this rank's contiguous share of the global batch (all of it with one
        -- rank; empty when the last batch has fewer samples than there are ranks).
        local share_start, share_count = comm:share(count)
        if nranks > 1 then positions = share_count > 0 and positions:narrow(0, share_start, share_count) end
        ctx.optimizer:zero_grad()
        local batch, logits, value, step_correct = nil, nil, 0.0, 0
        local step_loss = 0.0
        -- the whole batch (this rank's share under MPI), seen by begin_step before any loss
        -- and by before_step after the last one
        local whole = positions and train.batch_of(set, positions)
        if whole and method.begin_step then method.begin_step(ctx, whole) end
        if positions and micro > 1 then
          -- One process computing the batch as `micro` ranks would: each share's weighted loss
          -- back-propagated in turn, the gradients summed in .grad in rank order. With micro = K
          -- this reproduces a K-rank MPI run bit for bit (for K = 2; docs/mpi.md).
          for part = 0, micro - 1 do
            local p_start, p_count = comm:share(count, part, micro)
            if p_count > 0 then
              batch = train.batch_of(set, positions:narrow(0, p_start, p_count))
              local loss, part_logits = method.loss(ctx, batch)
              local part_value = loss:item()
              check_finite(part_value, epoch, step)
              step_loss = step_loss + part_value * p_count
              if part_logits then
                step_correct = step_correct + part_logits:argmax(1):eq(batch.y):sum():item()
              end
              (loss * (p_count / count)):backward()
            end
          end
          value = step_loss / count
          batch = whole -- what before_step sees: the whole batch
        elseif positions then
          batch = whole
          local loss
          loss, logits = method.loss(ctx, batch)
          value = loss:item()
          if nranks == 1 then check_finite(value, epoch, step) end
          -- MPI: the share's mean loss weighted by its part of the batch, so that the SUM of
          -- the ranks' gradients is the gradient of the global batch's mean loss.
          if nranks > 1 then loss = loss * (share_count / count) end
          loss:backward()
          if logits then step_correct = logits:argmax(1):eq(batch.y):sum():item() end
          step_loss = value * share_count
        end
        local stop = core.sigint_pending()
        if nranks > 1 then
          -- MPI: one all-reduce of one flat buffer: every gradient, then the step's loss sum,
          -- correct count and whether any rank saw Ctrl-C (so that all ranks stop together).
          local sums = comm:allreduce_grads(ctx.model:parameters(),
            {step_loss, step_correct, stop and 1 or 0})
          step_loss, step_correct, stop = sums[1], sums[2], sums[3] > 0
          value = step_loss / count
          if value ~= value or value == math.huge or value == -math.huge then
            error(("train: the loss became %s at epoch %d, step %d (global step %d; all %d " ..
              "ranks stop); the last good checkpoint is kept"):format(tostring(value), epoch,
              step + 1, ctx.steps + 1, nranks), 0)
          end
        end
        if method.before_step and batch then method.before_step(ctx, batch) end
        ctx.optimizer:step()
        ctx.steps = ctx.steps + 1
        loss_sum = loss_sum + step_loss
        seen = seen + count
        correct = correct + step_correct
        local elapsed = core.now() - epoch_start
        local rate = seen / math.max(elapsed, 1e-9)
        progress:update(("epoch %d/%d  step %d/%d  loss %.4f  acc %5.1f%%  %.0f img/s%s  left %s")
          :format(epoch, opts.epochs, step + 1, steps_this, loss_sum / seen,
            100 * correct / seen, rate, nranks > 1 and (" (%d ranks)"):format(nranks) or "",
            format_time((n_epoch - (step + 1) * opts.batch) / rate + (opts.epochs - epoch) * n / rate)))
        if stop then
          interrupted = {epoch = epoch, step_in_epoch = step + 1}
          return
        end
      end
      local record = {epoch = epoch, loss = loss_sum / math.max(seen, 1),
        train_acc = 100 * correct / math.max(seen, 1), seconds = core.now() - epoch_start}
      if data.val and opts.validate ~= false then
        record.val_acc = train.accuracy(ctx.model, data.val,
          {batch = opts.eval_batch or opts.batch, comm = comm})
      end
      if nranks > 1 then -- MPI: time inside the collectives this epoch (rank 0's view)
        local st = comm.stats(true)
        record.mpi_ranks, record.comm_seconds = nranks, st.seconds
      end
      if method.end_epoch then method.end_epoch(ctx, epoch, record) end
      table.insert(ctx.history, record)
      progress:update(("epoch %d/%d  loss %.4f  train %.2f%%%s  %.1f s%s"):format(epoch,
        opts.epochs, record.loss, record.train_acc,
        record.val_acc and ("  val %.2f%%"):format(record.val_acc) or "", record.seconds,
        nranks > 1 and ("  (%d ranks, %.1f s in MPI)"):format(nranks, record.comm_seconds) or ""),
        true)
      last_epoch = epoch
      if opts.out and root then
        train.save_checkpoint(opts.out, ctx, {epoch = epoch + 1, step_in_epoch = 0})
      end
    end
  end)
  core.trap_sigint(false)
  if not ok then error(err, 0) end
  if interrupted and root then
    if opts.out then train.save_checkpoint(opts.out, ctx, interrupted) end
    print(("\ninterrupted at epoch %d, step %d: checkpoint written to %s; continue with --resume")
      :format(interrupted.epoch, interrupted.step_in_epoch, tostring(ckpt)))
  end
  -- MPI: no rank leaves (and perhaps exits, ending the job) before rank 0 has written it
  if interrupted and nranks > 1 then comm.barrier() end
  ctx.model:eval()
  return {model = ctx.model, history = ctx.history, steps = ctx.steps, context = ctx,
    seconds = ctx.seconds_before + ctx.clock(), interrupted = interrupted and true or false,
    epochs_done = last_epoch}
end

-- ------------------------------------------------------------------ evaluation

--- Predictions (int64 N) and softmax confidences of the predicted class for a whole set,
-- in evaluation mode and without recording a graph.
function train.predict(model, set, opts)
  opts = opts or {}
  -- The trainer's default batch: evaluation then reuses the blocks a training step left in the
  -- allocator's cache instead of adding blocks of new sizes (this keeps Task 1's resident peak down).
  local batch = opts.batch or defaults.fit.batch
  local n = set.n or set.labels:numel()
  local preds, confs = {}, {}
  nn.frozen(model, function()
    for start = 0, n - 1, batch do
      local count = math.min(batch, n - start)
      local x = set.images:narrow(0, start, count):float() / 255
      local logits = model(x)
      local p = logits:softmax(1)
      local conf, pred = p:max(1)
      preds[#preds + 1] = pred
      confs[#confs + 1] = conf
    end
  end)
  return core.cat(preds, 0), core.cat(confs, 0)
end

--- Accuracy in percent of a model on a set. With opts.comm of several ranks (the trainer's
-- validation under MPI), each rank predicts its share of the set and the counts are summed.
function train.accuracy(model, set, opts)
  local comm = opts and opts.comm
  if comm and comm.size() > 1 then -- MPI
    local n = set.n or set.labels:numel()
    local start, count = comm:share(n)
    local right = 0
    if count > 0 then
      local part = {n = count, images = set.images:narrow(0, start, count),
        labels = set.labels:narrow(0, start, count)}
      right = train.predict(model, part, opts):eq(part.labels):sum():item()
    end
    return 100 * comm:allreduce_numbers({right})[1] / n
  end
  local preds = train.predict(model, set, opts)
  return 100 * preds:eq(set.labels):sum():item() / set.labels:numel()
end

return train
