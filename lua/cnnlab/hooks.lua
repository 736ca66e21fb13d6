--- cnnlab.hooks — look inside a model through its module hooks, never through special code
-- in the layers.
--
--   hooks.module(model, name)          the module called `name` ("conv1", "relu3", "fc"); an
--                                      unknown name is an error listing the known ones
--   hooks.find(model, name[, fn])      the module, or nil and a message beginning with fn
--   hooks.layer_names(model)           the dotted names of every module below the root
--   hooks.capture(model, names, x[, {grad = false, detach = true, reduce = fn, eval = true}])
--       → acts, output
--       runs model(x) once with a forward hook on each named module, then removes the hooks
--       (also when the forward raises). acts[name] is what the module returned (detached
--       unless detach = false; passed through reduce(name, output) when given, e.g. a spatial
--       mean). names is a string or a list of strings. Without grad = true the forward runs
--       without recording a graph. The model runs in evaluation mode (dropout off) and gets
--       its mode back afterwards; eval = false leaves the mode as it is.
--   hooks.collect(model, names, images[, {batch = 256, reduce = fn, progress = fn}]) → acts
--       hooks.capture over a whole set of images (uint8 bytes N×3×H×W as stored, or float in
--       [0,1]) in batches, in evaluation mode; acts[name] concatenates the batches along dim 0
--       (use reduce to keep memory small); acts.output holds the model's outputs.
--   hooks.gradient(model, name, x[, {target =, score =, cut = true, input_grad = false}])
--       → {activation =, gradient =, output =, target =, input_grad =}
--       the gradient of a scalar score with respect to the output of module `name`, captured
--       by a backward hook on that module (so at the module boundary, as PyTorch's full
--       backward hooks do). The default score is Σ_n output[n, target_n] with target the
--       top logit of each row, or opts.target: an integer class for every row or an int64
--       tensor of N classes. opts.score(output, target) → scalar tensor replaces it. Rows of
--       a batch do not interact in evaluation mode, so the gradient of the summed score at row
--       n is the gradient of row n's own score: one backward serves the whole batch.
--       With cut = true the forward hook hands the later layers a fresh leaf copy of the
--       activation, so backward stops at the layer (cheap); cut = false (or input_grad =
--       true, which implies it) lets it run down to the input, and input_grad = true returns
--       ∂score/∂x too. The model runs in evaluation mode and its parameters' requires_grad
--       is switched off for the call: their .grad fields are left untouched. Hooks, modes and
--       flags are restored even when something raises.
--   hooks.anova(groups)                metrics.anova: η² of activations on groupings
--   hooks.channel_means(t)             N×C×H×W activations → N×C spatial means (N×C passes)
--   hooks.colour_response(model, layer, grey, o) → {blank, digit, blank_rows, digit_rows}: the
--       mean activation of each channel of layer to each of the 10 palette colours, on blank
--       inputs (zeros painted: background noise only) and on the grey digits painted in that
--       colour; blank[channel][colour] and digit[...] (Lua lists), *_rows [colour][channel];
--       o = {beta, seed, blank_stream, digit_stream, batch}
--   hooks.variance_explained(model, layers, images, groups, o) → layer → {channel, unit}:
--       metrics.anova's results per layer over images (uint8 N×3×H×W) grouped by groups
--       ({name = int64 N}, 10 groups each), on each channel's spatial mean and on each unit;
--       besides the model's layers, "input" (the images in [0,1]) and "fc" (the output);
--       o = {batch}
--   hooks.guarded(model, grad, cleanup, body) → body()'s results, run in evaluation mode with
--       gradient recording set to grad; both restored and cleanup() run whatever happens
--   hooks.attach(model, names, fn) → handle     low level: fn(name, module, input, output) as
--       a forward hook on each named module; handle:remove() removes them all.
local core = require "cnnlab.core"
local util = require "cnnlab.util"

local hooks = {}

local function is_module(m)
  return type(m) == "table" and type(m.register_forward_hook) == "function"
    and type(m.named_modules) == "function"
end

