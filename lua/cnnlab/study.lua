--- cnnlab.study — what every task script shares: its command-line options, the coloured
-- sets (one cache), training and evaluating a method, picking and loading a trained model,
-- writing flat metrics, and the small argument helpers (comma lists, target classes,
-- evaluation mode with frozen parameters).
--
--   local opts = util.parse_args(arg, {name = ..., options = study.options({"out", ...})})
--   local sets = study.load_data(opts)        -- {train, val, hard, ...} per SPEC §2
--   local run = study.train_and_evaluate(opts, method, sets, {evaluate = {"val", "hard"}})
--   study.write_metrics(opts.out, study.accuracies(run.ev, {hard = {"acc"}}))
--   local model = study.load_model(opts.model)
local core = require "cnnlab.core"
local util = require "cnnlab.util"
local data = require "cnnlab.data"
local models = require "cnnlab.models"
local datasets = require "cnnlab.datasets"
local defaults = require "cnnlab.defaults"

local study = {}

--- Options more than one script takes, with their usual default and help: a script names
-- one in study.options' list as "name" (this default) or {"name", default} (its own default).
study.COMMON = {
  out = {"out", "runs", "output folder"},
  model = {"model", "runs/task1/model.safetensors",
    "trained seed network (Task 1; with --quick, runs/quick/task1/model.safetensors when it "
    .. "exists: the quick demo's)"},
  epochs = {"epochs", defaults.study.epochs, "passes over the training set"},
  batch = {"batch", defaults.study.batch, "mini-batch size"},
  lr = {"lr", defaults.study.lr, "learning rate"},
  optimizer = {"optimizer", defaults.study.optimizer, "adam, adamw or sgd"},
  method = {"method", "erm", "debias method: a name in lua/cnnlab/debias/ or a .lua file"},
  method_opt = {"method_opt", {}, "key=value setting for the method"},
  arch = {"arch", "seed_cnn", "network: a name in lua/cnnlab/models/ or a .lua file"},
  arch_opt = {"arch_opt", {}, "key=value setting of the network (repeatable or comma list)"},
  generated_n = {"generated_n", 3000, "digits generated with --data generated"},
  resume = {"resume", false, "continue an interrupted run from its checkpoint"},
  progress = {"progress", true, "show progress"},
}

