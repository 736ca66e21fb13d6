--- cnnlab.robustness — the measurement steps of Task 5 (scripts/task5_attack.lua), on
-- cnnlab.adversarial. Each is a function of the script's parsed options `opts` and the attack
-- table `atk` (cnnlab.attacks.load); each writes its metrics into the table m and its files
-- into opts.out:
--
--   robustness.attack_options(opts, atk, target, eps[, steps[, step]]) → the attack's options
--   robustness.attack_sets(opts, atk, model, sets, m) → runs {val, hard}: the source digits of
--       both sets attacked at opts.eps, saved as adversarial[_hard].safetensors
--   robustness.draw_grid(opts, atk, model, runs, m): grid.png, grid.svg
--   robustness.success_matrix(opts, atk, model, sets, m): every source → target pair, matrix.svg
--   robustness.success_curve(opts, atk, model, sets, curve_eps, m): success against ε, curve.svg
--   robustness.model_list(opts, model) → the models measured, {path, name, key, model} each
--   robustness.confirmed_counts(opts, model, x, success, adversarial, eps, target, what) →
--       the successes confirmed by a separate forward pass (an unconfirmed one is an error)
--   robustness.measure_models(opts, atk, sets, model, runs, compare_eps, m): per model clean
--       accuracy, success at ε, minimal ε, all pairs, APGD against PGD; min_eps_cdf.svg,
--       grid_median.png/svg, table.txt, adversarial_<model>.safetensors
local lab = require "cnnlab"
local util = require "cnnlab.util"
local study = require "cnnlab.study"
local svg = require "cnnlab.svg"
local adv = require "cnnlab.adversarial"
local outputs = require "cnnlab.robustness_outputs"

local robustness = {}

