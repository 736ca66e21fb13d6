--lua
local v = lab.ones(3):narrow(0, 1, math.maxinteger)
