--- Task 0: real MNIST, Colored MNIST and pictures of it.
--
--   cnnlab scripts/task0_data.lua [--seed 1] [--rho 1] [--beta 0.25] [--out runs/task0]
--                                 [--dir data/mnist] [--synthetic N]
--                                 [--dataset NAME|file.lua --dataset-opt key=value]
--
-- Builds the easy (train/val) and hard sets of SPEC §2 and writes into --out:
--   easy_grid.png, hard_grid.png      ten samples of each class, a row per class (label 0 on top)
--   palette.png                       the ten colours of SPEC §2, class 0 on the left
--   colors_train.svg, colors_val.svg, colors_hard.svg   colour-versus-label counts
--   metrics.json                      set sizes, measured aligned fraction per set (percent),
--                                     conflicting counts, build time
--   easy_val.safetensors, hard.safetensors   the sets as SPEC §4 says (images, labels,
--                                     colors, index); the hard export is read back and
--                                     compared byte for byte with the set in memory
-- --synthetic N uses N generated seven-segment digits instead of MNIST (for tests and
-- machines without the data set). --dataset builds another data set of the registry
-- (docs/data.md §5) from the same digits; its splits are drawn and exported the same way
-- (the bias as `colors`; val is the evaluation split for sets without a validation split).
local lab = require "cnnlab"
local data = require "cnnlab.data"
local svg = require "cnnlab.svg"
local util = require "cnnlab.util"

local opts = util.parse_args(arg, {
  name = "task0_data", script = "scripts/task0_data.lua",
  description = "Task 0: build Colored MNIST, draw it, export it.",
  options = {
    -- the study's one default seed, so that the data exported here is what the tasks train on
    {"seed", require("cnnlab.defaults").study.seed, "random seed of the split, colours and noise"},
    {"rho", 1.0, "probability that a training digit has its class's colour"},
    {"beta", 0.25, "background noise level (u ~ U[0, beta])"},
    {"out", "runs/task0", "output folder"},
    {"dir", "data/mnist", "folder of the four MNIST IDX files (raw or .gz)"},
    {"synthetic", 0, "use N generated digits instead of MNIST (0: MNIST)"},
    {"dataset", "colored_mnist", "data set: a name in lua/cnnlab/datasets/ or a .lua file"},
    {"dataset_opt", {}, "key=value setting of the data set (repeatable or comma list)"},
    -- Accepted so that every task script answers the demo's common flags; building the full
    -- set takes well under a second, so a quick run builds it all the same.
    {"quick", false, "accepted for the demo; Task 0 always builds the full sets (< 1 s)"},
    {"threads", 0, "threads for the C kernels (0: all cores)"},
    {"export_train", false, "also export the training split (train.safetensors), for another framework"},
  },
})
if opts.threads > 0 then lab.set_threads(opts.threads) end

util.mkdir_p(opts.out)
local function out(name) return opts.out .. "/" .. name end

util.progress("task0: seed %d, rho %g, beta %g -> %s", opts.seed, opts.rho, opts.beta, opts.out)
local t0 = lab.now()
local source
if opts.synthetic > 0 then
  source = data.generated{n = opts.synthetic, seed = opts.seed}
  util.progress("generated %d synthetic training and %d test digits", source.train.labels:numel(),
    source.test.labels:numel())
else
  local ok, got = pcall(data.mnist, opts.dir)
  if not ok then -- a missing or bad file is the user's to fix: the message, no traceback
    io.stderr:write("task0_data: ", tostring(got), "\n")
    os.exit(1)
  end
  source = got
  util.progress("read MNIST from %s in %.2f s", source.dir, lab.now() - t0)
end

local t1 = lab.now()
local study = require "cnnlab.study"
local datasets = require "cnnlab.datasets"
local ok_ds, ds = pcall(study.dataset, opts)
if not ok_ds then io.stderr:write("task0_data: ", tostring(ds), "\n") os.exit(1) end
local cm
if ds.is_default then
  cm = data.colored_mnist{seed = opts.seed, rho = opts.rho, beta = opts.beta, source = source}
else
  local ok, got = pcall(datasets.build, ds, {seed = opts.seed, data = opts.synthetic > 0
    and "generated" or "mnist", digits = function() return source end})
  if not ok then io.stderr:write("task0_data: ", tostring(got), "\n") os.exit(1) end
  cm = got
  util.progress("data set %s %s", ds.name, lab.models.options_text(ds.options))
end
local build_seconds = lab.now() - t1
util.progress("built train %d, val %d, hard %d coloured images in %.2f s", cm.train.n, cm.val.n,
  cm.hard.n, build_seconds)

-- ---------------------------------------------------------------- pictures

