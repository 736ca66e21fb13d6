--lua
local v = lab.ones(3):narrow(0, math.maxinteger, 2)
