-- Task 4: fix the cheat — debiasing methods as Lua modules, compared on one table.
--
-- The seed CNN trained on the easy set reads colour, not shape, and collapses on the hard set.
-- Each debias method is one Lua file in lua/cnnlab/debias/ (or any .lua file named on the
-- command line), loaded by name through lab.debias.load and handed to the same trainer
-- (lab.train.fit); nothing is recompiled to swap one. This script trains the chosen methods on
-- the easy set, evaluates them on the training, validation and hard sets, and puts them side by
-- side with the seed's two published figures (grey consistency 83.64%, dropout 86.60% hard
-- accuracy).
--
-- It also measures why those figures need not hold on SPEC §2's data: a colour-only reader,
-- a brightness-only reader of the *grey* images (the grey version of a digit painted P[k] is
-- mean(P[k])·s, so its brightness still tells the colour), and two CNNs trained on grey
-- images alone (raw and brightness-normalised), scored on the hard set's grey images.
-- Every hard-conflicting accuracy is also split by whether the digit's random colour has the
-- same grey brightness as its label's colour (a brightness reader cannot tell those apart).
--
-- --sweep repeats erm and the bias-unaware methods (LfF, JTT) at ρ ∈ {1, 0.999, 0.995, 0.99}:
-- with ρ = 1 there is no bias-conflicting sample for them to find.
--
--   ./cnnlab scripts/task4_debias.lua [--methods all|a,b,c --seeds 3 --sweep --epochs 0
--       --method-opt lff.q=0.7 --rho 1 --quick --data mnist|generated --out runs/task4
--       --dataset NAME|file.lua --dataset-opt key=value --arch NAME|file.lua --arch-opt key=value]
-- Every method's networks (LfF's biased one and JTT's two stages too) come from --arch.
-- Writes into --out: metrics.json (flat keys), table.txt, comparison.svg, sweep.svg (with
-- --sweep), evidence.svg, gradcam.png/gradcam.svg, log.txt (every invocation's command and
-- table, appended), and per run: <method>/model.safetensors (the first seed; seed s > first in
-- <method>/seed<s>/; sweep runs in sweep/rho<ρ>/<method>/seed<s>/), checkpoint.safetensors
-- (--resume) and result.json (reused when the settings match). The repeats, cached runs and
-- tables live in cnnlab.runs; the evidence and Grad-CAM measures in cnnlab.evidence.
local lab = require "cnnlab"
local util = lab.util
local study = lab.study
local runs = require "cnnlab.runs"
local evidence = require "cnnlab.evidence"
local svg = lab.svg

local ALL = {"erm", "dropout", "grey_consistency", "grey_invariant", "colour_augment", "lff",
  "jtt", "group_dro"}
local SEED_REPORTED = {grey_consistency = 83.64, dropout = 86.60}

local spec = {
  name = "task4_debias", script = "scripts/task4_debias.lua",
  description = "Train debias methods on the easy set and compare them on one table.",
  options = study.options({
    {"methods", "all", "comma list of method names or .lua files (all: " .. table.concat(ALL, ",") .. ")"},
    {"method_opt", {}, "NAME.key=value: a setting for one method (key=value: for every method that has it)"},
    {"epochs", 0, "epochs for every method (0: each method's own default)"},
    "batch", "lr", "optimizer", "arch", "arch_opt",
    {"seeds", 1, "repeat every run with seeds seed, seed+1, ... and report mean ± sd"},
    {"table", true, "train the methods at --rho (the main table; --no-table skips it)"},
    {"sweep", false, "also run the rho sweep (erm and the bias-unaware methods)"},
    {"sweep_rhos", "1.0,0.999,0.995,0.99", "rho values of the sweep"},
    {"sweep_methods", "erm,lff,jtt", "methods of the sweep"},
    {"sweep_seeds", 0, "seeds of the sweep (0: as --seeds)"},
    {"evidence", true, "measure the colour left in grey images (readers and grey-only CNNs)"},
    {"evidence_epochs", 2, "epochs of the grey-only CNNs"},
    {"gradcam", true, "Grad-CAM stroke share of erm and the best method (Task 3's measure)"},
    {"gradcam_n", 2000, "hard digits used for the Grad-CAM measure"},
    "generated_n",
    {"reuse", true, "reuse finished runs whose result.json has the same settings"},
    {"resume", false, "continue unfinished runs from their checkpoints"},
    {"out", "runs/task4"},
    {"progress", true, "show training progress"},
  }),
}

