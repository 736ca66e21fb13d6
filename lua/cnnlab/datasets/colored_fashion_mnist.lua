--- colored_fashion_mnist — SPEC §2's palette and formula on Fashion-MNIST (Xiao et al., 2017;
-- Debian's dataset-fashion-mnist): the garment's pixels painted in its class colour with
-- probability rho, background noise beta, the same easy/validation/hard splits as
-- colored_mnist, built by the same C builder (src/formats/cmnist.c). Class k is the
-- Fashion-MNIST label (0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal,
-- 6 shirt, 7 sneaker, 8 bag, 9 ankle boot). The files come from data/fashion-mnist/ (dir to
-- change it), put there MD5-checked by `make data` (data/fetch_fashion.sh), which is run
-- when they are missing. With --data generated the synthetic digits stand in (tests).
local data = require "cnnlab.data"

local M = {
  name = "colored_fashion_mnist",
  description = "SPEC §2's Colored MNIST recipe on Fashion-MNIST",
  source = "Fashion-MNIST (Xiao, Rasul, Vollgraf 2017; Debian's dataset-fashion-mnist)",
  options = {rho = 1.0, beta = 0.25, dir = ""},
  classes = 10,
  spec_palette = true,
  palette_rgb = data.PALETTE,
  palette_names = data.PALETTE_NAMES,
  class_names = {"T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
    "sneaker", "bag", "ankle boot"},
}

local function here()
  local src = debug.getinfo(1, "S").source
  local path = src:sub(1, 1) == "@" and src:sub(2) or ""
  return path:match("^(.*)/lua/cnnlab/datasets/[^/]*$") or "."
end

--- The Fashion-MNIST digits (data.mnist's shape) of dir, fetched when missing.
function M.files(dir)
  local root = here()
  local default = dir == nil or dir == ""
  dir = default and (root .. "/data/fashion-mnist") or dir
  local f = io.open(dir .. "/train-images-idx3-ubyte", "rb") or io.open(dir .. "/train-images-idx3-ubyte.gz", "rb")
  if f then f:close()
  elseif default then
    local q = "'" .. (root .. "/data/fetch_fashion.sh"):gsub("'", "'\\''") .. "'"
    if not os.execute("sh " .. q .. " >&2") then
      error("colored_fashion_mnist: Fashion-MNIST is missing in " .. dir .. " and could not be "
        .. "fetched (see above); run `make data` or install Debian's dataset-fashion-mnist", 0)
    end
  end
  return data.mnist(dir, {fetch = false})
end

function M.build(o, ctx)
  local src = ctx.data == "generated" and ctx.digits() or M.files(o.dir)
  local sets = data.colored_mnist{seed = ctx.seed, rho = o.rho, beta = o.beta, source = src}
  for _, name in ipairs({"train", "val"}) do
    sets[name].bias, sets[name].source_images = sets[name].colors, src.train.images
  end
  sets.hard.bias, sets.hard.source_images = sets.hard.colors, src.test.images
  return sets
end

return M
