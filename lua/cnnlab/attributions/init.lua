--- cnnlab.attributions — finds attribution methods (what in the input or in a layer a
-- decision rests on) by name or file path, as cnnlab.debias finds debias methods. A method
-- is one Lua file returning a table:
--   name            defaults to the file's base name; metrics keys begin with it
--   label           its name in charts and colour scales (default: name)
--   short           its name in tight captions (default: label)
--   heading         its column heading in pictures; "%s" stands for the layer (default: label)
--   from_gradients  function(A, G) → maps N×h×w, weights: a layer method's arithmetic on the
--                   activations A and gradients G (N×K×h×w) of the explained logit; the
--                   batched passes, upsampling and checks are cnnlab.gradcam's layer_maps
--   compute         function(model, x, opts) → {maps = N×h×w raw, upsampled = N×H×W at the
--                   input's size, target = int64 N, logits, probs}; opts: target, batch and,
--                   for a layer method, layer and size. Given from_gradients it is built.
--   layered         explains a layer's activations (takes opts.layer); default: true when
--                   from_gradients is given
--   smooth          pictures enlarge raw maps bilinearly (default true; false: whole pixels)
--   clip_quantile   colour scales top out at this quantile of the examples' values instead of
--                   their maximum (for spiky maps), optional
--   saved           {raw =, upsampled =}: tensor names in saved files (default: name and
--                   name .. "_upsampled")
-- Shipped methods live in lua/cnnlab/attributions/NAME.lua; `--methods path/to/mine.lua`
-- loads any other file, with no other change.
--
--   attributions.available() → names      attributions.load(name_or_path) → method table
local plugins = require "cnnlab.plugins"

local reg = plugins.folder{kind = "attribution", dir = plugins.caller_dir(),
  check = function(t)
    if type(t.compute) ~= "function" and type(t.from_gradients) ~= "function" then
      return "must return a table with compute(model, x, opts) or from_gradients(A, G)"
    end
  end}

local attributions = {available = reg.available}

--- Loads an attribution method by shipped name or by path and returns its table with the
-- defaults filled in (label, short, heading, layered, smooth, saved, and compute built from
-- from_gradients).
function attributions.load(name_or_path)
  local ok, t = pcall(reg.load, name_or_path)
  if not ok then error(t, 2) end
  t.label = t.label or t.name
  t.short = t.short or t.label
  t.heading = t.heading or t.label
  if t.layered == nil then t.layered = t.from_gradients ~= nil end
  if t.smooth == nil then t.smooth = true end
  t.saved = t.saved or {raw = t.name, upsampled = t.name .. "_upsampled"}
  if not t.compute then
    local fn = t.name
    t.compute = function(model, x, opts)
      return require("cnnlab.gradcam").layer_maps(fn, model, x, opts, {{"", t.from_gradients}})
    end
  end
  return t
end

return attributions
