--- cnnlab.nn — layers as Torch7-style modules over the C kernels.
--
-- Every module answers the same small interface:
--   m(x)                      forward, running forward hooks and arming backward hooks
--   m:forward(x)              the computation alone (what a new layer defines)
--   m:parameters()            list of parameter tensors, in registration order
--   m:named_parameters()      list of {name, tensor} with dotted names ("conv1.weight")
--   m:register_buffer(name, t) state that is not a parameter (BatchNorm's running_mean):
--                             no gradient, not in parameters(), but in state_dict()
--   m:buffers() / m:named_buffers()
--   m:state_dict()            name → tensor, parameters and buffers under PyTorch's names
--                             (the names and shapes of SPEC §4; "bn1.running_mean")
--   m:load_state_dict(sd[, {strict = true}])
--   m:train() / m:eval()      switch dropout and similar layers
--   m:zero_grad()
--   m:register_forward_hook(fn)   fn(module, input, output) → nil or a replacement output
--   m:register_backward_hook(fn)  fn(module, grad_output) → nil or a replacement gradient
--   m:children() / m:named_modules()
--   nn.frozen(m, fn[, {grad = true}])  fn(m) in evaluation mode, parameters frozen; restored
-- Hooks return a handle with :remove(). A Lua layer composes tensor operations in forward and
-- gets its gradients from the autograd engine.
--
-- The parts, one concern each, under lua/cnnlab/nn/: module (nn.class and the Module base
-- class: parameters, buffers, state_dict, train/eval, hooks), layers, containers (Sequential)
-- and functional (the losses and nn.frozen).
local nn = {}

for _, part in ipairs({"module", "layers", "containers", "functional"}) do
  for k, v in pairs(require("cnnlab.nn." .. part)) do nn[k] = v end
end

return nn
