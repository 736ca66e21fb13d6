--- cnnlab.study — what every task script shares: the data options, loading the coloured
-- sets (full, quick subset, or generated digits for tests), loading a trained model with
-- advice when it is missing, and writing outputs.
--
--   local opts = util.parse_args(arg, {name = ..., options = study.options({...})})
--   local sets = study.load_data(opts)        -- {train, val, hard, ...} per SPEC §2
--   local model = study.load_model(opts.model)
local core = require "cnnlab.core"
local util = require "cnnlab.util"
local data = require "cnnlab.data"
local models = require "cnnlab.models"

local study = {}

--- The options every task understands, followed by the task's own.
function study.options(extra)
  local list = {
    {"seed", 1, "seed of the data set and of training"},
    {"rho", 1.0, "share of easy-set digits painted in their class colour"},
    {"beta", 0.25, "background noise level"},
    {"data", "mnist", "mnist, or generated (synthetic digits, no download; for tests)"},
    {"data_dir", "", "folder with the MNIST IDX files (default data/mnist)"},
    {"quick", false, "a small subset of every set, for a first look"},
    {"threads", 0, "threads for the C kernels (0: all cores)"},
  }
  for _, o in ipairs(extra or {}) do list[#list + 1] = o end
  return list
end

--- Sizes of the quick subsets (train, val, hard).
study.QUICK = {train = 6000, val = 2000, hard = 2000}

local function subset(set, n)
  if not set or n >= set.n then return set end
  local s = {name = set.name, n = n}
  for _, key in ipairs({"images", "labels", "colors", "index", "conflicting"}) do
    if set[key] then s[key] = set[key]:narrow(0, 0, n) end
  end
  return s
end

--- Builds the coloured sets described by opts (seed, rho, beta, data, data_dir, quick).
function study.load_data(opts)
  if opts.threads and opts.threads > 0 then core.set_threads(opts.threads) end
  local source
  if opts.data == "generated" then
    source = data.generated{n = opts.generated_n or 3000, seed = opts.seed}
  elseif opts.data == "mnist" then
    source = data.mnist(opts.data_dir ~= "" and opts.data_dir or nil)
  else
    error(("--data must be mnist or generated, got '%s'"):format(tostring(opts.data)), 0)
  end
  local sets = data.colored_mnist{seed = opts.seed, rho = opts.rho, beta = opts.beta,
    source = source}
  if opts.quick then
    for _, name in ipairs({"train", "val", "hard"}) do
      sets[name] = subset(sets[name], study.QUICK[name])
    end
    sets.hard_conflicting = sets.hard.conflicting
  end
  sets.signature = {data = opts.data, seed = opts.seed, rho = opts.rho, beta = opts.beta,
    quick = opts.quick or false}
  -- the grey digits behind the sets (set.index points into source.train / source.test)
  sets.source = source
  return sets
end

--- Loads a seed-network checkpoint; a missing file gets advice on how to make it.
function study.load_model(path, opts)
  if not util.exists(path) then
    error(("no trained model at %s — train one first with:\n  ./cnnlab scripts/task1_train.lua"
      .. " (writes runs/task1/model.safetensors), or pass --model PATH"):format(path), 0)
  end
  local tensors = core.load_safetensors(path)
  local net = models.seed_cnn(opts)
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

return study
