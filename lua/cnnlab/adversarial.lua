--- cnnlab.adversarial — what the study measures with an attack (Task 5), for any attack of
-- lua/cnnlab/attacks/ (an attack table from cnnlab.attacks.load):
--
--   adversarial.positions_of(set, digit[, limit]) → int64 positions of the set's samples of
--       that label (the first `limit`), count
--   adversarial.attack_digits(atk, model, set, digit, aopts) → run: every `digit` of the set
--       attacked with the attack options aopts; run = {x, y, colors, index, n, r (the attack's
--       result), clean_pred, clean_conf, seconds, check (attack.verify)}; raises when an
--       element left the ε-ball or [0,1]
--   adversarial.summary(run, source, target) → flat metrics of a run (success, steps,
--       confidences, norms, checks), for keys prefixed by the caller
--   adversarial.settings_of(r) → the settings worth recording (no generator, no batch)
--   adversarial.save(path, run, source, target, meta) → safetensors of a run
--   adversarial.matrix(atk, model, set, per_digit, make_opts[, progress]) → values (10×10,
--       NaN on the diagonal), counts per source: success (%) of every source → target pair,
--       each source's digits attacked towards the nine other targets in one batch;
--       make_opts(targets) → attack options
--   adversarial.curve(atk, model, x, eps_list, make_opts) → success rate (%) at each ε;
--       make_opts(eps) → attack options
--   adversarial.grid(blocks, ncol, target) → images, captions, row names for the picture: per
--       block {label, k, x, r, eps, originals, clean_pred, clean_conf, colors} the rows
--       original (optional), adversarial and perturbation (0.5 + δ·0.5/ε per channel)
local core = require "cnnlab.core"
local attack = require "cnnlab.attack"
local attacks = require "cnnlab.attacks"

local adversarial = {}

local PALETTE_NAMES -- cnnlab.data's colour names, loaded on first use
local function colour_name(c)
  PALETTE_NAMES = PALETTE_NAMES or require("cnnlab.data").PALETTE_NAMES
  return PALETTE_NAMES[c + 1]
end

local function mean(t) return #t > 0 and t:float():mean():item() or 0 end

