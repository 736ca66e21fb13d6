--lua
local n = lab.ones(1):expand(2^40, 2^40, 2^40):numel()
