-- A tour of the Lua API, as the README shows it: data, training, hooks, autograd, the study's
-- instruments. Run: ./cnnlab examples/tour.lua            (real MNIST, one epoch, ~1 minute)
--                   ./cnnlab examples/tour.lua generated  (generated digits, seconds; the tests)
local lab = require "cnnlab"
local source = arg[1] == "generated" and lab.data.generated{n = 2000, seed = 1}
  or lab.data.mnist("data/mnist")
local out = arg[2] or "runs/tour"

-- Colored MNIST, exactly as SPEC §2 defines it (bytes in C, well under a second)
local sets = lab.data.colored_mnist{seed = 1, rho = 1.0, beta = 0.25, source = source}

-- the seed network trained by the resumable trainer, with a debias method picked by name
local run = lab.train.fit{method = lab.debias.load("erm"), data = sets, epochs = 1,
  seed = 1, out = out}                       -- checkpoints each epoch; Ctrl-C safe
local model = run.model
print(("hard-set accuracy %.1f%%"):format(lab.metrics.evaluate(model, sets.hard).acc))

-- autograd and hooks: the feature maps and the gradients of any layer
local x = sets.hard.images:narrow(0, 0, 8):float() / 255
x:requires_grad_()
local maps = {}
local h = model:get_module("relu2"):register_forward_hook(function(m, input, output)
  maps.relu2 = output:detach()
end)
local loss = lab.cross_entropy(model(x), sets.hard.labels:narrow(0, 0, 8))
loss:backward()                              -- parameters and x now hold .grad
h:remove()
print("relu2 maps", table.concat(maps.relu2.shape, "×"), "input gradient", x.grad:abs():max():item())

-- the study's instruments, all built on those hooks
x = x:detach()
local acts = lab.hooks.capture(model, {"relu1", "relu3"}, x)
local cam = lab.gradcam.compute(model, x, {layer = "relu3"})
local adv = lab.attack.pgd(model, x, {target = 3, eps = 0.05, steps = 20})
print("relu3", table.concat(acts.relu3.shape, "×"), "Grad-CAM", table.concat(cam.maps.shape, "×"),
  ("attack success %d of 8"):format(adv.success:sum():item()))
lab.save_safetensors(out .. "/tour.safetensors", model:state_dict())
