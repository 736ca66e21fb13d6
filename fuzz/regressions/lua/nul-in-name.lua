--lua
lab.save_safetensors(PATH .. ".st", {["a\0b"] = lab.ones(2)})
