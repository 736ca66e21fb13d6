--lua
local t = lab.ones(2, 3):permute(2^32 + 1, 2^32)
