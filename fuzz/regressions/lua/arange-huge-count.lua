--lua
local t = lab.arange(0, 1e300)
