--- biased_mnist — ReBias's Biased MNIST (PROTOCOLS §2; Bahng et al., "Learning De-biased
-- Representations with Biased Representations", ICML 2020): a white digit on a background
-- whose colour is the bias.
--   training split  the 60,000 MNIST training digits at correlation rho
--   evaluation      the 10,000 test digits at eval_rho = 0.1 (unbiased); no validation split
--                   (the evaluation split stands in for it)
-- Bias assignment per class y: the class's digits in shuffled order (a generator seeded with
-- the run's seed); the first ⌊n·rho⌋ get colour y; the rest are cut into chunks of
-- ⌈(n − ⌊n·rho⌋)/9⌉ and chunk i gets the i-th of the other nine colours y+1, …, y+9 (mod 10)
-- in shuffled order. Image: a pixel with g ≠ 0 becomes (255,255,255), with g = 0 the colour.
-- The authors normalise inputs with mean 0.5, sd 0.5 per channel; cnnlab's networks read
-- byte/255 (an affine change of the first layer's inputs).
-- rho follows the scripts' --rho when it is given on the command line.
local core = require "cnnlab.core"

local M = {
  name = "biased_mnist",
  description = "ReBias's Biased MNIST: white digit, background colour = label with correlation rho",
  source = "MNIST (SPEC §1)",
  paper = "Bahng et al., Learning De-biased Representations with Biased Representations, ICML 2020 (PROTOCOLS §2)",
  options = {rho = 0.99, eval_rho = 0.1},
  classes = 10,
  -- the bias sits in the background, not on the strokes
  bias_where = "background",
}

M.PALETTE = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {225, 225, 0}, {225, 0, 225},
  {0, 255, 255}, {255, 128, 0}, {255, 0, 128}, {128, 0, 255}, {128, 128, 128}}
M.palette_names = {"red", "green", "blue", "yellow", "magenta", "cyan", "orange", "pink",
  "purple", "grey"}
M.palette_rgb = {} -- in [0, 1], for pictures
for k, c in ipairs(M.PALETTE) do M.palette_rgb[k] = {c[1] / 255, c[2] / 255, c[3] / 255} end
M.STREAM = {train = 0xb1a5, hard = 0xb1a6}

--- A random permutation of the Lua list t (Fisher–Yates on generator g), in place.
local function shuffle(t, g)
  for i = #t, 2, -1 do
    local j = g:integer(i) + 1
    t[i], t[j] = t[j], t[i]
  end
  return t
end

--- Colour per digit (int64 N) for labels (int64 N) at correlation rho, generator g.
function M.assign(labels, rho, g)
  local ys = labels:totable()
  local by_class = {}
  for y = 0, 9 do by_class[y] = {} end
  for i, y in ipairs(ys) do table.insert(by_class[y], i) end
  local out = {}
  for y = 0, 9 do
    local idx = shuffle(by_class[y], g)
    local n = #idx
    local n_corr = math.floor(n * rho)
    local chunk = math.max(1, math.ceil((n - n_corr) / 9))
    local others = {}
    for k = 1, 9 do others[k] = (y + k) % 10 end
    shuffle(others, g)
    for j, i in ipairs(idx) do
      if j <= n_corr then out[i] = y
      else out[i] = others[(j - n_corr - 1) // chunk + 1] end
    end
  end
  return core.tensor(out, {dtype = "int64"})
end

--- White digit (g ≠ 0) on the colour of each image (uint8 N×3×H×W), in chunks.
function M.paint(grey, colors)
  local n, h, w = grey:size(0), grey:size(1), grey:size(2)
  local pal = core.tensor(M.PALETTE):index_select(0, colors)             -- N×3 (0…255)
  local parts, CH = {}, 4096
  for s = 0, n - 1, CH do
    local k = math.min(CH, n - s)
    local on = grey:narrow(0, s, k):ne(0):float():reshape({k, 1, h, w})  -- 1 on the digit
    local bg = pal:narrow(0, s, k):reshape({k, 3, 1, 1})
    parts[#parts + 1] = (on * 255 + (on * -1 + 1) * bg):byte()
  end
  return #parts == 1 and parts[1] or core.cat(parts, 0)
end

--- Repaints images x (float N×3×H×W in [0, 1]) painted with colours `colors` with
-- `new_colors` (colour_augment): the white digit stays, the background takes the new colour.
function M.recolour(x, _, new_colors, quantize)
  local n = x:size(0)
  local on = x:min(1, true):ge(254.5 / 255):float()                    -- N×1×H×W, the digit
  local bg = (core.tensor(M.PALETTE) / 255):index_select(0, new_colors):reshape({n, 3, 1, 1})
  local out = on + (on * -1 + 1) * bg
  if quantize ~= false then out = (out * 255):byte():float() / 255 end
  return out
end

function M.build(o, ctx)
  for _, k in ipairs({"rho", "eval_rho"}) do
    if type(o[k]) ~= "number" or o[k] < 0 or o[k] > 1 then
      error(("biased_mnist: %s must be a number in [0, 1], got %s"):format(k, tostring(o[k])), 0)
    end
  end
  local src = ctx.digits()
  local function split(part, rho, stream)
    local labels = src[part].labels
    local colors = M.assign(labels, rho, core.Generator(ctx.seed, stream))
    return {images = M.paint(src[part].images, colors), labels = labels, bias = colors,
      index = core.arange(0, labels:numel()), source_images = src[part].images}
  end
  return {train = split("train", o.rho, M.STREAM.train), hard = split("test", o.eval_rho, M.STREAM.hard)}
end

return M