-- Positions of the first `per` samples of each class, class 0 first.
local function per_class(set, per)
  local ys = set.labels:totable()
  local picked, count = {}, {}
  for k = 0, 9 do picked[k], count[k] = {}, 0 end
  for i, y in ipairs(ys) do
    if count[y] < per then
      count[y] = count[y] + 1
      picked[y][count[y]] = i - 1
    end
  end
  local idx = {}
  for k = 0, 9 do
    for j = 1, per do idx[#idx + 1] = picked[k][j] or picked[k][1] or 0 end
  end
  return lab.tensor(idx, {dtype = "int64"})
end

local function grid_png(set, name)
  local idx = per_class(set, 10)
  local grid = lab.image_grid(set.images:index_select(0, idx), {ncol = 10, pad = 2, scale = 2,
                                                                pad_value = 255})
  lab.write_png(out(name), grid)
  util.progress("wrote %s (%s)", out(name), table.concat(grid.shape, "×"))
end
grid_png(cm.train, "easy_grid.png")
grid_png(cm.hard, "hard_grid.png")

local palette = ds.is_default and data.PALETTE or ds.module.palette_rgb
local palette_names = ds.is_default and data.PALETTE_NAMES or ds.module.palette_names or {}
local swatches = palette and lab.zeros({10, 3, 16, 16}, {dtype = "uint8"})
for k = 0, palette and 9 or -1 do
  for c = 0, 2 do
    swatches:narrow(0, k, 1):narrow(1, c, 1):fill_(255 * palette[k + 1][c + 1])
  end
end
if palette then
  lab.write_png(out("palette.png"), lab.image_grid(swatches, {ncol = 10, pad = 2, scale = 2,
                                                               pad_value = 128}))
end

local names = {}
for k = 1, 10 do names[k] = string.format("%d %s", k - 1, palette_names[k] or "") end
local short = {}
for k = 1, 10 do short[k] = tostring(k - 1) end
for _, which in ipairs({"train", "val", "hard"}) do
  local set = cm[which]
  local counts = data.color_label_counts(set)
  local doc = svg.heatmap{values = counts, row_labels = short, col_labels = short,
    title = string.format("%s set: colour versus label (n = %d)", which, set.n),
    xlabel = "colour index (" .. table.concat(palette_names, ", ") .. ")",
    ylabel = "label (digit)", cell = 40, vmin = 0}
  svg.save(out("colors_" .. which .. ".svg"), doc)
end
util.progress("wrote colour-versus-label charts colors_{train,val,hard}.svg")

-- ---------------------------------------------------------------- metrics and exports

local metrics = {
  seed = opts.seed, rho = opts.rho, beta = opts.beta,
  source = opts.synthetic > 0 and "synthetic" or "mnist",
  train_n = cm.train.n, val_n = cm.val.n, hard_n = cm.hard.n,
  train_aligned_pct = 100 * data.aligned_fraction(cm.train),
  val_aligned_pct = 100 * data.aligned_fraction(cm.val),
  hard_aligned_pct = 100 * data.aligned_fraction(cm.hard),
  train_conflicting_n = cm.train.conflicting:sum():item(),
  val_conflicting_n = cm.val.conflicting:sum():item(),
  hard_conflicting_n = cm.hard_conflicting:sum():item(),
  build_seconds = build_seconds,
}
if not ds.is_default then
  metrics.dataset, metrics.dataset_options = ds.spec, lab.models.options_text(ds.options)
end

local meta = {seed = opts.seed, rho = opts.rho, beta = opts.beta}
data.export(cm.val, out("easy_val.safetensors"), {metadata = meta})
data.export(cm.hard, out("hard.safetensors"), {metadata = meta})
util.progress("exported easy_val.safetensors and hard.safetensors")
if opts.export_train then
  data.export(cm.train, out("train.safetensors"), {metadata = meta})
  util.progress("exported train.safetensors (%d images)", cm.train.n)
end

-- The hard export must reproduce the set exactly.
local back = data.load_export(out("hard.safetensors"))
local same = true
for _, name in ipairs({"images", "labels", "colors", "index"}) do
  local a, b = cm.hard[name], back[name]
  if a:type() ~= b:type() or table.concat(a.shape, "x") ~= table.concat(b.shape, "x")
    or a:eq(b):sum():item() ~= a:numel() then
    same = false
    io.stderr:write("task0: reloaded hard." .. name .. " differs from the set in memory\n")
  end
end
metrics.hard_export_identical = same
util.write_json(out("metrics.json"), metrics)
util.progress("aligned: train %.2f%%, val %.2f%%, hard %.2f%%; hard export identical: %s",
  metrics.train_aligned_pct, metrics.val_aligned_pct, metrics.hard_aligned_pct, tostring(same))
util.progress("done: %s", opts.out)
if not same then os.exit(1) end