--- The options every task understands (seed, data, quick, threads...), followed by the
-- task's own: full entries {name, default, help}, or names of study.COMMON entries whose
-- default or help the entry may replace ("out", {"out", "runs/task1"}, {"batch", nil, help}). settings.without lists common options the task does not take.
function study.options(extra, settings)
  local list = {
    {"seed", defaults.study.seed, "seed of the data set and of training"},
    {"rho", 1.0, "share of easy-set digits painted in their class colour"},
    {"beta", 0.25, "background noise level"},
    {"dataset", "colored_mnist", "data set: a name in lua/cnnlab/datasets/ or a .lua file"},
    {"dataset_opt", {}, "key=value setting of the data set (repeatable or comma list)"},
    {"data", "mnist", "mnist, or generated (synthetic digits, no download; for tests)"},
    {"data_dir", "", "folder with the MNIST IDX files (default data/mnist)"},
    {"quick", false, "a small subset of every set, for a first look"},
    {"threads", 0, "threads for the C kernels (0: all cores)"},
  }
  for _, name in ipairs(settings and settings.without or {}) do
    local found
    for i, o in ipairs(list) do if o[1] == name then found = i end end
    if not found then
      error(("study.options: without names '%s', which is not a common option"):format(name), 2)
    end
    table.remove(list, found)
  end
  for i, o in ipairs(extra or {}) do
    if type(o) == "string" then o = {o} end
    if o[2] == nil or o[3] == nil then
      local common = study.COMMON[o[1]]
      if not common then
        error(("study.options: entry %d names '%s', which is not in study.COMMON; give "
          .. "{name, default, help}"):format(i, tostring(o[1])), 2)
      end
      local default = common[2]
      if o[2] ~= nil then default = o[2] end
      o = {o[1], default, o[3] or common[3]}
      if o[1] == "model" and o[2] == study.COMMON.model[2] then o.resolve = study.quick_model end
    end
    list[#list + 1] = o
  end
  return list
end

--- Sizes of the quick subsets (train, val, hard).
study.QUICK = {train = 6000, val = 2000, hard = 2000}

--- study.subset(set, n) → set: the first n samples of a set (the set itself when n ≥ its size).
local function subset(set, n)
  if not set or n >= set.n then return set end
  local s = {name = set.name, n = n}
  for _, key in ipairs({"images", "labels", "colors", "index", "conflicting"}) do
    if set[key] then s[key] = set[key]:narrow(0, 0, n) end
  end
  s.bias = s.colors -- the same tensor under its two names (no second view)
  s.source_images = set.source_images
  return s
end
study.subset = subset -- the first n samples of a set (the set itself when n ≥ its size)

--- Was --name given on the script's command line (the global arg)?
local function on_command_line(name)
  for _, a in ipairs(type(arg) == "table" and arg or {}) do
    if a == "--" .. name or a:sub(1, #name + 3) == "--" .. name .. "=" then return true end
  end
  return false
end

--- study.load_option(flag, value, load, ...) → load(...): Loads a plug-in a command-line option
-- names; a failure becomes "FLAG VALUE: message" without the position inside the registry,
-- since the user's mistake is on the command line, not in the library.
function study.load_option(flag, value, load, ...)
  local ok, r = pcall(load, ...)
  if not ok then
    error(("%s %s: %s"):format(flag, value, (tostring(r):gsub("^[^\n]-%.lua:%d+: ", ""))), 0)
  end
  return r
end

--- The debias method opts choose (--method, --method-opt), loaded with its options.
function study.method(opts)
  local debias = require "cnnlab.debias"
  return study.load_option("--method", tostring(opts.method), function()
    return debias.load(opts.method, debias.parse_options(opts.method_opt))
  end)
end

--- The data set opts choose (--dataset, --dataset-opt), loaded with its options: an option
-- rho or beta of the data set takes --rho / --beta unless --dataset-opt sets it, when that
-- was given on the command line or differs from the option's usual default (1.0, 0.25; a
-- rho sweep): so biased_mnist keeps its own rho 0.99 unless --rho says otherwise.
function study.dataset(opts)
  local name = opts.dataset or datasets.DEFAULT
  local t = study.load_option("--dataset", name, datasets.load, name).module
  local overrides = models.parse_options(opts.dataset_opt, "--dataset-opt")
  local usual = {rho = 1.0, beta = 0.25}
  for _, k in ipairs({"rho", "beta"}) do
    if overrides[k] == nil and opts[k] ~= nil and t.options and t.options[k] ~= nil
      and (opts[k] ~= usual[k] or t.options[k] == usual[k] or on_command_line(k)) then
      overrides[k] = opts[k]
    end
  end
  return datasets.load(name, overrides)
end

--- The network opts choose (--arch, --arch-opt), loaded with its options (cnnlab.models).
function study.arch(opts)
  local name = opts.arch or models.DEFAULT
  return study.load_option("--arch", name, function()
    return models.load(name, models.parse_options(opts.arch_opt, "--arch-opt"))
  end)
end

--- study.record_arch(m, arch) → m: Writes the network into a run's metrics table — m.arch (its
-- name or path) and m.arch_options (JSON) — unless it is the default seed network, whose
-- metrics stay as they were. arch from study.arch.
function study.record_arch(m, arch)
  if arch and not arch.is_default then
    m.arch, m.arch_options = arch.source, models.options_text(arch.options)
  end
  return m
end

--- The grey source digits of opts (--data mnist|generated, --data-dir).
function study.digits(opts)
  if opts.data == "generated" then
    return data.generated{n = opts.generated_n or study.COMMON.generated_n[2], seed = opts.seed}
  elseif opts.data == "mnist" or opts.data == nil then
    return data.mnist(opts.data_dir ~= "" and opts.data_dir or nil)
  end
  error(("--data must be mnist or generated, got '%s'"):format(tostring(opts.data)), 0)
end

--- Builds the sets described by opts (dataset, dataset_opt, seed, rho, beta, data, data_dir,
-- quick): {train, val, hard, hard_conflicting, signature, source, input_shape, classes,
-- dataset}.
function study.load_data(opts)
  if opts.threads and opts.threads > 0 then core.set_threads(opts.threads) end
  local ds = study.dataset(opts)
  local source
  local ctx = {seed = opts.seed, data = opts.data or "mnist", data_dir = opts.data_dir,
    generated_n = opts.generated_n or study.COMMON.generated_n[2],
    digits = function()
      source = source or study.digits(opts)
      return source
    end}
  local sets = datasets.build(ds, ctx)
  if opts.quick then
    for _, name in ipairs({"train", "val", "hard"}) do
      sets[name] = subset(sets[name], study.QUICK[name])
    end
    sets.hard_conflicting = sets.hard.conflicting
  end
  sets.signature = {data = opts.data, seed = opts.seed, rho = opts.rho, beta = opts.beta,
    quick = opts.quick or false}
  if not ds.is_default then
    sets.signature.dataset = ds.spec
    sets.signature.dataset_options = models.options_text(ds.options)
  end
  -- the grey digits behind the sets (set.index points into source.train / source.test)
  sets.source = source
  return sets
