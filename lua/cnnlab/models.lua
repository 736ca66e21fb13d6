--- cnnlab.models — the study's networks.
--
-- models.seed_cnn{dropout = p, generator = g, width = 1}: the seed's 3-layer CNN (SPEC §3)
--   conv1 3→32, 3×3, pad 1 → ReLU → max-pool 3×3 stride 2     28 → 13
--   conv2 32→64 (same)                                        13 → 6
--   conv3 64→128 (same)                                        6 → 2
--   flatten (channel, row, column) → 512 → fc 512→10
-- with optional dropout after the first block (named "drop1", no parameters, so the
-- parameter names stay conv1.*, conv2.*, conv3.*, fc.*).
local nn = require "cnnlab.nn"

local models = {}

--- Names of the layers whose outputs (after ReLU) the study looks at.
models.seed_feature_layers = {"relu1", "relu2", "relu3"}

function models.seed_cnn(opts)
  opts = opts or {}
  local g = opts.generator
  local net = nn.Sequential()
  net:add(nn.Conv2d(3, 32, 3, {padding = 1, generator = g}), "conv1")
  net:add(nn.ReLU(), "relu1")
  net:add(nn.MaxPool2d(3, 2), "pool1")
  if opts.dropout and opts.dropout > 0 then
    net:add(nn.Dropout(opts.dropout, {generator = opts.dropout_generator}), "drop1")
  end
  net:add(nn.Conv2d(32, 64, 3, {padding = 1, generator = g}), "conv2")
  net:add(nn.ReLU(), "relu2")
  net:add(nn.MaxPool2d(3, 2), "pool2")
  net:add(nn.Conv2d(64, 128, 3, {padding = 1, generator = g}), "conv3")
  net:add(nn.ReLU(), "relu3")
  net:add(nn.MaxPool2d(3, 2), "pool3")
  net:add(nn.Flatten(), "flatten")
  net:add(nn.Linear(512, 10, {generator = g}), "fc")
  return net
end

return models
