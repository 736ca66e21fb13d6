--- cnnlab.nn.containers — Sequential, the container of cnnlab.nn.
local base = require "cnnlab.nn.module"

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

return nn
