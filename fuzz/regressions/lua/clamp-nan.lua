--lua
local t = lab.ones(2):clamp(0/0, 1)
