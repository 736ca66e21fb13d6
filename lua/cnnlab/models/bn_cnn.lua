--- bn_cnn — the seed network (SPEC §3) with a BatchNorm2d after each convolution:
--   convK → bnK → reluK → poolK (K = 1, 2, 3), flatten, fc. Parameter names are the seed's
-- plus bn1.*, bn2.*, bn3.* (weight, bias; buffers running_mean, running_var,
-- num_batches_tracked in the state dict). Convolutions are drawn from the generator exactly
-- as the seed network's; BatchNorm starts at weight 1, bias 0 (PyTorch's defaults).
local nn = require "cnnlab.nn"
local models = require "cnnlab.models"

return {
  name = "bn_cnn",
  description = "the seed network with BatchNorm2d after each convolution",
  options = {},
  feature_layers = {"relu1", "relu2", "relu3"},
  gradcam_layer = "relu3",
  build = function(_, shape, classes, b)
    if not nn.BatchNorm2d then
      error("model bn_cnn needs nn.BatchNorm2d, which this build of cnnlab does not have", 0)
    end
    local g = b.generator
    local net = nn.Sequential()
    local cin = shape[1]
    for k, cout in ipairs({32, 64, 128}) do
      net:add(nn.Conv2d(cin, cout, 3, {padding = 1, generator = g}), "conv" .. k)
      net:add(nn.BatchNorm2d(cout), "bn" .. k)
      net:add(nn.ReLU(), "relu" .. k)
      net:add(nn.MaxPool2d(3, 2), "pool" .. k)
      if k == 1 and b.dropout and b.dropout > 0 then
        net:add(nn.Dropout(b.dropout, {generator = b.dropout_generator}), "drop1")
      end
      cin = cout
    end
    net:add(nn.Flatten(), "flatten")
    net:add(nn.Linear(models.flat_size(net, shape), classes, {generator = g}), "fc")
    return net
  end,
}
