--lua
assert(lab.tensor({math.maxinteger}, {dtype="int64"}):item() == math.maxinteger)
local t = lab.zeros(2, {dtype="int64"}); t:fill_(2^70)
