--- cnnlab.debias — finds and instantiates debias methods by name or file path.
--
-- A method is a Lua file returning a table (see docs/debias.md):
--   name, description, options = {key = default, ...}, epochs (optional default: a number,
--   or a function(options) → number for methods whose length depends on their options),
--   build_model(ctx) → model          loss(ctx, batch) → loss[, logits]
--   setup(ctx), begin_epoch(ctx, e), end_epoch(ctx, e, record), before_step(ctx, batch)
--   begin_step(ctx, batch), epoch_positions(ctx, epoch, order) → the epoch's positions
--   state_dict(ctx) → tensors, meta   load_state_dict(ctx, tensors, meta)     (all optional)
-- begin_step is called once per optimiser step, after ctx.optimizer:zero_grad() and before
-- any loss call, with the whole batch (under MPI: the rank's share). With
-- train.fit{micro_batches = K > 1} (ctx.micro_batches) loss is then called once per part of
-- that batch, each part's loss weighted by its share of the batch and back-propagated in
-- turn; a method with state updated from a batch (per-sample statistics, weights over
-- groups, a second model's gradients) updates it here from the whole batch, so that a split
-- step makes the same update as an unsplit one. before_step(ctx, batch) gets the whole batch
-- after the last loss, before ctx.optimizer:step(). epoch_positions gets the epoch's shuffled
-- order of the training set (int64, one pass) and may return another list of positions (an
-- epoch of another length: JTT's up-sampling repeats its error set); it must depend only on
-- the seed, the epoch and state the method saves, so that a resumed run repeats it.
-- debias.new_model(ctx, o) builds a network for a method (seed_cnn unless train.fit was given
-- a model_factory). Shipped methods live in lua/cnnlab/debias/NAME.lua; `--method path/to/file.lua` loads any
-- other file, with no rebuild.
local core = require "cnnlab.core"

local debias = {}

local function this_dir()
  local src = debug.getinfo(1, "S").source
  return src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/[^/]*$") or "."
end

--- Names of the shipped methods.
function debias.available()
  local names = {}
  for _, file in ipairs(core.listdir(this_dir()) or {}) do
    local name = file:match("^(.+)%.lua$")
    if name and name ~= "init" then names[#names + 1] = name end
  end
  return names
end

local function coerce(method, key, value, default)
  local kind = type(default)
  if type(value) == kind then return value end
  if type(value) ~= "string" then
    error(("method %s: option '%s' must be a %s, got %s"):format(method, key, kind, type(value)), 0)
  end
  if kind == "number" then
    local n = tonumber(value)
    if not n then
      error(("method %s: option '%s' must be a number, got '%s'"):format(method, key, value), 0)
    end
    return n
  elseif kind == "boolean" then
    if value == "true" or value == "1" then return true end
    if value == "false" or value == "0" then return false end
    error(("method %s: option '%s' must be true or false, got '%s'"):format(method, key, value), 0)
  end
  return value
end

--- Loads a method by shipped name or by file path and applies option overrides
-- ({key = value} with strings converted to the default's type). Returns a fresh instance:
-- methods may keep state in it.
function debias.load(name_or_path, overrides)
  if type(name_or_path) ~= "string" or name_or_path == "" then
    error("debias: a method name or file path is required", 2)
  end
  local chunk, err
  if name_or_path:find("/", 1, true) or name_or_path:match("%.lua$") then
    chunk, err = loadfile(name_or_path)
    if not chunk then error(("debias: cannot load method file %s: %s"):format(name_or_path, err), 2) end
  else
    local path = this_dir() .. "/" .. name_or_path .. ".lua"
    chunk = loadfile(path)
    if not chunk or name_or_path == "init" then
      error(("debias: unknown method '%s' (available: %s; or give a path to a .lua file)")
        :format(name_or_path, table.concat(debias.available(), ", ")), 2)
    end
  end
  local module = chunk()
  if type(module) ~= "table" or type(module.loss) ~= "function" then
    error(("debias: %s does not return a method table with a loss(ctx, batch) function")
      :format(name_or_path), 2)
  end
  local instance = setmetatable({}, {__index = module})
  -- the name becomes a folder under --out: made a safe file name
  instance.name = require("cnnlab.util").safe_name(module.name
    or name_or_path:match("([^/]+)%.lua$") or name_or_path)
  instance.options = {}
  for k, v in pairs(module.options or {}) do instance.options[k] = v end
  for k, v in pairs(overrides or {}) do
    if module.options == nil or module.options[k] == nil then
      local known = {}
      for key in pairs(module.options or {}) do known[#known + 1] = key end
      table.sort(known)
      error(("debias: method %s has no option '%s' (options: %s)"):format(instance.name,
        tostring(k), #known > 0 and table.concat(known, ", ") or "none"), 2)
    end
    instance.options[k] = coerce(instance.name, k, v, module.options[k])
  end
  if type(module.epochs) == "function" then
    instance.epochs = module.epochs(instance.options)
  end
  if not instance.build_model then
    instance.build_model = function(ctx)
      return debias.new_model(ctx, {generator = ctx.init_generator,
        dropout_generator = ctx.dropout_generator})
    end
  end
  return instance
end

--- A fresh network for a method to train (its main model, a second model, a re-initialised
-- one): models.seed_cnn(o), or ctx.opts.model_factory(o) when the caller of train.fit gave
-- one (any function taking seed_cnn's options {generator =, dropout =, dropout_generator =};
-- the tests use a narrow copy of the seed network to stay fast). Methods should build every
-- network through this, so that the swap reaches all of them.
function debias.new_model(ctx, o)
  local factory = ctx and ctx.opts and ctx.opts.model_factory
  if factory ~= nil and type(factory) ~= "function" then
    error(("debias.new_model: model_factory must be a function, got %s"):format(type(factory)), 2)
  end
  return (factory or require("cnnlab.models").seed_cnn)(o or {})
end

--- The options of a method instance (debias.load's result) as a plain table key → value
-- (a copy; {} for a method without options).
function debias.options_of(method)
  local out = {}
  for k, v in pairs(type(method) == "table" and method.options or {}) do out[k] = v end
  return out
end

--- One line naming a method and its options, sorted by key: "mirror (weight=0.1)", "erm".
function debias.describe(method)
  if type(method) ~= "table" then
    error(("debias.describe: a method (debias.load's result) expected, got %s"):format(
      type(method)), 2)
  end
  local parts = {}
  for k, v in pairs(method.options or {}) do
    parts[#parts + 1] = ("%s=%s"):format(tostring(k), type(v) == "number" and ("%g"):format(v)
      or tostring(v))
  end
  table.sort(parts)
  local name = tostring(method.name or "?")
  return #parts > 0 and ("%s (%s)"):format(name, table.concat(parts, ", ")) or name
end

--- Parses "key=value" strings (from --method-opt) into a table.
function debias.parse_options(list)
  local out = {}
  for _, item in ipairs(list or {}) do
    local k, v = item:match("^([%w_]+)=(.*)$")
    if not k then error(("--method-opt expects key=value, got '%s'"):format(item), 2) end
    out[k] = v
  end
  return out
end

return debias
