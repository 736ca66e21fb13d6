--- cnnlab.ablation — which channels carry a decision: record them, rank them, silence them.
--
-- Layers are named by module ("relu1", "relu3", or any name of model:get_module); the study
-- looks at the model's feature layers: the outputs of relu1–relu3 in the seed network, i.e.
-- conv1–conv3 after their ReLU. Channels count
-- from 0, as every position in cnnlab does.
--
--   ablation.record(model, set[, {layers = {"relu1", "relu2", "relu3"}, batch = 500,
--                                 n = all, classes = 10}]) → stats
--       mean activation of every channel (spatial mean per image, then mean over images),
--       overall and per label and per colour (set.colors), through forward hooks:
--       stats.layers[name] = {channels = C, mean = {C}, by_label = {{C} × K},
--                             by_color = {{C} × K}, label_counts = {K}, color_counts = {K}}
--       stats.names = the layers in order, stats.n = images seen. An empty group's means are NaN.
--   ablation.selectivity_index(means) → index, group
--       (μ_max − μ_−max) / (μ_max + μ_−max) over the group means (NaN groups skipped), where
--       μ_max is the largest group mean and μ_−max the mean of the others (Morcos et al. 2018);
--       in [0, 1] when the means are ≥ 0 (post-ReLU); 0 for a dead channel. group = the
--       preferred group, counted from 0.
--   ablation.selectivity(stats) → stats, with per layer color_selectivity, color_preferred,
--       class_selectivity, class_preferred (lists of C values).
--   ablation.attribution(model, x[, {layers =, target = class | int64 N}]) → {scores, preds,
--       probs, target}: scores[name] = N×C tensor, Σ over space of activation × ∂logit_target /
--       ∂activation (forward hooks keep the activation, backward hooks its gradient); target
--       defaults to the predicted class. A first-order estimate of how much the target logit
--       falls when the channel is zeroed. The gradient flows from a copy of x; the
--       parameters' requires_grad is off for the call, so their .grad is left untouched.
--   ablation.rank(scores[, {ascending = false}]) → channel positions (from 0), best first;
--       scores a Lua list (channel c at [c + 1]) or a 1-D tensor. Ties keep channel order.
--   ablation.ablate(model, layer, channels) or ablation.ablate(model, {[layer] = channels, …})
--       → handle with :remove(): forward hooks that multiply the layer's output by a 0/1
--       channel mask. Nothing else in the model changes; after :remove() it computes exactly
--       what it did before.
--   ablation.with_ablation(model, spec, fn, ...) → fn(...)'s results, the hooks removed even
--       when fn raises.
--   ablation.evaluator(model, set, layer[, {batch = 500, n = all}]) → ev, for many ablations
--       of one layer on one set (cnnlab.ablation_curves documents it)
--   ablation.LAYERS = {"relu1", "relu2", "relu3"}, ablation.CONV = {relu1 = "conv1", …}: the
--       seed network's; any model's come from cnnlab.models (feature_layers, layer_labels),
--       which is where a call without layers takes them.
local core = require "cnnlab.core"
local util = require "cnnlab.util"

local ablation = {}

ablation.LAYERS = require("cnnlab.models").seed_feature_layers
ablation.CONV = {relu1 = "conv1", relu2 = "conv2", relu3 = "conv3"}

-- ------------------------------------------------------------------ argument checks

local function shape_of(t) return table.concat(t.shape, "×") end

local function check_model(fn, model)
  if type(model) ~= "table" or type(model.get_module) ~= "function" then
    error(("%s: model (argument #1) must be a cnnlab.nn module, got %s"):format(fn,
      type(model)), 3)
  end
end

-- model's sub-module called name or nil (find_module, or get_module for models without it).
local function lookup_module(model, name)
  if model.find_module then return model:find_module(name) end
  local ok, m = pcall(model.get_module, model, name)
  return ok and m or nil
end

