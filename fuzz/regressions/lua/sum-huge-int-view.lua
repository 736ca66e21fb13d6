--lua
local t = lab.zeros(1, {dtype="int64"}):expand(2^40):sum()
