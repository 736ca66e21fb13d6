-- export_logits.lua MODEL SET OUT [N]: the logits of the first N (default 1000) images of an
-- exported set under a saved model, as OUT (safetensors, "logits"). For tools/check_torch_interop.py.
local lab = require "cnnlab"
local model_path, set_path, out, n = arg[1], arg[2], arg[3], tonumber(arg[4] or 1000)
local model = lab.study.load_model(model_path)
local set = lab.load_safetensors(set_path)
n = math.min(n, set.images:size(0))
local x = set.images:narrow(0, 0, n)
x = x.dtype == "uint8" and x:float() / 255 or x
model:eval()
lab.save_safetensors(out, {logits = lab.no_grad(model, x)})
print(("wrote %s: logits of %d images"):format(out, n))
