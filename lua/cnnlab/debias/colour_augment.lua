--- colour_augment — every training digit is repainted with a palette colour drawn at random,
-- so colour stops predicting the label. This method uses what the others may not: that the
-- bias is colour, and which palette colour each training digit carries (set.colors).
--
-- The recipe, exact up to byte rounding. SPEC §2 paints channel c of pixel (i,j) as
-- x[c] = P[k][c] · s with s = g + (1 − g)·u (digit stroke plus noisy background, u shared by
-- the channels). Summing the channels, Σc x[c] = s · Σc P[k][c], so the stored image gives
-- back s = (x[0] + x[1] + x[2]) / Σc P[k][c] — the grey channel mean divided by the palette
-- entry's mean — with k the digit's own colour. The repainted digit is x'[c] = s · P[k'][c]
-- with k' uniform over the ten palette colours (the old colour included), one draw per
-- sample from the method's generator (saved in checkpoints), then rounded to bytes as SPEC
-- §2 stores images (round(255·x')/255). The background noise u is kept, recoloured with the
-- digit, exactly as SPEC §2 would paint it.
-- Other data sets say how their images are repainted: a data-set module's
-- recolour(x, colors, new_colors) (lff_colored_mnist: the strokes, biased_mnist: the
-- background); one painted with SPEC §2's palette (spec_palette) uses the recipe above.
local lab = require "cnnlab"

local M = {
  name = "colour_augment",
  description = "each sample repainted with a random palette colour (knows the bias is colour)",
  epochs = 5,
  options = {p = 1.0, quantize = true},
}

local palette, palette_sum

local function tables()
  if not palette then
    palette = lab.tensor(lab.cmnist_palette)                       -- 10×3
    palette_sum = palette:sum(1)                                   -- 10
  end
  return palette, palette_sum
end

function M.setup(ctx)
  local p = ctx.options.p
  if not (p >= 0 and p <= 1) then
    error(("colour_augment: option p must be in [0, 1], got %g"):format(p), 0)
  end
  if not ctx.data.train.colors then
    error("colour_augment: the training set has no colours (set.colors); this method needs "
      .. "each digit's palette colour", 0)
  end
  local ds = ctx.data.dataset
  ctx.colour_augment_recolour = nil
  if ds and not ds.module.spec_palette then
    if type(ds.module.recolour) ~= "function" then
      error(("colour_augment: data set %s does not say how to repaint its images (a "
        .. "recolour(x, colors, new_colors) function in its file), and it is not painted with "
        .. "SPEC §2's palette"):format(ds.name), 0)
    end
    ctx.colour_augment_recolour = ds.module.recolour
  end
end

--- Repaints x (N×3×H×W floats, painted with colours `colors`) with colours `new_colors`
-- (int64 N). Exported for tests and for the comparison script's figures.
function M.recolour(x, colors, new_colors, quantize)
  if not (lab.is_tensor(x) and x:dim() == 4 and x:size(1) == 3 and x.dtype == "float32") then
    error(("colour_augment.recolour: x must be float32 images N×3×H×W, got %s"):format(
      lab.is_tensor(x) and (x.dtype .. " " .. table.concat(x.shape, "×")) or type(x)), 2)
  end
  local n = x:size(0)
  for name, c in pairs({colors = colors, new_colors = new_colors}) do
    if not (lab.is_tensor(c) and c.dtype == "int64" and c:dim() == 1 and c:size(0) == n) then
      error(("colour_augment.recolour: %s must be an int64 vector of %d palette indices, got %s")
        :format(name, n, lab.is_tensor(c) and (c.dtype .. " " .. table.concat(c.shape, "×"))
          or type(c)), 2)
    end
  end
  local pal, psum = tables()
  local s = x:sum(1, true) / psum:index_select(0, colors):reshape(n, 1, 1, 1)
  local out = s:clamp(0, 1) * pal:index_select(0, new_colors):reshape(n, 3, 1, 1)
  if quantize ~= false then out = (out * 255):byte():float() / 255 end
  return out
end

function M.loss(ctx, batch)
  local o = ctx.options
  local n = batch.x:size(0)
  local new = {}
  local c = batch.colors:totable()
  for i = 1, n do
    if ctx.generator:uniform() < o.p then new[i] = ctx.generator:integer(10) else new[i] = c[i] end
  end
  local new_t = lab.tensor(new, {dtype = "int64"})
  local x = ctx.colour_augment_recolour and ctx.colour_augment_recolour(batch.x, batch.colors, new_t, o.quantize)
    or M.recolour(batch.x, batch.colors, new_t, o.quantize)
  local logits = ctx.model(x)
  return lab.cross_entropy(logits, batch.y), logits
end

return M