end

--- --model's default for a --quick run that did not name one: the quick demo's model
-- (runs/quick/task1/model.safetensors) when it exists; nil keeps runs/task1's.
function study.quick_model(args)
  local quick = "runs/quick/task1/model.safetensors"
  if args.quick and util.exists(quick) then return quick end
end

--- The model.safetensors files under folder root (default runs), sorted, at most depth 4 down.
function study.find_models(root, depth)
  root, depth = root or "runs", depth or 4
  local found = {}
  local function walk(dir, d)
    local names = core.listdir(dir)
    if not names then return end
    for _, name in ipairs(names) do
      local path = dir .. "/" .. name
      if name == "model.safetensors" then found[#found + 1] = path
      elseif d > 0 and not name:find("%.") then walk(path, d - 1) end
    end
  end
  walk(root, depth)
  table.sort(found)
  return found
end

--- The grey digits behind the first n samples of a set (stroke masks): the set's
-- source_images at its index, or the mean of its channels when it has none.
function study.grey_digits(set, n)
  n = n or set.n
  local index = set.index:narrow(0, 0, n)
  if set.source_images then return set.source_images:index_select(0, index) end
  return set.images:narrow(0, 0, n):float():mean(1):byte()
end

-- A training checkpoint holds its network as model.* beside optim.* (and method state): the
-- network's own state dict, or nil for a plain model file.
local function checkpoint_model(tensors)
  local network, is_checkpoint = {}, false
  for name, t in pairs(tensors) do
    local rest = name:match("^model%.(.+)$")
    if rest then network[rest] = t end
    if name:match("^optim%.") then is_checkpoint = true end
  end
  return is_checkpoint and next(network) and network or nil
end

--- Loads a trained model: a model.safetensors, or the model inside a training checkpoint
-- (checkpoint.safetensors, whose tensors are model.*, optim.*...); the architecture its file
-- records (cnnlab.models.metadata; a file without a record is the seed network), its weights,
-- evaluation mode. A missing file gets advice on how to make one and the list of the models
-- that exist under runs/.
function study.load_model(path, opts)
  if type(path) ~= "string" or path == "" then
    error(("study.load_model: a path to a model.safetensors expected, got %s"):format(
      type(path)), 2)
  end
  if not util.exists(path) then
    local have = study.find_models("runs")
    error(("no trained model at %s — train one first with:\n  ./cnnlab scripts/task1_train.lua"
      .. " (writes runs/task1/model.safetensors), or pass --model PATH%s"):format(path,
      #have > 0 and ("\nmodels under runs/:\n  " .. table.concat(have, "\n  "))
      or "\n(there is no model under runs/ yet)"), 0)
  end
  local tensors, meta = core.load_safetensors(path)
  tensors = checkpoint_model(tensors) or tensors
  local arch, shape, classes = models.from_metadata(meta)
  local net = arch.build(shape, classes, opts or {})
  net:load_state_dict(tensors)
  net:eval()
  return net
end

--- Writes metrics.json into out (flat keys, numbers as numbers) and returns the path.
function study.write_metrics(out, values)
  util.mkdir_p(out)
  local path = out .. "/metrics.json"
  util.write_json(path, values)
  return path
end

--- Flattens nested tables into "a.b" / "a.1" keys, so metrics.json stays flat (SPEC §5).
function study.flatten(prefix, value, out)
  out = out or {}
  if type(value) ~= "table" then
    out[prefix] = value
    return out
  end
  local is_list = #value > 0
  for k, v in pairs(value) do
    local key = is_list and tostring(k - 1) or tostring(k)
    study.flatten(prefix == "" and key or prefix .. "_" .. key, v, out)
  end
  return out
end

-- ------------------------------------------------------------------ data: one cache

--- A cache of one data set at a time (the full sets take ~170 MB): cache:get(seed, rho)
-- builds the sets of base (study.load_data's options) at that seed and rho, or returns the
-- ones it holds when they match. With base.data == "generated" the signature also records
-- generated_n, so a checkpoint is not resumed on other generated digits.
--   local cache = study.data_cache(opts, {progress = true})
--   local sets = cache:get(2, 0.99); cache:clear()
function study.data_cache(base, settings)
  local say = settings and settings.progress
  local cache = {loads = 0}
  local ds, ds_key
  function cache.get(self, seed, rho)
    seed, rho = seed or base.seed, rho or base.rho
    if not ds then -- resolved on first use, so that a wrong --dataset is a run's error
      ds = study.dataset(base)
      ds_key = ds.is_default and "" or (ds.spec .. models.options_text(ds.options) .. "/")
    end
    if rho ~= base.rho and (ds.module.options or {}).rho == nil then
      error(("data set %s has no rho option, so it cannot be built at rho %s"):format(ds.name,
        study.format_rho(rho)), 0)
    end
    local key = ("%s%s/%s"):format(ds_key, seed, rho)
    if self.key == key then return self.sets end
    self:clear()
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    o.seed, o.rho = seed, rho
    if say and not ds.is_default then
      util.progress("building data set %s %s (seed %d%s%s)", ds.name,
        models.options_text(ds.options), seed, o.quick and ", quick subset" or "",
        o.data == "generated" and ", generated digits" or "")
    elseif say then
      util.progress("building Colored MNIST (seed %d, rho %s, beta %g%s%s)", seed,
        study.format_rho(rho), o.beta, o.quick and ", quick subset" or "",
        o.data == "generated" and ", generated digits" or "")
    end
    self.sets = study.load_data(o)
    if o.data == "generated" then self.sets.signature.generated_n = o.generated_n end
    self.key, self.loads = key, self.loads + 1
    return self.sets
  end
  function cache.clear(self)
    self.sets, self.key = nil, nil
    collectgarbage()
  end
  return cache
end

--- rho as the study writes it: 1 → "1.0", 0.995 → "0.995" (four decimals at most).
function study.format_rho(r)
  return (("%.4f"):format(r):gsub("0+$", ""):gsub("%.$", ".0"))
end

-- ------------------------------------------------------------------ training

--- train.fit's arguments for a study run: the script's options (epochs, batch, lr, optimizer,
-- seed, progress) plus the study's optimiser settings (SGD momentum, cnnlab.defaults.study),
-- given explicitly so that no library default decides the study's numbers. epochs 0 or nil
-- leaves the method's own. extra (out, resume, comm, seed, epochs...) is added last.
function study.fit_options(opts, method, sets, extra)
  local epochs = opts.epochs
  if epochs == 0 then epochs = nil end
  local o = {method = method, data = sets, epochs = epochs, batch = opts.batch, lr = opts.lr,
    optimizer = opts.optimizer, seed = opts.seed, progress = opts.progress,
    data_signature = sets and sets.signature}
  -- the network (--arch) for every model the method builds, on the data set's image shape
  local arch = study.arch(opts)
  local shape, classes = sets and sets.input_shape, sets and sets.classes
  o.model_factory = function(b) return arch.build(shape, classes, b) end
  o.model_metadata = models.metadata(arch, shape, classes)
  for k, v in pairs(defaults.study_optimizer(opts.optimizer or defaults.study.optimizer)) do
    o[k] = v
  end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

--- Trains method on sets (study.fit_options(opts, method, sets, extra)) and, unless the run
-- was interrupted, evaluates the model on the sets named in extra.evaluate (default train,
-- val, hard). Returns {fit = train.fit's result, model, ev = {name = metrics.evaluate(...)},
-- interrupted}.
function study.train_and_evaluate(opts, method, sets, extra)
  local train = require "cnnlab.train"
  local metrics = require "cnnlab.metrics"
  extra = extra or {}
  local which = extra.evaluate or {"train", "val", "hard"}
  local fit_extra = {}
  for k, v in pairs(extra) do if k ~= "evaluate" then fit_extra[k] = v end end
  local debias = require "cnnlab.debias"
  local root = (fit_extra.comm or require("cnnlab.mpi").world).rank() == 0
  if opts.progress ~= false and root then
    util.progress("method %s", debias.describe(method))
  end
  local fit = train.fit(study.fit_options(opts, method, sets, fit_extra))
  local run = {fit = fit, model = fit.model, ev = {}, interrupted = fit.interrupted,
    method = method.name, method_options = debias.options_of(method)}
  if fit.interrupted then return run end
  if (fit_extra.comm or require("cnnlab.mpi").world).rank() > 0 then return run end
  for _, name in ipairs(which) do
    if not sets[name] then
      error(("study.train_and_evaluate: evaluate names set '%s', which sets has not"):format(name), 2)
    end
    run.ev[name] = metrics.evaluate(fit.model, sets[name])
  end
  return run
end

--- Flat accuracy metrics of evaluations: which = {set = {"acc", "conflicting_acc", ...}}
-- gives keys set_acc, set_conflicting_acc... (the names metrics.evaluate uses).
function study.accuracies(ev, which, out)
  out = out or {}
  for set, keys in pairs(which) do
    local e = ev[set]
    if not e then
      error(("study.accuracies: no evaluation of set '%s' (have: %s)"):format(set,
        table.concat((function()
          local t = {}
          for k in pairs(ev) do t[#t + 1] = k end
          table.sort(t)
          return t
        end)(), ", ")), 2)
    end
    for _, k in ipairs(keys) do out[set .. "_" .. k] = e[k] end
  end
  return out
end

--- Percentage of a set's digits whose prediction is the class of the digit's colour: the
-- colour shortcut, measured.
function study.follows_colour(e, set)
  if not set.colors then return 0 / 0 end -- a data set without a bias attribute
  return 100 * e.preds:eq(set.colors):sum():item() / set.n
end

-- ------------------------------------------------------------------ models

--- The best model of a folder of method runs (Task 4's): among the keys
-- <label>_<key>_mean of dir/metrics.json (key: default "hard_acc"), the highest whose
-- dir/<label>/model.safetensors exists; labels in opts.exclude are skipped; ties go to the
-- label first in alphabetical order. Returns {path, method, value} or nil and why.
function study.best_model(dir, opts)
  opts = opts or {}
  local key = opts.key or "hard_acc"
  local exclude = {}
  for _, l in ipairs(opts.exclude or {}) do exclude[l] = true end
  local mpath = dir .. "/metrics.json"
  if not util.exists(mpath) then return nil, "there is no " .. mpath end
  local mm = util.json_decode(util.read_file(mpath))
  local best, best_value
  local pattern = "^(.-)_" .. key:gsub("%p", "%%%0") .. "_mean$"
  for k, v in pairs(mm) do
    local label = k:match(pattern)
    if label and not exclude[label] and type(v) == "number"
      and util.exists(dir .. "/" .. label .. "/model.safetensors")
      and (not best_value or v > best_value or (v == best_value and label < best)) then
      best, best_value = label, v
    end
  end
  if not best then return nil, ("no model with a %s in %s"):format(key, mpath) end
  return {path = dir .. "/" .. best .. "/model.safetensors", method = best, value = best_value}
end

--- study.frozen(model, fn, {grad = false}): fn(model) in evaluation mode with frozen
-- parameters, everything restored afterwards — nn.frozen, here for the scripts.
study.frozen = require("cnnlab.nn").frozen

-- ------------------------------------------------------------------ arguments
-- Comma lists and target classes live in cnnlab.cli; the scripts know them as study's.
local cli = require "cnnlab.cli"
study.split, study.list, study.number_in = cli.split, cli.list, cli.number_in
study.integer, study.classes = cli.integer, cli.classes

--- Runs main() and turns an error into "name: message" on stderr and exit status 1 (the
-- message alone, no traceback: errors here are the user's to fix).
-- Before main runs, the output folder (--out of the arguments util.parse_args read last) is
-- checked to be writable, and stale temporaries a killed run left in it (and its direct
-- subfolders) are swept; when main fails, the folders this run made and left empty are removed.
function study.main(name, main)
  local args = util.last_args
  local out = args and type(args.out) == "string" and args.out ~= "" and args.out or nil
  local made = out and util.missing_folders(out) or {}
  if out then
    local writable, why = util.check_writable(out)
    if not writable then
      io.stderr:write(name, ": ", why, "\n")
      os.exit(1)
    end
    if #made == 0 then
      util.sweep_temporaries(out)
      for _, sub in ipairs(core.listdir(out) or {}) do
        if core.listdir(out .. "/" .. sub) then util.sweep_temporaries(out .. "/" .. sub) end
      end
    end
  end
  local ok, err = pcall(main)
  if not ok then
    util.remove_if_empty(made)
    io.stderr:write(name, ": ", tostring(err), "\n")
    os.exit(1)
  end
end

return study