local opts = util.parse_args(arg, spec)
local t_start = lab.now()
if opts.seeds < 1 then
  io.stderr:write(("task4_debias: --seeds must be at least 1, got %d\n"):format(opts.seeds))
  os.exit(2)
end
local seeds = runs.seeds(opts.seed, opts.seeds)
local sweep_seeds = runs.seeds(opts.seed, opts.sweep_seeds > 0 and opts.sweep_seeds or opts.seeds)
local data = study.data_cache(opts, {progress = true})
local DATASET, ARCH -- the data set and network of the runs (checked in main)
local log = runs.log()
local fmt_rho = study.format_rho
local M = {} -- metrics.json

-- <out>/<method> (first seed), <out>/<method>/seed<s>, <out>/sweep/rho<ρ>/<method>/seed<s>.
local function run_dir(label, rho, seed)
  if rho == opts.rho then
    return seed == seeds[1] and ("%s/%s"):format(opts.out, label)
      or ("%s/%s/seed%d"):format(opts.out, label, seed)
  end
  return ("%s/sweep/%s/%s/seed%d"):format(opts.out, runs.rho_key(rho), label, seed)
end

local function run_one(entry, seed, rho)
  return runs.run(entry, seed, rho, run_dir(entry.label, rho, seed), opts, data)
end

-- ------------------------------------------------------------------ the steps

