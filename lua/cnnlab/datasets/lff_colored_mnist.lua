--- lff_colored_mnist — LfF's Colored MNIST (PROTOCOLS §1; Nam et al., "Learning from
-- Failure", NeurIPS 2020): the digit's strokes in one of ten mean colours with a little
-- per-image colour noise, black background.
--   training split  the 60,000 MNIST training digits, aligned share a = 1 − conflicting
--   evaluation      the 10,000 test digits, a = 0.1 (colours spread evenly); no validation
--                   split (the evaluation split stands in for it, as in the authors' code)
-- Bias assignment, per class y in MNIST index order: colour ratios r = a on colour y and
-- (1 − a)/9 on the others, milestones m = round(n · cumsum(r)) (half to even, in doubles),
-- and the j-th digit of the class gets the smallest colour b with m[b] > j. Colouring:
-- c = clamp(M[b] + σ·z, 0, 1), z ~ N(0, I₃) drawn per image from a generator seeded with the
-- run's seed; pixel = c[ch]·g truncated to a byte (g the raw grey byte, 0…255).
local core = require "cnnlab.core"

local M = {
  name = "lff_colored_mnist",
  description = "LfF's Colored MNIST: mean colour per class on the strokes, conflicting share as an option",
  source = "MNIST (SPEC §1)",
  paper = "Nam et al., Learning from Failure: De-biasing Classifier from Biased Classifier, NeurIPS 2020 (PROTOCOLS §1)",
  options = {conflicting = 0.01, severity = 4, eval_aligned = 0.1},
  classes = 10,
}

M.COLORS = {
  {0.98368233, 0.31251901, 0.16857535}, {0.99052966, 0.91560525, 0.35151219},
  {0.67296398, 0.46107048, 0.57980818}, {0.78325194, 0.83155590, 0.60132939},
  {0.08801579, 0.77796334, 0.98180777}, {0.32139337, 0.96105456, 0.44644988},
  {0.02461588, 0.23565048, 0.75866628}, {0.55524695, 0.10158014, 0.76176316},
  {0.20772320, 0.39294851, 0.01870239}, {0.83365762, 0.20240927, 0.26694310},
}
M.palette_rgb = M.COLORS -- for pictures
M.SIGMA = {0.05, 0.02, 0.01, 0.005, 0.002} -- by severity 1…5
M.STREAM = {train = 0x1ff1, hard = 0x1ff2} -- generator streams of the colour noise

--- Round half to even (numpy's round).
local function round_even(x)
  local f = math.floor(x)
  local d = x - f
  if d > 0.5 or (d == 0.5 and f % 2 == 1) then f = f + 1 end
  return math.tointeger(f)
end

--- Milestones of one class of n digits with aligned share a and class y (Lua list, m[b + 1]).
function M.milestones(n, a, y)
  local m, cum = {}, 0.0
  for b = 0, 9 do
    cum = cum + (b == y and a or (1 - a) / 9)
    m[b + 1] = round_even(n * cum)
  end
  return m
end

--- Colour index per digit for labels (int64 N, MNIST index order) and aligned share a.
function M.assign(labels, a)
  local ys = labels:totable()
  local n_of = {}
  for _, y in ipairs(ys) do n_of[y] = (n_of[y] or 0) + 1 end
  local m, j, out = {}, {}, {}
  for y, n in pairs(n_of) do m[y], j[y] = M.milestones(n, a, y), 0 end
  for i, y in ipairs(ys) do
    local b, k = 0, j[y]
    while b < 9 and m[y][b + 1] <= k do b = b + 1 end
    out[i], j[y] = b, k + 1
  end
  return core.tensor(out, {dtype = "int64"})
end

--- The coloured bytes of grey digits (uint8 N×H×W) painted with colours (int64 N): noise from
-- generator g, σ = sigma. In chunks, so 60,000 digits stay within a few hundred MB.
function M.colorize(grey, colors, sigma, g)
  local n, h, w = grey:size(0), grey:size(1), grey:size(2)
  local means = core.tensor(M.COLORS):index_select(0, colors)            -- N×3
  local c = (means + core.randn({n, 3}, {generator = g}) * sigma):clamp(0, 1)
  local parts, CH = {}, 4096
  for s = 0, n - 1, CH do
    local k = math.min(CH, n - s)
    local x = grey:narrow(0, s, k):float():reshape({k, 1, h, w})
      * c:narrow(0, s, k):reshape({k, 3, 1, 1})
    parts[#parts + 1] = (x - 0.5):byte() -- truncation: byte() rounds, so round(v − 0.5) = ⌊v⌋
  end
  return #parts == 1 and parts[1] or core.cat(parts, 0)
end

--- Repaints images x (float N×3×H×W in [0, 1]) painted with colours `colors` with
-- `new_colors` (colour_augment): the grey level s = Σ x / Σ M[b] (the image's own colour
-- noise is unknown, so its mean colour stands in), painted s·M[new] without new noise.
function M.recolour(x, colors, new_colors, quantize)
  local n = x:size(0)
  local means = core.tensor(M.COLORS)
  local s = x:sum(1, true) / means:sum(1):index_select(0, colors):reshape({n, 1, 1, 1})
  local out = (s:clamp(0, 1) * means:index_select(0, new_colors):reshape({n, 3, 1, 1})):clamp(0, 1)
  if quantize ~= false then out = (out * 255 - 0.5):byte():float() / 255 end
  return out
end

function M.build(o, ctx)
  if type(o.conflicting) ~= "number" or o.conflicting < 0 or o.conflicting > 1 then
    error(("lff_colored_mnist: conflicting must be a share in [0, 1], got %s"):format(
      tostring(o.conflicting)), 0)
  end
  local sigma = M.SIGMA[o.severity]
  if not sigma then
    error(("lff_colored_mnist: severity must be 1, 2, 3, 4 or 5, got %s"):format(tostring(o.severity)), 0)
  end
  local src = ctx.digits()
  local function split(part, a, stream)
    local labels = src[part].labels
    local colors = M.assign(labels, a)
    return {images = M.colorize(src[part].images, colors, sigma, core.Generator(ctx.seed, stream)),
      labels = labels, bias = colors, index = core.arange(0, labels:numel()),
      source_images = src[part].images}
  end
  return {train = split("train", 1 - o.conflicting, M.STREAM.train),
    hard = split("test", o.eval_aligned, M.STREAM.hard)}
end

return M
