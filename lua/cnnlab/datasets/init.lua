--- cnnlab.datasets — the registry of data sets (data-set plug-ins).
--
-- A data set is one Lua file returning a table (lua/cnnlab/datasets/NAME.lua, found by name,
-- or any other file by its path; see docs/data.md):
--   name          (default: the file's base name)
--   description   one line
--   source        where its images come from ("MNIST (SPEC §1)", "your file", ...)
--   paper         optional: the publication whose benchmark it reproduces
--   options       {key = default, ...}: what --dataset-opt key=value may set (strings from the
--                 command line become the default's type). An option called rho or beta takes
--                 the value of the scripts' --rho / --beta unless --dataset-opt sets it, so the
--                 study's rho sweep reaches every data set that has a rho.
--   classes       optional class count (default 10; an option `classes` overrides it)
--   build(o, ctx) → {train =, val =, hard =} (hard: the evaluation split; val optional, then
--                 the trainer has no validation set); each split a table
--                   images  uint8 N×C×H×W (the bytes the network reads as byte/255)
--                   labels  int64 N, class indices 0..classes−1
--                   bias    int64 N, optional: the bias attribute (the colour index)
--                   index   int64 N, optional: each sample's position in its source
--                   source_images  optional uint8 N0×H×W grey digits that index points into
--                          (Task 3's stroke masks; without it the channel mean is used)
--                 o: the options; ctx: {seed (integer), digits() → the grey source digits
--                 chosen by --data / --data-dir ({train = {images, labels}, test = ...},
--                 as data.mnist), data = "mnist"|"generated", data_dir, generated_n}.
--                 Everything must be a pure function of (o, seed, digits).
--
--   local ds = datasets.load("biased_mnist", {rho = "0.99"})  -- or datasets.load("/tmp/mine.lua")
--   local sets = datasets.build(ds, ctx)  -- checked; colors = bias (alias), conflicting, n, name
--   datasets.available() → sorted shipped names
local core = require "cnnlab.core"
local plugins = require "cnnlab.plugins"
local models = require "cnnlab.models"

local datasets = {}

datasets.DEFAULT = "colored_mnist"
datasets.SPLITS = {"train", "val", "hard"}

local registry = plugins.folder{kind = "dataset", dir = plugins.caller_dir(1),
  check = function(t)
    if type(t.build) ~= "function" then
      return "does not return a data-set table with a build(options, ctx) function"
    end
    if t.options ~= nil and type(t.options) ~= "table" then return "has options that are not a table" end
  end}

datasets.available = registry.available

--- Loads a data-set plug-in by name or path with option overrides ({key = value}, strings
-- converted). Returns {name, description, source, paper, classes, options (applied), module,
-- spec = name_or_path, is_default}.
function datasets.load(name_or_path, overrides)
  name_or_path = name_or_path or datasets.DEFAULT
  local t = registry.load(name_or_path)
  local o = models.apply_options("dataset", t, overrides)
  local is_path = name_or_path:find("/", 1, true) or name_or_path:match("%.lua$")
  return {name = t.name, description = t.description, source = t.source, paper = t.paper,
    classes = math.tointeger(o.classes) or t.classes or 10, options = o, module = t, spec = name_or_path,
    is_default = t.name == datasets.DEFAULT and not is_path}
end

local function shape_text(t) return table.concat(t.shape, "×") end

--- Checks one split and adds what the study's code reads: n, name, colors (the bias, under
-- its older name), conflicting (bias ≠ label), index (0..N−1 when absent).
function datasets.check_split(what, name, s, classes)
  local function fail(msg) error(("%s: split '%s' %s"):format(what, name, msg), 0) end
  if type(s) ~= "table" then fail("is not a table") end
  if not core.is_tensor(s.images) then fail("has no images tensor") end
  if s.images:type() ~= "uint8" or s.images:dim() ~= 4 then
    fail(("images must be uint8 N×C×H×W, got %s %s"):format(s.images:type(), shape_text(s.images)))
  end
  local n = s.images:size(0)
  local function vector(key, required)
    local v = s[key]
    if v == nil then
      if required then fail(("has no %s tensor (int64, one per image)"):format(key)) end
      return nil
    end
    if not core.is_tensor(v) or v:dim() ~= 1 or v:numel() ~= n then
      fail(("%s must be a vector of %d values (one per image), got %s"):format(key, n,
        core.is_tensor(v) and shape_text(v) or type(v)))
    end
    if v:type() == "int64" and v:is_contiguous() then return v end -- no copy
    return v:long():contiguous()
  end
  s.labels = vector("labels", true)
  s.bias = vector("bias") or vector("colors")
  s.index = vector("index") or core.arange(0, n)
  if n > 0 then
    -- the range in Lua (no tensor temporaries: building a set allocates what it did)
    local lo, hi = math.huge, -math.huge
    for _, y in ipairs(s.labels:totable()) do
      if y < lo then lo = y end
      if y > hi then hi = y end
    end
    if lo < 0 or hi >= classes then
      fail(("labels must be classes 0..%d, got values from %d to %d"):format(classes - 1, lo, hi))
    end
  end
  s.colors = s.bias
  -- kept when the builder made it (colored_mnist's), so no second copy is allocated
  local given = s.conflicting
  if not (s.bias and core.is_tensor(given) and given:dim() == 1 and given:numel() == n) then
    s.conflicting = s.bias and s.bias:ne(s.labels) or nil
  end
  s.n, s.name = n, s.name or name
  return s
end

--- Builds a loaded data set; returns {train, val, hard, hard_conflicting, dataset = the
-- loaded table} with every split checked.
function datasets.build(ds, ctx)
  local what = "dataset " .. ds.name
  local ok, sets = pcall(ds.module.build, ds.options, ctx)
  if not ok then
    error(type(sets) == "string" and (sets:find(ds.name, 1, true) and sets or what .. ": " .. sets)
      or sets, 0)
  end
  if type(sets) ~= "table" then error(("%s: build returned %s, not a table of splits"):format(
    what, type(sets)), 0) end
  for _, name in ipairs({"train", "hard"}) do
    if sets[name] == nil then
      error(("%s: build returned no '%s' split (needed: train and hard; val optional)"):format(
        what, name), 0)
    end
  end
  local shape
  for _, name in ipairs(datasets.SPLITS) do
    if sets[name] ~= nil then
      local s = datasets.check_split(what, name, sets[name], ds.classes)
      local sh = {s.images:size(1), s.images:size(2), s.images:size(3)}
      if shape and table.concat(sh, ",") ~= table.concat(shape, ",") then
        error(("%s: split '%s' has images of %s, the others %s"):format(what, name,
          table.concat(sh, "×"), table.concat(shape, "×")), 0)
      end
      shape = sh
    end
  end
  -- no validation split (the literature's benchmarks have none): the evaluation split stands
  -- in for it, as in the authors' code, which reports its test split as "valid"
  if sets.val == nil then sets.val = sets.hard end
  sets.hard_conflicting = sets.hard.conflicting
  sets.input_shape, sets.classes, sets.dataset = shape, ds.classes, ds
  return sets
end

return datasets
