--- Grad-CAM++ (Chattopadhyay et al. 2018), the closed form of pytorch-grad-cam: with
-- g = ∂y_c/∂A at a layer's activations A (N×K×h×w),
--   a_kij = g² / (2g² + Σ_ab A_kab · g³)   (0 where the denominator is 0)
--   w_k   = Σ_ij a_kij · ReLU(g_kij)        map = ReLU(Σ_k w_k A_k)
-- (the paper's exp(y_c) factor is a positive per-sample constant: it only rescales).
local core = require "cnnlab.core"
local engine = require "cnnlab.gradcam"

local method = {
  name = "gradcampp", label = "Grad-CAM++", short = "++", heading = "Grad-CAM++",
  saved = {raw = "maps_pp", upsampled = "maps_pp_upsampled"},
}

function method.from_gradients(A, G)
  engine.check_pair("gradcam.pp_from_gradients", A, G)
  local was = core.set_grad_enabled(false)
  local n, k = A:size(0), A:size(1)
  local g2 = G * G
  local g3 = g2 * G
  local sum_a = A:reshape(n, k, -1):sum(2):reshape(n, k, 1, 1)
  local denom = g2 * 2 + sum_a * g3
  -- where the denominator is 0 (g = 0, or the rare g = −2/ΣA) the coefficient is 0
  local zero = denom:eq(0):float()
  local a = g2 * denom:ne(0):float() / (denom + zero)
  local weights = (a * G:relu()):reshape(n, k, -1):sum(2)
  local maps = engine.cam(A, weights)
  core.set_grad_enabled(was)
  return maps, weights
end

return method
