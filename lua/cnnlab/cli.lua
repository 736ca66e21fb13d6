--- cnnlab.cli — the scripts' list arguments: comma lists with converters that say what they
-- accept, and target classes. The task scripts reach these through cnnlab.study (study.split,
-- study.list, study.number_in, study.integer, study.classes).
local core = require "cnnlab.core"

local cli = {}


--- The items of a comma list ("a, b,,c" → {"a", "b", "c"}; blanks around items and empty
-- items dropped; "" → {}).
function cli.split(text)
  local out = {}
  for item in tostring(text):gmatch("[^,%s]+") do out[#out + 1] = item end
  return out
end

--- Splits a comma list ("a, b,c") into its items, blanks dropped. convert(item) may turn each
-- into a value (nil: not valid, an error naming --what and what was expected: `expected`, or
-- the converter's own description for cli.number_in and cli.integer). An empty list is an
-- error too.
function cli.list(text, what, convert, expected)
  what = what or "list"
  local out = {}
  for _, item in ipairs(cli.split(text)) do
    local v = item
    if convert then v = convert(item) end
    if v == nil then
      error(("--%s: expected %s, got '%s'"):format(what, expected or (type(convert) == "table"
        and convert.expected) or "a valid value", item), 0)
    end
    out[#out + 1] = v
  end
  if #out == 0 then
    error(("--%s: a comma list of at least one value expected, got '%s'"):format(what,
      tostring(text)), 0)
  end
  return out
end

--- Converters for cli.list that say what they accept: a number in [lo, hi], an integer.
local function converter(expected, fn)
  return setmetatable({expected = expected}, {__call = function(_, item) return fn(item) end})
end
--- cli.number_in(lo, hi) → converter: A converter for cli.list that accepts a number in [lo, hi].
function cli.number_in(lo, hi)
  return converter(("a number in [%g, %g]"):format(lo, hi), function(s)
    local v = tonumber(s)
    return v and v >= lo and v <= hi and v or nil
  end)
end
cli.integer = converter("an integer", function(s) return math.tointeger(tonumber(s)) end)

--- Target classes for n samples of k classes as an int64 vector: target is an integer class
-- (every sample), or a tensor of one class per sample; nil gives nil (callers then use the
-- predicted class). fn and what name the argument in errors.
function cli.classes(fn, what, target, n, k)
  if target == nil then return nil end
  if math.type(target) == "integer" or (type(target) == "number" and target == math.floor(target)) then
    if target < 0 or target >= k then
      error(("%s: %s must be a class in 0..%d, got %s"):format(fn, what, k - 1, tostring(target)), 2)
    end
    return core.full({n}, math.tointeger(target), {dtype = "int64"})
  end
  if not core.is_tensor(target) then
    error(("%s: %s must be nil (the predicted class), an integer class or an int64 tensor of %d "
      .. "classes, got %s"):format(fn, what, n, type(target) == "number" and tostring(target)
      or type(target)), 2)
  end
  if target:dim() ~= 1 or target:numel() ~= n then
    error(("%s: %s must hold one class per sample (%d), got shape {%s}"):format(fn, what, n,
      table.concat(target.shape, ", ")), 2)
  end
  local t = target:long()
  local lo, hi = t:min():item(), t:max():item()
  if lo < 0 or hi >= k then
    error(("%s: %s must be classes in 0..%d, got values from %d to %d"):format(fn, what, k - 1,
      lo, hi), 2)
  end
  return t:contiguous()
end

return cli
