--- cnnlab.nn — layers as Torch7-style modules over the C kernels.
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

-- ------------------------------------------------------------------ initialisation

--- U(−1/√fan_in, 1/√fan_in): PyTorch's default for Linear and Conv2d weights and biases.
local function uniform_init(shape, fan_in, generator)
  local bound = 1 / math.sqrt(fan_in)
  local t = core.rand(shape, {generator = generator})
  -- core.no_grad, not set_grad_enabled pairs: an error in between must not leave grad off
  local scaled = core.no_grad(function() return t * (2 * bound) - bound end)
  return scaled:detach():requires_grad_(true)
end

local function check_positive(fn, what, v)
  if math.type(v) ~= "integer" or v < 1 then
    error(("%s: %s must be a positive integer, got %s"):format(fn, what, tostring(v)), 3)
  end
end

local function check_options(fn, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("%s: options table expected, got %s"):format(fn, type(opts)), 3)
  end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for name in pairs(allowed) do table.insert(names, name) end
      table.sort(names)
      error(("%s: unknown option '%s' (known: %s)"):format(fn, tostring(k),
        table.concat(names, ", ")), 3)
    end
  end
  return opts
end

-- ------------------------------------------------------------------ layers

local Linear = nn.class("Linear", Module)
nn.Linear = Linear

--- Linear(in_features, out_features[, {bias = true, generator = g}])
function Linear:init(inf, outf, opts)
  check_positive("Linear", "in_features", inf)
  check_positive("Linear", "out_features", outf)
  opts = check_options("Linear", opts, {bias = true, generator = true})
  self.in_features, self.out_features = inf, outf
  self:register_parameter("weight", uniform_init({outf, inf}, inf, opts.generator))
  if opts.bias ~= false then
    self:register_parameter("bias", uniform_init({outf}, inf, opts.generator))
  end
end

function Linear:forward(x) return core.linear(x, self.weight, rawget(self, "bias")) end

function Linear:describe()
  return ("Linear(%d → %d)"):format(self.in_features, self.out_features)
end

local Conv2d = nn.class("Conv2d", Module)
nn.Conv2d = Conv2d

--- Conv2d(in_channels, out_channels, kernel[, {stride = 1, padding = 0, bias = true,
-- generator = g}])
function Conv2d:init(cin, cout, k, opts)
  check_positive("Conv2d", "in_channels", cin)
  check_positive("Conv2d", "out_channels", cout)
  check_positive("Conv2d", "kernel", k)
  opts = check_options("Conv2d", opts, {stride = true, padding = true, bias = true,
    generator = true})
  self.in_channels, self.out_channels, self.kernel = cin, cout, k
  self.stride, self.padding = opts.stride or 1, opts.padding or 0
  check_positive("Conv2d", "stride", self.stride)
  if math.type(self.padding) ~= "integer" or self.padding < 0 then
    error(("Conv2d: padding must be a non-negative integer, got %s"):format(
      tostring(self.padding)), 2)
  end
  local fan_in = cin * k * k
  self:register_parameter("weight", uniform_init({cout, cin, k, k}, fan_in, opts.generator))
  if opts.bias ~= false then
    self:register_parameter("bias", uniform_init({cout}, fan_in, opts.generator))
  end
end

function Conv2d:forward(x)
  return core.conv2d(x, self.weight, rawget(self, "bias"), self.stride, self.padding)
end

function Conv2d:describe()
  return ("Conv2d(%d → %d, %d×%d, stride %d, padding %d)"):format(self.in_channels,
    self.out_channels, self.kernel, self.kernel, self.stride, self.padding)
end

local MaxPool2d = nn.class("MaxPool2d", Module)
nn.MaxPool2d = MaxPool2d

function MaxPool2d:init(k, stride)
  check_positive("MaxPool2d", "kernel", k)
  stride = stride or k
  check_positive("MaxPool2d", "stride", stride)
  self.kernel, self.stride = k, stride
end

function MaxPool2d:forward(x) return core.max_pool2d(x, self.kernel, self.stride) end

function MaxPool2d:describe()
  return ("MaxPool2d(%d×%d, stride %d)"):format(self.kernel, self.kernel, self.stride)
end

local AvgPool2d = nn.class("AvgPool2d", Module)
nn.AvgPool2d = AvgPool2d

