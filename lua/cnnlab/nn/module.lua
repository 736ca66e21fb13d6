--- cnnlab.nn.module — the Module base class of cnnlab.nn and nn.class, its class helper.
--
-- Every module answers the same small interface:
--   m(x)                      forward, running forward hooks and arming backward hooks
--   m:forward(x)              the computation alone (what a new layer defines)
--   m:parameters()            list of parameter tensors, in registration order
--   m:named_parameters()      list of {name, tensor} with dotted names ("conv1.weight")
--   m:register_buffer(name, t) state that is not a parameter (BatchNorm's running_mean):
--                             no gradient, not in parameters(), but in state_dict()
--   m:buffers() / m:named_buffers()
--   m:state_dict()            name → tensor, parameters and buffers under PyTorch's names
--                             (the names and shapes of SPEC §4; "bn1.running_mean")
--   m:load_state_dict(sd[, {strict = true}])
--   m:train() / m:eval()      switch dropout and similar layers
--   m:zero_grad()
--   m:register_forward_hook(fn)   fn(module, input, output) → nil or a replacement output
--   m:register_backward_hook(fn)  fn(module, grad_output) → nil or a replacement gradient
--   m:children() / m:named_modules()
--   nn.frozen(m, fn[, {grad = true}])  fn(m) in evaluation mode, parameters frozen; restored
-- Hooks return a handle with :remove(). A Lua layer composes tensor operations in forward and
-- gets its gradients from the autograd engine.
local core = require "cnnlab.core"

local util = require "cnnlab.util"

local nn = {}

local calling = false -- inside a module call that started from outside the library

local function is_tensor(x) return core.is_tensor(x) end

--- Class helper: nn.class(name, parent) → class table; calling the class builds an instance
-- through class.init(self, ...).
function nn.class(name, parent)
  local cls = {__name = name}
  cls.__index = cls
  -- the outermost call from user code runs under util.relocate, so that an error deep in a
  -- network (a shape mismatch in a layer's kernel) names the user's line, not the library's
  cls.__call = function(self, ...)
    if calling then return self:_call(...) end
    calling = true
    local r = table.pack(xpcall(self._call, util.relocate, self, ...))
    calling = false
    if not r[1] then error(r[2], 0) end
    return table.unpack(r, 2, r.n)
  end
  cls.__tostring = function(self) return self:describe() end
  local function construct(c, ...)
    local obj = setmetatable({}, c)
    obj:_setup()
    obj:init(...)
    return obj
  end
  setmetatable(cls, {
    __index = parent,
    __call = function(c, ...) return util.call_located(construct, c, ...) end,
  })
  return cls
end

local Module = nn.class("Module")
nn.Module = Module

function Module:_setup()
  rawset(self, "_param_names", {})
  rawset(self, "_buffer_names", {})
  rawset(self, "_children", {})
  rawset(self, "_forward_hooks", {})
  rawset(self, "_backward_hooks", {})
  rawset(self, "_next_hook", 0)
  rawset(self, "training", true)
end

--- m:init(...): sets up a new instance (a class defines it; the base does nothing).
function Module:init() end

function Module:forward()
  error(getmetatable(self).__name .. ": forward is not defined", 2)
end

--- m:describe() → string: the one-line description tostring(m) shows.
function Module:describe() return getmetatable(self).__name .. "()" end

--- Registers a parameter tensor under `name` (also reachable as self[name]).
function Module:register_parameter(name, tensor)
  if self[name] == nil or not is_tensor(self[name]) then
    table.insert(self._param_names, name)
  end
  rawset(self, name, tensor)
  return tensor
end

--- Registers a buffer under `name` (also reachable as self[name]): a tensor that belongs to
-- the module's state (saved and loaded by state_dict) but is not a parameter — no gradient,
-- not in parameters(), never given to an optimiser. `tensor` may be nil (PyTorch's None:
-- registered, but neither saved nor loaded until it is set).
function Module:register_buffer(name, tensor)
  if type(name) ~= "string" or name == "" or name:find(".", 1, true) then
    error(("register_buffer: name must be a non-empty string without dots, got %s")
      :format(tostring(name)), 2)
  end
  if tensor ~= nil and not is_tensor(tensor) then
    error(("register_buffer: '%s' must be a tensor or nil, got %s"):format(name, type(tensor)), 2)
  end
  for _, p in ipairs(self._param_names) do
    if p == name then error(("register_buffer: '%s' is a parameter already"):format(name), 2) end
  end
  local known = false
  for _, b in ipairs(self._buffer_names) do known = known or b == name end
  if not known then table.insert(self._buffer_names, name) end
  rawset(self, name, tensor)
  return tensor
end

--- Registers a child module under `name` (also reachable as self[name]).
function Module:add_module(name, module)
  assert(type(name) == "string", "add_module: name must be a string")
  if getmetatable(module) == nil or type(module._call) ~= "function" then
    error(("add_module: '%s' is not a module (got %s)"):format(name, type(module)), 2)
  end
  for _, c in ipairs(self._children) do
    if c.name == name then error(("add_module: a child named '%s' exists already"):format(name), 2) end
  end
  table.insert(self._children, {name = name, module = module})
  rawset(self, name, module)
  return module
end

--- m:children() → list: the direct sub-modules, in order.
function Module:children()
  local list = {}
  for i, c in ipairs(self._children) do list[i] = c.module end
  return list
end

--- Every module in the tree as {name, module}, depth first, the root named "".
function Module:named_modules(prefix, out)
  out = out or {}
  prefix = prefix or ""
  table.insert(out, {prefix, self})
  for _, c in ipairs(self._children) do
    c.module:named_modules(prefix == "" and c.name or prefix .. "." .. c.name, out)
  end
  return out
end

--- The module whose dotted name is `path` ("conv3", "features.1"), or nil.
--- The sub-module at path ("relu3", "features.0"); nil when there is none.
function Module:find_module(path)
  for _, entry in ipairs(self:named_modules()) do
    if entry[1] == path then return entry[2] end
  end
end

--- The sub-module at path; an error naming the path and listing the valid ones when there is
-- none (find_module returns nil instead).
function Module:get_module(path)
  local m = type(path) == "string" and path ~= "" and self:find_module(path)
  if m then return m end
  local names = {}
  for _, entry in ipairs(self:named_modules()) do
    if entry[1] ~= "" then names[#names + 1] = entry[1] end
  end
  error(("get_module: the model has no layer %s (layers: %s)"):format(type(path) == "string"
    and ("'" .. path .. "'") or ("name, got " .. type(path)),
    #names > 0 and table.concat(names, ", ") or "none"), 2)
end

function Module:named_parameters(prefix, out)
  out = out or {}
  prefix = prefix or ""
  for _, name in ipairs(self._param_names) do
    local t = rawget(self, name)
    if t then table.insert(out, {prefix .. name, t}) end
  end
  for _, c in ipairs(self._children) do
    c.module:named_parameters(prefix .. c.name .. ".", out)
  end
  return out
end

function Module:parameters()
  local list = {}
  for i, entry in ipairs(self:named_parameters()) do list[i] = entry[2] end
  return list
end

--- m:named_buffers() → list: The module's buffers (running statistics and the like) as
-- {name, tensor} pairs, with dotted names as state_dict uses them.
function Module:named_buffers(prefix, out)
  out = out or {}
  prefix = prefix or ""
  for _, name in ipairs(self._buffer_names) do
    local t = rawget(self, name)
    if t then table.insert(out, {prefix .. name, t}) end
  end
  for _, c in ipairs(self._children) do
    c.module:named_buffers(prefix .. c.name .. ".", out)
  end
  return out
end

--- m:buffers() → list: The module's buffer tensors, which are not parameters (no gradient, no
-- optimiser).
function Module:buffers()
  local list = {}
  for i, entry in ipairs(self:named_buffers()) do list[i] = entry[2] end
  return list
end

-- Parameters, then buffers: everything state_dict holds, as {name, tensor}.
local function named_state(self)
  local list = self:named_parameters()
  for _, entry in ipairs(self:named_buffers()) do table.insert(list, entry) end
  return list
end

function Module:state_dict()
  local sd = {}
  for _, entry in ipairs(named_state(self)) do sd[entry[1]] = entry[2] end
  return sd
end

local function shape_string(t) return table.concat(t.shape, "×") end

--- Copies values from `sd` (name → tensor) into the parameters. With strict (the default)
-- missing and unexpected names are errors; a shape mismatch always is. Errors name the tensor.
function Module:load_state_dict(sd, opts)
  if type(sd) ~= "table" then
    error(("load_state_dict: a table name → tensor expected, got %s"):format(type(sd)), 2)
  end
  local strict = not (opts and opts.strict == false)
  local params = named_state(self)
  local known, missing = {}, {}
  for _, entry in ipairs(params) do
    local name, p = entry[1], entry[2]
    known[name] = true
    local src = sd[name]
    if src == nil then
      table.insert(missing, name)
    elseif not is_tensor(src) then
      error(("load_state_dict: '%s' is a %s, not a tensor"):format(name, type(src)), 2)
    elseif src:is_freed() then -- else the copy fails later with a message naming nothing
      error(("load_state_dict: '%s' has been freed"):format(name), 2)
    else
      local a, b = shape_string(p), shape_string(src)
      if a ~= b then
        error(("load_state_dict: '%s' has shape %s in the file but %s in the model"):format(
          name, b == "" and "[] (a scalar)" or b, a == "" and "[] (a scalar)" or a), 2)
      end
    end
  end
  if strict then
    if #missing > 0 then
      error("load_state_dict: missing tensor(s): " .. table.concat(missing, ", "), 2)
    end
    local extra = {}
    for name in pairs(sd) do
      if not known[name] then table.insert(extra, name) end
    end
    table.sort(extra)
    if #extra > 0 then
      error("load_state_dict: unexpected tensor(s): " .. table.concat(extra, ", "), 2)
    end
  end
  -- core.no_grad restores grad mode even if a copy fails (a freed tensor, no memory)
  core.no_grad(function()
    for _, entry in ipairs(params) do
      local src = sd[entry[1]]
      if src then entry[2]:copy_(src) end
    end
  end)
  return self
end

--- m:train([on]) → m: training mode (or evaluation with on = false), children included.
function Module:train(on)
  if on == nil then on = true end
  rawset(self, "training", on)
  for _, c in ipairs(self._children) do c.module:train(on) end
  return self
end

--- m:eval() → m: evaluation mode (dropout off), for m and its children.
function Module:eval() return self:train(false) end

--- m:zero_grad(): drops the .grad of every parameter.
function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do p.grad = nil end
end

local function add_hook(self, list_name, fn, what)
  if type(fn) ~= "function" then
    error(("%s: function expected, got %s"):format(what, type(fn)), 3)
  end
  local key = self._next_hook + 1
  rawset(self, "_next_hook", key)
  table.insert(self[list_name], {key = key, fn = fn})
  local list = self[list_name]
  return {
    remove = function()
      for i, h in ipairs(list) do
        if h.key == key then table.remove(list, i) return end
      end
    end,
  }
end

function Module:register_forward_hook(fn)
  return add_hook(self, "_forward_hooks", fn, "register_forward_hook")
end

function Module:register_backward_hook(fn)
  return add_hook(self, "_backward_hooks", fn, "register_backward_hook")
end

--- Forward with hooks at the module boundary: forward hooks see (module, input, output)
-- and may replace the output; backward hooks attach to the final output tensor, so they
-- receive the gradient of exactly what the module returned.
function Module:_call(input, ...)
  local output = self:forward(input, ...)
  for _, h in ipairs({table.unpack(self._forward_hooks)}) do
    local replaced = h.fn(self, input, output)
    if replaced ~= nil then output = replaced end
  end
  if #self._backward_hooks > 0 and is_tensor(output) and output.requires_grad then
    local hooks = {table.unpack(self._backward_hooks)}
    output:register_hook(function(grad)
      for _, h in ipairs(hooks) do
        local replaced = h.fn(self, grad)
        if replaced ~= nil then grad = replaced end
      end
      return grad
    end)
  end
  return output
end

return nn