local function check_model(fn, model)
  if not is_module(model) then
    error(("%s: model must be a cnnlab.nn module, got %s"):format(fn, type(model)), 3)
  end
end

local function shape_string(t) return table.concat(t.shape, "×") end

--- The dotted names of every module below the model's root, in order.
function hooks.layer_names(model)
  check_model("hooks.layer_names", model)
  local names = {}
  for _, entry in ipairs(model:named_modules()) do
    if entry[1] ~= "" then names[#names + 1] = entry[1] end
  end
  return names
end

-- model's sub-module called name or nil (find_module, or get_module for models without it).
local function lookup_module(model, name)
  if model.find_module then return model:find_module(name) end
  local ok, m = pcall(model.get_module, model, name)
  return ok and m or nil
end

-- The module called name, or nil and a message naming fn and the known layers.
local function find(fn, model, name)
  if type(name) ~= "string" then
    return nil, ("%s: a layer name (string) expected, got %s"):format(fn, type(name))
  end
  local m = name ~= "" and lookup_module(model, name)
  if not m then
    return nil, ("%s: the model has no layer '%s' (layers: %s)"):format(fn, name,
      table.concat(hooks.layer_names(model), ", "))
  end
  return m
end

-- find, raising at the caller of the public function that called resolve.
local function resolve(fn, model, name)
  local m, msg = find(fn, model, name)
  if not m then error(msg, 3) end
  return m
end

-- The modules of a list of names, raising at the public function's caller.
local function resolve_all(fn, model, names)
  local modules = {}
  for i, name in ipairs(names) do
    local m, msg = find(fn, model, name)
    if not m then error(msg, 3) end
    modules[i] = m
  end
  return modules
end

-- Forward hooks fn(name, module, input, output) on modules; a handle removing them all.
local function attach_modules(names, modules, fn)
  local handles = {}
  for i, name in ipairs(names) do
    handles[i] = modules[i]:register_forward_hook(function(m, input, output)
      return fn(name, m, input, output)
    end)
  end
  return {remove = function()
    for _, h in ipairs(handles) do h.remove() end
    handles = {}
  end}
end

--- The module of model called name ("conv1", "relu3", "fc"); an unknown name is an error
-- listing the known ones.
function hooks.module(model, name)
  check_model("hooks.module", model)
  return resolve("hooks.module", model, name)
end

--- The module called name, or nil and a message that begins with fn (for other modules'
-- error messages).
function hooks.find(model, name, fn)
  fn = fn or "hooks.find"
  if not is_module(model) then
    return nil, ("%s: model must be a cnnlab.nn module, got %s"):format(fn, type(model))
  end
  return find(fn, model, name)
end

local function name_list(fn, names)
  if type(names) == "string" then return {names} end
  if type(names) ~= "table" or #names == 0 then
    error(("%s: names must be a layer name or a non-empty list of names, got %s"):format(fn,
      type(names) == "table" and "an empty table" or type(names)), 3)
  end
  for i, n in ipairs(names) do
    if type(n) ~= "string" then
      error(("%s: names[%d] must be a string, got %s"):format(fn, i, type(n)), 3)
    end
  end
  return names
end

local function check_input(fn, x)
  if not core.is_tensor(x) then
    error(("%s: x must be a tensor (N×C×H×W), got %s"):format(fn, type(x)), 3)
  end
end

--- Checks an options table against the keys a function knows (shared by the study's
-- instruments: gradcam.lua and ablation.lua use it too). Errors blame the caller's caller.
function hooks.check_opts(fn, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("%s: options must be a table, got %s"):format(fn, type(opts)), 3)
  end
  for k in pairs(opts) do
    if not allowed[k] then
      local known = {}
      for name in pairs(allowed) do known[#known + 1] = name end
      table.sort(known)
      error(("%s: unknown option '%s' (known: %s)"):format(fn, tostring(k),
        table.concat(known, ", ")), 3)
    end
  end
  return opts
end
local check_opts = hooks.check_opts

--- Registers fn(name, module, input, output) as a forward hook on each named module; the
-- returned handle's :remove() removes every one of them (safe to call twice).
function hooks.attach(model, names, fn)
  check_model("hooks.attach", model)
  names = name_list("hooks.attach", names)
  if type(fn) ~= "function" then
    error(("hooks.attach: fn must be a function, got %s"):format(type(fn)), 2)
  end
  return attach_modules(names, resolve_all("hooks.attach", model, names), fn)
end

--- Runs body() with the model in evaluation mode and gradient recording set to `grad`, then
-- restores both (and runs cleanup) whatever happens (shared with ablation.lua).
function hooks.guarded(model, grad, cleanup, body)
  local was_training = model.training
  model:eval()
  local was_grad = core.set_grad_enabled(grad)
  local results = table.pack(pcall(body))
  core.set_grad_enabled(was_grad)
  model:train(was_training)
  if cleanup then cleanup() end
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end
local guarded = hooks.guarded

--- hooks.capture(model, names, x[, {grad = false, detach = true, reduce = fn, eval = true}]) → acts, output: Runs
-- model(x) once with a forward hook on each named module and returns what each module output
-- (acts[name]) and the model's output; the hooks and the model's mode are restored even when
-- the forward raises.
function hooks.capture(model, names, x, opts)
  check_model("hooks.capture", model)
  names = name_list("hooks.capture", names)
  check_input("hooks.capture", x)
  opts = check_opts("hooks.capture", opts, {grad = true, detach = true, reduce = true,
    eval = true})
  if opts.reduce ~= nil and type(opts.reduce) ~= "function" then
    error(("hooks.capture: reduce must be a function(name, output), got %s"):format(
      type(opts.reduce)), 2)
  end
  local modules = resolve_all("hooks.capture", model, names)
  local acts = {}
  local handle = attach_modules(names, modules, function(name, _, _, output)
    local keep = output
    if core.is_tensor(keep) and opts.detach ~= false then keep = keep:detach() end
    if opts.reduce then keep = opts.reduce(name, keep) end
    acts[name] = keep
  end)
  local function run() return model(x) end
  local output
  if opts.eval == false then
    -- keep the model's mode (used by callers that want dropout as in training)
    local was_grad = core.set_grad_enabled(opts.grad == true)
    local ok, res = pcall(run)
    core.set_grad_enabled(was_grad)
    handle.remove()
    if not ok then error(res, 0) end
    output = res
  else
    output = guarded(model, opts.grad == true, handle.remove, run)
  end
  for _, name in ipairs(names) do
    if acts[name] == nil then
      error(("hooks.capture: layer '%s' never ran during the forward pass"):format(name), 2)
    end
  end
  return acts, output
end

local function as_float(fn, images)
  if images.dtype == "uint8" then return images:float() / 255 end
  if images.dtype ~= "float32" then
    error(("%s: images must be uint8 bytes or float32, got %s"):format(fn, images.dtype), 3)
  end
  return images
end

--- hooks.collect(model, names, images[, {batch = 256, reduce = fn, progress = fn}]) → acts: Runs
-- hooks.capture over a whole set of images in batches, in evaluation mode, and concatenates each
-- module's outputs (and the model's, as acts.output) along dimension 0.
function hooks.collect(model, names, images, opts)
  check_model("hooks.collect", model)
  names = name_list("hooks.collect", names)
  check_input("hooks.collect", images)
  opts = check_opts("hooks.collect", opts, {batch = true, reduce = true, progress = true})
  resolve_all("hooks.collect", model, names)
  local batch = opts.batch or 256
  if math.type(batch) ~= "integer" or batch < 1 then
    error(("hooks.collect: batch must be a positive integer, got %s"):format(tostring(batch)), 2)
  end
  if images:dim() ~= 4 then
    error(("hooks.collect: images must be N×C×H×W, got %s"):format(shape_string(images)), 2)
  end
  local n = images:size(0)
  local parts = {output = {}}
  for _, name in ipairs(names) do parts[name] = {} end
  for start = 0, n - 1, batch do
    local count = math.min(batch, n - start)
    local x = as_float("hooks.collect", images:narrow(0, start, count))
    local acts, out = hooks.capture(model, names, x, {reduce = opts.reduce})
    for _, name in ipairs(names) do table.insert(parts[name], acts[name]) end
    table.insert(parts.output, out)
    if opts.progress then opts.progress(start + count, n) end
  end
  local result = {}
  for key, list in pairs(parts) do result[key] = core.cat(list, 0) end
  return result
end

-- The classes whose scores are differentiated: the top logit of each row, one integer for
-- every row, or an int64 tensor of N classes.
local function targets_for(fn, output, target)
  local n = output:size(0)
  if target == nil then return output:detach():argmax(1) end
  if math.type(target) == "integer" then
    if target < 0 or target >= output:size(1) then
      error(("%s: target must be a class in 0..%d, got %d"):format(fn, output:size(1) - 1,
        target), 3)
    end
    return core.full({n}, target, {dtype = "int64"})
  end
  if core.is_tensor(target) then
    if target.dtype ~= "int64" or target:dim() ~= 1 or target:size(0) ~= n then
      error(("%s: target must be an int64 vector of %d classes, got %s %s"):format(fn, n,
        target.dtype, shape_string(target)), 3)
    end
    local lo, hi = target:min():item(), target:max():item()
    if lo < 0 or hi >= output:size(1) then
      error(("%s: target classes must be in 0..%d, got %d..%d"):format(fn, output:size(1) - 1,
        lo, hi), 3)
    end
    return target
  end
  error(("%s: target must be nil (top logit), an integer class or an int64 tensor, got %s")
    :format(fn, type(target)), 3)
end

--- hooks.gradient(model, name, x[, {target =, score =, cut = true, input_grad = false}]) → {activation =, gradient =, output =, target =, input_grad =}: The
-- gradient of a scalar score (default: each row's target logit, summed) with respect to the
-- output of module name, captured by a backward hook at the module's boundary (see the header).
function hooks.gradient(model, name, x, opts)
  local fn = "hooks.gradient"
  check_model(fn, model)
  check_input(fn, x)
  opts = check_opts(fn, opts, {target = true, score = true, cut = true, input_grad = true})
  local module = resolve(fn, model, name)
  if opts.score ~= nil and type(opts.score) ~= "function" then
    error(("%s: score must be a function(output, target) → scalar tensor, got %s"):format(fn,
      type(opts.score)), 2)
  end
  local input_grad = opts.input_grad == true
  local cut = opts.cut ~= false and not input_grad
  x = as_float(fn, x)

  -- Parameters stop requiring grad for the call: nothing accumulates into their .grad.
  local params, flags = model:parameters(), {}
  for i, p in ipairs(params) do flags[i] = p.requires_grad end
  local result = {}
  local handles = {}
  local function cleanup()
    for _, h in ipairs(handles) do h.remove() end
    for i, p in ipairs(params) do p:requires_grad_(flags[i]) end
  end
  for _, p in ipairs(params) do p:requires_grad_(false) end

  return guarded(model, true, cleanup, function()
    local xin = x
    if not cut then xin = x:detach():clone():requires_grad_(true) end
    handles[1] = module:register_forward_hook(function(_, _, output)
      if not core.is_tensor(output) then
        util.user_error(("%s: layer '%s' returned a %s, not a tensor"):format(fn, name, type(output)))
      end
      result.activation = output:detach()
      -- the fresh leaf starts the graph here; the backward hook below then sees its gradient
      if cut then return output:detach():clone():requires_grad_(true) end
    end)
    handles[2] = module:register_backward_hook(function(_, grad)
      result.gradient = grad:detach():clone()
    end)
    local output = model(xin)
    if not core.is_tensor(output) or output:dim() ~= 2 then
      error(("%s: the model must return N×K scores, got %s"):format(fn,
        core.is_tensor(output) and shape_string(output) or type(output)), 0)
    end
    if result.activation == nil then
      util.user_error(("%s: layer '%s' never ran during the forward pass"):format(fn, name))
    end
    local target = targets_for(fn, output, opts.target)
    local score
    if opts.score then
      score = opts.score(output, target)
    else
      score = output:gather(1, target:unsqueeze(1)):sum()
    end
    if not core.is_tensor(score) or score:numel() ~= 1 then
      util.user_error(("%s: the score must be a scalar tensor"):format(fn))
    end
    if not score.requires_grad then
      error(("%s: the score does not depend on layer '%s' (no gradient can reach it)"):format(
        fn, name), 0)
    end
    score:backward()
    if result.gradient == nil then
      -- the score does not flow through the layer: its gradient is zero
      result.gradient = core.zeros(result.activation.shape)
    end
    result.output = output:detach()
    result.target = target
    if input_grad then result.input_grad = xin.grad:detach() end
    return result
  end)
end

--- hooks.channel_means(t) → N×C: The spatial mean of each channel of N×C×H×W activations.
function hooks.channel_means(t)
  if t:dim() == 2 then return t end
  return t:reshape(t:size(0), t:size(1), -1):mean(2)
end

--- hooks.colour_response(model, layer, grey, o) → {blank =, digit =, blank_rows =, digit_rows =}: The
-- mean activation of each channel of layer to each of the 10 palette colours, on blank inputs
-- and on the grey digits painted in that colour.
function hooks.colour_response(model, layer, grey, o)
  local nr = grey:size(0)
  local blank_grey = core.zeros({nr, grey:size(1), grey:size(2)}, {dtype = "uint8"})
  local blank_rows, digit_rows = {}, {}
  local reduce = function(_, t) return hooks.channel_means(t) end
  for k = 0, 9 do
    local colours = core.full({nr}, k, {dtype = "int64"})
    local b = core.colorize(blank_grey, colours, o.beta, o.seed, o.blank_stream)
    local d = core.colorize(grey, colours, o.beta, o.seed, o.digit_stream)
    blank_rows[k + 1] = hooks.collect(model, layer, b, {batch = o.batch, reduce = reduce})
      [layer]:mean(0):totable()
    digit_rows[k + 1] = hooks.collect(model, layer, d, {batch = o.batch, reduce = reduce})
      [layer]:mean(0):totable()
  end
  local blank, digit = {}, {}
  for ch = 1, #blank_rows[1] do
    blank[ch], digit[ch] = {}, {}
    for k = 1, 10 do blank[ch][k], digit[ch][k] = blank_rows[k][ch], digit_rows[k][ch] end
  end
  return {blank = blank, digit = digit, blank_rows = blank_rows, digit_rows = digit_rows}
end

--- hooks.variance_explained(model, layers, images, groups, o) → {[layer] = {channel =, unit =}}: How
-- much of each layer's activations the groupings explain: metrics.anova's results per layer,
-- on each channel's spatial mean and on each unit, with "input" and "fc" besides the layers.
function hooks.variance_explained(model, layers, images, groups, o)
  local metrics = require "cnnlab.metrics"
  local n, batch, inner = images:size(0), o and o.batch or 256, {}
  local acc = {}
  for _, layer in ipairs(layers) do
    acc[layer] = {channel = metrics.anova(10), unit = metrics.anova(10)}
    if layer ~= "input" and layer ~= "fc" then inner[#inner + 1] = layer end
  end
  for start = 0, n - 1, batch do
    local count = math.min(batch, n - start)
    local x = images:narrow(0, start, count):float() / 255
    local a, out = hooks.capture(model, inner, x)
    a.input, a.fc = x, out
    local g = {}
    for name, t in pairs(groups) do g[name] = t:narrow(0, start, count) end
    for _, layer in ipairs(layers) do
      acc[layer].channel:add(hooks.channel_means(a[layer]), g)
      acc[layer].unit:add(a[layer]:reshape(count, -1), g)
    end
  end
  local r = {}
  for _, layer in ipairs(layers) do
    r[layer] = {channel = acc[layer].channel:result(), unit = acc[layer].unit:result()}
  end
  return r
end

--- The streaming one-way ANOVA lives with the statistics (cnnlab.metrics); this name stays
-- for the scripts and docs that use it.
function hooks.anova(groups) return require("cnnlab.metrics").anova(groups) end

return hooks
