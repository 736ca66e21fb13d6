-- Task 5: targeted adversarial attacks — a 7 read as a 3 with 90% confidence, L∞ ≤ 0.05.
--
-- The baseline reads colour, not shape. How little must a 7 change before the network calls
-- it a 3, and is sure of it? The attack (--attack, default PGD: lua/cnnlab/attacks/pgd.lua)
-- moves every pixel of a validation 7 by at most ε = 0.05 (under 13 grey levels of 255)
-- against the gradient of the cross-entropy of class 3, clipping into the ε-ball and [0,1]
-- after every step, and stops each digit as soon as the model gives 3 at least 90% softmax
-- probability. The same attack runs on every 7 of the hard set. Beyond the seed: the success
-- matrix over every (source, target) pair at ε, and success against ε for the baseline and,
-- when given, a debiased model. What it finds is in docs/attacks.md.
--
--   ./cnnlab scripts/task5_attack.lua [--model runs/task1/model.safetensors] [--attack pgd |
--       path/to/attack.lua] [--source 7 --target 3 --eps 0.05 --confidence 0.9 --steps 20
--       --step-size 0 --loss ce] [--random-start --attack-seed 1]
--       [--compare-model runs/task4/<method>/model.safetensors | --compare-dir runs/task4]
--       [--matrix-per-digit 100 --curve-n 300 --curve-eps 0,0.01,...] [--grid-eps 0.1]
--       [--no-matrix --no-curve --quick] [--out runs/task5]
-- Writes into --out: metrics.json; grid.png (rows: originals / adversarial / perturbation as
-- 0.5 + δ·0.5/ε, for the first validation and hard-set 7s, and the validation ones again at
-- --grid-eps); grid.svg (grid.png embedded, captioned with the model's answers); the attacked
-- digits with per-digit results in adversarial.safetensors (validation) and
-- adversarial_hard.safetensors; matrix.svg (success over every source → target pair at ε);
-- curve.svg (success against ε).
local lab = require "cnnlab"
local util = lab.util
local study = lab.study
local svg = lab.svg
local figure = require "cnnlab.figure"
local adv = require "cnnlab.adversarial"

local DEFAULT_CURVE_EPS = "0,0.01,0.02,0.03,0.04,0.05,0.06,0.07,0.08,0.09,0.1,0.12"
local QUICK_CURVE_EPS = "0,0.03,0.05,0.07,0.09,0.12"
local SEED_THRESHOLD = 99 -- the seed study expected ≥ 99% of the 7s turned at ε = 0.05

local spec = {
  name = "task5_attack", script = "scripts/task5_attack.lua",
  description = "Task 5: targeted attacks on the baseline (a 7 read as a 3), success matrix and ε curve.",
  options = study.options({{"model", nil, "the attacked model (seed CNN weights)"},
    {"attack", "pgd", "the attack: a name of lua/cnnlab/attacks/ or a path to a .lua file"},
    {"compare_model", "", "a debiased model for the ε curve, e.g. runs/task4/<method>/model.safetensors"},
    {"compare_name", "", "its name in the legend (default: the folder name)"},
    {"compare_dir", "", "a Task 4 output folder: compare with its best debiased method (highest hard accuracy, erm excluded)"},
    {"source", 7, "digit attacked"},
    {"target", 3, "digit the model must answer"},
    {"eps", 0.05, "L∞ budget ε (pixels in [0,1])"},
    {"confidence", 0.9, "softmax probability of the target that counts as success"},
    {"steps", 20, "attack steps at most (each digit stops as soon as it succeeds)"},
    {"step_size", 0.0, "step α (0: ε/4)"},
    {"loss", "ce", "ce (cross-entropy of the target) or margin (max other logit − target logit)"},
    {"random_start", false, "start from a uniform random point of the ε-ball"},
    {"attack_seed", 1, "seed of the random start's generator"},
    {"batch", 512, "digits per forward/backward pass"},
    {"examples", 8, "columns of the picture grid"},
    {"grid_eps", 0.1, "also picture the validation examples attacked with this ε (0: no)"},
    {"matrix", true, "compute the (source, target) success matrix"},
    {"matrix_per_digit", 100, "validation digits per source in the matrix (--quick: 10)"},
    {"matrix_steps", 20, "attack steps for the matrix and the curve"},
    {"curve", true, "compute success against ε"},
    {"curve_n", 300, "validation sources for the ε curve (0: all; --quick: 30)"},
    {"curve_eps", DEFAULT_CURVE_EPS, "ε values of the curve (--quick: " .. QUICK_CURVE_EPS .. ")"},
    {"out", "runs/task5"},
  }),
}
local opts = util.parse_args(arg, spec)
local t0 = lab.now()

local function check_options()
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
  if opts.quick then -- a first look: smaller matrix and curve too
    opts.matrix_per_digit = math.min(opts.matrix_per_digit, 10)
    opts.curve_n = opts.curve_n > 0 and math.min(opts.curve_n, 30) or 30
    if opts.curve_eps == DEFAULT_CURVE_EPS then opts.curve_eps = QUICK_CURVE_EPS end
  end
  return study.list(opts.curve_eps, "curve-eps", study.number_in(0, math.huge))
end

-- The attack's options for a target (a class or an int64 tensor), a budget, steps and α.
local function attack_opts(target, eps, steps, step)
  local o = {target = target, eps = eps, confidence = opts.confidence, steps = steps,
    step_size = step, batch = opts.batch, loss = opts.loss}
  if opts.random_start then o.random_start, o.generator = true, lab.Generator(opts.attack_seed) end
  return o
end

-- The seed's attack on every source digit of the validation and the hard set.
local function attack_sets(atk, model, sets, step_size, m)
  local runs = {}
  for _, name in ipairs({"val", "hard"}) do
    local file = name == "val" and "adversarial.safetensors" or "adversarial_hard.safetensors"
    local run = adv.attack_digits(atk, model, sets[name], opts.source,
      attack_opts(opts.target, opts.eps, opts.steps, step_size))
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

-- grid.png and its captioned page grid.svg.
local function draw_grid(atk, model, runs, m)
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
    local r = lab.attacks.run(atk, model, blocks[1].x, attack_opts(opts.target, opts.grid_eps,
      opts.steps, opts.grid_eps / 4))
    blocks[#blocks + 1] = {label = ("validation, ε = %g"):format(opts.grid_eps), k = blocks[1].k,
      x = blocks[1].x, r = r, eps = opts.grid_eps, originals = false}
    m.grid_eps, m.grid_eps_success_rate = opts.grid_eps, r.success_rate
  end
  local images, captions, row_names = adv.grid(blocks, ncol, opts.target)
  local scale, pad = 4, 30
  local grid = lab.image_grid(images, {ncol = ncol, pad = pad, scale = scale, pad_value = 1})
  lab.write_png(opts.out .. "/grid.png", grid)
  svg.save(opts.out .. "/grid.svg", figure.captioned_grid{png = opts.out .. "/grid.png",
    width = grid:size(2), height = grid:size(1), left = 150, top = 74, cell = 28 * scale,
    pad = pad, rows = row_names, captions = captions, lines = {
      {("%s: %d → %d, ε = %g (L∞), success = p(%d) ≥ %g — validation %.1f%%, hard %.1f%%")
        :format(runs.val.r.settings.attack:upper(), opts.source, opts.target, opts.eps,
          opts.target, opts.confidence, runs.val.r.success_rate, runs.hard.r.success_rate),
        'font-size="15" font-weight="bold"'},
      {("%s; model %s"):format(lab.attack.describe(runs.val.r.settings), opts.model), 'fill="#444"'},
      {("first %d %ds of each set; captions: the model's answer and p(%d); perturbation shown "
        .. "as 0.5 + δ·0.5/ε per channel (grey: unchanged, full colour: ±ε)"):format(ncol,
        opts.source, opts.target), 'fill="#444"'}}})
end

-- Success over every source → target pair at ε.
local function success_matrix(atk, model, sets, m)
  local t1, step = lab.now(), opts.eps / 4
  local values, counts = adv.matrix(atk, model, sets.val, opts.matrix_per_digit, function(targets)
    return attack_opts(targets, opts.eps, opts.matrix_steps, step)
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
  m.matrix_per_digit, m.matrix_steps, m.matrix_step_size = opts.matrix_per_digit,
    opts.matrix_steps, step
  m.matrix_seconds = lab.now() - t1
  svg.save(opts.out .. "/matrix.svg", svg.heatmap{values = values, row_labels = labels,
    col_labels = labels, vmin = 0, vmax = 100, fmt = "%.0f", cell = 40,
    title = ("Targeted %s success (%%), ε = %g, p(target) ≥ %g"):format(atk.name:upper(),
      opts.eps, opts.confidence),
    xlabel = ("target digit — first %d validation digits per source, %d steps of %g")
      :format(opts.matrix_per_digit, opts.matrix_steps, step),
    ylabel = "source digit"})
end

-- The models of the ε curve: the baseline, and a debiased one when given or found.
local function curve_models(model, m)
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

-- Success against ε.
local function success_curve(atk, model, sets, curve_eps, m)
  local t1 = lab.now()
  local pos, n = adv.positions_of(sets.val, opts.source, opts.curve_n)
  local x = lab.train.batch_of(sets.val, pos).x
  local models, series, top = curve_models(model, m), {}, 0
  for mi, entry in ipairs(models) do
    local ys = adv.curve(atk, entry.model, x, curve_eps, function(e)
      return attack_opts(opts.target, e, opts.matrix_steps, e > 0 and e / 4 or 1e-3)
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
    xlabel = ("ε (L∞ budget) — first %d validation %ds, %d %s steps of ε/4"):format(n,
      opts.source, opts.matrix_steps, atk.name:upper()),
    ylabel = "success rate (%)"})
end

study.main("task5_attack", function()
  local curve_eps = check_options()
  local atk = lab.attacks.load(opts.attack)
  util.progress("building Colored MNIST (seed %d, rho %g, beta %g%s)", opts.seed, opts.rho,
    opts.beta, opts.quick and ", quick subset" or "")
  local sets = study.load_data(opts)
  local model = study.load_model(opts.model)
  util.progress("model %s; attack %s; %d threads", opts.model, atk.name, lab.get_threads())
  util.mkdir_p(opts.out)
  local m = {model = opts.model, source = opts.source, target = opts.target, seed = opts.seed,
    rho = opts.rho, beta = opts.beta, quick = opts.quick, data = opts.data,
    attack_seed = opts.attack_seed, threads = lab.get_threads()}
  m.step_size = opts.step_size > 0 and opts.step_size or opts.eps / 4
  local runs = attack_sets(atk, model, sets, m.step_size, m)
  draw_grid(atk, model, runs, m)
  if opts.matrix then success_matrix(atk, model, sets, m) end
  if opts.curve then success_curve(atk, model, sets, curve_eps, m) end
  m.total_seconds = lab.now() - t0
  study.write_metrics(opts.out, m)
  util.progress("wrote %s/{metrics.json, grid.png, grid.svg, adversarial.safetensors, "
    .. "adversarial_hard.safetensors%s%s} in %.0f s", opts.out, opts.matrix and ", matrix.svg" or "",
    opts.curve and ", curve.svg" or "", m.total_seconds)
end)