--- The share of digits turned (%) the seed study expected at ε = 0.05 (the ε curve's line).
robustness.SEED_THRESHOLD = 99
local SEED_THRESHOLD = robustness.SEED_THRESHOLD

--- robustness.attack_options(opts, atk, target, eps[, steps[, step]]) → options: the options of
-- the attack atk for a target (a class or an int64 tensor), a budget ε, steps and α (0 or nil:
-- the attack's own), with the confidence, batch, loss, restarts and random start of opts.
function robustness.attack_options(opts, atk, target, eps, steps, step)
  local o = {target = target, eps = eps, confidence = opts.confidence,
    steps = steps and steps > 0 and steps or nil, step_size = step and step > 0 and step or nil,
    batch = opts.batch, loss = opts.loss}
  if atk.name == "apgd" and opts.restarts > 1 then
    o.restarts, o.generator = opts.restarts, lab.Generator(opts.attack_seed)
  end
  if opts.random_start then o.random_start, o.generator = true, lab.Generator(opts.attack_seed) end
  return o
end

--- robustness.attack_sets(opts, atk, model, sets, m) → runs {val, hard}: the seed's attack on
-- every source digit of the validation and the hard set; metrics into m, each run saved as
-- adversarial.safetensors / adversarial_hard.safetensors in opts.out.
function robustness.attack_sets(opts, atk, model, sets, m)
  local runs = {}
  for _, name in ipairs({"val", "hard"}) do
    local file = name == "val" and "adversarial.safetensors" or "adversarial_hard.safetensors"
    local run = adv.attack_digits(atk, model, sets[name], opts.source,
      robustness.attack_options(opts, atk, opts.target, opts.eps, opts.steps, opts.step_size), opts.n)
    local r = run.r
    util.progress("%s: %d %ds → %d: %.2f%% reach p(%d) ≥ %g within ε = %g (mean %.2f steps, "
      .. "%.1f s, %.0f digits/s); max |δ| = %.6f", name, run.n, opts.source, opts.target,
      r.success_rate, opts.target, opts.confidence, opts.eps, r.mean_steps, run.seconds,
      run.n / run.seconds, run.check.max_linf)
    for k, v in pairs(adv.summary(run, opts.source)) do m[name .. "_" .. k] = v end
    local settings = adv.settings_of(r)
    for k, v in pairs(settings) do m[k] = v end
    settings.model, settings.set, settings.seed, settings.rho, settings.beta = opts.model, name,
      opts.seed, opts.rho, opts.beta
    adv.save(opts.out .. "/" .. file, run, opts.source, opts.target, settings)
    runs[name] = run
  end
  return runs
end

--- robustness.draw_grid(opts, atk, model, runs, m): grid.png and its captioned page grid.svg in
-- opts.out (the runs of robustness.attack_sets, and the validation digits at opts.grid_eps).
function robustness.draw_grid(opts, atk, model, runs, m)
  local ncol = opts.examples
  local blocks = {}
  for _, name in ipairs({"val", "hard"}) do
    local run = runs[name]
    local k = math.min(ncol, run.n)
    blocks[#blocks + 1] = {label = name == "val" and "validation" or "hard", k = k,
      x = run.x:narrow(0, 0, k), r = run.r, eps = opts.eps, originals = true,
      clean_pred = run.clean_pred, clean_conf = run.clean_conf,
      colors = name == "hard" and run.colors or nil}
  end
  if opts.grid_eps > 0 and opts.grid_eps ~= opts.eps then -- what a larger budget takes
    local r = lab.attacks.run(atk, model, blocks[1].x, robustness.attack_options(opts, atk, opts.target, opts.grid_eps,
      opts.steps, opts.step_size))
    blocks[#blocks + 1] = {label = ("validation, ε = %g"):format(opts.grid_eps), k = blocks[1].k,
      x = blocks[1].x, r = r, eps = opts.grid_eps, originals = false}
    m.grid_eps, m.grid_eps_success_rate = opts.grid_eps, r.success_rate
  end
  adv.save_grid(opts.out .. "/grid", blocks, ncol, opts.target, 150, {
      {("%s: %d → %d, ε = %g (L∞), success = p(%d) ≥ %g — validation %.1f%%, hard %.1f%%")
        :format(runs.val.r.settings.attack:upper(), opts.source, opts.target, opts.eps,
          opts.target, opts.confidence, runs.val.r.success_rate, runs.hard.r.success_rate),
        'font-size="15" font-weight="bold"'},
      {("%s; model %s"):format(lab.attack.describe(runs.val.r.settings), opts.model), 'fill="#444"'},
      {("first %d %ds of each set; captions: the model's answer and p(%d); perturbation shown "
        .. "as 0.5 + δ·0.5/ε per channel (grey: unchanged, full colour: ±ε)"):format(ncol,
        opts.source, opts.target), 'fill="#444"'}})
end

--- robustness.success_matrix(opts, atk, model, sets, m): success over every source → target pair
-- at ε into m (matrix_S_T, matrix_mean...) and matrix.svg in opts.out.
function robustness.success_matrix(opts, atk, model, sets, m)
  local t1 = lab.now()
  local values, counts = adv.matrix(atk, model, sets.val, opts.matrix_per_digit, function(targets)
    return robustness.attack_options(opts, atk, targets, opts.eps, opts.matrix_steps, opts.step_size)
  end, function(s, n)
    util.progress("matrix: source %d (%d digits × 9 targets) done, %.0f s", s, n, lab.now() - t1)
  end)
  local total, labels = 0, {}
  for s = 0, 9 do
    labels[s + 1] = tostring(s)
    m["matrix_n_" .. s] = counts[s + 1]
    for t = 0, 9 do
      if t ~= s then
        m[("matrix_%d_%d"):format(s, t)] = values[s + 1][t + 1]
        total = total + values[s + 1][t + 1]
      end
    end
  end
  m.matrix_mean = total / 90
  m.matrix_per_digit, m.matrix_steps = opts.matrix_per_digit, opts.matrix_steps
  m.matrix_seconds = lab.now() - t1
  svg.save(opts.out .. "/matrix.svg", svg.heatmap{values = values, row_labels = labels,
    col_labels = labels, vmin = 0, vmax = 100, fmt = "%.0f", cell = 40,
    title = ("Targeted %s success (%%), ε = %g, p(target) ≥ %g"):format(atk.name:upper(),
      opts.eps, opts.confidence),
    xlabel = ("target digit — first %d validation digits per source, %d %s steps")
      :format(opts.matrix_per_digit, opts.matrix_steps, atk.name:upper()),
    ylabel = "source digit"})
end

-- The models of the ε curve: the baseline, and a debiased one when given or found.
local function curve_models(opts, model, m)
  local list = {{name = "baseline", path = opts.model, model = model}}
  local path, name = opts.compare_model, opts.compare_name
  if path == "" and opts.compare_dir ~= "" then
    local best, why = study.best_model(opts.compare_dir, {exclude = {"erm"}})
    if best then
      path = best.path
      if name == "" then name = ("%s (hard %.0f%%)"):format(best.method, best.value) end
      m.compare_method, m.compare_method_hard_acc = best.method, best.value
      util.progress("comparing with %s (hard accuracy %.2f%% in %s)", best.method,
        best.value, opts.compare_dir)
    else
      util.progress("--compare-dir %s: %s; the ε curve shows the baseline only",
        opts.compare_dir, why)
    end
  end
  if path ~= "" then
    list[2] = {name = name ~= "" and name or path:match("([^/]+)/[^/]+$") or path, path = path,
      model = study.load_model(path)}
  elseif opts.compare_dir == "" then
    util.progress("no --compare-model given: the ε curve shows the baseline only")
  end
  return list
end

--- robustness.success_curve(opts, atk, model, sets, curve_eps, m): success against each ε of
-- curve_eps for the baseline and a debiased model (--compare-model, --compare-dir) into m
-- (curve_*) and curve.svg in opts.out.
function robustness.success_curve(opts, atk, model, sets, curve_eps, m)
  local t1 = lab.now()
  local pos, n = adv.positions_of(sets.val, opts.source, opts.curve_n)
  local x = lab.train.batch_of(sets.val, pos).x
  local models, series, top = curve_models(opts, model, m), {}, 0
  for mi, entry in ipairs(models) do
    local ys = adv.curve(atk, entry.model, x, curve_eps, function(e)
      return robustness.attack_options(opts, atk, opts.target, e, opts.matrix_steps, opts.step_size)
    end)
    local shown = {}
    for i, y in ipairs(ys) do
      m[("curve_%s_%d"):format(mi == 1 and "baseline" or "compare", i - 1)] = y
      shown[i] = ("%g:%.1f%%"):format(curve_eps[i], y)
    end
    series[#series + 1] = {name = entry.name, x = curve_eps, y = ys}
    util.progress("curve: %s done (%s), %.0f s", entry.name, table.concat(shown, " "), lab.now() - t1)
  end
  for i, e in ipairs(curve_eps) do m["curve_eps_" .. (i - 1)], top = e, math.max(top, e) end
  m.curve_n, m.curve_steps = n, opts.matrix_steps
  m.compare_model = models[2] and models[2].path or nil
  m.curve_seconds = lab.now() - t1
  series[#series + 1] = {name = ("budget ε = %g"):format(opts.eps), x = {opts.eps, opts.eps},
    y = {0, 100}, dashed = true, color = "#888888"}
  series[#series + 1] = {name = ("%d%%: the seed's expectation"):format(SEED_THRESHOLD),
    x = {0, top}, y = {SEED_THRESHOLD, SEED_THRESHOLD}, dashed = true, color = "#d62728"}
  svg.save(opts.out .. "/curve.svg", svg.lines{series = series, markers = true, ymin = 0,
    ymax = 100, xmin = 0,
    title = ("%d → %d: success (p(%d) ≥ %g) against ε%s"):format(opts.source, opts.target,
      opts.target, opts.confidence, #models == 1 and " — baseline only" or ""),
    xlabel = ("ε (L∞ budget) — first %d validation %ds, %d %s steps"):format(n,
      opts.source, opts.matrix_steps, atk.name:upper()),
    ylabel = "success rate (%)"})
end


-- ------------------------------------------------------------------ every model, measured

--- robustness.model_list(opts, model) → list: the models measured, {path, name, key, model} each:
-- opts.models (a comma list), or opts.model (named baseline, its net `model`) and Task 4's
-- grey_invariant and colour_augment when present (in opts.compare_dir, else in the folder
-- beside opts.model's: runs/task4), and opts.compare_model; the others loaded from their path.
function robustness.model_list(opts, model)
  local list, seen = {}, {}
  local function add(path, name, net)
    if seen[path] then return end
    seen[path] = true
    local folder = path:match("([^/]+)/[^/]+$")
    name = name or ((folder or ""):match("^task1") and "baseline") or folder or path
    for _, e in ipairs(list) do if e.name == name then name = name .. "_" .. (#list + 1) end end
    list[#list + 1] = {path = path, name = name, key = name:gsub("[^%w]", "_"), model = net}
  end
  if opts.models ~= "" then
    for path in opts.models:gmatch("[^,]+") do add(path, nil, path == opts.model and model or nil) end
    -- (opts.model is the first of --models here; a task1 folder is named "baseline")
  else
    add(opts.model, "baseline", model)
    local dir = opts.compare_dir ~= "" and opts.compare_dir
      or ((opts.model:match("^(.*)/[^/]+/[^/]+$") or ".") .. "/task4")
    for _, method in ipairs({"grey_invariant", "colour_augment"}) do
      local path = dir .. "/" .. method .. "/model.safetensors"
      if util.exists(path) then add(path, method) end
    end
    if opts.compare_model ~= "" then add(opts.compare_model, opts.compare_name ~= "" and opts.compare_name or nil) end
  end
  for _, e in ipairs(list) do e.model = e.model or study.load_model(e.path) end
  return list
end

local function count(list, f) local c = 0 for i = 1, #list do if f(i) then c = c + 1 end end return c end
local function pct(a, n) return n > 0 and 100 * a / n or 0 end
local fmt_eps = outputs.fmt_eps

--- robustness.confirmed_counts(opts, model, x, r_success, adversarial, eps, target, what) → counts:
-- {confirmed, bytes, bytes_within, detail}, a run's successes confirmed by a separate forward
-- pass (p ≥ opts.confidence); a success the pass does not see is an error (naming `what`).
-- Counts: confirmed, bytes (still the target after rounding to 8 bits), bytes_within (… and
-- still within ε after rounding); detail: adversarial.confirm's per-sample lists.
function robustness.confirmed_counts(opts, model, x, r_success, adversarial, eps, target, what)
  local c = adv.confirm(model, x, adversarial, eps, target, opts.confidence)
  local succ = r_success:totable()
  for i = 1, #succ do
    if succ[i] == 1 and not (c.confirmed[i] and c.within[i]) then
      error(("%s: sample %d counted as a success but the separate forward pass says p(target) = "
        .. "%.4f, |δ| = %.6g"):format(what, i, c.p_target[i], c.norm[i]), 0)
    end
  end
  return {confirmed = count(succ, function(i) return succ[i] == 1 and c.confirmed[i] end),
    bytes = count(succ, function(i) return succ[i] == 1 and c.confirmed_bytes[i] end),
    bytes_within = count(succ, function(i) return succ[i] == 1 and c.confirmed_bytes[i] and c.within_bytes[i] end),
    detail = c}
end

local function min_opts(opts, target)
  return {target = target, confidence = opts.confidence, lo = 0, hi = opts.min_hi,
    tol = opts.min_tol, steps = opts.min_steps, loss = opts.loss == "dlr" and "dlr" or "ce",
    batch = opts.batch}
end

-- One model: clean accuracy, the 7s at ε (all), minimal ε (first --min-n 7s), all pairs,
-- APGD against PGD; everything into m under the model's key, rows for the tables.
local function measure(opts, entry, index, atk, sets, runs, compare_eps, m, t1)
  local model, key, name = entry.model, entry.key, entry.name
  local out = {name = name, key = key}
  m["model_" .. index .. "_name"], m["model_" .. index .. "_path"] = name, entry.path
  out.clean_acc = lab.metrics.evaluate(model, sets.val).acc
  m[key .. "_clean_acc"] = out.clean_acc
  -- the source digits at ε (the seed's claim)
  local run = index == 1 and runs.val or adv.attack_digits(atk, model, sets.val, opts.source,
    robustness.attack_options(opts, atk, opts.target, opts.eps, opts.steps, opts.step_size), opts.n)
  local cc = robustness.confirmed_counts(opts, model, run.x, run.r.success, run.r.adversarial, opts.eps,
    opts.target, name .. " at ε")
  out.n, out.success = run.n, pct(cc.confirmed, run.n)
  out.success_bytes, out.success_bytes_within = pct(cc.bytes, run.n), pct(cc.bytes_within, run.n)
  m[key .. "_n"], m[key .. "_success"], m[key .. "_success_bytes"],
    m[key .. "_success_bytes_within_eps"] = run.n, out.success, out.success_bytes,
    out.success_bytes_within
  util.progress("%s: clean accuracy %.2f%%; %d→%d at ε = %g: %.2f%% of %d validation %ds "
    .. "(confirmed by a separate pass; %.2f%% after rounding to 8 bits), %.0f s", name,
    out.clean_acc, opts.source, opts.target, opts.eps, out.success, run.n, opts.source,
    out.success_bytes, lab.now() - t1)
  -- the minimal ε of the first --min-n source digits
  local nmin = opts.min_n > 0 and math.min(opts.min_n, run.n) or run.n
  local xm = run.x:narrow(0, 0, nmin)
  local me = adv.minimal_eps(model, xm, min_opts(opts, opts.target))
  local mc = robustness.confirmed_counts(opts, model, xm, me.success, me.adversarial, me.eps, opts.target,
    name .. " minimal ε")
  local eps_list = me.eps:totable()
  out.min, out.min_eps, out.n_min = adv.distribution(eps_list), eps_list, nmin
  out.min_bytes = pct(mc.bytes, nmin)
  for k, v in pairs(out.min) do m[key .. "_min_eps_" .. k] = v == math.huge and -1 or v end
  m[key .. "_min_eps_success_bytes"] = out.min_bytes
  m[key .. "_min_eps_passes_forward"], m[key .. "_min_eps_passes_backward"] = me.passes.forward,
    me.passes.backward
  util.progress("%s: minimal ε of %d %ds (bisection, APGD %d iterations, tol %g): median %s, "
    .. "quartiles %s–%s, ≤ 0.05: %.1f%%, ≤ 0.1: %.1f%%, %.0f s", name, nmin, opts.source,
    opts.min_steps, opts.min_tol, fmt_eps(opts, out.min.median), fmt_eps(opts, out.min.q1),
    fmt_eps(opts, out.min.q3), out.min.share_le_005, out.min.share_le_01, lab.now() - t1)
  -- the saved run, with the minimal ε per sample (NaN beyond the first --min-n)
  local full = {}
  for i = 1, run.n do full[i] = eps_list[i] or 0 / 0 end
  local conf_list = {}
  for i = 1, run.n do conf_list[i] = cc.detail.confirmed[i] and 1 or 0 end
  local bytes_list = {}
  for i = 1, run.n do bytes_list[i] = cc.detail.confirmed_bytes[i] and 1 or 0 end
  local settings = adv.settings_of(run.r)
  settings.model, settings.set, settings.seed, settings.rho, settings.beta = entry.path, "val",
    opts.seed, opts.rho, opts.beta
  settings.restarts, settings.norm = run.r.settings.restarts, run.r.settings.norm
  settings.min_eps_method = ("bisection over ε in [0, %g] to %g with APGD (%d iterations, %s loss) "
    .. "at per-sample budgets; first %d samples, NaN beyond"):format(opts.min_hi, opts.min_tol,
    opts.min_steps, min_opts(opts).loss, nmin)
  adv.save(opts.out .. "/" .. (index == 1 and "adversarial.safetensors"
    or ("adversarial_%s.safetensors"):format(key)), run, opts.source, opts.target, settings, {
    min_eps = lab.tensor(full), confirmed = lab.tensor(conf_list, {dtype = "uint8"}),
    confirmed_bytes = lab.tensor(bytes_list, {dtype = "uint8"}),
    min_eps_adversarial = me.adversarial})
  -- every (source, target) pair: --pair-n digits each
  if opts.pair_n > 0 then
    local xs, ts = {}, {}
    for src = 0, 9 do
      local pos = adv.positions_of(sets.val, src, opts.pair_n)
      local x = lab.train.batch_of(sets.val, pos).x
      for t = 0, 9 do
        if t ~= src then
          xs[#xs + 1] = x
          for _ = 1, x:size(0) do ts[#ts + 1] = t end
        end
      end
    end
    local x, targets = lab.cat(xs, 0), lab.tensor(ts, {dtype = "int64"})
    local pe = adv.minimal_eps(model, x, min_opts(opts, targets))
    robustness.confirmed_counts(opts, model, x, pe.success, pe.adversarial, pe.eps, targets, name .. " pairs")
    out.pairs = adv.distribution(pe.eps:totable())
    for k, v in pairs(out.pairs) do m[key .. "_pairs_min_eps_" .. k] = v == math.huge and -1 or v end
    out.pairs_eps = pe.eps:totable()
    util.progress("%s: all 90 pairs, %d digits each: median minimal ε %s, ≤ 0.05: %.1f%%, "
      .. "≤ 0.1: %.1f%%, %.0f s", name, opts.pair_n, fmt_eps(opts, out.pairs.median),
      out.pairs.share_le_005, out.pairs.share_le_01, lab.now() - t1)
  end
  -- APGD against PGD with the same passes (APGD N iterations: N + 1 forward, N backward)
  if opts.compare_pgd then
    local nc = math.min(opts.compare_n, run.n)
    local xc = run.x:narrow(0, 0, nc)
    out.compare, out.n_compare = {}, nc
    local apgd = lab.attacks.load("apgd")
    for i, e in ipairs(compare_eps) do
      local row = {eps = e}
      local a = apgd.run(model, xc, {target = opts.target, eps = e, confidence = opts.confidence,
        steps = 100, batch = opts.batch})
      local p100 = lab.attack.pgd(model, xc, {target = opts.target, eps = e,
        confidence = opts.confidence, steps = 100, batch = opts.batch})
      local p20 = lab.attack.pgd(model, xc, {target = opts.target, eps = e,
        confidence = opts.confidence, steps = 20, batch = opts.batch})
      for tag, r in pairs({apgd = a, pgd100 = p100, pgd20 = p20}) do
        local c = robustness.confirmed_counts(opts, model, xc, r.success, r.adversarial, e, opts.target,
          name .. " " .. tag)
        row[tag] = pct(c.confirmed, nc)
        row[tag .. "_passes"] = r.passes.forward + r.passes.backward
        m[("%s_compare_%s_%d"):format(key, tag, i - 1)] = row[tag]
        m[("%s_compare_%s_passes_%d"):format(key, tag, i - 1)] = row[tag .. "_passes"]
      end
      m[("%s_compare_eps_%d"):format(key, i - 1)] = e
      out.compare[i] = row
      util.progress("%s: ε = %g, first %d %ds: APGD-100 %.1f%%, PGD-100 (ε/4) %.1f%%, PGD-20 "
        .. "(ε/4) %.1f%%, %.0f s", name, e, nc, opts.source, row.apgd, row.pgd100, row.pgd20,
        lab.now() - t1)
    end
    m[key .. "_compare_n"] = nc
  end
  out.run = run
  return out
end

--- robustness.measure_models(opts, atk, sets, model, runs, compare_eps, m): every model of
-- robustness.model_list measured — clean accuracy, the source digits at ε (runs.val for the
-- first), minimal ε by bisection, all pairs, APGD against PGD at compare_eps — into m under
-- each model's key; min_eps_cdf.svg, grid_median.png/svg, table.txt and
-- adversarial[_<model>].safetensors in opts.out.
function robustness.measure_models(opts, atk, sets, model, runs, compare_eps, m)
  local t1 = lab.now()
  local list = robustness.model_list(opts, model)
  local results = {}
  for i, entry in ipairs(list) do
    results[i] = measure(opts, entry, i, atk, sets, runs, compare_eps, m, t1)
    results[i].model = entry.model
  end
  m.n_models = #list
  m.min_n, m.min_hi, m.min_tol, m.min_steps, m.pair_n = opts.min_n, opts.min_hi, opts.min_tol,
    opts.min_steps, opts.pair_n
  outputs.draw_cdf(opts, results)
  outputs.draw_median_grid(opts, results)
  outputs.write_tables(opts, atk, results)
  m.measure_seconds = lab.now() - t1
end

return robustness
