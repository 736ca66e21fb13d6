-- Task 1: train the seed CNN on the easy set, and watch it collapse on the hard set.
--
-- The easy set paints every digit in its class colour, so colour alone predicts the label;
-- the hard set paints digits at random. A network that reads colour instead of shape scores
-- high on the first and near chance on the second, and its confusion matrix on the hard set
-- follows the colours, not the digits.
--
--   ./cnnlab scripts/task1_train.lua [--epochs 5 --batch 128 --lr 0.001 --optimizer adam
--       --seed 1 --rho 1 --beta 0.25 --out runs/task1 --resume --method erm
--       --dataset colored_mnist|NAME|file.lua --dataset-opt key=value
--       --arch seed_cnn|NAME|file.lua --arch-opt key=value]
-- Writes into --out: metrics.json, confusion.svg, curve.svg, model.safetensors,
-- checkpoint.safetensors (for --resume), example.png.
local lab = require "cnnlab"
local util = lab.util
local study = lab.study
local metrics = lab.metrics
local svg = lab.svg

local spec = {
  name = "task1_train", script = "scripts/task1_train.lua",
  description = "Train the seed CNN on the easy Colored MNIST set; evaluate on easy and hard sets.",
  options = study.options({"epochs", "batch", "lr", "optimizer", "method", "method_opt",
    "arch", "arch_opt", "generated_n",
    {"out", "runs/task1"}, "resume", "progress"}),
}
local opts = util.parse_args(arg, spec)
local t0 = lab.now()

local function build_data()
  local ds = study.dataset(opts)
  if ds.is_default then
    util.progress("building Colored MNIST (seed %d, rho %g, beta %g%s)", opts.seed, opts.rho,
      opts.beta, opts.quick and ", quick subset" or "")
  else
    util.progress("building data set %s %s (seed %d%s)", ds.name,
      lab.models.options_text(ds.options), opts.seed, opts.quick and ", quick subset" or "")
  end
  local sets = study.load_data(opts)
  -- The grey MNIST digits behind the coloured sets are not needed to train: 55 MB less resident.
  sets.source = nil
  for _, name in ipairs({"train", "val", "hard"}) do sets[name].source_images = nil end
  collectgarbage()
  util.progress("train %d, validation %d, hard %d (conflicting %d); %d threads, %s GEMM",
    sets.train.n, sets.val.n, sets.hard.n,
    sets.hard.conflicting and sets.hard.conflicting:sum():item() or 0,
    lab.get_threads(), lab.gemm_backend())
  return sets
end

local function print_accuracies(ev, follows_colour)
  print()
  print(("  %-28s %7.2f%%"):format("train (easy)", ev.train.acc))
  print(("  %-28s %7.2f%%"):format("validation (easy)", ev.val.acc))
  print(("  %-28s %7.2f%%"):format("hard", ev.hard.acc))
  print(("  %-28s %7.2f%%   (%d digits)"):format("hard, colour = label", ev.hard.aligned_acc,
    ev.hard.n_aligned))
  print(("  %-28s %7.2f%%   (%d digits)"):format("hard, colour != label",
    ev.hard.conflicting_acc, ev.hard.n_conflicting))
  print("\nConfusion matrix on the hard set (rows: true digit, columns: prediction):")
  print(metrics.confusion_table(ev.hard.confusion))
  print(("\nOn the hard set the prediction equals the colour's class for %.1f%% of digits.")
    :format(follows_colour))
end

-- A hard digit painted in another class's colour (a 1 painted 0's colour if there is one):
-- what did the model answer? Writes example.png; returns the example's fields (or {}).
local sets_palette_names = lab.data.PALETTE_NAMES
local function show_example(hard, e)
  local example
  if not hard.colors then return {} end
  for i = 0, hard.n - 1 do
    if hard.labels:get(i) == 1 and hard.colors:get(i) == 0 then example = i break end
  end
  if not example then
    for i = 0, hard.n - 1 do
      if hard.conflicting:get(i) == 1 then example = i break end
    end
  end
  if not example then return {} end
  local ex = {index = hard.index:get(example), label = hard.labels:get(example),
    color = hard.colors:get(example), pred = e.preds:get(example),
    confidence = 100 * e.confidences:get(example)}
  print(("Example: hard-set digit #%d is a %d painted %s (the colour of %d); the model says %d "
    .. "with %.1f%% confidence."):format(ex.index, ex.label, sets_palette_names[ex.color + 1]
    or ("colour " .. ex.color),
    ex.color, ex.pred, ex.confidence))
  lab.write_png(opts.out .. "/example.png", lab.image_grid(hard.images:narrow(0, example, 1),
    {ncol = 1, scale = 8, pad = 0}))
  return ex
