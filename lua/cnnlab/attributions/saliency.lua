--- Input-gradient saliency (Simonyan et al. 2014): the max over colour channels of
-- |∂y_c/∂x|, one value per input pixel (no layer). Spiky: pictures clip its colour scale at
-- the examples' 99th percentile and enlarge it by whole pixels.
local engine = require "cnnlab.gradcam"

local method = {
  name = "saliency", label = "saliency", short = "saliency", heading = "saliency |∂y/∂x|",
  layered = false, smooth = false, clip_quantile = 0.99,
  saved = {raw = "saliency"},
}

function method.compute(model, x, opts, fn)
  return engine.input_maps(fn or "saliency", model, x, opts, function(g)
    return g:abs():max(1)
  end)
end

return method