function adversarial.positions_of(set, digit, limit)
  local pos = {}
  for i, y in ipairs(set.labels:totable()) do
    if y == digit then
      pos[#pos + 1] = i - 1
      if limit and limit > 0 and #pos >= limit then break end
    end
  end
  return core.tensor(pos, {dtype = "int64"}), #pos
end

function adversarial.attack_digits(atk, model, set, digit, aopts)
  local pos, n = adversarial.positions_of(set, digit)
  if n == 0 then error(("the %s set has no %d"):format(set.name or "given", digit), 0) end
  local b = require("cnnlab.train").batch_of(set, pos)
  local clean = core.no_grad(function() return model(b.x):softmax(1) end)
  local clean_conf, clean_pred = clean:max(1)
  local t1 = core.now()
  local r = attacks.run(atk, model, b.x, aopts)
  local seconds = core.now() - t1
  local check = attack.verify(b.x, r.adversarial, aopts.eps)
  if not check.ok then
    error(("%s: %d elements outside the ε-ball, %d outside [0,1] (max |δ| %.9g)"):format(
      set.name or "set", check.outside_ball, check.outside_box, check.max_linf), 0)
  end
  return {x = b.x, y = b.y, colors = b.colors, index = set.index:index_select(0, pos), n = n,
    r = r, clean_pred = clean_pred, clean_conf = clean_conf, seconds = seconds, check = check}
end

function adversarial.summary(run, source)
  local r, check, n = run.r, run.check, run.n
  local succ = r.success:float()
  local n_succ = r.n_success
  return {
    n = n, success_rate = r.success_rate, n_success = n_succ,
    already_target = r.steps:eq(0):float():mul(succ):sum():item(),
    clean_acc = 100 * run.clean_pred:eq(source):sum():item() / n,
    clean_mean_confidence = mean(run.clean_conf),
    mean_steps = r.mean_steps,
    mean_steps_success = n_succ > 0 and r.steps:float():mul(succ):sum():item() / n_succ or nil,
    mean_confidence = r.mean_confidence,
    mean_confidence_success = n_succ > 0 and r.confidence:mul(succ):sum():item() / n_succ or nil,
    mean_linf = mean(r.linf), max_linf = check.max_linf,
    mean_l2 = mean(r.l2), max_l2 = r.l2:max():item(),
    outside_ball = check.outside_ball, outside_unit_box = check.outside_box,
    seconds = run.seconds,
  }
end

function adversarial.settings_of(r)
  local s = r.settings
  return {attack = s.attack, targeted = s.targeted, sign = s.sign, eps = s.eps,
    step_size = s.step_size, steps = s.steps, random_start = s.random_start,
    confidence = s.confidence, early_stop = s.early_stop, loss = s.loss}
end

function adversarial.save(path, run, source, target, meta)
  local r, n = run.r, run.n
  local strings = {}
  for k, v in pairs(meta) do strings[k] = tostring(v) end
  core.save_safetensors(path, {
    originals = run.x, adversarial = r.adversarial,
    sources = core.full({n}, source, {dtype = "int64"}),
    targets = core.full({n}, target, {dtype = "int64"}),
    labels = run.y, colors = run.colors, index = run.index,
    success = r.success, steps = r.steps, confidence = r.confidence, predictions = r.pred,
    clean_predictions = run.clean_pred, clean_confidence = run.clean_conf, linf = r.linf,
    l2 = r.l2,
  }, strings)
end

function adversarial.matrix(atk, model, set, per_digit, make_opts, progress)
  local values, counts = {}, {}
  local batch_of = require("cnnlab.train").batch_of
  for s = 0, 9 do
    local pos, n = adversarial.positions_of(set, s, per_digit)
    local x = batch_of(set, pos).x
    local xs, ts, order = {}, {}, {}
    for t = 0, 9 do
      if t ~= s then
        xs[#xs + 1] = x
        for _ = 1, n do ts[#ts + 1] = t end
        order[#order + 1] = t
      end
    end
    local r = attacks.run(atk, model, core.cat(xs, 0),
      make_opts(core.tensor(ts, {dtype = "int64"})))
    local success = r.success:totable()
    values[s + 1] = {[s + 1] = 0 / 0}
    for j, t in ipairs(order) do
      local count = 0
      for i = (j - 1) * n + 1, j * n do count = count + success[i] end
      values[s + 1][t + 1] = 100 * count / n
    end
    counts[s + 1] = n
    if progress then progress(s, n) end
  end
  return values, counts
end

function adversarial.curve(atk, model, x, eps_list, make_opts)
  local ys = {}
  for i, e in ipairs(eps_list) do
    ys[i] = attacks.run(atk, model, x, make_opts(e)).success_rate
  end
  return ys
end

function adversarial.grid(blocks, ncol, target)
  local rows, captions, row_names = {}, {}, {}
  for _, blk in ipairs(blocks) do
    local k, r = blk.k, blk.r
    local adv = r.adversarial:narrow(0, 0, k)
    local scale = blk.eps > 0 and 0.5 / blk.eps or 1
    local delta = core.no_grad(function() return ((adv - blk.x) * scale + 0.5):clamp(0, 1) end)
    local pad = core.full({ncol - k, 3, 28, 28}, 1.0)
    local kinds = blk.originals and {"original", "adversarial", "perturbation"}
      or {"adversarial", "perturbation"}
    local images = {original = blk.x, adversarial = adv, perturbation = delta}
    for _, kind in ipairs(kinds) do
      local imgs = images[kind]
      rows[#rows + 1] = k < ncol and core.cat({imgs, pad}, 0) or imgs
      local caps = {}
      for i = 0, k - 1 do
        if kind == "original" then
          caps[#caps + 1] = ("says %d · %.0f%%"):format(blk.clean_pred:get(i),
            100 * blk.clean_conf:get(i))
          if blk.colors then
            caps[#caps] = caps[#caps] .. " (" .. colour_name(blk.colors:get(i)) .. ")"
          end
        elseif kind == "adversarial" then
          caps[#caps + 1] = ("says %d · p(%d) %.0f%%"):format(r.pred:get(i), target,
            100 * r.confidence:get(i))
        else
          caps[#caps + 1] = ("L∞ %.3f · %d st."):format(r.linf:get(i), r.steps:get(i))
        end
      end
      captions[#captions + 1] = caps
      row_names[#row_names + 1] = {blk.label, kind == "perturbation"
        and ("δ (×%g)"):format(scale) or kind}
    end
  end
  return core.cat(rows, 0), captions, row_names
end

return adversarial
