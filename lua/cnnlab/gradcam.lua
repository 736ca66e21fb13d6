--- cnnlab.gradcam — where does the network look when it decides? The engine of the
-- attribution methods, each one file of lua/cnnlab/attributions/ (gradcam, gradcampp,
-- saliency; the registry cnnlab.attributions finds them by name or path), built on
-- cnnlab.hooks (module hooks at the layer's boundary), and the measure the study reports:
-- the share of a map's mass on the digit's strokes.
--
--   gradcam.compute(model, x[, opts]) → result          Grad-CAM (Selvaraju et al. 2017)
--     x       N×3×H×W float in [0,1], or uint8 bytes as stored (divided by 255)
--     opts    layer = "relu3"   the module whose output A (N×K×h×w) is explained; "relu3" is
--                               conv3 after its ReLU (6×6 for the seed network), the last
--                               convolutional feature map before pooling; "pool3" (2×2) and
--                               "relu2" (13×13) work too, as does any layer of any model
--             target = nil      nil: each row's top logit; an integer class; or int64 N
--             size = {H, W}     upsampling size (default the input's)
--             batch = 256       rows per forward/backward pass
--             plusplus = false  also compute Grad-CAM++ from the same pass
--     result  {layer =, target = int64 N, logits = N×K, probs = N×K (softmax),
--              maps = N×h×w (raw, at the layer's resolution, not rescaled),
--              upsampled = N×H×W (bilinear, align_corners = false), weights = N×K,
--              reached = h×w uint8: 1 where the gradient was nonzero for some row and
--              channel — a position outside every window of a later pooling (relu3's last
--              row and column in the seed network) is never reached, yet its activations
--              still enter Σ_k α_k A_k,
--              and with plusplus: maps_pp, upsampled_pp, weights_pp}
--   gradcam.gradcam_pp(model, x[, opts]) → the same result with maps = Grad-CAM++
--   gradcam.saliency(model, x[, {target =, batch =}]) → {maps = N×H×W, target =, logits =}
--   gradcam.from_gradients(A, G), gradcam.pp_from_gradients(A, G) → maps N×h×w, weights N×K
--       the arithmetic alone (the formulas are in the method files)
--   The engine the method files build on:
--   gradcam.layer_maps(fn, model, x, opts, combines) → result: the batched gradient of the
--       chosen logit at opts.layer, each {suffix, f} of combines turning activations A and
--       gradients G (N×K×h×w) into maps, weights = f(A, G) stored as maps<suffix>,
--       upsampled<suffix>, weights<suffix>; plus layer, target, logits, probs, reached
--   gradcam.input_maps(fn, model, x, opts, reduce) → {maps = reduce(∂y_c/∂x), upsampled (the
--       same maps), target, logits, probs}
--   gradcam.cam(A, weights) → ReLU(Σ_k w_k A_k);  gradcam.check_pair(fn, A, G)
--   The measure:
--   gradcam.stroke_mask(grey[, threshold = 0.5]) → float N×H×W of 0/1: the digit's strokes,
--       grey uint8 N×H×W MNIST digits (or float in [0,1]), stroke where grey/255 > threshold
--   gradcam.mass_share(maps, mask) → float N: Σ mask·map / Σ map per row (NaN for a map
--       that is zero everywhere: it has no mass to share)
--   gradcam.share_ceiling(mask, h, w) → {best = float N, density = float N}: what any map at
--       a layer's h×w resolution, upsampled as Grad-CAM's is, could score on each digit's
--       strokes. best: the ceiling — a ratio of linear functions of the map's cells, so no
--       non-negative map beats its best single cell; density: a map weighting each cell by the
--       stroke mass under it (a perfect stroke detector at that resolution)
--   gradcam.mean_share(shares[, select]) → mean over the rows with a defined share (and
--       select[i] ~= 0 when select, a uint8/int64 N tensor, is given), count, zero-map count
--   gradcam.pick_examples(labels, colors, preds, kind, count) → positions (from 0) of digits
--       worth showing, from Lua lists: kind "easy" → the first correctly read digit of each
--       class, then more correct ones; "hard" → digits misread as their colour's class, the
--       seed's "red 1 read as 0" first, then one per predicted class, then any (misread
--       digits when none follows its colour)
--   The study's steps (Task 3), on sets as cnnlab.data builds them:
--   gradcam.first_digits(set, grey, n, name) → {name, n, images, labels, colors, index,
--       conflicting, grey}: the first n samples of set (all when n is 0 or more than it has)
--       and the grey digits behind them (grey[index])
--   gradcam.analyse(model, s, methods, o) → r: every map of the study for the digits s (from
--       first_digits): r.res[name] each method's result, r.share[name] its stroke shares,
--       r.mask, r.area (stroke area per digit), r.main (the first layered result), r.ceiling,
--       r.pred, r.conf, r.correct, r.wrong, r.follows (conflicting digits read as their
--       colour's class) and r.share["gradcam_" .. layer] for each layer of o.compare;
--       o = {layer, compare = {}, threshold, batch, progress = fn(fmt, ...)}; methods from
--       cnnlab.attributions
--   gradcam.set_measures(r) → {n, n_correct, acc, n_misread, stroke_area (%), and with a
--       layered method gradcam_unreached_mass, gradcam_unreached_area, share_ceiling,
--       share_stroke_detector (%)}: one set's numbers of the study
--   gradcam.colour_scales(R, picks, methods) → per method name the top of its colour scale,
--       shared by the sets of R (kind → r) over the examples picks[kind].idx (figure.scale_top
--       with the method's clip_quantile)
local core = require "cnnlab.core"
local hooks = require "cnnlab.hooks"

local gradcam = {}

-- fn() with gradient recording off (restored even when fn raises).
local function no_grad(fn)
  local was = core.set_grad_enabled(false)
  local ok, a = pcall(fn)
  core.set_grad_enabled(was)
  if not ok then error(a, 0) end
  return a
end

gradcam.DEFAULT_LAYER = "relu3"

--- The layer explained when none is named: the model's own (cnnlab.models.gradcam_layer:
-- relu3 for the seed network); an error saying what to do for a model without feature maps.
function gradcam.default_layer(model, fn)
  local models = require "cnnlab.models"
  local layer = models.gradcam_layer(model)
  if not layer then error(models.no_feature_maps(model, fn or "Grad-CAM"), 3) end
  return layer
end
gradcam.STROKE_THRESHOLD = 0.5

local function shape_string(t) return table.concat(t.shape, "×") end

local check_opts = hooks.check_opts

local function check_images(fn, x)
  if not core.is_tensor(x) then
    error(("%s: x must be a tensor N×C×H×W, got %s"):format(fn, type(x)), 3)
  end
  if x:dim() ~= 4 then
    error(("%s: x must be N×C×H×W, got %s"):format(fn, shape_string(x)), 3)
  end
  if x.dtype ~= "uint8" and x.dtype ~= "float32" then
    error(("%s: x must be float32 in [0,1] or uint8 bytes, got %s"):format(fn, x.dtype), 3)
  end
end

--- Raises an error naming fn unless activations A and gradients G are tensors N×K×h×w of the
-- same shape.
function gradcam.check_pair(fn, A, G)
  if not core.is_tensor(A) or not core.is_tensor(G) then
    error(("%s: A and G must be tensors, got %s and %s"):format(fn, type(A), type(G)), 3)
  end
  if A:dim() ~= 4 or shape_string(A) ~= shape_string(G) then
    error(("%s: A and G must be N×K×h×w of the same shape, got %s and %s"):format(fn,
      shape_string(A), shape_string(G)), 3)
  end
end

--- ReLU(Σ_k w_k A_k) for activations A N×K×h×w and weights N×K.
function gradcam.cam(A, weights)
  local n, k = A:size(0), A:size(1)
  return (A * weights:reshape(n, k, 1, 1)):sum(1):relu()
end

local function size_of(fn, x, size)
  if size == nil then return x:size(2), x:size(3) end
  if type(size) ~= "table" or math.type(size[1]) ~= "integer" or math.type(size[2]) ~= "integer"
    or size[1] < 1 or size[2] < 1 then
    error(("%s: size must be {H, W} with positive integers, got %s"):format(fn,
      type(size) == "table" and ("{" .. tostring(size[1]) .. ", " .. tostring(size[2]) .. "}")
      or type(size)), 3)
  end
  return size[1], size[2]
end

local function batch_of(fn, batch)
  batch = batch or 256
  if math.type(batch) ~= "integer" or batch < 1 then
    error(("%s: batch must be a positive integer, got %s"):format(fn, tostring(batch)), 3)
  end
  return batch
end

-- The rows [start, start + count) of target (nil, integer or int64 N).
local function target_rows(target, start, count)
  if core.is_tensor(target) then return target:narrow(0, start, count) end
  return target
end

local function check_target(fn, target, n)
  if target == nil or math.type(target) == "integer" then return end
  if core.is_tensor(target) and target.dtype == "int64" and target:dim() == 1
    and target:size(0) == n then
    return
  end
  error(("%s: target must be nil (top logit), an integer class or an int64 vector of %d "
    .. "classes, got %s"):format(fn, n, core.is_tensor(target)
      and (target.dtype .. " " .. shape_string(target)) or type(target)), 3)
end

local function upsample(maps, h, w)
  return core.upsample_bilinear(maps:unsqueeze(1), h, w):squeeze(1)
end

--- gradcam.layer_maps(fn, model, x, opts, combines) → result: The engine of the layer methods:
-- the batched gradient of the chosen logit at opts.layer, each {suffix, f} of combines turning
-- activations A and gradients G into maps<suffix>, upsampled<suffix> and weights<suffix>.
function gradcam.layer_maps(fn, model, x, opts, combines)
  opts = check_opts(fn, opts, {layer = true, target = true, size = true, batch = true})
  check_images(fn, x)
  local layer = opts.layer or gradcam.default_layer(model, fn)
  local found, msg = hooks.find(model, layer, fn) -- a clear error before any work
  if not found then error(msg, 3) end
  local h, w = size_of(fn, x, opts.size)
  local batch = batch_of(fn, opts.batch)
  local n = x:size(0)
  check_target(fn, opts.target, n)
  local parts = {target = {}, logits = {}}
  for _, c in ipairs(combines) do
    for _, key in ipairs({"maps", "upsampled", "weights"}) do parts[key .. c[1]] = {} end
  end
  local reached
  for start = 0, n - 1, batch do
    local count = math.min(batch, n - start)
    local r = hooks.gradient(model, layer, x:narrow(0, start, count),
      {target = target_rows(opts.target, start, count)})
    if r.activation:dim() ~= 4 then
      error(("%s: layer '%s' gives %s activations; Grad-CAM needs N×K×h×w feature maps"):format(
        fn, layer, shape_string(r.activation)), 3)
    end
    local touched = no_grad(function()
      return r.gradient:abs():sum(0):sum(0):gt(0)
    end)
    reached = reached and reached:maximum(touched) or touched
    table.insert(parts.target, r.target)
    table.insert(parts.logits, r.output)
    for _, c in ipairs(combines) do
      local maps, weights = c[2](r.activation, r.gradient)
      table.insert(parts["maps" .. c[1]], maps)
      table.insert(parts["weights" .. c[1]], weights)
      table.insert(parts["upsampled" .. c[1]], upsample(maps, h, w))
    end
  end
  local result = {layer = layer}
  for key, list in pairs(parts) do
    if #list > 0 then result[key] = core.cat(list, 0) end
  end
  result.probs = result.logits:softmax(1)
  result.reached = reached
  return result
end

--- gradcam.input_maps(fn, model, x, opts, reduce) → {maps =, upsampled =, target =, logits =, probs =}: The
-- engine of the input methods: maps = reduce(∂y_c/∂x), the gradient of the target logit with
-- respect to the input, computed in batches.
function gradcam.input_maps(fn, model, x, opts, reduce)
  opts = check_opts(fn, opts, {target = true, batch = true})
  check_images(fn, x)
  local batch = batch_of(fn, opts.batch)
  local n = x:size(0)
  check_target(fn, opts.target, n)
  if type(model) ~= "table" or type(model.named_modules) ~= "function" then
    error(("%s: model must be a cnnlab.nn module, got %s"):format(fn, type(model)), 3)
  end
  -- any module will do as the hooked layer: the first child, whose gradient we do not need
  local first = hooks.layer_names(model)[1]
  if not first then error(fn .. ": the model has no layers", 3) end
  local maps, targets, logits = {}, {}, {}
  for start = 0, n - 1, batch do
    local count = math.min(batch, n - start)
    local r = hooks.gradient(model, first, x:narrow(0, start, count),
      {target = target_rows(opts.target, start, count), input_grad = true})
    local m = no_grad(function() return reduce(r.input_grad) end)
    maps[#maps + 1], targets[#targets + 1], logits[#logits + 1] = m, r.target, r.output
  end
  local result = {maps = core.cat(maps, 0), target = core.cat(targets, 0),
    logits = core.cat(logits, 0)}
  result.upsampled, result.probs = result.maps, result.logits:softmax(1)
  return result
end

-- ------------------------------------------------------------------ the API of the methods
-- Thin forms of the shipped method files, kept for scripts, docs and tests that name them.

local function method(name) return require("cnnlab.attributions").load(name) end

--- Grad-CAM maps N×h×w and weights N×K from activations A and gradients G alone (the gradcam
-- method file's arithmetic).
function gradcam.from_gradients(A, G) return method("gradcam").from_gradients(A, G) end
--- Grad-CAM++ maps N×h×w and weights N×K from activations A and gradients G alone (the
-- gradcampp method file's arithmetic).
function gradcam.pp_from_gradients(A, G) return method("gradcampp").from_gradients(A, G) end

--- gradcam.compute(model, x[, {layer =, target =, size =, batch =, plusplus =}]) → result: Grad-CAM
-- maps of x at a layer, raw and upsampled to the input's size, with the targets, logits and
-- probabilities; plusplus adds Grad-CAM++ from the same pass (see the header).
function gradcam.compute(model, x, opts)
  local fn = "gradcam.compute"
  local o = {}
  for k, v in pairs(check_opts(fn, opts, {layer = true, target = true, size = true,
    batch = true, plusplus = true})) do
    if k ~= "plusplus" then o[k] = v end
  end
  local combines = {{"", method("gradcam").from_gradients}}
  if opts and opts.plusplus then
    combines[2] = {"_pp", method("gradcampp").from_gradients}
  end
  return gradcam.layer_maps(fn, model, x, o, combines)
end

--- Grad-CAM++: the result of gradcam.compute (same options) with maps, upsampled and weights
-- computed by Grad-CAM++.
function gradcam.gradcam_pp(model, x, opts)
  return gradcam.layer_maps("gradcam.gradcam_pp", model, x, opts,
    {{"", method("gradcampp").from_gradients}})
end

--- The saliency maps of x (N×H×W, the gradient of the target logit with respect to the input)
-- by the saliency method file: {maps =, upsampled =, target =, logits =, probs =}.
function gradcam.saliency(model, x, opts)
  return method("saliency").compute(model, x, opts, "gradcam.saliency")
end

--- gradcam.stroke_mask(grey[, threshold = 0.5]) → mask: The digits' strokes as a float N×H×W mask
-- of 0/1, 1 where grey/255 (uint8 digits) or grey (float in [0,1]) exceeds threshold.
function gradcam.stroke_mask(grey, threshold)
  threshold = threshold or gradcam.STROKE_THRESHOLD
  if not core.is_tensor(grey) or grey:dim() ~= 3 then
    error(("gradcam.stroke_mask: grey must be N×H×W digits, got %s"):format(
      core.is_tensor(grey) and shape_string(grey) or type(grey)), 2)
  end
  if type(threshold) ~= "number" or threshold < 0 or threshold >= 1 then
    error(("gradcam.stroke_mask: threshold must be a number in [0, 1), got %s"):format(
      tostring(threshold)), 2)
  end
  local g = grey.dtype == "uint8" and grey:float() / 255 or grey:float()
  return g:gt(threshold):float()
end

--- gradcam.mass_share(maps, mask) → float N: The share Σ mask·map / Σ map of each map's mass that
-- lies on the mask (NaN for a map that is zero everywhere).
function gradcam.mass_share(maps, mask)
  local fn = "gradcam.mass_share"
  if not core.is_tensor(maps) or not core.is_tensor(mask) then
    error(("%s: maps and mask must be tensors, got %s and %s"):format(fn, type(maps),
      type(mask)), 2)
  end
  if maps:dim() ~= 3 or shape_string(maps) ~= shape_string(mask) then
    error(("%s: maps and mask must both be N×H×W, got %s and %s (upsample the maps to the "
      .. "mask's size first)"):format(fn, shape_string(maps), shape_string(mask)), 2)
  end
  return no_grad(function()
    local m = maps:float()
    local n = m:size(0)
    local total = m:reshape(n, -1):sum(1)
    local on = (m * mask:float()):reshape(n, -1):sum(1)
    return on / total -- 0/0 = NaN for all-zero maps
  end)
end

--- gradcam.share_ceiling(mask, h, w) → {best =, density =}: What any map at a layer's h×w
-- resolution, upsampled as Grad-CAM's is, could score on each digit's strokes: the best single
-- cell's share and that of a map weighting each cell by its stroke mass (see the header).
function gradcam.share_ceiling(mask, h, w)
  local fn = "gradcam.share_ceiling"
  if not core.is_tensor(mask) or mask:dim() ~= 3 then
    error(("%s: mask must be N×H×W (gradcam.stroke_mask), got %s"):format(fn,
      core.is_tensor(mask) and shape_string(mask) or type(mask)), 2)
  end
  for i, v in ipairs({h, w}) do
    if math.type(v) ~= "integer" or v < 1 then
      error(("%s: argument #%d (the map's %s) must be a positive integer, got %s"):format(fn,
        i + 1, i == 1 and "height" or "width", tostring(v)), 2)
    end
  end
  return no_grad(function()
    local n, H, W = mask:size(0), mask:size(1), mask:size(2)
    -- kernels: row c is cell c's one-hot map upsampled to H×W (h·w × H·W)
    local cells = core.arange(0, h * w)
    local eye = cells:unsqueeze(1):eq(cells:unsqueeze(0)):float()
    local kernels = core.upsample_bilinear(eye:reshape(h * w, 1, h, w), H, W):reshape(h * w, H * W)
    local cell_mass = kernels:sum(1) -- h·w
    local on = mask:float():reshape(n, H * W):matmul(kernels:transpose(0, 1):contiguous())
    local best = (on / cell_mass:unsqueeze(0)):max(1) -- on: N × h·w, stroke mass under each cell
    -- density map Σ_c on_c·kernel_c: its share is Σ on_c² / Σ on_c·cell_mass_c
    local density = (on * on):sum(1) / on:matmul(cell_mass:unsqueeze(1)):squeeze(1)
    return {best = best, density = density}
  end)
end

--- gradcam.mean_share(shares[, select]) → mean, count, zero_maps: The mean of the defined
-- (non-NaN) shares, over the rows where select ~= 0 when select is given, with how many rows
-- counted and how many selected maps were zero everywhere (NaN shares).
function gradcam.mean_share(shares, select)
  if not core.is_tensor(shares) or shares:dim() ~= 1 then
    error("gradcam.mean_share: shares must be a float vector (from gradcam.mass_share)", 2)
  end
  local s = shares:totable()
  local sel = select and select:totable()
  if sel and #sel ~= #s then
    error(("gradcam.mean_share: select has %d entries for %d shares"):format(#sel, #s), 2)
  end
  local sum, count, zero = 0.0, 0, 0
  for i, v in ipairs(s) do
    if not sel or sel[i] ~= 0 then
      if v ~= v then
        zero = zero + 1
      else
        sum, count = sum + v, count + 1
      end
    end
  end
  return count > 0 and sum / count or 0 / 0, count, zero
end

--- gradcam.pick_examples(labels, colors, preds, kind, count) → positions: Up to count digits
-- (positions from 0) worth showing: for kind "easy" correctly read ones, one per class first;
-- for "hard" digits misread as their colour's class first (see the header).
function gradcam.pick_examples(labels, colors, preds, kind, count)
  local picked, used = {}, {}
  local function add(i, key)
    if #picked < count and not used[key] then
      used[key] = true
      picked[#picked + 1] = i
    end
  end
  if kind == "easy" then
    for round = 1, 2 do
      for i = 1, #labels do
        if preds[i] == labels[i] then add(i - 1, round == 1 and labels[i] or i) end
      end
    end
    return picked
  end
  for i = 1, #labels do
    if labels[i] == 1 and colors[i] == 0 and preds[i] == 0 then add(i - 1, 0) break end
  end
  for round = 1, 2 do
    for i = 1, #labels do
      if colors[i] ~= labels[i] and preds[i] == colors[i] then
        add(i - 1, round == 1 and preds[i] or ("r" .. i))
      end
    end
  end
  if #picked == 0 then -- a model that does not follow colour: show misread digits
    for i = 1, #labels do
      if preds[i] ~= labels[i] then add(i - 1, "w" .. i) end
    end
  end
  return picked
end


--- gradcam.first_digits(set, grey, n, name) → s: The first n samples of a set (all when n is 0 or
-- more than it has), with the grey digits behind them, as the sets gradcam.analyse takes.
function gradcam.first_digits(set, grey_source, n, name)
  n = (n > 0 and n < set.n) and n or set.n
  local s = {name = name, n = n}
  for _, k in ipairs({"images", "labels", "colors", "index", "conflicting"}) do
    s[k] = set[k]:narrow(0, 0, n)
  end
  -- the grey digits behind the samples: a source to index (MNIST's own digits), or a
  -- function(set, n) of the data set's (cnnlab.study.grey_digits)
  if type(grey_source) == "function" then s.grey = grey_source(set, n)
  else s.grey = grey_source:index_select(0, s.index) end
  return s
end

--- gradcam.analyse(model, s, methods, o) → r: Computes every map of the study (Task 3) for the
-- digits s of gradcam.first_digits with each attribution method, their stroke shares, the
-- predictions and the share ceiling (see the header for r's fields and o).
function gradcam.analyse(model, set, methods, o)
  local progress = o.progress or function() end
  local r = {set = set, res = {}, share = {}}
  r.mask = gradcam.stroke_mask(set.grey, o.threshold)
  r.area = r.mask:reshape(set.n, -1):mean(1)
  for _, m in ipairs(methods) do
    progress("%s: %s%s on %d digits", set.name, m.label, m.layered and (" at " .. o.layer)
      or "", set.n)
    local res = m.compute(model, set.images, {layer = m.layered and o.layer or nil,
      batch = o.batch})
    r.res[m.name], r.share[m.name] = res, gradcam.mass_share(res.upsampled, r.mask)
    r.main = r.main or (m.layered and res) or nil
  end
  local first = r.res[methods[1].name]
  r.pred = first.target
  r.conf = first.probs:gather(1, r.pred:unsqueeze(1)):squeeze(1)
  if r.main then -- what any map at this layer's resolution could score
    r.ceiling = gradcam.share_ceiling(r.mask, r.main.maps:size(1), r.main.maps:size(2))
  end
  for _, layer in ipairs(o.compare or {}) do
    progress("%s: Grad-CAM at %s", set.name, layer)
    local c = gradcam.compute(model, set.images, {layer = layer, batch = o.batch})
    r.share["gradcam_" .. layer] = gradcam.mass_share(c.upsampled, r.mask)
  end
  r.correct, r.wrong = r.pred:eq(set.labels), r.pred:ne(set.labels)
  r.follows = r.pred:eq(set.colors):mul(set.conflicting) -- misread as the colour's class
  return r
end

--- gradcam.set_measures(r) → measures: One set's numbers of the study from gradcam.analyse's
-- result: counts, accuracy, misread digits, stroke area and, for a layered method, the
-- unreached mass and area and the share ceilings.
function gradcam.set_measures(r)
  local v = {n = r.set.n, n_correct = r.correct:sum():item()}
  v.acc = 100 * v.n_correct / r.set.n
  v.n_misread = r.wrong:sum():item()
  v.stroke_area = 100 * require("cnnlab.metrics").masked_mean(r.area)
  if r.main then
    -- mass of the raw maps at positions the gradient never reaches (outside every window of
    -- the next pooling): Grad-CAM still weighs their activations in
    local unreached, raw = 1 - r.main.reached:float(), r.main.maps
    v.gradcam_unreached_mass = 100 * ((raw * unreached):sum():item()
      / math.max(raw:sum():item(), 1e-30))
    v.gradcam_unreached_area = 100 * unreached:mean():item()
    v.share_ceiling = 100 * r.ceiling.best:mean():item()
    v.share_stroke_detector = 100 * r.ceiling.density:mean():item()
  end
  return v
end

--- gradcam.colour_scales(R, picks, methods) → {[method] = top}: The top of each method's colour
-- scale, shared by the sets of R over the examples picks[kind].idx (figure.scale_top with the
-- method's clip_quantile).
function gradcam.colour_scales(R, picks, methods)
  local scales = {}
  for _, meth in ipairs(methods) do
    local values = {}
    for _, kind in ipairs({"easy", "hard"}) do
      if #picks[kind].list > 0 then
        values[#values + 1] = R[kind].res[meth.name].maps:index_select(0, picks[kind].idx)
      end
    end
    scales[meth.name] = require("cnnlab.figure").scale_top(values, meth.clip_quantile)
  end
  return scales
end

return gradcam
