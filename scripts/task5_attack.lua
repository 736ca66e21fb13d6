-- Task 5: targeted adversarial attacks — a 7 read as a 3 with 90% confidence, L∞ ≤ 0.05.
--
-- The seed study claimed that a 7 becomes a confident 3 when each pixel moves by at most
-- 0.05. This script measures that claim the way robustness papers do, on every model it is
-- given (--models, or the Task 1 baseline and Task 4's grey_invariant and colour_augment when
-- present): APGD (lua/cnnlab/attacks/apgd.lua, --attack pgd for PGD) at ε on the validation
-- 7s; the smallest ε per digit by bisection with APGD; the same over all (source, target)
-- pairs on a few digits each; APGD against PGD with the same passes. Every success counted is
-- confirmed by a separate forward pass on the saved images (float32, and rounded to bytes)
-- and lies within ε and [0,1]. The first model's hard-set 7s, the success matrix and the ε
-- curve are drawn as before. What it finds is in docs/attacks.md.
--
--   ./cnnlab scripts/task5_attack.lua [--model runs/task1/model.safetensors | --models a,b]
--       [--attack apgd | pgd | path/to/attack.lua] [--source 7 --target 3 --eps 0.05
--       --confidence 0.9 --steps 0 --step-size 0 --loss ce|dlr|margin --restarts 1]
--       [--n 0 --min-n 300 --min-hi 0.3 --min-tol 0.001 --min-steps 100 --pair-n 5
--       --compare-eps 0.03,0.05,0.08,0.1 --compare-n 100 --no-compare-pgd]
--       [--compare-model runs/task4/<method>/model.safetensors | --compare-dir runs/task4]
--       [--matrix-per-digit 100 --curve-n 300 --curve-eps 0,0.01,...] [--grid-eps 0.1]
--       [--no-matrix --no-curve --quick] [--out runs/task5]
-- Writes into --out: metrics.json; table.txt (model × clean accuracy, success at ε, median
-- minimal ε, share ≤ 0.1, for 7 → 3 and all pairs; APGD vs PGD); min_eps_cdf.svg (the minimal
-- ε's empirical CDF per model); grid_median.png/svg (7s at each model's median minimal ε);
-- grid.png/grid.svg (the first model's validation and hard-set 7s at ε and --grid-eps);
-- adversarial.safetensors (first model, with min_eps per sample), adversarial_<model>.safetensors,
-- adversarial_hard.safetensors; matrix.svg; curve.svg.
local lab = require "cnnlab"
local util = lab.util
local study = lab.study
local robustness = lab.robustness -- the steps of the study (lua/cnnlab/robustness.lua)

local DEFAULT_CURVE_EPS = "0,0.01,0.02,0.03,0.04,0.05,0.06,0.07,0.08,0.09,0.1,0.12"
local QUICK_CURVE_EPS = "0,0.03,0.05,0.07,0.09,0.12"

local spec = {
  name = "task5_attack", script = "scripts/task5_attack.lua",
  description = "Task 5: targeted attacks on the baseline (a 7 read as a 3), success matrix and ε curve.",
  options = study.options({{"model", nil, "the attacked model (seed CNN weights)"},
    {"models", "", "comma list of models to measure (default: --model, and Task 4's grey_invariant and colour_augment when present)"},
    {"attack", "apgd", "the attack: a name of lua/cnnlab/attacks/ (apgd, pgd, fgsm) or a path to a .lua file"},
    {"compare_model", "", "a debiased model for the ε curve, e.g. runs/task4/<method>/model.safetensors"},
    {"compare_name", "", "its name in the legend (default: the folder name)"},
    {"compare_dir", "", "a Task 4 output folder: compare with its best debiased method (highest hard accuracy, erm excluded)"},
    {"source", 7, "digit attacked"},
    {"target", 3, "digit the model must answer"},
    {"eps", 0.05, "L∞ budget ε (pixels in [0,1])"},
    {"confidence", 0.9, "softmax probability of the target that counts as success"},
    {"steps", 0, "attack steps at most, each digit stops as soon as it succeeds (0: the attack's own, APGD 100, PGD 20)"},
    {"step_size", 0.0, "step α (0: the attack's own, APGD 2ε then halved, PGD ε/4)"},
    {"loss", "ce", "ce (cross-entropy of the target); margin (PGD) or dlr (APGD's targeted DLR)"},
    {"restarts", 1, "APGD restarts (the later ones from random points of the ball)"},
    {"n", 0, "source digits of each set attacked at ε (0: all)"},
    {"min_n", 300, "validation sources whose minimal ε is measured per model (0: all; --quick: 20)"},
    {"min_hi", 0.3, "upper end of the minimal-ε bisection bracket [0, hi]"},
    {"min_tol", 0.001, "tolerance of the minimal-ε bisection (--quick: 0.004)"},
    {"min_steps", 100, "APGD iterations at every bisection point (--quick: 20)"},
    {"pair_n", 5, "validation digits per (source, target) pair for the all-pairs figures (0: none; --quick: 1)"},
    {"compare_pgd", true, "measure APGD against PGD with the same passes at --compare-eps"},
    {"compare_eps", "0.03,0.05,0.08,0.1", "ε values of the APGD/PGD comparison"},
    {"compare_n", 100, "validation sources of the APGD/PGD comparison (--quick: 10)"},
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
    -- the measurement's defaults shrink too (a value given on the command line is kept)
    if opts.min_n == 300 then opts.min_n = 20 end
    if opts.min_steps == 100 then opts.min_steps = 20 end
    if opts.min_tol == 0.001 then opts.min_tol = 0.004 end
    if opts.pair_n == 5 then opts.pair_n = 1 end
    if opts.compare_n == 100 then opts.compare_n = 5 end
    if opts.steps == 0 then opts.steps = 20 end
    opts.curve_n = opts.curve_n > 0 and math.min(opts.curve_n, 30) or 30
    if opts.curve_eps == DEFAULT_CURVE_EPS then opts.curve_eps = QUICK_CURVE_EPS end
  end
  return study.list(opts.curve_eps, "curve-eps", study.number_in(0, math.huge))
end

study.main("task5_attack", function()
  local curve_eps = check_options()
  local compare_eps = study.list(opts.compare_eps, "compare-eps", study.number_in(0, 1))
  if opts.models ~= "" then opts.model = opts.models:match("^[^,]+") end
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
  local runs = robustness.attack_sets(opts, atk, model, sets, m)
  robustness.draw_grid(opts, atk, model, runs, m)
  if opts.matrix then robustness.success_matrix(opts, atk, model, sets, m) end
  if opts.curve then robustness.success_curve(opts, atk, model, sets, curve_eps, m) end
  robustness.measure_models(opts, atk, sets, model, runs, compare_eps, m)
  m.total_seconds = lab.now() - t0
  study.write_metrics(opts.out, m)
  util.progress("wrote %s/{metrics.json, grid.png, grid.svg, adversarial.safetensors, "
    .. "adversarial_hard.safetensors, table.txt, min_eps_cdf.svg, grid_median.png, grid_median.svg%s%s} in %.0f s", opts.out, opts.matrix and ", matrix.svg" or "",
    opts.curve and ", curve.svg" or "", m.total_seconds)
end)
