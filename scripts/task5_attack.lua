-- Task 5: targeted adversarial attacks — a 7 read as a 3 with 90% confidence, L∞ ≤ 0.05.
--
-- The baseline reads colour, not shape. How little must a 7 change before the network calls
-- it a 3, and is sure of it? Iterative PGD (lua/cnnlab/attack.lua) moves every pixel of a
-- validation 7 by at most ε = 0.05 (under 13 grey levels of 255) against the gradient of the
-- cross-entropy of class 3, clipping into the ε-ball and [0,1] after every step, and stops each
-- digit as soon as the model gives 3 at least 90% softmax probability. The same attack runs on
-- every 7 of the hard set (digits painted in random colours). Beyond the seed: the success
-- matrix over every (source, target) pair at ε, and success rate against ε for the baseline
-- and, when given, a debiased model. What it finds on the baseline (a colour reader is hard to
-- fool with a budget far smaller than the distance between palette colours) is in
-- docs/attacks.md.
--
--   ./cnnlab scripts/task5_attack.lua [--model runs/task1/model.safetensors]
--       [--source 7 --target 3 --eps 0.05 --confidence 0.9 --steps 20 --step-size 0 --loss ce]
--       [--random-start --attack-seed 1] [--compare-model runs/task4/<method>/model.safetensors
--        | --compare-dir runs/task4 (its best debiased method)]
--       [--matrix-per-digit 100 --curve-n 300 --curve-eps 0,0.01,...] [--grid-eps 0.1]
--       [--no-matrix --no-curve --quick] [--out runs/task5]
-- Writes into --out: metrics.json; grid.png (rows: originals / adversarial / perturbation as
-- 0.5 + δ·0.5/ε, for the first validation and hard-set 7s, and the validation ones again at
-- --grid-eps); grid.svg (grid.png embedded, captioned with the model's answers and
-- confidences); adversarial.safetensors (validation 7s) and adversarial_hard.safetensors
-- (hard-set 7s): originals, adversarial (float32 N×3×28×28), sources, targets and per-digit
-- results; matrix.svg (success over every source → target pair at ε, first 100 validation
-- digits per source); curve.svg (success against ε, first 300 validation 7s).
local lab = require "cnnlab"
local util = lab.util
local study = lab.study
local attack = lab.attack
local svg = lab.svg

local DEFAULT_CURVE_EPS = "0,0.01,0.02,0.03,0.04,0.05,0.06,0.07,0.08,0.09,0.1,0.12"
local QUICK_CURVE_EPS = "0,0.03,0.05,0.07,0.09,0.12"

local spec = {
  name = "task5_attack", script = "scripts/task5_attack.lua",
  description = "Task 5: targeted PGD attacks on the baseline (a 7 read as a 3), success matrix and ε curve.",
  options = study.options({
    {"model", "runs/task1/model.safetensors", "the attacked model (seed CNN weights)"},
    {"compare_model", "", "a debiased model for the ε curve, e.g. runs/task4/<method>/model.safetensors"},
    {"compare_name", "", "its name in the legend (default: the folder name)"},
    {"compare_dir", "", "a Task 4 output folder: compare with its best debiased method (highest hard accuracy, erm excluded)"},
    {"source", 7, "digit attacked"},
    {"target", 3, "digit the model must answer"},
    {"eps", 0.05, "L∞ budget ε (pixels in [0,1])"},
    {"confidence", 0.9, "softmax probability of the target that counts as success"},
    {"steps", 20, "PGD steps at most (each digit stops as soon as it succeeds)"},
    {"step_size", 0.0, "PGD step α (0: ε/4)"},
    {"loss", "ce", "ce (cross-entropy of the target) or margin (max other logit − target logit)"},
    {"random_start", false, "start from a uniform random point of the ε-ball"},
    {"attack_seed", 1, "seed of the random start's generator"},
    {"batch", 512, "digits per forward/backward pass"},
    {"examples", 8, "columns of the picture grid"},
    {"grid_eps", 0.1, "also picture the validation examples attacked with this ε (0: no)"},
    {"matrix", true, "compute the (source, target) success matrix"},
    {"matrix_per_digit", 100, "validation digits per source in the matrix (--quick: 10)"},
    {"matrix_steps", 20, "PGD steps for the matrix and the curve"},
    {"curve", true, "compute success against ε"},
    {"curve_n", 300, "validation sources for the ε curve (0: all; --quick: 30)"},
    {"curve_eps", DEFAULT_CURVE_EPS, "ε values of the curve (--quick: " .. QUICK_CURVE_EPS .. ")"},
    {"out", "runs/task5", "output folder"},
  }),
}
local opts = util.parse_args(arg, spec)
local t0 = lab.now()

