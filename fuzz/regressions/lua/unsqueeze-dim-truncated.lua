--lua
local t = lab.ones(2, 3):unsqueeze(2^32)
