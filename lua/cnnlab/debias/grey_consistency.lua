--- grey_consistency — the seed's first method: every mini-batch is also seen in grey, and the
-- network is asked to give the same answer and the same features for both versions.
--
--   loss = colour_weight · CE(f(x), y) + grey_weight · CE(f(grey(x)), y)
--          + λ · mean over the batch and the D feature units of (φ(x) − φ(grey(x)))²
--
-- grey(x) is SPEC §2's grey version (the mean of the three channels, repeated on three
-- channels; lab.to_grey). φ is the output of the module named by `layer` — by default
-- "flatten", the 512-d penultimate representation that fc reads — captured with a forward hook
-- while one forward pass runs on the colour and grey batches stacked together (2N images;
-- the seed network has no batch statistics, so this equals two separate passes). The
-- squared distance is averaged over units (`distance = "mse"`, PyTorch's mse_loss) or summed
-- over them and averaged over the batch (`distance = "sum"`, = D × mse).
--
-- With the defaults (normalize = "none") this is the seed's method as written. The grey
-- version of a digit painted with palette colour P[k] is mean(P[k]) · s, s = g + (1 − g)·u, so
-- its brightness still tells the colour (red 1/3, yellow 2/3, white 1, orange 1/2, ...).
-- The other settings are stated choices that remove that cue or strengthen the penalty
-- (docs/debias.md explains each and what it gives):
--   normalize = "max"     each grey image divided by its own largest pixel (brightness → 1)
--   normalize = "random"  then multiplied by a random factor in [min_brightness, 1] per image,
--                         drawn from the method's generator (so every class is seen at every
--                         brightness)
--   detach_grey = true    the penalty pulls the colour features towards the grey ones only
--                         (no gradient through φ(grey(x)) in the penalty term)
--   layer = "relu1,flatten"  a comma list penalises several layers (each term averaged, summed)
local lab = require "cnnlab"

local M = {
  name = "grey_consistency",
  description = "CE(colour) + CE(grey) + λ·‖φ(colour) − φ(grey)‖² (seed method 1)",
  epochs = 5,
  options = {lambda = 1.0, grey_weight = 1.0, colour_weight = 1.0, normalize = "none",
    min_brightness = 0.25, detach_grey = false, layer = "flatten", distance = "mse"},
}

local NORMALIZE = {none = true, max = true, random = true}

local function layers_of(ctx) return lab.study.split(ctx.options.layer) end

function M.setup(ctx)
  local o = ctx.options
  if not NORMALIZE[o.normalize] then
    error(("grey_consistency: option normalize must be none, max or random, got '%s'")
      :format(tostring(o.normalize)), 0)
  end
  if o.distance ~= "mse" and o.distance ~= "sum" then
    error(("grey_consistency: option distance must be mse or sum, got '%s'")
      :format(tostring(o.distance)), 0)
  end
  if not (o.min_brightness > 0 and o.min_brightness <= 1) then
    error(("grey_consistency: option min_brightness must be in (0, 1], got %g")
      :format(o.min_brightness), 0)
  end
  local names = layers_of(ctx)
  if #names == 0 then error("grey_consistency: option layer names no module", 0) end
  for _, name in ipairs(names) do
    if not ctx.model:find_module(name) then
      local have = {}
      for _, e in ipairs(ctx.model:named_modules()) do
        if e[1] ~= "" then have[#have + 1] = e[1] end
      end
      error(("grey_consistency: option layer: the model has no module '%s' (modules: %s)")
        :format(name, table.concat(have, ", ")), 0)
    end
  end
end

--- The grey inputs the method trains on, for x (N×3×H×W floats in [0,1]) — exported so that
-- the comparison script can evaluate on exactly the same transformation.
function M.grey(x, normalize, generator, min_brightness)
  if not (lab.is_tensor(x) and x:dim() == 4 and x:size(1) == 3 and x.dtype == "float32") then
    error(("grey_consistency.grey: x must be float32 images N×3×H×W, got %s"):format(
      lab.is_tensor(x) and (x.dtype .. " " .. table.concat(x.shape, "×")) or type(x)), 2)
  end
  if normalize ~= nil and not NORMALIZE[normalize] then
    error(("grey_consistency.grey: normalize must be none, max or random, got %s")
      :format(tostring(normalize)), 2)
  end
  local g = lab.to_grey(x)
  if normalize == nil or normalize == "none" then return g end
  local n = x:size(0)
  local peak = g:reshape(n, -1):max(1):clamp(1e-6, 1e9):reshape(n, 1, 1, 1)
  g = g / peak
  if normalize == "random" then
    local lo = min_brightness or 0.25
    local scale = lab.rand({n}, {generator = generator}) * (1 - lo) + lo
    g = g * scale:reshape(n, 1, 1, 1)
  end
  return g
end

function M.loss(ctx, batch)
  local o = ctx.options
  local x, y = batch.x, batch.y
  local n = x:size(0)
  local g = M.grey(x, o.normalize, ctx.generator, o.min_brightness)
  if o.colour_weight == 0 and o.lambda == 0 then
    -- grey images only (used to measure what grey alone teaches): one pass on N images
    local lg = ctx.model(g)
    return lab.cross_entropy(lg, y) * o.grey_weight, lg
  end
  local feats, handles = {}, {}
  for i, name in ipairs(layers_of(ctx)) do
    handles[i] = ctx.model:get_module(name):register_forward_hook(function(_, _, out)
      feats[i] = out
    end)
  end
  local ok, logits = pcall(ctx.model, lab.cat({x, g}, 0))
  for _, h in ipairs(handles) do h.remove() end
  if not ok then error(logits, 0) end
  local lc, lg = logits:narrow(0, 0, n), logits:narrow(0, n, n)
  local loss = lab.cross_entropy(lc, y) * o.colour_weight + lab.cross_entropy(lg, y) * o.grey_weight
  if o.lambda ~= 0 then
    for _, f in ipairs(feats) do
      local fc, fg = f:narrow(0, 0, n), f:narrow(0, n, n)
      if o.detach_grey then fg = fg:detach() end
      local d = (fc - fg):square()
      local term = o.distance == "mse" and d:mean() or d:sum() / n
      loss = loss + term * o.lambda
    end
  end
  return loss, lc
end

return M