--- AvgPool2d(kernel[, stride = kernel[, padding = 0]]): PyTorch's, with its defaults
-- count_include_pad = true (padding counts as zeros) and ceil_mode = false.
function AvgPool2d:init(k, stride, padding)
  check_positive("AvgPool2d", "kernel", k)
  stride, padding = stride or k, padding or 0
  check_positive("AvgPool2d", "stride", stride)
  if math.type(padding) ~= "integer" or padding < 0 or padding > k // 2 then
    error(("AvgPool2d: padding must be an integer in [0, kernel/2] = [0, %d], got %s")
      :format(k // 2, tostring(padding)), 2)
  end
  self.kernel, self.stride, self.padding = k, stride, padding
end

function AvgPool2d:forward(x) return core.avg_pool2d(x, self.kernel, self.stride, self.padding) end

function AvgPool2d:describe()
  return ("AvgPool2d(%d×%d, stride %d, padding %d)"):format(self.kernel, self.kernel,
    self.stride, self.padding)
end

local AdaptiveAvgPool2d = nn.class("AdaptiveAvgPool2d", Module)
nn.AdaptiveAvgPool2d = AdaptiveAvgPool2d

--- AdaptiveAvgPool2d(size) or AdaptiveAvgPool2d({h, w}): averages each plane down to h×w with
-- PyTorch's windows [⌊i·H/h⌋, ⌈(i+1)·H/h⌉); AdaptiveAvgPool2d(1) is global average pooling.
function AdaptiveAvgPool2d:init(size)
  local h, w
  if type(size) == "table" then h, w = size[1], size[2] else h, w = size, size end
  check_positive("AdaptiveAvgPool2d", "output height", h)
  check_positive("AdaptiveAvgPool2d", "output width", w)
  self.out_h, self.out_w = h, w
end

function AdaptiveAvgPool2d:forward(x)
  return core.adaptive_avg_pool2d(x, self.out_h, self.out_w)
end

function AdaptiveAvgPool2d:describe()
  return ("AdaptiveAvgPool2d(%d×%d)"):format(self.out_h, self.out_w)
end

-- BatchNorm1d and BatchNorm2d: PyTorch's, defaults included. Parameters weight (ones) and
-- bias (zeros) when affine; buffers running_mean (zeros), running_var (ones) and
-- num_batches_tracked (int64 scalar) when track_running_stats. Training normalises with the
-- batch's statistics and updates the running ones (momentum, or the cumulative average
-- 1/num_batches_tracked when momentum = false); evaluation uses the running statistics, or
-- the batch's when they are not tracked.
local BN_OPTIONS = {eps = true, momentum = true, affine = true, track_running_stats = true}

local function bn_init(self, fn, c, opts)
  check_positive(fn, "num_features", c)
  opts = check_options(fn, opts, BN_OPTIONS)
  local eps = opts.eps == nil and 1e-5 or opts.eps
  if type(eps) ~= "number" or not (eps > 0) then
    error(("%s: eps must be a number > 0, got %s"):format(fn, tostring(eps)), 3)
  end
  -- momentum = false stands for PyTorch's momentum=None (a nil option means the default)
  local momentum = opts.momentum == nil and 0.1 or opts.momentum
  if momentum ~= false and (type(momentum) ~= "number" or momentum < 0 or momentum > 1) then
    error(("%s: momentum must be a number in [0, 1] or false (cumulative average), got %s")
      :format(fn, tostring(momentum)), 3)
  end
  for _, k in ipairs({"affine", "track_running_stats"}) do
    if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
      error(("%s: %s must be a boolean, got %s"):format(fn, k, type(opts[k])), 3)
    end
  end
  self.num_features, self.eps, self.momentum = c, eps, momentum
  self.affine = opts.affine ~= false
  self.track_running_stats = opts.track_running_stats ~= false
  if self.affine then
    self:register_parameter("weight", core.ones(c):requires_grad_(true))
    self:register_parameter("bias", core.zeros(c):requires_grad_(true))
  end
  if self.track_running_stats then
    self:register_buffer("running_mean", core.zeros(c))
    self:register_buffer("running_var", core.ones(c))
    self:register_buffer("num_batches_tracked", core.zeros({}, {dtype = "int64"}))
  end
end

local function bn_forward(self, x, fn, want)
  if not is_tensor(x) then
    error(("%s: input must be a tensor, got %s"):format(fn, type(x)), 3)
  end
  if not want[x.ndim] then
    error(("%s: expected %s input (got %dD input)"):format(fn, want.text, x.ndim), 3)
  end
  local factor = 0.0
  local training = self.training
  if training and self.track_running_stats then
    local n = self.num_batches_tracked
    n:fill_(n:item() + 1)
    factor = self.momentum == false and 1.0 / n:item() or self.momentum
  end
  local rm, rv = rawget(self, "running_mean"), rawget(self, "running_var")
  return core.batch_norm(x, rm, rv, rawget(self, "weight"), rawget(self, "bias"),
    training or rm == nil, factor, self.eps)
end

local function bn_describe(self)
  return ("%s(%d, eps = %g, momentum = %s, affine = %s, track_running_stats = %s)"):format(
    getmetatable(self).__name, self.num_features, self.eps,
    self.momentum == false and "none" or ("%g"):format(self.momentum), tostring(self.affine),
    tostring(self.track_running_stats))
end

local BatchNorm2d = nn.class("BatchNorm2d", Module)
nn.BatchNorm2d = BatchNorm2d

--- BatchNorm2d(C[, {eps = 1e-5, momentum = 0.1, affine = true, track_running_stats = true}])
-- over N×C×H×W.
function BatchNorm2d:init(c, opts) bn_init(self, "BatchNorm2d", c, opts) end
local BN2D_DIMS = {[4] = true, text = "4D"}
function BatchNorm2d:forward(x) return bn_forward(self, x, "BatchNorm2d", BN2D_DIMS) end
BatchNorm2d.describe = bn_describe

local BatchNorm1d = nn.class("BatchNorm1d", Module)
nn.BatchNorm1d = BatchNorm1d

--- BatchNorm1d(C[, {...as BatchNorm2d}]) over N×C or N×C×L.
function BatchNorm1d:init(c, opts) bn_init(self, "BatchNorm1d", c, opts) end
local BN1D_DIMS = {[2] = true, [3] = true, text = "2D or 3D"}
function BatchNorm1d:forward(x) return bn_forward(self, x, "BatchNorm1d", BN1D_DIMS) end
BatchNorm1d.describe = bn_describe

local ReLU = nn.class("ReLU", Module)
nn.ReLU = ReLU
function ReLU:forward(x) return x:relu() end

local Identity = nn.class("Identity", Module)
nn.Identity = Identity
function Identity:forward(x) return x end

local Dropout = nn.class("Dropout", Module)
nn.Dropout = Dropout

--- Dropout(p[, {generator = g}]): zeroes with probability p while training, scaling the rest
-- by 1/(1−p); the identity in evaluation mode.
function Dropout:init(p, opts)
  p = p or 0.5
  if type(p) ~= "number" or p < 0 or p >= 1 then
    error(("Dropout: p must be in [0, 1), got %s"):format(tostring(p)), 2)
  end
  opts = check_options("Dropout", opts, {generator = true})
  self.p = p
  self.generator = opts.generator
end

function Dropout:forward(x) return core.dropout(x, self.p, self.training, self.generator) end
function Dropout:describe() return ("Dropout(p = %g)"):format(self.p) end

local Flatten = nn.class("Flatten", Module)
nn.Flatten = Flatten

--- Flatten(start_dim = 1): keeps the batch dimension by default.
function Flatten:init(start_dim) self.start_dim = start_dim or 1 end
function Flatten:forward(x) return x:flatten(self.start_dim) end

local Sequential = nn.class("Sequential", Module)
nn.Sequential = Sequential

--- Sequential{m1, m2, ...}: children named "1", "2", ... (net[1] is the first); or build
-- with :add(module[, name]) to give names (net.conv1).
function Sequential:init(list)
  for _, m in ipairs(list or {}) do self:add(m) end
end

function Sequential:add(module, name)
  local index = #self._children + 1
  self:add_module(name or tostring(index), module)
  rawset(self, index, module)
  return self
end

function Sequential:__len() return #self._children end

function Sequential:forward(x)
  for i, c in ipairs(self._children) do
    local ok, out = pcall(c.module, x)
    if not ok then
      -- Say which child failed: a shape error deep in a network is otherwise anonymous.
      local msg = tostring(out):gsub("^[^:\n]+%.lua:%d+: ", "")
      error(("Sequential: child %d (%s = %s) failed: %s"):format(i, c.name,
        tostring(c.module), msg), 0)
    end
    x = out
  end
  return x
end

function Sequential:describe()
  local lines = {"Sequential {"}
  for i, c in ipairs(self._children) do
    local inner = tostring(c.module):gsub("\n", "\n  ")
    lines[#lines + 1] = ("  (%d) %s: %s"):format(i, c.name, inner)
  end
  lines[#lines + 1] = "}"
  return table.concat(lines, "\n")
end

-- ------------------------------------------------------------------ losses

--- cross_entropy(logits N×K, targets int64 N[, {reduction = "mean"|"sum"|"none",
-- weight = per-class K}]), PyTorch's F.cross_entropy: with weight, the mean divides by
-- Σ weight[target_i]. Per-sample weights: reduction = "none", then (ce * w):mean() or similar.
nn.cross_entropy = core.cross_entropy
nn.mse_loss = core.mse_loss

--- Runs fn(model) with the model in evaluation mode, its parameters frozen
-- (requires_grad = false) and gradient recording set to opts.grad (default false); restores
-- all three whatever happens, then returns fn's results or raises its error. For evaluating,
-- attacking or explaining a trained model without touching its parameters' gradients.
function nn.frozen(model, fn, opts)
  if type(model) ~= "table" or type(model.parameters) ~= "function" then
    error(("nn.frozen: model must be a module, got %s"):format(type(model)), 2)
  end
  if type(fn) ~= "function" then
    error(("nn.frozen: fn must be a function, got %s"):format(type(fn)), 2)
  end
  local was_training = model.training
  local params = model:parameters()
  local flags = {}
  for i, p in ipairs(params) do flags[i], p.requires_grad = p.requires_grad, false end
  model:eval()
  local was_grad = core.set_grad_enabled(opts and opts.grad or false)
  local results = table.pack(pcall(fn, model))
  core.set_grad_enabled(was_grad)
  for i, p in ipairs(params) do p.requires_grad = flags[i] end
  model:train(was_training)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

return nn
