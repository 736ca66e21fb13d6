--lua
local t = lab.ones(1):expand(-5, 3)