-- Every method at every seed at --rho; the table of mean ± sd; returns the aggregates and
-- the best method by mean hard accuracy.
local function main_table(entries)
  local results, aggs = {}, {}
  for _, seed in ipairs(seeds) do
    for _, e in ipairs(entries) do
      results[e.label] = results[e.label] or {}
      table.insert(results[e.label], run_one(e, seed, opts.rho))
    end
  end
  local function row(cells) return runs.row(cells, {22, 16, 16, 16, 16, 16, 16, 8}) end
  local lines = {("%s, rho %s, beta %g%s; %d seed(s) %s: accuracy %% (mean ± sd)")
    :format(DATASET.is_default and "Colored MNIST" or (DATASET.name .. " "
      .. lab.models.options_text(DATASET.options) .. (ARCH.is_default and "" or ", arch "
      .. ARCH.name .. " " .. lab.models.options_text(ARCH.options))), fmt_rho(opts.rho), opts.beta, opts.quick and ", quick subset" or "", #seeds,
      table.concat(seeds, ",")),
    row({"method", "train", "validation", "hard", "hard, colour≠label", "≠, same bright.",
      "≠, other bright.", "epochs", "seconds"})}
  local best, best_acc = nil, -1
  for _, e in ipairs(entries) do
    local a = runs.aggregate(results[e.label], runs.FIELDS)
    aggs[e.label] = a
    runs.flatten(e.label .. "_", a, seeds, M)
    M[e.label .. "_options"] = util.json_encode(results[e.label][1].settings.options)
    lines[#lines + 1] = row({e.label, runs.pm(a.train_acc), runs.pm(a.val_acc), runs.pm(a.hard_acc),
      runs.pm(a.hard_conflicting_acc), runs.pm(a.hard_conflicting_same_brightness_acc),
      runs.pm(a.hard_conflicting_other_brightness_acc), runs.pm(a.epochs, 0), runs.pm(a.seconds, 0)})
    if a.hard_acc.mean > best_acc then best, best_acc = e.label, a.hard_acc.mean end
  end
  for _, k in ipairs({"grey_consistency", "dropout"}) do
    lines[#lines + 1] = row({k == "dropout" and "seed's report: dropout" or "seed's report: grey c.",
      "", "", ("%.2f"):format(SEED_REPORTED[k])})
  end
  lines[#lines + 1] = ("best: %s, hard accuracy %.2f%%"):format(best, best_acc)
  M.best_method, M.best_hard_acc_mean = best, best_acc
  print()
  for _, l in ipairs(lines) do log.say(l) end
  print()
  util.write_file(opts.out .. "/table.txt", table.concat(lines, "\n") .. "\n")
  return aggs, best
end

-- Ours (mean ± sd) beside the seed's two published figures.
local function comparison_chart(entries, aggs)
  local labels, hard, hard_sd, conf, conf_sd, seedv = {}, {}, {}, {}, {}, {}
  for i, e in ipairs(entries) do
    local a = aggs[e.label]
    labels[i] = e.label
    hard[i], hard_sd[i] = a.hard_acc.mean, a.hard_acc.sd
    conf[i], conf_sd[i] = a.hard_conflicting_acc.mean, a.hard_conflicting_acc.sd
    seedv[i] = SEED_REPORTED[e.label] or 0 / 0
  end
  svg.save(opts.out .. "/comparison.svg", svg.bars{labels = labels,
    series = {{name = "hard", values = hard, errors = hard_sd},
      {name = "colour ≠ label", values = conf, errors = conf_sd},
      {name = "seed's report", values = seedv, color = "#999999"}},
    title = ("Hard-set accuracy by debias method (rho %s, %d seed%s, mean ± sd)")
      :format(fmt_rho(opts.rho), #seeds, #seeds > 1 and "s" or ""),
    ylabel = "hard-set accuracy (%)",
    xlabel = "method (bars: ours, mean ± sd; grey: the seed's published hard accuracy)",
    ymin = 0, ymax = 100, fmt = "%.1f",
    width = math.max(640, 118 * #labels)})
end

-- Why grey is not colour-free here: readers of colour and of grey brightness, CNNs on grey.
local function colour_in_grey(sets)
  local E = evidence.readers(sets)
  local E2, trained = evidence.grey_only(sets, opts, seeds[1])
  for k, v in pairs(E2) do E[k] = v end
  for k, v in pairs(E) do M["evidence_" .. k] = v end
  local lines = evidence.describe(E, trained, seeds[1], opts.rho, opts.evidence_epochs)
  for _, l in ipairs(lines) do log.say(l) end
  print()
  util.write_file(opts.out .. "/evidence.txt", table.concat(lines, "\n") .. "\n")
  evidence.chart(opts.out .. "/evidence.svg", E, trained)
end

-- Where the models look: erm, the best method, and the two colour-blind methods when they ran.
local function where_models_look(aggs, best, sets)
  local models, added = {}, {}
  for _, label in ipairs({"erm", best, "grey_invariant", "colour_augment"}) do
    if aggs[label] and not added[label] then
      models[#models + 1] = {label = label, path = run_dir(label, opts.rho, seeds[1]) .. "/model.safetensors"}
      added[label] = true
    end
  end
  local shares, drawn = evidence.stroke_shares(models, sets, opts.gradcam_n)
  evidence.gradcam_figure(opts.out, sets, shares, drawn)
  for _, m in ipairs(models) do
    if shares[m.label] then
      log.say(evidence.stroke_metrics(m.label, shares[m.label], drawn.n, M))
    end
  end
end

-- The rho sweep: every run first (rho in the order given, then seed, then method, so that an
-- interrupted sweep has whole rho values done), then the table with rho descending.
local function rho_sweep(entries, rhos)
  local results = {}
  for _, r in ipairs(rhos) do
    for _, seed in ipairs(sweep_seeds) do
      for _, e in ipairs(entries) do
        local key = e.label .. "@" .. r
        results[key] = results[key] or {}
        table.insert(results[key], run_one(e, seed, r))
      end
    end
  end
  local labels = {}
  for i, e in ipairs(entries) do labels[i] = e.label end
  local lines, series = runs.sweep_table(labels, rhos, results, sweep_seeds, M)
  print()
  for _, l in ipairs(lines) do log.say(l) end
  util.write_file(opts.out .. "/sweep.txt", table.concat(lines, "\n") .. "\n")
  svg.save(opts.out .. "/sweep.svg", svg.lines{series = series, markers = true,
    title = ("Hard accuracy on colour-conflicting digits (mean of %d seed%s)")
      :format(#sweep_seeds, #sweep_seeds > 1 and "s" or ""),
    xlabel = "bias-conflicting share of the training set, 100·(1 − rho) (%)",
    ylabel = "hard, colour ≠ label (%)", ymin = 0, ymax = 100, width = 520})
end

-- ------------------------------------------------------------------ the study

study.main("task4_debias", function()
  DATASET, ARCH = study.dataset(opts), study.arch(opts)
  util.mkdir_p(opts.out)
  local entries = opts.table and runs.method_entries(opts.methods, opts.method_opt, ALL) or {}
  local sweep_entries = opts.sweep
    and runs.method_entries(opts.sweep_methods, opts.method_opt, ALL, "sweep_methods") or {}
  local rhos = study.list(opts.sweep_rhos, "sweep_rhos", study.number_in(0, 1))
  log.say("== %s  (%s)", "./cnnlab scripts/task4_debias.lua " .. table.concat(arg, " "),
    os.date("!%Y-%m-%d %H:%M:%S UTC"))
  if opts.threads > 0 then lab.set_threads(opts.threads) end -- before the line that reports it
  util.progress("%d threads, %s GEMM; seeds %s", lab.get_threads(), lab.gemm_backend(),
    table.concat(seeds, ","))
  M.rho, M.beta, M.quick, M.data, M.seeds, M.batch, M.lr = opts.rho, opts.beta, opts.quick,
    opts.data, #seeds, opts.batch, opts.lr
  M.optimizer, M.first_seed = opts.optimizer, seeds[1]
  if not DATASET.is_default then
    M.dataset, M.dataset_options = DATASET.spec, lab.models.options_text(DATASET.options)
  end
  study.record_arch(M, ARCH)
  M.seed_reported_grey_consistency_hard_acc = SEED_REPORTED.grey_consistency
  M.seed_reported_dropout_hard_acc = SEED_REPORTED.dropout

  local wrote = {"metrics.json"}
  if #entries > 0 then
    local aggs, best = main_table(entries)
    comparison_chart(entries, aggs)
    table.insert(wrote, "table.txt, comparison.svg")
    if opts.evidence and not DATASET.module.spec_palette then
      log.say("(the colour-in-grey evidence is about SPEC §2's palette on the strokes; skipped "
        .. "for data set %s)", DATASET.name)
    elseif opts.evidence then
      colour_in_grey(data:get(seeds[1], opts.rho))
      table.insert(wrote, "evidence.txt, evidence.svg")
    end
    if opts.gradcam and not ARCH.gradcam_layer then
      log.say("(Grad-CAM stroke share skipped: network %s has no convolutional feature maps; "
        .. "use --arch seed_cnn, bn_cnn or simple_convnet for it)", ARCH.name)
    elseif opts.gradcam then
      where_models_look(aggs, best, data:get(seeds[1], opts.rho))
      if util.exists(opts.out .. "/gradcam.png") then table.insert(wrote, "gradcam.png, gradcam.svg") end
    end
  end
  if #sweep_entries > 0 then
    rho_sweep(sweep_entries, rhos)
    table.insert(wrote, "sweep.txt, sweep.svg")
  end

  M.total_seconds = lab.now() - t_start
  M.threads = lab.get_threads()
  study.write_metrics(opts.out, M)
  log.append_to(opts.out .. "/log.txt", ("\n(total %.0f s)\n\n"):format(lab.now() - t_start))
  table.insert(wrote, "log.txt")
  util.progress("wrote %s/{%s}", opts.out, table.concat(wrote, ", "))
end)
