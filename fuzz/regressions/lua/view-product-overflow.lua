--lua
local v = lab.ones(4):view(2^62, 2^62)
