--- cnnlab.models — the registry of network architectures (model plug-ins).
--
-- A model is one Lua file returning a table (lua/cnnlab/models/NAME.lua, found by name, or
-- any other file by its path; see docs/architecture.md):
--   name          (default: the file's base name)
--   description   one line
--   paper         optional: where the architecture comes from
--   options       {key = default, ...}: what --arch-opt key=value may set (strings from the
--                 command line are converted to the default's type)
--   build(o, shape, classes, b) → an nn module mapping N×C×H×W float images to N×classes
--                 logits. o: the options; shape: {C, H, W} of the inputs; classes: the class
--                 count; b: {generator =, dropout =, dropout_generator =} from the trainer
--                 (every parameter should be drawn from b.generator so that a seed repeats).
--   feature_layers  optional list of the names (hooks.layer_names spelling) of the layers
--                 whose N×K×h×w outputs the study looks at (feature maps, Grad-CAM, channel
--                 ablation), shallow to deep; or a function(o) → list. {} or absent: the model
--                 has no convolutional feature maps (an MLP).
--   gradcam_layer optional: the layer Grad-CAM explains by default (default: the last of
--                 feature_layers).
--
--   local arch = models.load("seed_cnn", {key = "value"})   -- or models.load("/tmp/net.lua")
--   local net = arch.build({3, 28, 28}, 10, {generator = g})  -- net.arch records the choice
--   models.available() → sorted shipped names
--   models.flat_size(module, shape) → the number of features module gives one C×H×W input
--       (a dry forward in evaluation mode, without gradients): no hard-coded 512.
--   models.feature_layers(net) / models.gradcam_layer(net) → the built model's layers (a net
--       without an arch record is taken as the seed network).
--   models.require_feature_layers(net, task[, how]) → the feature layers, or an error naming
--       the networks (and, with how, the option and modules) to use instead.
--   models.layer_labels(net[, layers]) → labels, titles: the convolution each layer follows
--       ("conv1" for the seed network's relu1) and "conv1 after ReLU (relu1)".
--   models.metadata(arch, shape, classes) → the safetensors metadata that lets
--       study.load_model rebuild the network (empty for the default seed network, so that its
--       files stay byte for byte what they were); models.from_metadata(meta) → arch, shape,
--       classes.
--   models.seed_cnn(b) → the seed network (SPEC §3) on 3×28×28 inputs and ten classes.
local core = require "cnnlab.core"
local plugins = require "cnnlab.plugins"

local models = {}

models.DEFAULT = "seed_cnn"
models.DEFAULT_SHAPE = {3, 28, 28}
models.DEFAULT_CLASSES = 10

local registry = plugins.folder{kind = "model", dir = plugins.caller_dir(1),
  check = function(t)
    if type(t.build) ~= "function" then
      return "does not return a model table with a build(options, shape, classes, b) function"
    end
    if t.options ~= nil and type(t.options) ~= "table" then return "has options that are not a table" end
  end}

models.available = registry.available

local function coerce(what, name, key, value, default)
  local kind = type(default)
  if type(value) == kind then return value end
  if type(value) ~= "string" then
    error(("%s %s: option '%s' must be a %s, got %s"):format(what, name, key, kind, type(value)), 0)
  end
  if kind == "number" then
    local n = math.tointeger(tonumber(value)) or tonumber(value)
    if not n then
      error(("%s %s: option '%s' must be a number, got '%s'"):format(what, name, key, value), 0)
    end
    return n
  elseif kind == "boolean" then
    if value == "true" or value == "1" then return true end
    if value == "false" or value == "0" then return false end
    error(("%s %s: option '%s' must be true or false, got '%s'"):format(what, name, key, value), 0)
  end
  return value
end

--- Options of a plug-in: its defaults with the overrides applied (strings converted to the
-- default's type); an unknown key is an error listing the known ones. Shared with
-- cnnlab.datasets.
function models.apply_options(what, t, overrides)
  local o = {}
  for k, v in pairs(t.options or {}) do o[k] = v end
  for k, v in pairs(overrides or {}) do
    if t.options == nil or t.options[k] == nil then
      local known = {}
      for key in pairs(t.options or {}) do known[#known + 1] = key end
      table.sort(known)
      error(("%s %s has no option '%s' (options: %s)"):format(what, t.name, tostring(k),
        #known > 0 and table.concat(known, ", ") or "none"), 0)
    end
    o[k] = coerce(what, t.name, k, v, t.options[k])
  end
  return o
end

--- "key=value" items (repeatable, or comma-separated inside one item) → {key = "value"}. A
-- comma item without "=" continues the previous value ("kernel=3,widths=4,8" gives widths
-- "4,8").
function models.parse_options(list, flag)
  local out = {}
  if type(list) == "string" then list = {list} end
  for _, text in ipairs(list or {}) do
    local last
    for item in tostring(text):gmatch("[^,]+") do
      item = item:match("^%s*(.-)%s*$")
      if item ~= "" then
        local k, v = item:match("^([%w_]+)=(.*)$")
        if k then
          out[k], last = v, k
        elseif last then
          out[last] = out[last] .. "," .. item
        else
          error(("%s expects key=value, got '%s'"):format(flag or "option", item), 0)
        end
      end
    end
  end
  return out
end

--- Does a table of options differ from a plug-in's defaults?
local function non_default(t, o)
  for k, v in pairs(o) do if t.options[k] ~= v then return true end end
  return false
end

--- The module's options as a canonical JSON text (sorted keys).
function models.options_text(o)
  local keys = {}
  for k in pairs(o or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = o[k]
    parts[#parts + 1] = ("%q:%s"):format(k, type(v) == "string" and ("%q"):format(v) or tostring(v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- Loads a model plug-in by name or path with option overrides. Returns an instance:
-- {name, description, options (applied), source = name_or_path, module, build(shape,
-- classes, b), is_default}.
function models.load(name_or_path, overrides)
  name_or_path = name_or_path or models.DEFAULT
  local t = registry.load(name_or_path)
  local o = models.apply_options("model", t, overrides)
  local arch = {name = t.name, description = t.description, paper = t.paper, options = o,
    source = name_or_path, module = t}
  arch.is_default = t.name == models.DEFAULT and not name_or_path:find("/", 1, true)
    and not name_or_path:match("%.lua$") and not non_default(t, o)
  local layers = t.feature_layers
  if type(layers) == "function" then layers = layers(o) end
  arch.feature_layers = layers or {}
  arch.gradcam_layer = t.gradcam_layer or arch.feature_layers[#arch.feature_layers]
  function arch.build(shape, classes, b)
    shape = shape or models.DEFAULT_SHAPE
    classes = classes or models.DEFAULT_CLASSES
    local net = t.build(o, shape, classes, b or {})
    if type(net) ~= "table" or type(net.parameters) ~= "function" then
      error(("model %s: build returned %s, not an nn module"):format(t.name, type(net)), 0)
    end
    rawset(net, "arch", {name = t.name, source = arch.source, options = o, shape = shape,
      classes = classes, feature_layers = arch.feature_layers,
      gradcam_layer = arch.gradcam_layer, is_default = arch.is_default})
    return net
  end
  return arch
end

--- Features one C×H×W input gives after module (a dry forward of zeros, evaluation mode,
-- no gradients; the module's training flag is restored).
function models.flat_size(module, shape)
  local was = module.training
  module:eval()
  local n = core.no_grad(function()
    local y = module(core.zeros({1, shape[1], shape[2], shape[3]}))
    return y:numel()
  end)
  module:train(was)
  collectgarbage() -- the dry run's activations go now, not at some later peak
  return n
end

--- The feature layers of a built network (the seed network's for one built without an arch).
function models.feature_layers(net)
  local a = type(net) == "table" and rawget(net, "arch")
  return a and a.feature_layers or models.seed_feature_layers
end

--- The layer Grad-CAM explains by default in a built network; nil when it has none.
function models.gradcam_layer(net)
  local a = type(net) == "table" and rawget(net, "arch")
  if a then return a.gradcam_layer end
  return "relu3"
end

--- An error message for a task that needs feature maps on a model that has none. how (optional)
-- replaces the closing "or name a layer yourself": a string such as "or pass --layers with
-- layers of the model", followed by the model's module names; false: nothing (the task cannot
-- work on other layers).
function models.no_feature_maps(net, task, how)
  local a = rawget(net, "arch") or {name = "?"}
  local tail = ", or name a layer yourself"
  if how == false then
    tail = ""
  elseif how then
    local names = {}
    for _, e in ipairs(net:named_modules()) do
      if e[1] ~= "" then names[#names + 1] = e[1] end
    end
    tail = (", %s (its modules: %s)"):format(how, table.concat(names, ", "))
  end
  return ("%s needs convolutional feature maps, and the model '%s' has none (feature_layers "
    .. "is empty: an MLP); train one with --arch seed_cnn, bn_cnn or simple_convnet instead%s")
    :format(task, a.name, tail)
end

--- The feature layers of a built network, or an error (models.no_feature_maps(net, task, how))
-- when it has none.
function models.require_feature_layers(net, task, how)
  local layers = models.feature_layers(net)
  if #layers == 0 then error(models.no_feature_maps(net, task, how), 0) end
  return layers
end

-- The modules of net in forward order (named_modules' order), each {name, module, kind}.
local function module_list(net)
  local out = {}
  for _, e in ipairs(net:named_modules()) do
    if e[1] ~= "" then
      local mt = getmetatable(e[2])
      out[#out + 1] = {name = e[1], module = e[2], kind = mt and mt.__name or "?"}
    end
  end
  return out
end

--- models.layer_labels(net[, layers]) → labels, titles: What the study calls each layer of the
-- list (the model's feature layers when nil). A layer's label is the convolution it follows —
-- the nearest Conv2d before it, with no other listed layer between — so relu1 of the seed
-- network is "conv1", as Task 6's keys and the report name it; a layer with no such
-- convolution (or two layers that would share one) keeps its own name. titles[layer] reads
-- "conv1 after ReLU (relu1)" ("conv1 after BatchNorm2d and ReLU (relu1)" in bn_cnn), or the
-- layer's name.
function models.layer_labels(net, layers)
  layers = layers or models.feature_layers(net)
  local list, pos = module_list(net), {}
  for i, e in ipairs(list) do pos[e.name] = pos[e.name] or i end
  local listed = {}
  for _, l in ipairs(layers) do listed[l] = true end
  local labels, titles, used = {}, {}, {}
  for _, layer in ipairs(layers) do
    local i = pos[layer]
    local conv, between = nil, {}
    if i then
      for j = i - 1, 1, -1 do
        local e = list[j]
        if listed[e.name] or e.kind == "Sequential" then break end
        if e.kind == "Conv2d" then conv = e.name break end
        table.insert(between, 1, e.kind)
      end
    end
    if conv and list[i].kind ~= "Conv2d" and not used[conv] then
      used[conv] = true
      between[#between + 1] = list[i].kind
      local after = #between > 1 and (table.concat(between, ", ", 1, #between - 1) .. " and "
        .. between[#between]) or between[1]
      labels[layer], titles[layer] = conv, ("%s after %s (%s)"):format(conv, after, layer)
    else
      labels[layer], titles[layer] = layer, layer
    end
  end
  return labels, titles
end

--- safetensors metadata recording the architecture (all strings); {} for the default seed
-- network on 3×28×28 inputs and ten classes (older files have no record and mean that).
function models.metadata(arch, shape, classes)
  shape, classes = shape or models.DEFAULT_SHAPE, classes or models.DEFAULT_CLASSES
  local default_io = table.concat(shape, ",") == table.concat(models.DEFAULT_SHAPE, ",")
    and classes == models.DEFAULT_CLASSES
  if (not arch or arch.is_default) and default_io then return {} end
  return {arch = arch and arch.source or models.DEFAULT,
    arch_options = models.options_text(arch and arch.options or {}),
    input_shape = table.concat(shape, ","), classes = tostring(classes)}
end

--- The architecture, input shape and class count a model file's metadata records.
function models.from_metadata(meta)
  meta = meta or {}
  local o = {}
  if meta.arch_options and meta.arch_options ~= "" then
    local ok, t = pcall(require("cnnlab.util").json_decode, meta.arch_options)
    if not ok or type(t) ~= "table" then
      error(("model file: arch_options is not a JSON object: %s"):format(meta.arch_options), 0)
    end
    for k, v in pairs(t) do o[k] = math.tointeger(v) or v end
  end
  local shape = models.DEFAULT_SHAPE
  if meta.input_shape then
    shape = {}
    for d in meta.input_shape:gmatch("%d+") do shape[#shape + 1] = math.tointeger(tonumber(d)) end
  end
  return models.load(meta.arch or models.DEFAULT, o), shape,
    math.tointeger(tonumber(meta.classes or "")) or models.DEFAULT_CLASSES
end

-- ------------------------------------------------------------------ the seed network

--- Names of the layers whose outputs (after ReLU) the study looks at in the seed network.
models.seed_feature_layers = {"relu1", "relu2", "relu3"}

--- models.seed_cnn({dropout = p, generator = g, dropout_generator = g2}) → net: Builds SPEC §3's
-- network (lua/cnnlab/models/seed_cnn.lua) for 3×28×28 inputs and ten classes.
function models.seed_cnn(b)
  return models.load(models.DEFAULT).build(models.DEFAULT_SHAPE, models.DEFAULT_CLASSES, b or {})
end

return models
