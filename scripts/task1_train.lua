-- Task 1: train the seed CNN on the easy set, and watch it collapse on the hard set.
--
-- The easy set paints every digit in its class colour, so colour alone predicts the label;
-- the hard set paints digits at random. A network that reads colour instead of shape scores
-- high on the first and near chance on the second, and its confusion matrix on the hard set
-- follows the colours, not the digits.
--
--   ./cnnlab scripts/task1_train.lua [--epochs 5 --batch 128 --lr 1e-3 --optimizer adam
--       --seed 1 --rho 1 --beta 0.25 --out runs/task1 --resume --method erm]
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
  options = study.options({
    {"epochs", 5, "passes over the training set"},
    {"batch", 128, "mini-batch size"},
    {"lr", 1e-3, "learning rate"},
    {"optimizer", "adam", "adam or sgd"},
    {"method", "erm", "debias method: a name in lua/cnnlab/debias/ or a .lua file"},
    {"method_opt", {}, "key=value setting for the method"},
    {"out", "runs/task1", "output folder"},
    {"resume", false, "continue an interrupted run from its checkpoint"},
    {"progress", true, "show progress"},
  }),
}
local opts = util.parse_args(arg, spec)
local t0 = lab.now()

local ok, err = pcall(function()
  local method = lab.debias.load(opts.method, lab.debias.parse_options(opts.method_opt))
  util.progress("building Colored MNIST (seed %d, rho %g, beta %g%s)", opts.seed, opts.rho,
    opts.beta, opts.quick and ", quick subset" or "")
  local sets = study.load_data(opts)
  -- The grey MNIST digits behind the coloured sets are not needed to train: 55 MB less resident.
  sets.source = nil
  collectgarbage()
  util.progress("train %d, validation %d, hard %d (conflicting %d); %d threads, %s GEMM",
    sets.train.n, sets.val.n, sets.hard.n, sets.hard.conflicting:sum():item(),
    lab.get_threads(), lab.gemm_backend())

  local result = lab.train.fit{
    method = method, data = sets, epochs = opts.epochs, batch = opts.batch, lr = opts.lr,
    optimizer = opts.optimizer, seed = opts.seed, out = opts.out, resume = opts.resume,
    progress = opts.progress, data_signature = sets.signature,
  }
  if result.interrupted then os.exit(130) end
  -- MPI (issue 12): the ranks trained together (identical models); rank 0 alone evaluates,
  -- prints and writes the outputs.
  if lab.mpi.rank() > 0 then return end
  local model = result.model

  util.progress("evaluating")
  local ev = {train = metrics.evaluate(model, sets.train), val = metrics.evaluate(model, sets.val),
    hard = metrics.evaluate(model, sets.hard)}

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

  -- How often the prediction is the digit the colour belongs to: the shortcut, measured.
  local follows_colour = ev.hard.preds:eq(sets.hard.colors):sum():item() / sets.hard.n * 100
  print(("\nOn the hard set the prediction equals the colour's class for %.1f%% of digits.")
    :format(follows_colour))

  -- A hard digit painted in another class's colour: what did the model answer?
  local names = lab.data.PALETTE_NAMES
  local preds, confs = ev.hard.preds, ev.hard.confidences
  local example
  for i = 0, sets.hard.n - 1 do
    local y, c = sets.hard.labels:get(i), sets.hard.colors:get(i)
    if y == 1 and c == 0 then example = i break end
  end
  if not example then
    for i = 0, sets.hard.n - 1 do
      if sets.hard.conflicting:get(i) == 1 then example = i break end
    end
  end
  util.mkdir_p(opts.out)
  local ex = {}
  if example then
    ex = {index = sets.hard.index:get(example), label = sets.hard.labels:get(example),
      color = sets.hard.colors:get(example), pred = preds:get(example),
      confidence = 100 * confs:get(example)}
    print(("Example: hard-set digit #%d is a %d painted %s (the colour of %d); the model says %d "
      .. "with %.1f%% confidence."):format(ex.index, ex.label, names[ex.color + 1], ex.color,
      ex.pred, ex.confidence))
    local img = sets.hard.images:narrow(0, example, 1)
    lab.write_png(opts.out .. "/example.png", lab.image_grid(img, {ncol = 1, scale = 8, pad = 0}))
  end

  svg.save(opts.out .. "/confusion.svg", metrics.confusion_svg(ev.hard.confusion,
    ("Hard set: hard accuracy %.1f%% — predictions follow colour"):format(ev.hard.acc)))
  local xs, loss, tacc, vacc = {}, {}, {}, {}
  for i, h in ipairs(result.history) do
    xs[i], loss[i], tacc[i], vacc[i] = h.epoch, h.loss, h.train_acc, h.val_acc
  end
  svg.save(opts.out .. "/curve.svg", svg.lines{title = "Training curve",
    xlabel = "epoch", ylabel = "accuracy (%) / loss × 100", markers = true,
    series = {{name = "train accuracy (running)", x = xs, y = tacc},
      {name = "validation accuracy", x = xs, y = vacc},
      {name = "loss × 100", x = xs, y = (function()
        local t = {}
        for i, v in ipairs(loss) do t[i] = v * 100 end
        return t
      end)(), dashed = true}}})

  local m = {
    train_acc = ev.train.acc, val_acc = ev.val.acc, hard_acc = ev.hard.acc,
    hard_conflicting_acc = ev.hard.conflicting_acc, hard_aligned_acc = ev.hard.aligned_acc,
    hard_follows_colour = follows_colour, epochs = opts.epochs, batch = opts.batch, lr = opts.lr,
    optimizer = opts.optimizer, method = method.name, seed = opts.seed, rho = opts.rho,
    beta = opts.beta, quick = opts.quick, data = opts.data, threads = lab.get_threads(),
    seconds = result.seconds, train_seconds_per_epoch = result.seconds / opts.epochs,
    total_seconds = lab.now() - t0, n_train = sets.train.n, n_val = sets.val.n,
    n_hard = sets.hard.n, peak_core_mb = lab.memory().peak / 2^20,
  }
  study.flatten("hard_acc_by_color", ev.hard.by_color, m)
  study.flatten("hard_acc_by_label", ev.hard.by_label, m)
  study.flatten("hard_confusion", ev.hard.confusion, m)
  for i, h in ipairs(result.history) do
    m["epoch" .. i .. "_loss"], m["epoch" .. i .. "_train_acc"] = h.loss, h.train_acc
    m["epoch" .. i .. "_val_acc"], m["epoch" .. i .. "_seconds"] = h.val_acc, h.seconds
  end
  for k, v in pairs(ex) do m["example_" .. k] = v end
  study.write_metrics(opts.out, m)
  util.progress("wrote %s/{metrics.json, confusion.svg, curve.svg, model.safetensors, example.png}",
    opts.out)
end)
if not ok then
  io.stderr:write("task1_train: ", tostring(err), "\n")
  os.exit(1)
end
