--- cnnlab.nn.containers — Sequential, the container of cnnlab.nn.
local core = require "cnnlab.core"
local base = require "cnnlab.nn.module"
local layers = require "cnnlab.nn.layers"

-- the containers this file adds go into nn; nn.class comes from the base
local nn = setmetatable({}, {__index = base})
local Module = base.Module

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

-- conv → ReLU → max-pool as one C op (core.conv2d_relu_pool: the same bits forward and
-- backward, without storing the convolution's and the ReLU's outputs) when nothing can see
-- those outputs: the three are plain instances of the library's classes (no subclass, no
-- forward of their own) and none has a hook. A hook registered on any of them, or
-- Sequential.fuse = false (on the class, or one instance), runs the three modules as usual.
Sequential.fuse = true

local function plain(m, class)
  return getmetatable(m) == class and rawget(m, "forward") == nil and rawget(m, "_call") == nil
    and #m._forward_hooks == 0 and #m._backward_hooks == 0
end

-- The fused block starting at child i, or nil.
local function fusable(children, i)
  local c, r, p = children[i], children[i + 1], children[i + 2]
  if not (c and r and p) then return nil end
  if plain(c.module, layers.Conv2d) and plain(r.module, layers.ReLU)
    and plain(p.module, layers.MaxPool2d) then
    return c.module, p.module
  end
  return nil
end

function Sequential:forward(x)
  local children, i = self._children, 1
  local fuse = self.fuse
  while i <= #children do
    local conv, pool = nil, nil
    if fuse then conv, pool = fusable(children, i) end
    local ok, out = false, nil
    if conv then
      ok, out = pcall(core.conv2d_relu_pool, x, conv.weight, rawget(conv, "bias"), conv.stride,
        conv.padding, pool.kernel, pool.stride)
      if ok then
        x = out
        i = i + 3
      end
      -- on an error the three modules run one by one below, and the message names the child
    end
    if not ok then
      x = self:_child_forward(i, x)
      i = i + 1
    end
  end
  return x
end

function Sequential:_child_forward(i, x)
  local c = self._children[i]
  do
    local ok, out = pcall(c.module, x)
    if not ok then
      -- Say which child failed: a shape error deep in a network is otherwise anonymous.
      local msg = tostring(out):gsub("^[^:\n]+%.lua:%d+: ", "")
      error(("Sequential: child %d (%s = %s) failed: %s"):format(i, c.name,
        tostring(c.module), msg), 0)
    end
    return out
  end
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

return nn
