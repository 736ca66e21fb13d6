--- seed_cnn — the study's seed network (SPEC §3):
--   conv1 C→32, 3×3, stride 1, pad 1 → ReLU → max-pool 3×3 stride 2     28 → 13
--   conv2 32→64 (same)                                                 13 → 6
--   conv3 64→128 (same)                                                 6 → 2
--   flatten (channel, row, column) → 512 → fc 512→classes
-- with optional dropout after the first block (named "drop1", no parameters, so the
-- parameter names stay conv1.*, conv2.*, conv3.*, fc.*). The flattened size comes from the
-- input shape (512 on 28×28), so other image sizes work too.
local nn = require "cnnlab.nn"

return {
  name = "seed_cnn",
  description = "the seed network: three 3×3 conv blocks (32, 64, 128) with max-pooling, one linear layer",
  options = {},
  feature_layers = {"relu1", "relu2", "relu3"},
  gradcam_layer = "relu3",
  build = function(_, shape, classes, b)
    local g = b.generator
    local net = nn.Sequential()
    net:add(nn.Conv2d(shape[1], 32, 3, {padding = 1, generator = g}), "conv1")
    net:add(nn.ReLU(), "relu1")
    net:add(nn.MaxPool2d(3, 2), "pool1")
    if b.dropout and b.dropout > 0 then
      net:add(nn.Dropout(b.dropout, {generator = b.dropout_generator}), "drop1")
    end
    net:add(nn.Conv2d(32, 64, 3, {padding = 1, generator = g}), "conv2")
    net:add(nn.ReLU(), "relu2")
    net:add(nn.MaxPool2d(3, 2), "pool2")
    net:add(nn.Conv2d(64, 128, 3, {padding = 1, generator = g}), "conv3")
    net:add(nn.ReLU(), "relu3")
    net:add(nn.MaxPool2d(3, 2), "pool3")
    net:add(nn.Flatten(), "flatten")
    -- the flattened size from the shapes (3×3 pad 1 keeps a side; a 3×3 stride-2 pool takes
    -- it to ⌊(n − 3)/2⌋ + 1): no dry run, so building allocates what it always did
    local function side(n) for _ = 1, 3 do n = (n - 3) // 2 + 1 end return n end
    local flat = 128 * side(shape[2]) * side(shape[3])
    if side(shape[2]) < 1 or side(shape[3]) < 1 then
      error(("model seed_cnn: images of %d×%d are too small for three 3×3 stride-2 pools")
        :format(shape[2], shape[3]), 0)
    end
    net:add(nn.Linear(flat, classes, {generator = g}), "fc")
    return net
  end,
}
