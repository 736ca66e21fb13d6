--- Grad-CAM (Selvaraju et al. 2017): the chosen class's logit y_c differentiated at a layer's
-- activations A (N×K×h×w),
--   α_k = (1/hw) Σ_ij ∂y_c/∂A_kij        map = ReLU(Σ_k α_k A_k)
-- (y_c the logit, not the softmax; an all-negative map becomes zeros), upsampled bilinearly
-- to the input's size.
local core = require "cnnlab.core"
local engine = require "cnnlab.gradcam"

local method = {
  name = "gradcam", label = "Grad-CAM", short = "CAM", heading = "Grad-CAM (%s)",
  saved = {raw = "maps", upsampled = "maps_upsampled"},
}

function method.from_gradients(A, G)
  engine.check_pair("gradcam.from_gradients", A, G)
  local was = core.set_grad_enabled(false)
  local n, k = A:size(0), A:size(1)
  local weights = G:reshape(n, k, -1):mean(2)
  local maps = engine.cam(A, weights)
  core.set_grad_enabled(was)
  return maps, weights
end

return method
