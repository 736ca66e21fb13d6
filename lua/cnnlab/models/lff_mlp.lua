--- lff_mlp — LfF's Colored MNIST network (PROTOCOLS §1; Nam et al., "Learning from Failure",
-- NeurIPS 2020): the flattened C×H×W image (2352 features on 3×28×28) →
-- Linear(·,100)–ReLU–Linear(100,100)–ReLU–Linear(100,100)–ReLU–Linear(100,classes), PyTorch's
-- default (uniform, fan-in) initialisation. It has no convolutional feature maps: feature
-- maps, Grad-CAM and channel ablation need a convolutional --arch.
local nn = require "cnnlab.nn"

return {
  name = "lff_mlp",
  description = "LfF's MLP: three hidden layers of `hidden` units with ReLU",
  paper = "Nam et al., Learning from Failure, NeurIPS 2020 (PROTOCOLS §1)",
  options = {hidden = 100},
  feature_layers = {},
  build = function(o, shape, classes, b)
    local g = b.generator
    local h = o.hidden
    if math.type(h) ~= "integer" or h < 1 then
      error(("model lff_mlp: hidden must be a positive integer, got %s"):format(tostring(h)), 0)
    end
    local net = nn.Sequential()
    net:add(nn.Flatten(), "flatten")
    net:add(nn.Linear(shape[1] * shape[2] * shape[3], h, {generator = g}), "fc1")
    net:add(nn.ReLU(), "relu1")
    if b.dropout and b.dropout > 0 then
      net:add(nn.Dropout(b.dropout, {generator = b.dropout_generator}), "drop1")
    end
    net:add(nn.Linear(h, h, {generator = g}), "fc2")
    net:add(nn.ReLU(), "relu2")
    net:add(nn.Linear(h, h, {generator = g}), "fc3")
    net:add(nn.ReLU(), "relu3")
    net:add(nn.Linear(h, classes, {generator = g}), "fc4")
    return net
  end,
}