-- Positions (int64) of the samples of `set` whose label is `digit`, at most `limit`.
local function positions_of(set, digit, limit)
  local pos = {}
  for i, y in ipairs(set.labels:totable()) do
    if y == digit then
      pos[#pos + 1] = i - 1
      if limit and limit > 0 and #pos >= limit then break end
    end
  end
  return lab.tensor(pos, {dtype = "int64"}), #pos
end

local function mean(t) return #t > 0 and t:float():mean():item() or 0 end

local function settings_of(r)
  local s = r.settings
  return {attack = s.attack, targeted = s.targeted, sign = s.sign, eps = s.eps,
    step_size = s.step_size, steps = s.steps, random_start = s.random_start,
    confidence = s.confidence, early_stop = s.early_stop, loss = s.loss}
end

-- The best debiased model of a Task 4 output folder: the method (erm excluded) with the highest
-- mean hard accuracy in its metrics.json whose <method>/model.safetensors exists.
local function best_debiased(dir)
  local mpath = dir .. "/metrics.json"
  if not util.exists(mpath) then return nil, "there is no " .. mpath end
  local mm = util.json_decode(util.read_file(mpath))
  local best, best_acc
  for k, v in pairs(mm) do
    local label = k:match("^(.-)_hard_acc_mean$")
    if label and label ~= "erm" and type(v) == "number"
      and util.exists(dir .. "/" .. label .. "/model.safetensors")
      and (not best_acc or v > best_acc or (v == best_acc and label < best)) then
      best, best_acc = label, v
    end
  end
  if not best then return nil, "no debiased model with a hard accuracy in " .. mpath end
  return {path = dir .. "/" .. best .. "/model.safetensors", method = best, hard_acc = best_acc}
end

local ok, err = pcall(function()
  for _, k in ipairs({"source", "target"}) do
    if opts[k] < 0 or opts[k] > 9 then
      error(("--%s must be a digit 0–9, got %d"):format(k, opts[k]), 0)
    end
  end
  if opts.source == opts.target then
    error(("--source and --target must differ, both are %d"):format(opts.source), 0)
  end
  if opts.eps < 0 then error(("--eps must be ≥ 0, got %g"):format(opts.eps), 0) end
  if opts.examples < 1 then error(("--examples must be ≥ 1, got %d"):format(opts.examples), 0) end
  local step_size = opts.step_size > 0 and opts.step_size or opts.eps / 4
  if opts.quick then
    -- a first look: smaller matrix and curve too
    opts.matrix_per_digit = math.min(opts.matrix_per_digit, 10)
    opts.curve_n = opts.curve_n > 0 and math.min(opts.curve_n, 30) or 30
    if opts.curve_eps == DEFAULT_CURVE_EPS then opts.curve_eps = QUICK_CURVE_EPS end
  end
  local curve_eps = {}
  for v in opts.curve_eps:gmatch("[^,%s]+") do
    local e = tonumber(v)
    if not e or e < 0 then error(("--curve-eps: '%s' is not a number ≥ 0"):format(v), 0) end
    curve_eps[#curve_eps + 1] = e
  end

  util.progress("building Colored MNIST (seed %d, rho %g, beta %g%s)", opts.seed, opts.rho,
    opts.beta, opts.quick and ", quick subset" or "")
  local sets = study.load_data(opts)
  local model = study.load_model(opts.model)
  util.progress("model %s; %d threads", opts.model, lab.get_threads())
  util.mkdir_p(opts.out)

  local function pgd_opts(target, eps, steps, step)
    local o = {target = target, eps = eps, confidence = opts.confidence, steps = steps,
      step_size = step, batch = opts.batch, loss = opts.loss}
    if opts.random_start then
      o.random_start, o.generator = true, lab.Generator(opts.attack_seed)
    end
    return o
  end

  -- ------------------------------------------------------------ the seed's attack
  local m = {model = opts.model, source = opts.source, target = opts.target, seed = opts.seed,
    rho = opts.rho, beta = opts.beta, quick = opts.quick, data = opts.data,
    attack_seed = opts.attack_seed, threads = lab.get_threads()}
  local runs = {}
  for _, which in ipairs({{"val", sets.val, "adversarial.safetensors"},
                          {"hard", sets.hard, "adversarial_hard.safetensors"}}) do
    local name, set, file = which[1], which[2], which[3]
    local pos, n = positions_of(set, opts.source)
    if n == 0 then error(("the %s set has no %d"):format(name, opts.source), 0) end
    local b = lab.train.batch_of(set, pos)
    local clean = lab.no_grad(function() return model(b.x):softmax(1) end)
    local clean_conf, clean_pred = clean:max(1)
    local t1 = lab.now()
    local r = attack.pgd(model, b.x, pgd_opts(opts.target, opts.eps, opts.steps, step_size))
    local seconds = lab.now() - t1
    local check = attack.verify(b.x, r.adversarial, opts.eps)
    if not check.ok then
      error(("%s: %d elements outside the ε-ball, %d outside [0,1] (max |δ| %.9g)"):format(
        name, check.outside_ball, check.outside_box, check.max_linf), 0)
    end
    local succ = r.success:float()
    local n_succ = r.n_success
    local already = r.steps:eq(0):float():mul(succ):sum():item()
    util.progress("%s: %d %ds → %d: %.2f%% reach p(%d) ≥ %g within ε = %g (mean %.2f steps, "
      .. "%.1f s, %.0f digits/s); max |δ| = %.6f", name, n, opts.source, opts.target,
      r.success_rate, opts.target, opts.confidence, opts.eps, r.mean_steps, seconds, n / seconds,
      check.max_linf)
    local p = name .. "_"
    m[p .. "n"] = n
    m[p .. "success_rate"] = r.success_rate
    m[p .. "n_success"] = n_succ
    m[p .. "already_target"] = already
    m[p .. "clean_acc"] = 100 * clean_pred:eq(opts.source):sum():item() / n
    m[p .. "clean_mean_confidence"] = mean(clean_conf)
    m[p .. "mean_steps"] = r.mean_steps
    m[p .. "mean_steps_success"] = n_succ > 0 and r.steps:float():mul(succ):sum():item() / n_succ or nil
    m[p .. "mean_confidence"] = r.mean_confidence
    m[p .. "mean_confidence_success"] = n_succ > 0 and r.confidence:mul(succ):sum():item() / n_succ or nil
    m[p .. "mean_linf"] = mean(r.linf)
    m[p .. "max_linf"] = check.max_linf
    m[p .. "mean_l2"] = mean(r.l2)
    m[p .. "max_l2"] = r.l2:max():item()
    m[p .. "outside_ball"] = check.outside_ball
    m[p .. "outside_unit_box"] = check.outside_box
    m[p .. "seconds"] = seconds
    for k, v in pairs(settings_of(r)) do m[k] = v end
    local meta = settings_of(r)
    meta.model, meta.set, meta.seed, meta.rho, meta.beta = opts.model, name, opts.seed, opts.rho,
      opts.beta
    for k, v in pairs(meta) do meta[k] = tostring(v) end
    lab.save_safetensors(opts.out .. "/" .. file, {
      originals = b.x, adversarial = r.adversarial,
      sources = lab.full({n}, opts.source, {dtype = "int64"}),
      targets = lab.full({n}, opts.target, {dtype = "int64"}),
      labels = b.y, colors = b.colors, index = set.index:index_select(0, pos),
      success = r.success, steps = r.steps, confidence = r.confidence, predictions = r.pred,
      clean_predictions = clean_pred, clean_confidence = clean_conf, linf = r.linf, l2 = r.l2,
    }, meta)
    runs[name] = {x = b.x, r = r, clean_pred = clean_pred, clean_conf = clean_conf,
      colors = b.colors, n = n}
  end
  m.step_size = step_size

  -- ------------------------------------------------------------ the picture
  -- Rows: validation originals, adversarial, perturbation; the same for the hard set; then
  -- (--grid-eps) the same validation digits attacked with a larger budget, to show what it
  -- takes. The perturbation is shown as 0.5 + δ·0.5/ε per channel (grey = unchanged, full
  -- colour = ±ε).
  local ncol = opts.examples
  local rows, captions, row_names = {}, {}, {}
  local names = lab.data.PALETTE_NAMES
  local blocks = {}
  for _, name in ipairs({"val", "hard"}) do
    local run = runs[name]
    local k = math.min(ncol, run.n)
    blocks[#blocks + 1] = {label = name == "val" and "validation" or "hard", k = k,
      x = run.x:narrow(0, 0, k), r = run.r, eps = opts.eps, originals = true,
      clean_pred = run.clean_pred, clean_conf = run.clean_conf,
      colors = name == "hard" and run.colors or nil}
  end
  if opts.grid_eps > 0 and opts.grid_eps ~= opts.eps then
    local k = blocks[1].k
    local r = attack.pgd(model, blocks[1].x, pgd_opts(opts.target, opts.grid_eps, opts.steps,
      opts.grid_eps / 4))
    blocks[#blocks + 1] = {label = ("validation, ε = %g"):format(opts.grid_eps), k = k,
      x = blocks[1].x, r = r, eps = opts.grid_eps, originals = false}
    m.grid_eps, m.grid_eps_success_rate = opts.grid_eps, r.success_rate
  end
  for _, blk in ipairs(blocks) do
    local k, r = blk.k, blk.r
    local adv = r.adversarial:narrow(0, 0, k)
    local scale = blk.eps > 0 and 0.5 / blk.eps or 1
    local delta = lab.no_grad(function() return ((adv - blk.x) * scale + 0.5):clamp(0, 1) end)
    local pad = lab.full({ncol - k, 3, 28, 28}, 1.0)
    local kinds = blk.originals and {"original", "adversarial", "perturbation"}
      or {"adversarial", "perturbation"}
    local images = {original = blk.x, adversarial = adv, perturbation = delta}
    for _, kind in ipairs(kinds) do
      local imgs = images[kind]
      rows[#rows + 1] = k < ncol and lab.cat({imgs, pad}, 0) or imgs
      local caps = {}
      for i = 0, k - 1 do
        if kind == "original" then
          caps[#caps + 1] = ("says %d · %.0f%%"):format(blk.clean_pred:get(i),
            100 * blk.clean_conf:get(i))
          if blk.colors then
            caps[#caps] = caps[#caps] .. " (" .. names[blk.colors:get(i) + 1] .. ")"
          end
        elseif kind == "adversarial" then
          caps[#caps + 1] = ("says %d · p(%d) %.0f%%"):format(r.pred:get(i), opts.target,
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
  local scale, gpad = 4, 30
  local grid = lab.image_grid(lab.cat(rows, 0), {ncol = ncol, pad = gpad, scale = scale, pad_value = 1})
  lab.write_png(opts.out .. "/grid.png", grid)
  do
    local gh, gw = grid:size(1), grid:size(2)
    local left, top = 150, 74
    local cell = 28 * scale
    local b = {}
    local W, H = left + gw + 10, top + gh + 10
    b[#b + 1] = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
      .. 'width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" '
      .. 'font-size="12">'):format(W, H, W, H)
    b[#b + 1] = ('<rect width="%d" height="%d" fill="white"/>'):format(W, H)
    local function esc(s) return (s:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;")) end
    b[#b + 1] = ('<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>'):format(left,
      esc(("PGD: %d → %d, ε = %g (L∞), success = p(%d) ≥ %g — validation %.1f%%, hard %.1f%%")
        :format(opts.source, opts.target, opts.eps, opts.target, opts.confidence,
          runs.val.r.success_rate, runs.hard.r.success_rate)))
    b[#b + 1] = ('<text x="%d" y="42" fill="#444">%s</text>'):format(left, esc(
      ("%s; model %s"):format(attack.describe(runs.val.r.settings), opts.model)))
    b[#b + 1] = ('<text x="%d" y="60" fill="#444">%s</text>'):format(left, esc(
      ("first %d %ds of each set; captions: the model's answer and p(%d); perturbation shown as "
        .. "0.5 + δ·0.5/ε per channel (grey: unchanged, full colour: ±ε)"):format(ncol,
        opts.source, opts.target)))
    -- embedded, not linked: an SVG shown through <img> (the report) loads no other file
    local uri = require("cnnlab.figure").png_uri(opts.out .. "/grid.png")
    b[#b + 1] = ('<image x="%d" y="%d" width="%d" height="%d" href="%s" xlink:href="%s"/>')
      :format(left, top, gw, gh, uri, uri)
    for r, caps in ipairs(captions) do
      local y0 = top + gpad + (r - 1) * (cell + gpad)
      b[#b + 1] = ('<text x="%d" y="%d" text-anchor="end" font-weight="bold">%s</text>'):format(
        left - 4, y0 + cell / 2 - 2, esc(row_names[r][1]))
      b[#b + 1] = ('<text x="%d" y="%d" text-anchor="end">%s</text>'):format(left - 4,
        y0 + cell / 2 + 14, esc(row_names[r][2]))
      for c, s in ipairs(caps) do
        local x = left + gpad + (c - 1) * (cell + gpad) + cell / 2
        b[#b + 1] = ('<text x="%d" y="%d" text-anchor="middle" font-size="%d">%s</text>'):format(
          x, y0 + cell + 14, #s > 20 and 10 or 11, esc(s))
      end
    end
    b[#b + 1] = "</svg>\n"
    util.write_file(opts.out .. "/grid.svg", table.concat(b, "\n"))
  end

  -- ------------------------------------------------------------ success matrix
  local matrix_step = opts.eps / 4
  if opts.matrix then
    local t1 = lab.now()
    local values, total, cells = {}, 0, 0
    for s = 0, 9 do
      -- one call per source: its digits repeated for the nine targets, so every PGD step is
      -- one large batch
      local pos, n = positions_of(sets.val, s, opts.matrix_per_digit)
      local x = lab.train.batch_of(sets.val, pos).x
      local xs, ts, order = {}, {}, {}
      for t = 0, 9 do
        if t ~= s then
          xs[#xs + 1] = x
          for _ = 1, n do ts[#ts + 1] = t end
          order[#order + 1] = t
        end
      end
      local r = attack.pgd(model, lab.cat(xs, 0), pgd_opts(lab.tensor(ts, {dtype = "int64"}),
        opts.eps, opts.matrix_steps, matrix_step))
      local success = r.success:totable()
      values[s + 1] = {}
      values[s + 1][s + 1] = 0 / 0
      for j, t in ipairs(order) do
        local count = 0
        for i = (j - 1) * n + 1, j * n do count = count + success[i] end
        local rate = 100 * count / n
        values[s + 1][t + 1] = rate
        m[("matrix_%d_%d"):format(s, t)] = rate
        total, cells = total + rate, cells + 1
      end
      m["matrix_n_" .. s] = n
      util.progress("matrix: source %d (%d digits × 9 targets) done, %.0f s", s, n, lab.now() - t1)
    end
    m.matrix_mean = total / cells
    m.matrix_per_digit, m.matrix_steps, m.matrix_step_size = opts.matrix_per_digit, opts.matrix_steps, matrix_step
    m.matrix_seconds = lab.now() - t1
    local labels = {}
    for k = 0, 9 do labels[k + 1] = tostring(k) end
    svg.save(opts.out .. "/matrix.svg", svg.heatmap{values = values, row_labels = labels,
      col_labels = labels, vmin = 0, vmax = 100, fmt = "%.0f", cell = 40,
      title = ("Targeted PGD success (%%), ε = %g, p(target) ≥ %g"):format(opts.eps, opts.confidence),
      xlabel = ("target digit — first %d validation digits per source, %d steps of %g")
        :format(opts.matrix_per_digit, opts.matrix_steps, matrix_step),
      ylabel = "source digit"})
  end

  -- ------------------------------------------------------------ success against ε
  if opts.curve then
    local t1 = lab.now()
    local pos, n = positions_of(sets.val, opts.source, opts.curve_n)
    local x = lab.train.batch_of(sets.val, pos).x
    local models_ = {{name = "baseline", path = opts.model, model = model}}
    local compare_path, compare_name = opts.compare_model, opts.compare_name
    if compare_path == "" and opts.compare_dir ~= "" then
      local best, why = best_debiased(opts.compare_dir)
      if best then
        compare_path = best.path
        if compare_name == "" then
          compare_name = ("%s (hard %.0f%%)"):format(best.method, best.hard_acc)
        end
        m.compare_method, m.compare_method_hard_acc = best.method, best.hard_acc
        util.progress("comparing with %s (hard accuracy %.2f%% in %s)", best.method,
          best.hard_acc, opts.compare_dir)
      else
        util.progress("--compare-dir %s: %s; the ε curve shows the baseline only",
          opts.compare_dir, why)
      end
    end
    if compare_path ~= "" then
      local name = compare_name ~= "" and compare_name
        or compare_path:match("([^/]+)/[^/]+$") or compare_path
      models_[2] = {name = name, path = compare_path, model = study.load_model(compare_path)}
    elseif opts.compare_dir == "" then
      util.progress("no --compare-model given: the ε curve shows the baseline only")
    end
    local series = {}
    for mi, entry in ipairs(models_) do
      local ys = {}
      for i, e in ipairs(curve_eps) do
        local r = attack.pgd(entry.model, x, pgd_opts(opts.target, e, opts.matrix_steps,
          e > 0 and e / 4 or 1e-3))
        ys[i] = r.success_rate
        m[("curve_%s_%d"):format(mi == 1 and "baseline" or "compare", i - 1)] = r.success_rate
      end
      series[#series + 1] = {name = entry.name, x = curve_eps, y = ys}
      util.progress("curve: %s done (%s), %.0f s", entry.name, table.concat(
        (function() local t = {} for i, y in ipairs(ys) do t[i] = ("%g:%.1f%%"):format(curve_eps[i], y) end return t end)(),
        " "), lab.now() - t1)
    end
    for i, e in ipairs(curve_eps) do m["curve_eps_" .. (i - 1)] = e end
    m.curve_n, m.curve_steps = n, opts.matrix_steps
    m.compare_model = models_[2] and models_[2].path or nil
    m.curve_seconds = lab.now() - t1
    local top = 0
    for _, e in ipairs(curve_eps) do top = math.max(top, e) end
    series[#series + 1] = {name = ("budget ε = %g"):format(opts.eps), x = {opts.eps, opts.eps},
      y = {0, 100}, dashed = true, color = "#888888"}
    series[#series + 1] = {name = "99% (issue 7)", x = {0, top}, y = {99, 99},
      dashed = true, color = "#d62728"}
    svg.save(opts.out .. "/curve.svg", svg.lines{series = series, markers = true, ymin = 0,
      ymax = 100, xmin = 0,
      title = ("%d → %d: success (p(%d) ≥ %g) against ε%s"):format(opts.source, opts.target,
        opts.target, opts.confidence, #models_ == 1 and " — baseline only" or ""),
      xlabel = ("ε (L∞ budget) — first %d validation %ds, %d PGD steps of ε/4"):format(n,
        opts.source, opts.matrix_steps),
      ylabel = "success rate (%)"})
  end

  m.total_seconds = lab.now() - t0
  study.write_metrics(opts.out, m)
  util.progress("wrote %s/{metrics.json, grid.png, grid.svg, adversarial.safetensors, "
    .. "adversarial_hard.safetensors%s%s} in %.0f s", opts.out, opts.matrix and ", matrix.svg" or "",
    opts.curve and ", curve.svg" or "", m.total_seconds)
end)
if not ok then
  io.stderr:write("task5_attack: ", tostring(err), "\n")
  os.exit(1)
end
