--lua
local s = tostring(lab.ones(1):expand(2^40))
assert(#s < 4000)
