--- cnnlab.features — the inputs Task 2 looks at: three digits chosen to separate colour from
-- shape, so that their feature maps (cnnlab.hooks) can be compared.
--
--   features.choose_inputs(model, sets, o) → images (uint8 3×3×H×W), inputs: A an easy digit
--       of class o.digit in its own colour that the model reads right, B the very same grey
--       digit painted in colour o.color (core.colorize with o.beta, o.seed, stream o.stream),
--       C a hard digit of a third class painted o.color (one the model reads as o.color's
--       class when there is one, else the first); inputs[i] = {key, what, label, color, index
--       (in its MNIST file), source}; sets from cnnlab.data (val, hard, source.train)
--   features.describe(s) → "true 1, painted red = colour of 0" for an entry of inputs
local core = require "cnnlab.core"
local train = require "cnnlab.train"
local data = require "cnnlab.data"

local features = {}

function features.describe(s)
  return ("true %d, painted %s%s"):format(s.label, data.PALETTE_NAMES[s.color + 1],
    s.color == s.label and "" or (" = colour of %d"):format(s.color))
end

function features.choose_inputs(model, sets, o)
  local val, hard, digit, color = sets.val, sets.hard, o.digit, o.color
  local vl, vc = val.labels:totable(), val.colors:totable()
  local vp = train.predict(model, val):totable()
  local a_pos
  for i = 1, #vl do
    if vl[i] == digit and vc[i] == digit and vp[i] == digit then a_pos = i - 1 break end
  end
  if not a_pos then
    error(("no validation digit %d in its own colour is read correctly"):format(digit), 0)
  end
  local a_grey = sets.source.train.images:index_select(0, val.index:narrow(0, a_pos, 1))
  local b_img = core.colorize(a_grey, core.tensor({color}, {dtype = "int64"}), o.beta, o.seed,
    o.stream)
  local hl, hc = hard.labels:totable(), hard.colors:totable()
  local hp = train.predict(model, hard):totable()
  local c_pos, c_fallback
  for i = 1, #hl do
    if hc[i] == color and hl[i] ~= color and hl[i] ~= digit then
      c_fallback = c_fallback or i - 1
      if hp[i] == color then c_pos = i - 1 break end
    end
  end
  c_pos = c_pos or c_fallback
  if not c_pos then error(("no hard digit painted %s"):format(data.PALETTE_NAMES[color + 1]), 0) end
  local images = core.cat({val.images:narrow(0, a_pos, 1), b_img, hard.images:narrow(0, c_pos, 1)}, 0)
  return images, {
    {key = "A_easy", what = "A: easy digit", label = digit, color = digit,
      index = val.index:get(a_pos), source = "training file"},
    {key = "B_recoloured", what = "B: the same digit recoloured", label = digit,
      color = color, index = val.index:get(a_pos), source = "training file"},
    {key = "C_hard", what = "C: hard digit of another class", label = hl[c_pos + 1],
      color = color, index = hard.index:get(c_pos), source = "test file"}}
end

return features