end

local function draw(ev, history)
  svg.save(opts.out .. "/confusion.svg", metrics.confusion_svg(ev.hard.confusion,
    ("Hard set: hard accuracy %.1f%% — predictions follow colour"):format(ev.hard.acc)))
  local xs, loss, tacc, vacc = {}, {}, {}, {}
  for i, h in ipairs(history) do
    xs[i], loss[i], tacc[i], vacc[i] = h.epoch, h.loss * 100, h.train_acc, h.val_acc
  end
  svg.save(opts.out .. "/curve.svg", svg.lines{title = "Training curve",
    xlabel = "epoch", ylabel = "accuracy (%) / loss × 100", markers = true,
    series = {{name = "train accuracy (running)", x = xs, y = tacc},
      {name = "validation accuracy", x = xs, y = vacc},
      {name = "loss × 100", x = xs, y = loss, dashed = true}}})
end

local function flat_metrics(run, sets, method, follows_colour, ex)
  local ev, fit = run.ev, run.fit
  local m = study.accuracies(ev, {train = {"acc"}, val = {"acc"},
    hard = {"acc", "conflicting_acc", "aligned_acc"}})
  m.hard_follows_colour, m.method = follows_colour, method.name
  study.flatten("method_opt", lab.debias.options_of(method), m) -- method_opt_weight = 0.1 ...
  for _, k in ipairs({"epochs", "batch", "lr", "optimizer", "seed", "rho", "beta", "quick", "data"}) do
    m[k] = opts[k]
  end
  m.threads, m.seconds = lab.get_threads(), fit.seconds
  m.train_seconds_per_epoch = fit.seconds / opts.epochs
  m.total_seconds = lab.now() - t0
  m.n_train, m.n_val, m.n_hard = sets.train.n, sets.val.n, sets.hard.n
  -- the data set and network, when they are not the study's default ones
  local ds, arch = sets.dataset, study.arch(opts)
  if ds and not ds.is_default then
    m.dataset, m.dataset_options = ds.spec, lab.models.options_text(ds.options)
  end
  study.record_arch(m, arch)
  m.peak_core_mb = lab.memory().peak / 2^20
  study.flatten("hard_acc_by_color", ev.hard.by_color, m)
  study.flatten("hard_acc_by_label", ev.hard.by_label, m)
  study.flatten("hard_confusion", ev.hard.confusion, m)
  for i, h in ipairs(fit.history) do
    m["epoch" .. i .. "_loss"], m["epoch" .. i .. "_train_acc"] = h.loss, h.train_acc
    m["epoch" .. i .. "_val_acc"], m["epoch" .. i .. "_seconds"] = h.val_acc, h.seconds
  end
  for k, v in pairs(ex) do m["example_" .. k] = v end
  return m
end

study.main("task1_train", function()
  local method = study.method(opts)
  local sets = build_data()
  local ds = sets.dataset
  if ds and not ds.is_default then sets_palette_names = ds.module.palette_names or {} end
  local run = study.train_and_evaluate(opts, method, sets,
    {out = opts.out, resume = opts.resume})
  if run.interrupted then os.exit(130) end
  -- Under MPI the ranks trained together (identical models); rank 0 alone evaluates, prints
  -- and writes the outputs.
  if lab.mpi.rank() > 0 then return end
  local follows_colour = study.follows_colour(run.ev.hard, sets.hard)
  print_accuracies(run.ev, follows_colour)
  util.mkdir_p(opts.out)
  local ex = show_example(sets.hard, run.ev.hard)
  draw(run.ev, run.fit.history)
  study.write_metrics(opts.out, flat_metrics(run, sets, method, follows_colour, ex))
  util.progress("wrote %s/{metrics.json, confusion.svg, curve.svg, model.safetensors, example.png}",
    opts.out)
end)
