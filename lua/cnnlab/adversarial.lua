--- cnnlab.adversarial — what the study measures with an attack (Task 5), for any attack of
-- lua/cnnlab/attacks/ (an attack table from cnnlab.attacks.load):
--
--   adversarial.positions_of(set, digit[, limit]) → int64 positions of the set's samples of
--       that label (the first `limit`), count
--   adversarial.attack_digits(atk, model, set, digit, aopts[, limit]) → run: every `digit` of
--       the set (the first `limit`) attacked with the attack options aopts; run = {x, y, colors, index, n, r (the attack's
--       result), clean_pred, clean_conf, seconds, check (attack.verify)}; raises when an
--       element left the ε-ball or [0,1]
--   adversarial.summary(run, source, target) → flat metrics of a run (success, steps,
--       confidences, norms, checks), for keys prefixed by the caller
--   adversarial.settings_of(r) → the settings worth recording (no generator, no batch)
--   adversarial.save(path, run, source, target, meta[, extra]) → safetensors of a run (extra:
--       more tensors by name, e.g. the per-sample minimal ε)
--   adversarial.matrix(atk, model, set, per_digit, make_opts[, progress]) → values (10×10,
--       NaN on the diagonal), counts per source: success (%) of every source → target pair,
--       each source's digits attacked towards the nine other targets in one batch;
--       make_opts(targets) → attack options
--   adversarial.curve(atk, model, x, eps_list, make_opts) → success rate (%) at each ε;
--       make_opts(eps) → attack options
--   adversarial.grid(blocks, ncol, target) → images, captions, row names for the picture: per
--       block {label, k, x, r, eps, originals, clean_pred, clean_conf, colors} the rows
--       original (optional), adversarial and perturbation (0.5 + δ·0.5/ε per channel)
--   adversarial.minimal_eps(model, x, opts) → per-sample smallest ε reaching the target with
--       p ≥ confidence: bisection over ε with APGD (per-sample budgets) in [lo, hi] to tol
--   adversarial.quantise(x) → x rounded to 8 bits (k/255)
--   adversarial.confirm(model, x, adv, eps, target, confidence[, norm]) → a separate forward
--       pass on the saved images: per sample confirmed (float32) and confirmed_bytes (after
--       rounding to 8 bits), within (|δ| ≤ ε and [0,1]), within_bytes
--   adversarial.distribution(values) → {n, n_finite, median, q1, q3, share_le_005, share_le_01}
--   adversarial.ecdf(values) → x, y of the empirical CDF's steps (for svg.lines)
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

function adversarial.attack_digits(atk, model, set, digit, aopts, limit)
  local pos, n = adversarial.positions_of(set, digit, limit)
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

function adversarial.save(path, run, source, target, meta, extra)
  local r, n = run.r, run.n
  local strings = {}
  for k, v in pairs(meta) do strings[k] = tostring(v) end
  local tensors = {
    originals = run.x, adversarial = r.adversarial,
    sources = core.full({n}, source, {dtype = "int64"}),
    targets = core.full({n}, target, {dtype = "int64"}),
    labels = run.y, colors = run.colors, index = run.index,
    success = r.success, steps = r.steps, confidence = r.confidence, predictions = r.pred,
    clean_predictions = run.clean_pred, clean_confidence = run.clean_conf, linf = r.linf,
    l2 = r.l2,
  }
  for k, v in pairs(extra or {}) do tensors[k] = v end
  core.save_safetensors(path, tensors, strings)
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

function adversarial.quantise(x)
  return core.no_grad(function() return (x * 255):byte():float() / 255 end)
end

-- Per-sample L∞ (or L2) norm of adv − x as a Lua list.
local function norms(x, adv, norm)
  local d = (adv - x):flatten(1)
  if norm == "l2" then return (d * d):sum(1):sqrt():totable() end
  return d:abs():max(1):totable()
end

