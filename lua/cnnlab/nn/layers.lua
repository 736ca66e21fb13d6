--- cnnlab.nn.layers — the layers: Linear, Conv2d, the poolings, BatchNorm, ReLU, Identity,
-- Dropout and Flatten, with PyTorch's default initialisation.
local core = require "cnnlab.core"
local base = require "cnnlab.nn.module"

-- the layers this file adds go into nn; nn.class comes from the base
local nn = setmetatable({}, {__index = base})
local Module = base.Module

local function is_tensor(x) return core.is_tensor(x) end

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

--- BatchNorm2d(C[, {eps = 1e-5, momentum = 0.1, affine = true, track_running_stats = true}]): Batch
-- normalisation over N×C×H×W: each channel normalised by its batch statistics in training (by
-- the running ones in evaluation, when tracked), then scaled and shifted when affine.
function BatchNorm2d:init(c, opts) bn_init(self, "BatchNorm2d", c, opts) end
local BN2D_DIMS = {[4] = true, text = "4D"}
function BatchNorm2d:forward(x) return bn_forward(self, x, "BatchNorm2d", BN2D_DIMS) end
BatchNorm2d.describe = bn_describe

local BatchNorm1d = nn.class("BatchNorm1d", Module)
nn.BatchNorm1d = BatchNorm1d

--- BatchNorm1d(C[, {...as BatchNorm2d}]): Batch normalisation over N×C or N×C×L, as BatchNorm2d
-- does over N×C×H×W.
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

return nn
