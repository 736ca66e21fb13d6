--- cnnlab: tensors, autograd, layers and hooks in C, experiments in Lua.
--
--   local lab = require "cnnlab"
--   local x = lab.rand({8, 3, 28, 28}, {requires_grad = true})
--
-- The core functions (lab.tensor, lab.zeros, lab.conv2d, ...) come from the C module
-- cnnlab.core; the submodules (lab.nn, lab.optim, lab.data, ...) are Lua files under
-- lua/cnnlab/ and load on first use, so that starting the interpreter stays fast.
-- Positions in tensors (dimensions, indices) count from 0; Lua lists count from 1.
local core = require "cnnlab.core"

local lab = {core = core, version = "0.1"}
for name, value in pairs(core) do
  lab[name] = value
end

local submodules = {
  nn = "cnnlab.nn", optim = "cnnlab.optim", data = "cnnlab.data", train = "cnnlab.train",
  models = "cnnlab.models", metrics = "cnnlab.metrics", svg = "cnnlab.svg",
  util = "cnnlab.util", hooks = "cnnlab.hooks", gradcam = "cnnlab.gradcam",
  attack = "cnnlab.attack", attacks = "cnnlab.attacks", attributions = "cnnlab.attributions",
  ablation = "cnnlab.ablation", debias = "cnnlab.debias",
  gradcheck = "cnnlab.gradcheck", report = "cnnlab.report", mpi = "cnnlab.mpi",
  study = "cnnlab.study", defaults = "cnnlab.defaults", doc = "cnnlab.doc", show = "cnnlab.show",
  robustness = "cnnlab.robustness", benchmarks = "cnnlab.benchmarks",
}

setmetatable(lab, {
  __methods = submodules, -- lets the REPL complete submodule names before they load
  __index = function(t, key)
    local name = submodules[key]
    if name then
      local m = require(name)
      rawset(t, key, m)
      return m
    end
  end,
})

--- Runs fn(...) with gradient recording off and returns its results; the previous mode is
-- restored even when fn raises — or when memory runs out, which is why it is in C
-- (docs/reliability.md).
lab.no_grad = core.no_grad

-- Functional forms of the tensor methods most used in losses and layers.
--- lab.relu(x) → tensor: max(x, 0), as x:relu().
function lab.relu(x) return x:relu() end
--- lab.sigmoid(x) → tensor: 1 / (1 + e⁻ˣ), as x:sigmoid().
function lab.sigmoid(x) return x:sigmoid() end
--- lab.tanh(x) → tensor: the hyperbolic tangent, as x:tanh().
function lab.tanh(x) return x:tanh() end
--- lab.softmax(x, dim) → tensor: softmax along dim, as x:softmax(dim).
function lab.softmax(x, dim) return x:softmax(dim) end
--- lab.log_softmax(x, dim) → tensor: log-softmax along dim, as x:log_softmax(dim).
function lab.log_softmax(x, dim) return x:log_softmax(dim) end
--- lab.sum(x[, dim[, keepdim]]) → tensor: the sum of x, or along dim, as x:sum(...).
function lab.sum(x, ...) return x:sum(...) end
--- lab.mean(x[, dim[, keepdim]]) → tensor: the mean of x, or along dim, as x:mean(...).
function lab.mean(x, ...) return x:mean(...) end

--- Accuracy helper: share of rows of logits whose argmax equals the target (0..1).
function lab.accuracy(logits, targets)
  local pred = logits:argmax(1)
  return pred:eq(targets):sum():item() / targets:numel()
end

return lab