function adversarial.confirm(model, x, adv, eps, target, confidence, norm)
  local n = x:size(0)
  local eps_l = core.is_tensor(eps) and eps:totable() or nil
  local tgt_l = core.is_tensor(target) and target:totable() or nil
  local was_training = type(model) == "table" and model.training
  if type(model) == "table" and model.eval then model:eval() end
  local out = {n = n, confirmed = {}, confirmed_bytes = {}, within = {}, within_bytes = {},
    p_target = {}, p_target_bytes = {}, linf = nil}
  core.no_grad(function()
    for name, images in pairs({float = adv, bytes = adversarial.quantise(adv)}) do
      local nrm = norms(x, images, norm)
      local lo, hi = images:flatten(1):min(1):totable(), images:flatten(1):max(1):totable()
      local probs = {}
      for base = 0, n - 1, 512 do
        local cnt = math.min(512, n - base)
        probs[#probs + 1] = model(images:narrow(0, base, cnt)):softmax(1)
      end
      local p = core.cat(probs, 0)
      local pmax, pred = p:max(1)
      local pt, pr = p:totable(), pred:totable()
      for i = 1, n do
        local t = tgt_l and tgt_l[i] or target
        local e = eps_l and eps_l[i] or eps
        local ok_pred = pr[i] == t and pt[i][t + 1] >= confidence
        local inside = nrm[i] <= e and lo[i] >= 0 and hi[i] <= 1
        if name == "float" then
          out.confirmed[i], out.within[i], out.p_target[i] = ok_pred, inside, pt[i][t + 1]
        else
          out.confirmed_bytes[i], out.within_bytes[i], out.p_target_bytes[i] = ok_pred, inside,
            pt[i][t + 1]
        end
      end
      if name == "float" then out.norm = nrm end
    end
  end)
  if type(model) == "table" and model.train and was_training ~= nil then model:train(was_training) end
  return out
end

--- Smallest ε per sample at which the attack reaches the target with p ≥ confidence, by
-- bisection: opts = {target, confidence, lo (0), hi (0.3), tol (1e-3), steps, restarts, loss,
-- norm, batch, generator}. Every sample is first attacked at hi; one that fails there gets
-- ε = math.huge ("> hi"). An original that already succeeds gets 0. Then, while hi − lo > tol,
-- every open sample is attacked at its own midpoint (APGD with per-sample budgets); success
-- lowers its hi (and keeps that adversarial image), failure raises its lo. The result is the
-- final hi: an ε at which a success was found, at most tol above the smallest the attack finds.
-- Returns {eps (float32 N), adversarial (at eps), confidence, pred, success (uint8: found within
-- the bracket), iterations, passes, settings}.
function adversarial.minimal_eps(model, x, opts)
  local apgd = attacks.load("apgd")
  local n = x:size(0)
  local lo_b, hi_b, tol = opts.lo or 0, opts.hi or 0.3, opts.tol or 1e-3
  local function run(rows, eps, steps)
    local idx = core.tensor(rows, {dtype = "int64"})
    local t = core.is_tensor(opts.target) and opts.target:index_select(0, idx) or opts.target
    return apgd.run(model, x:index_select(0, idx), {target = t, eps = core.tensor(eps),
      confidence = opts.confidence, steps = steps or opts.steps, restarts = opts.restarts,
      loss = opts.loss, norm = opts.norm, batch = opts.batch, generator = opts.generator},
      "adversarial.minimal_eps")
  end
  local adv = x:clone()
  local conf, pred, lo, hi, found = {}, {}, {}, {}, {}
  local passes = {forward = 0, backward = 0}
  local function take(rows, r, eps)
    passes.forward, passes.backward = passes.forward + r.passes.forward,
      passes.backward + r.passes.backward
    local succ, cf, pr = r.success:totable(), r.confidence:totable(), r.pred:totable()
    for j, i in ipairs(rows) do
      if succ[j] == 1 then
        hi[i + 1], found[i + 1] = eps[j], true
        conf[i + 1], pred[i + 1] = cf[j], pr[j]
        adv:narrow(0, i, 1):copy_(r.adversarial:narrow(0, j - 1, 1))
      else
        lo[i + 1] = eps[j]
        if not found[i + 1] then conf[i + 1], pred[i + 1] = cf[j], pr[j] end
      end
    end
    return succ
  end
  local all, top = {}, {}
  for i = 1, n do all[i], top[i], lo[i], hi[i], found[i] = i - 1, hi_b, lo_b, math.huge, false end
  take(all, run(all, top), top)
  -- the originals that already succeed (ε = 0)
  local zero = {}
  for i = 1, n do zero[i] = 0 end
  local r0 = run(all, zero, 1) -- ε = 0: the original, one check
  passes.forward = passes.forward + r0.passes.forward
  passes.backward = passes.backward + r0.passes.backward
  for i, v in ipairs(r0.success:totable()) do
    if v == 1 then hi[i], lo[i], found[i] = 0, 0, true; conf[i] = r0.confidence:get(i - 1); pred[i] = r0.pred:get(i - 1)
      adv:narrow(0, i - 1, 1):copy_(x:narrow(0, i - 1, 1)) end
  end
  local iterations = 0
  while true do
    local rows, mids = {}, {}
    for i = 1, n do
      if found[i] and hi[i] - lo[i] > tol then
        rows[#rows + 1] = i - 1
        mids[#mids + 1] = (lo[i] + hi[i]) / 2
      end
    end
    if #rows == 0 then break end
    iterations = iterations + 1
    take(rows, run(rows, mids), mids)
  end
  return {eps = core.tensor(hi), adversarial = adv, confidence = core.tensor(conf),
    pred = core.tensor(pred, {dtype = "int64"}),
    success = core.tensor((function() local t = {} for i = 1, n do t[i] = found[i] and 1 or 0 end return t end)(), {dtype = "uint8"}),
    iterations = iterations, passes = passes,
    settings = {method = "bisection", attack = "apgd", lo = lo_b, hi = hi_b, tol = tol,
      steps = opts.steps or apgd.steps, restarts = opts.restarts or 1, loss = opts.loss or "ce",
      norm = opts.norm or "linf", confidence = opts.confidence}}
end

function adversarial.distribution(values)
  local v = {}
  for _, e in ipairs(values) do v[#v + 1] = e end
  table.sort(v)
  local n = #v
  local function q(p) -- linear interpolation between order statistics
    if n == 0 then return nil end
    local h = (n - 1) * p + 1
    local lo = math.floor(h)
    local a, b = v[lo], v[math.min(n, lo + 1)]
    if b == math.huge or a == math.huge then return a == math.huge and math.huge or b end
    return a + (h - lo) * (b - a)
  end
  local le05, le1, finite = 0, 0, 0
  for _, e in ipairs(v) do
    if e <= 0.05 + 1e-12 then le05 = le05 + 1 end
    if e <= 0.1 + 1e-12 then le1 = le1 + 1 end
    if e < math.huge then finite = finite + 1 end
  end
  return {n = n, n_finite = finite, median = q(0.5), q1 = q(0.25), q3 = q(0.75),
    share_le_005 = n > 0 and 100 * le05 / n or nil, share_le_01 = n > 0 and 100 * le1 / n or nil}
end

function adversarial.ecdf(values, xmax)
  local v = {}
  for _, e in ipairs(values) do v[#v + 1] = e end
  table.sort(v)
  local n = #v
  local xs, ys = {0}, {0}
  for i, e in ipairs(v) do
    if e == math.huge then break end
    xs[#xs + 1], ys[#ys + 1] = e, 100 * (i - 1) / n
    xs[#xs + 1], ys[#ys + 1] = e, 100 * i / n
  end
  if xmax then xs[#xs + 1], ys[#ys + 1] = xmax, ys[#ys] end
  return xs, ys
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

--- adversarial.save_grid(path, blocks, ncol, target, left, lines): the grid of adversarial.grid
-- written as path.png (4× scale) and path.svg, the PNG with its row names, captions and the
-- heading lines {text, attributes} (left: width of the row-name column).
function adversarial.save_grid(path, blocks, ncol, target, left, lines)
  local lab = require "cnnlab"
  local images, captions, row_names = adversarial.grid(blocks, ncol, target)
  local scale, pad = 4, 30
  local grid = lab.image_grid(images, {ncol = ncol, pad = pad, scale = scale, pad_value = 1})
  lab.write_png(path .. ".png", grid)
  require("cnnlab.svg").save(path .. ".svg", require("cnnlab.figure").captioned_grid{
    png = path .. ".png", width = grid:size(2), height = grid:size(1), left = left, top = 74,
    cell = 28 * scale, pad = pad, rows = row_names, captions = captions, lines = lines})
end

return adversarial
