--- simple_convnet — ReBias's "SimpleConvNet" (PROTOCOLS §2; Bahng et al., "Learning
-- De-biased Representations with Biased Representations", ICML 2020): four blocks
-- Conv k×k (padding k//2) → BatchNorm2d → ReLU with widths 16, 32, 64, 128 on the full plane
-- (no pooling), global average pooling, Linear(128, classes). Conv weights Kaiming-normal
-- (fan_out, ReLU gain: sd √(2/(out·k·k))), conv biases PyTorch's default, BatchNorm weight 1
-- and bias 0. Options: kernel (7), widths ("16,32,64,128"). About 0.83 GFLOP per 28×28
-- image at the defaults (≈ 64 × the seed network): on CPUs use it for short checks.
local nn = require "cnnlab.nn"
local core = require "cnnlab.core"

local function widths_of(text)
  local out = {}
  for w in tostring(text):gmatch("[^,%s]+") do
    local n = math.tointeger(tonumber(w))
    if not n or n < 1 then
      error(("model simple_convnet: widths must be a comma list of positive integers, got '%s'")
        :format(tostring(text)), 0)
    end
    out[#out + 1] = n
  end
  if #out == 0 then error("model simple_convnet: widths is empty", 0) end
  return out
end

return {
  name = "simple_convnet",
  description = "ReBias's SimpleConvNet: k×k conv–BN–ReLU blocks, global average pooling, linear",
  paper = "Bahng et al., Learning De-biased Representations with Biased Representations, ICML 2020 (PROTOCOLS §2)",
  options = {kernel = 7, widths = "16,32,64,128"},
  feature_layers = function(o)
    local names = {}
    for i = 1, #widths_of(o.widths) do names[i] = "relu" .. i end
    return names
  end,
  build = function(o, shape, classes, b)
    if not (nn.BatchNorm2d and nn.AdaptiveAvgPool2d) then
      error("model simple_convnet needs nn.BatchNorm2d and nn.AdaptiveAvgPool2d, which this "
        .. "build of cnnlab does not have", 0)
    end
    local k = o.kernel
    if math.type(k) ~= "integer" or k < 1 or k % 2 == 0 then
      error(("model simple_convnet: kernel must be an odd positive integer, got %s"):format(tostring(k)), 0)
    end
    local g = b.generator
    local net = nn.Sequential()
    local cin = shape[1]
    local widths = widths_of(o.widths)
    for i, cout in ipairs(widths) do
      local conv = nn.Conv2d(cin, cout, k, {padding = k // 2, generator = g})
      -- Kaiming normal, fan_out mode, ReLU gain
      local sd = math.sqrt(2 / (cout * k * k))
      core.no_grad(function()
        conv.weight:copy_(core.randn({cout, cin, k, k}, {generator = g}) * sd)
      end)
      net:add(conv, "conv" .. i)
      net:add(nn.BatchNorm2d(cout), "bn" .. i)
      net:add(nn.ReLU(), "relu" .. i)
      if i == 1 and b.dropout and b.dropout > 0 then
        net:add(nn.Dropout(b.dropout, {generator = b.dropout_generator}), "drop1")
      end
      cin = cout
    end
    net:add(nn.AdaptiveAvgPool2d(1), "avgpool")
    net:add(nn.Flatten(), "flatten")
    net:add(nn.Linear(widths[#widths], classes, {generator = g}), "fc")
    return net
  end,
}