local function module_of(fn, model, name, level)
  level = level or 3
  if type(name) ~= "string" then
    error(("%s: layer must be a module name such as \"relu3\", got %s"):format(fn,
      type(name)), level)
  end
  local m = lookup_module(model, name)
  if not m or name == "" then
    local names = {}
    for _, e in ipairs(model:named_modules()) do
      if e[1] ~= "" then names[#names + 1] = e[1] end
    end
    error(("%s: layer '%s' is not a module of the model (known: %s)"):format(fn, name,
      table.concat(names, ", ")), level)
  end
  return m
end

local function check_layers(fn, model, layers)
  if layers == nil then -- the model's own feature layers (relu1..3 for the seed network)
    local models = require "cnnlab.models"
    layers = models.feature_layers(model)
    if #layers == 0 then error(models.no_feature_maps(model, fn), 3) end
  end
  if type(layers) == "string" then layers = {layers} end
  if type(layers) ~= "table" or #layers == 0 then
    error(("%s: layers must be a non-empty list of module names, got %s"):format(fn,
      type(layers)), 3)
  end
  local mods = {}
  for i, name in ipairs(layers) do mods[i] = module_of(fn, model, name, 4) end
  return layers, mods
end

local function check_set(fn, set)
  if type(set) ~= "table" or not core.is_tensor(set.images) or not core.is_tensor(set.labels) then
    error(("%s: set (argument #2) must be a table with images and labels tensors (a set of "
      .. "cnnlab.data), got %s"):format(fn, type(set)), 3)
  end
  if set.images:dim() ~= 4 then
    error(("%s: set.images must be N×C×H×W, got %s"):format(fn, shape_of(set.images)), 3)
  end
  local n = set.images:size(0)
  if set.labels:numel() ~= n then
    error(("%s: set has %d images but %d labels"):format(fn, n, set.labels:numel()), 3)
  end
  if set.colors and set.colors:numel() ~= n then
    error(("%s: set has %d images but %d colours"):format(fn, n, set.colors:numel()), 3)
  end
  return n
end

local function check_count(fn, what, v, default)
  if v == nil then return default end
  if math.type(v) ~= "integer" or v < 1 then
    error(("%s: %s must be a positive integer, got %s"):format(fn, what, tostring(v)), 3)
  end
  return v
end

local check_opts = require("cnnlab.hooks").check_opts

--- Float inputs from a slice of stored images: uint8 bytes / 255, float32 as they are.
local function inputs(images, start, count)
  local x = images:narrow(0, start, count)
  if x.dtype == "uint8" then return x:float() / 255 end
  return x:float()
end

--- Runs fn with the model in evaluation mode and gradient recording as asked; restores both
-- and removes the hooks in `handles` whatever happens.
local function guarded(model, grad, handles, fn)
  return require("cnnlab.hooks").guarded(model, grad, function()
    for _, h in ipairs(handles) do h.remove() end
  end, fn)
end

--- Per-image channel means: N×C×H×W → N×C (spatial mean); N×C stays.
local function channel_means(fn, name, out)
  if not core.is_tensor(out) then
    util.user_error(("%s: layer '%s' returned a %s, not a tensor"):format(fn, name, type(out)))
  end
  if out:dim() == 4 then return out:mean(3):mean(2) end
  if out:dim() == 2 then return out end
  error(("%s: layer '%s' returned %s; expected N×C×H×W or N×C"):format(fn, name,
    shape_of(out)), 0)
end

--- One-hot float K×N of int64 classes (0..K−1), for summing rows per class with a matmul.
local function one_hot_t(fn, what, classes, k)
  local lo, hi = classes:min():item(), classes:max():item()
  if lo < 0 or hi >= k then
    util.user_error(("%s: %s must lie in 0..%d, got values from %d to %d"):format(fn, what, k - 1, lo, hi))
  end
  local n = classes:numel()
  return classes:reshape(1, n):eq(core.arange(k):reshape(k, 1)):float()
end

-- ------------------------------------------------------------------ recording

--- ablation.record(model, set[, {layers =, batch = 500, n =, classes = 10}]) → stats: The mean
-- activation of every channel of the given layers (spatial mean per image, then mean over
-- images), overall, per label and per colour, recorded through forward hooks (see the header).
function ablation.record(model, set, opts)
  local fn = "ablation.record"
  check_model(fn, model)
  local n_all = check_set(fn, set)
  opts = check_opts(fn, opts, {layers = true, batch = true, n = true, classes = true})
  local layers, mods = check_layers(fn, model, opts.layers)
  local batch = check_count(fn, "batch", opts.batch, 500)
  local n = math.min(check_count(fn, "n", opts.n, n_all), n_all)
  local k = check_count(fn, "classes", opts.classes, 10)
  local captured, handles = {}, {}
  for i, name in ipairs(layers) do
    handles[i] = mods[i]:register_forward_hook(function(_, _, out) captured[name] = out end)
  end
  local sums = {}
  local label_counts, color_counts = {}, {}
  for g = 1, k do label_counts[g], color_counts[g] = 0, 0 end
  guarded(model, false, handles, function()
    for start = 0, n - 1, batch do
      local count = math.min(batch, n - start)
      for _, name in ipairs(layers) do captured[name] = nil end
      model(inputs(set.images, start, count))
      local y = set.labels:narrow(0, start, count)
      local oy = one_hot_t(fn, "labels", y, k)
      local oc = set.colors and one_hot_t(fn, "colours", set.colors:narrow(0, start, count), k)
      for _, name in ipairs(layers) do
        if captured[name] == nil then
          util.user_error(("%s: layer '%s' did not run in the model's forward"):format(fn, name))
        end
        local a = channel_means(fn, name, captured[name])
        local s = sums[name] or {}
        sums[name] = s
        local add = {all = a:sum(0), label = oy:matmul(a), color = oc and oc:matmul(a)}
        for key, v in pairs(add) do s[key] = s[key] and (s[key] + v) or v end
      end
      local yc = oy:sum(1):totable()
      for g = 1, k do label_counts[g] = label_counts[g] + yc[g] end
      if oc then
        local cc = oc:sum(1):totable()
        for g = 1, k do color_counts[g] = color_counts[g] + cc[g] end
      end
      captured = {}
    end
  end)
  local stats = {n = n, names = layers, layers = {}, classes = k}
  local function per_group(tensor, counts)
    if not tensor then return nil end
    local rows = tensor:totable()
    for g = 1, k do
      for c = 1, #rows[g] do
        rows[g][c] = counts[g] > 0 and rows[g][c] / counts[g] or 0 / 0
      end
    end
    return rows
  end
  for _, name in ipairs(layers) do
    local s = sums[name]
    local mean = s.all:totable()
    for c = 1, #mean do mean[c] = mean[c] / n end
    stats.layers[name] = {channels = #mean, mean = mean,
      by_label = per_group(s.label, label_counts), label_counts = label_counts,
      by_color = per_group(s.color, set.colors and color_counts),
      color_counts = set.colors and color_counts or nil}
  end
  return stats
end

-- ------------------------------------------------------------------ selectivity

--- ablation.selectivity_index(means) → index, group: The selectivity (μ_max − μ_−max) /
-- (μ_max + μ_−max) of one channel over its group means (NaN groups skipped) and its preferred
-- group, counted from 0; the header gives the measure's source.
function ablation.selectivity_index(means)
  local fn = "ablation.selectivity_index"
  if type(means) ~= "table" then
    error(("%s: means must be a list of group means, got %s"):format(fn, type(means)), 2)
  end
  local best, best_g, total, count = -math.huge, nil, 0, 0
  for g, v in ipairs(means) do
    if type(v) ~= "number" then
      error(("%s: means[%d] must be a number, got %s"):format(fn, g, type(v)), 2)
    end
    if v == v then
      count, total = count + 1, total + v
      if v > best then best, best_g = v, g - 1 end
    end
  end
  if count < 2 then
    error(("%s: needs at least two groups with a mean, got %d"):format(fn, count), 2)
  end
  local others = (total - best) / (count - 1)
  local den = best + others
  if den == 0 then return 0.0, best_g end
  return (best - others) / den, best_g
end

--- ablation.selectivity(stats) → stats: Adds to each layer of ablation.record's stats the
-- colour and class selectivity of every channel and its preferred colour and class.
function ablation.selectivity(stats)
  local fn = "ablation.selectivity"
  if type(stats) ~= "table" or type(stats.layers) ~= "table" then
    error(("%s: stats must be the result of ablation.record, got %s"):format(fn, type(stats)), 2)
  end
  for _, name in ipairs(stats.names) do
    local s = stats.layers[name]
    for _, kind in ipairs({{"class", s.by_label}, {"color", s.by_color}}) do
      local groups = kind[2]
      if groups then
        local idx, pref = {}, {}
        for c = 1, s.channels do
          local col = {}
          for g = 1, #groups do col[g] = groups[g][c] end
          idx[c], pref[c] = ablation.selectivity_index(col)
        end
        s[kind[1] .. "_selectivity"], s[kind[1] .. "_preferred"] = idx, pref
      end
    end
  end
  return stats
end

-- ------------------------------------------------------------------ attribution

--- ablation.attribution(model, x[, {layers =, target =}]) → {scores =, preds =, probs =, target =}: Scores
-- every channel of the given layers by Σ over space of activation × ∂logit_target /
-- ∂activation, a first-order estimate of how much the target logit falls when the channel is
-- zeroed (see the header).
function ablation.attribution(model, x, opts)
  local fn = "ablation.attribution"
  check_model(fn, model)
  if not core.is_tensor(x) or x:dim() ~= 4 then
    error(("%s: x (argument #2) must be a float tensor N×C×H×W, got %s"):format(fn,
      core.is_tensor(x) and shape_of(x) or type(x)), 2)
  end
  opts = check_opts(fn, opts, {layers = true, target = true})
  local layers, mods = check_layers(fn, model, opts.layers)
  local n = x:size(0)
  if x.dtype == "uint8" then x = x:float() / 255 end
  -- the gradient flows from the input, not the parameters: their requires_grad is switched
  -- off for the call, so their .grad fields are left as they were
  x = x:detach():clone():requires_grad_(true)
  local acts, grads, handles = {}, {}, {}
  for i, name in ipairs(layers) do
    handles[#handles + 1] = mods[i]:register_forward_hook(function(_, _, out)
      acts[name] = out
    end)
    handles[#handles + 1] = mods[i]:register_backward_hook(function(_, g)
      grads[name] = g
    end)
  end
  local params = model:parameters()
  local flags = {}
  for i, p in ipairs(params) do
    flags[i] = p.requires_grad
    p:requires_grad_(false)
  end
  handles[#handles + 1] = {remove = function()
    for i, p in ipairs(params) do p:requires_grad_(flags[i]) end
  end}
  return guarded(model, true, handles, function()
    local logits = model(x)
    if logits:dim() ~= 2 then
      util.user_error(("%s: the model must return N×K logits, got %s"):format(fn, shape_of(logits)))
    end
    local k = logits:size(1)
    local preds = logits:argmax(1)
    local target = opts.target
    if target == nil then
      target = preds
    elseif math.type(target) == "integer" then
      if target < 0 or target >= k then
        util.user_error(("%s: target must be a class in 0..%d, got %d"):format(fn, k - 1, target))
      end
      target = core.full({n}, target, {dtype = "int64"})
    elseif not (core.is_tensor(target) and target:numel() == n) then
      error(("%s: target must be a class number or an int64 tensor of %d classes, got %s")
        :format(fn, n, core.is_tensor(target) and shape_of(target) or type(target)), 0)
    end
    local mask = one_hot_t(fn, "target", target, k):transpose(0, 1)
    local chosen = (logits * mask):sum()
    for _, name in ipairs(layers) do
      if acts[name] == nil then
        util.user_error(("%s: layer '%s' did not run in the model's forward"):format(fn, name))
      end
      if not acts[name].requires_grad then
        error(("%s: layer '%s' has no gradient (its output does not depend on the input)")
          :format(fn, name), 0)
      end
    end
    chosen:backward()
    local scores = {}
    core.set_grad_enabled(false)
    for _, name in ipairs(layers) do
      local a, g = acts[name]:detach(), grads[name]
      if g == nil then
        -- the layer's output took no part in the chosen logits: every score is 0
        g = core.zeros(a.shape)
      end
      local prod = a * g
      if prod:dim() == 4 then prod = prod:sum(3):sum(2) end
      scores[name] = prod
    end
    return {scores = scores, preds = preds, target = target,
      probs = logits:detach():softmax(1), logits = logits:detach()}
  end)
end

--- ablation.rank(scores[, {ascending = false}]) → channels: The channel positions (from 0)
-- ordered by score, best first, ties in channel order; scores a Lua list or a 1-D tensor.
function ablation.rank(scores, opts)
  local fn = "ablation.rank"
  opts = check_opts(fn, opts, {ascending = true})
  local list = scores
  if core.is_tensor(scores) then
    if scores:dim() ~= 1 then
      error(("%s: scores must be a 1-D tensor or a list, got %s"):format(fn, shape_of(scores)), 2)
    end
    list = scores:totable()
  elseif type(scores) ~= "table" then
    error(("%s: scores must be a 1-D tensor or a list of numbers, got %s"):format(fn,
      type(scores)), 2)
  end
  local order = {}
  for c = 1, #list do
    if type(list[c]) ~= "number" then
      error(("%s: scores[%d] must be a number, got %s"):format(fn, c, type(list[c])), 2)
    end
    order[c] = c
  end
  local function key(c)
    local v = list[c]
    if v ~= v then return -math.huge end -- NaN last either way
    return opts.ascending and -v or v
  end
  table.sort(order, function(a, b)
    local ka, kb = key(a), key(b)
    if ka ~= kb then return ka > kb end
    return a < b
  end)
  for i, c in ipairs(order) do order[i] = c - 1 end
  return order
end

-- ------------------------------------------------------------------ ablation

local function check_channels(fn, layer, channels)
  if core.is_tensor(channels) then channels = channels:totable() end
  if type(channels) ~= "table" then
    error(("%s: channels of '%s' must be a list of channel positions (from 0), got %s"):format(
      fn, layer, type(channels)), 3)
  end
  local list = {}
  for i, c in ipairs(channels) do
    if math.type(c) ~= "integer" or c < 0 then
      error(("%s: channels of '%s': entry %d must be a channel position ≥ 0, got %s"):format(
        fn, layer, i, tostring(c)), 3)
    end
    list[i] = c
  end
  return list
end

--- The 0/1 mask over C channels that zeroes `channels`, shaped to broadcast over out.
local function channel_mask(fn, layer, channels, out)
  if not core.is_tensor(out) or (out:dim() ~= 4 and out:dim() ~= 2) then
    error(("%s: layer '%s' must return N×C×H×W or N×C to be ablated, got %s"):format(fn, layer,
      core.is_tensor(out) and shape_of(out) or type(out)), 0)
  end
  local c_count = out:size(1)
  local values = {}
  for c = 1, c_count do values[c] = 1.0 end
  for _, c in ipairs(channels) do
    if c >= c_count then
      error(("%s: layer '%s' has %d channels (0..%d), cannot zero channel %d"):format(fn, layer,
        c_count, c_count - 1, c), 0)
    end
    values[c + 1] = 0.0
  end
  local mask = core.tensor(values)
  if out:dim() == 4 then return mask:reshape(1, c_count, 1, 1) end
  return mask:reshape(1, c_count)
end

--- ablation.ablate(model, layer, channels) or ablation.ablate(model, {[layer] = channels, …}) → handle: Silences
-- the given channels with forward hooks that zero them in the layer's output, until
-- handle:remove().
function ablation.ablate(model, layer, channels)
  local fn = "ablation.ablate"
  check_model(fn, model)
  local spec = layer
  if type(layer) == "string" then spec = {[layer] = channels}
  elseif type(layer) ~= "table" then
    error(("%s: expected (model, layer, channels) or (model, {[layer] = channels}), got %s")
      :format(fn, type(layer)), 2)
  end
  local plan = {}
  for name, chans in pairs(spec) do
    plan[#plan + 1] = {name = name, module = module_of(fn, model, name),
      channels = check_channels(fn, name, chans)}
  end
  table.sort(plan, function(a, b) return a.name < b.name end)
  local handles = {}
  for _, p in ipairs(plan) do
    local masks = {}
    handles[#handles + 1] = p.module:register_forward_hook(function(_, _, out)
      if #p.channels == 0 then return nil end
      local key = out:dim() .. ":" .. out:size(1)
      local mask = masks[key]
      if not mask then
        mask = channel_mask(fn, p.name, p.channels, out)
        masks[key] = mask
      end
      return out * mask
    end)
  end
  local removed = false
  return {
    layers = plan,
    remove = function()
      if removed then return end
      removed = true
      for _, h in ipairs(handles) do h.remove() end
    end,
  }
end

--- ablation.with_ablation(model, spec, fn, ...) → fn(...)'s results: Calls fn with the channels
-- of spec (as ablation.ablate takes them) silenced, and removes the hooks even when fn raises.
function ablation.with_ablation(model, spec, fn, ...)
  if type(fn) ~= "function" then
    error(("ablation.with_ablation: fn (argument #3) must be a function, got %s"):format(
      type(fn)), 2)
  end
  local handle = ablation.ablate(model, spec)
  local results = table.pack(pcall(fn, ...))
  handle.remove()
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

-- ------------------------------------------------------------------ fast evaluation

--- Many ablations of one layer on one set (lua/cnnlab/ablation_curves.lua).
function ablation.evaluator(model, set, layer, opts)
  return require("cnnlab.ablation_curves").evaluator(model, set, layer, opts)
end

-- The argument checks and helpers the evaluator of cnnlab.ablation_curves shares.
ablation.internal = {check_model = check_model, check_set = check_set, check_count = check_count,
  module_of = module_of, check_opts = check_opts, inputs = inputs, guarded = guarded,
  check_channels = check_channels, channel_mask = channel_mask}

return ablation
