--- cnnlab.optim — SGD, Adam and AdamW; the updates run in C (core.sgd_step, core.adam_step).
--
--   local opt = lab.optim.Adam(net:parameters())          -- PyTorch's defaults
--   local sgd = lab.optim.SGD(net:parameters(), {lr = 0.05, momentum = 0.9})  -- lr required
--   opt:zero_grad(); loss:backward(); opt:step()
--
-- state_dict()/load_state_dict() carry the moment buffers and step counts (Adam's per parameter,
-- as PyTorch's), so a resumed run continues exactly where it stopped. The defaults are cnnlab.defaults' adam, adamw and sgd.
local core = require "cnnlab.core"
local defaults = require "cnnlab.defaults"

local optim = {}

local function check_params(fn, params)
  if type(params) ~= "table" or #params == 0 then
    error(fn .. ": a non-empty list of parameter tensors expected", 3)
  end
  for i, p in ipairs(params) do
    if not core.is_tensor(p) then
      error(("%s: parameter %d is a %s, not a tensor"):format(fn, i, type(p)), 3)
    end
    if not p.requires_grad then
      error(("%s: parameter %d does not require grad"):format(fn, i), 3)
    end
  end
end

-- required: names of numbers without a default (SGD's lr).
local REQUIRED = {}
local function check_opts(fn, opts, defaults_, required)
  required = required or {}
  local known = {}
  for k, v in pairs(defaults_) do known[k] = v end
  for _, k in ipairs(required) do known[k] = REQUIRED end
  opts = opts or {}
  if type(opts) ~= "table" then error(fn .. ": options table expected", 3) end
  local out = {}
  for k, v in pairs(opts) do
    if known[k] == nil then
      local names = {}
      for name in pairs(known) do names[#names + 1] = name end
      table.sort(names)
      error(("%s: unknown option '%s' (known: %s)"):format(fn, tostring(k),
        table.concat(names, ", ")), 3)
    end
    local want = known[k] == REQUIRED and "number" or type(known[k])
    if type(v) ~= want then
      error(("%s: option '%s' must be a %s, got %s"):format(fn, k, want, type(v)), 3)
    end
  end
  for k, v in pairs(known) do
    if opts[k] ~= nil then out[k] = opts[k]
    elseif v == REQUIRED then
      error(("%s: option '%s' is required (a number; there is no default), got nil")
        :format(fn, k), 3)
    else out[k] = v end
  end
  for k, v in pairs(out) do -- NaN passes every comparison below, so it is named here
    if type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge) then
      error(("%s: option '%s' must be a finite number, got %s"):format(fn, k,
        v ~= v and "nan" or tostring(v)), 3)
    end
  end
  if out.lr <= 0 then error(("%s: lr must be positive, got %g"):format(fn, out.lr), 3) end
  return out
end

local Optimizer = {}
Optimizer.__index = Optimizer

--- opt:zero_grad(): drops the .grad of every parameter, before the next backward.
function Optimizer:zero_grad()
  for _, p in ipairs(self.params) do p.grad = nil end
end

--- Buffers and counters as a flat name → tensor table plus a scalar table. Adam and AdamW
-- also give "param_step", an int64 tensor with each parameter's own step count (PyTorch's
-- state[p]['step']).
function Optimizer:state_dict()
  local tensors = {}
  for name, list in pairs(self.buffers) do
    for i, t in pairs(list) do tensors[("%s.%d"):format(name, i)] = t end
  end
  if self.param_steps then
    tensors.param_step = core.tensor(self.param_steps, {dtype = "int64"})
  end
  return tensors, {step = self.steps, kind = self.kind}
end

--- opt:load_state_dict(tensors, scalars): restores what opt:state_dict() returned.
function Optimizer:load_state_dict(tensors, scalars)
  if scalars and scalars.kind and scalars.kind ~= self.kind then
    error(("load_state_dict: state of a %s optimizer given to %s"):format(scalars.kind,
      self.kind), 2)
  end
  for name, list in pairs(self.buffers) do
    for i = 1, #self.params do
      local t = tensors[("%s.%d"):format(name, i)]
      if t then
        if list[i] == nil then list[i] = core.zeros(self.params[i].shape) end
        list[i]:copy_(t)
      elseif list[i] ~= nil then
        error(("load_state_dict: optimizer buffer %s.%d missing"):format(name, i), 2)
      end
    end
  end
  local step = scalars and scalars.step
  if step ~= nil then
    local n = math.tointeger(tonumber(step))
    if n == nil or n < 0 then
      error(("load_state_dict: the step count must be a non-negative integer, got %s")
        :format(tostring(step)), 2)
    end
    self.steps = n
  end
  if self.param_steps then
    local t = tensors.param_step
    if t then
      local counts = t:totable()
      if #counts ~= #self.params then
        error(("load_state_dict: param_step has %d counts for %d parameters"):format(#counts,
          #self.params), 2)
      end
      for i = 1, #self.params do
        local n = math.tointeger(counts[i])
        if n == nil or n < 0 then
          error(("load_state_dict: param_step[%d] must be a non-negative integer, got %s")
            :format(i, tostring(counts[i])), 2)
        end
        self.param_steps[i] = n
      end
    else
      -- a checkpoint from before per-parameter counts: every parameter was counted with the
      -- optimiser's own step, which is what it continues with
      for i = 1, #self.params do self.param_steps[i] = self.steps end
    end
  end
end

--- SGD(params, {lr, momentum, weight_decay, nesterov}): Stochastic gradient descent over params;
-- lr required, the others defaulting to cnnlab.defaults.sgd (PyTorch's: momentum 0,
-- weight_decay 0, nesterov false).
function optim.SGD(params, opts)
  check_params("SGD", params)
  local o = check_opts("SGD", opts, defaults.sgd, {"lr"})
  local self = setmetatable({params = params, opts = o, kind = "SGD", steps = 0,
    buffers = {momentum = {}}}, Optimizer)
  local function update(s)
    for i, p in ipairs(s.params) do
      local g = p.grad
      if g then
        local buf = s.buffers.momentum[i]
        if o.momentum ~= 0 and buf == nil then
          buf = core.zeros(p.shape)
          s.buffers.momentum[i] = buf
        end
        core.sgd_step(p, g, buf, o.lr, o.momentum, o.weight_decay, o.nesterov)
      end
    end
  end
  --- opt:step(): one update of every parameter from its .grad.
  function self.step(s)
    -- core.no_grad restores grad mode even when an update raises (docs/reliability.md)
    core.no_grad(update, s)
    s.steps = s.steps + 1
  end
  return self
end

local function adam(fn, params, opts, known)
  check_params(fn, params)
  local o = check_opts(fn, opts, known)
  -- checked here, not at the first step deep inside a training loop
  for _, k in ipairs({"beta1", "beta2"}) do
    if not (o[k] >= 0 and o[k] < 1) then
      error(("%s: %s must be in [0, 1), got %g"):format(fn, k, o[k]), 3)
    end
  end
  -- param_steps[i]: how many updates parameter i has had, counted per parameter as PyTorch's
  -- state[p]['step']: a step on which p has no gradient neither moves p nor counts for it.
  local self = setmetatable({params = params, opts = o, kind = fn, steps = 0,
    buffers = {m = {}, v = {}}, param_steps = {}}, Optimizer)
  for i, p in ipairs(params) do
    self.buffers.m[i] = core.zeros(p.shape)
    self.buffers.v[i] = core.zeros(p.shape)
    self.param_steps[i] = 0
  end
  local function update(s)
    for i, p in ipairs(s.params) do
      local g = p.grad
      if g then
        local t = s.param_steps[i] + 1
        core.adam_step(p, g, s.buffers.m[i], s.buffers.v[i], t, o.lr, o.beta1, o.beta2,
          o.eps, o.weight_decay, o.decoupled)
        s.param_steps[i] = t
      end
    end
  end
  --- opt:step(): one update of every parameter from its .grad.
  function self.step(s)
    s.steps = s.steps + 1
    -- core.no_grad restores grad mode even when an update raises (docs/reliability.md)
    core.no_grad(update, s)
  end
  return self
end

--- Adam(params, {lr, beta1, beta2, eps, weight_decay, decoupled}): The Adam optimiser over params,
-- each option defaulting to cnnlab.defaults.adam (PyTorch's); decoupled = true gives AdamW's
-- update.
function optim.Adam(params, opts) return adam("Adam", params, opts, defaults.adam) end

--- AdamW(params, {...as Adam}): Adam with decoupled weight decay over params, defaults
-- cnnlab.defaults.adamw (PyTorch's AdamW: weight_decay 0.01).
function optim.AdamW(params, opts) return adam("AdamW", params, opts, defaults.adamw) end

--- Sets the learning rate of an optimizer (schedules call this between epochs).
function optim.set_lr(opt, lr) opt.opts.lr = lr end

return optim
