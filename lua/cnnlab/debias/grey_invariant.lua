--- grey_invariant — our strengthened grey consistency: the same loss as grey_consistency
-- (this file reuses its code), still learning only from the easy set, with three stated
-- changes of setting (docs/debias.md shows what each one gives):
--
--   normalize = "random"  each grey image is divided by its brightest pixel, then multiplied
--                         by a random brightness in [min_brightness, 1] = [0.25, 1] (the
--                         palette's grey levels are 1/3 … 1): the grey digit no longer tells
--                         its colour by its brightness, and every class is seen at every
--                         brightness;
--   colour_weight = 0     the classifier is trained on the grey images only; the coloured
--                         images enter only through the consistency term, which pulls their
--                         features onto those of their grey version — so whatever the network
--                         reads from colour, it must read the same from grey;
--   lambda = 1            (mean squared difference of the 512-d flatten features, as in
--                         grey_consistency).
-- Any option of grey_consistency can still be set (--method-opt key=value).
local base = require "cnnlab.debias.grey_consistency"

local M = {}
for k, v in pairs(base) do M[k] = v end
M.name = "grey_invariant"
M.description = "grey consistency, brightness-normalised grey and CE on grey only (ours)"
M.options = {}
for k, v in pairs(base.options) do M.options[k] = v end
M.options.normalize = "random"
M.options.colour_weight = 0.0
M.options.lambda = 1.0
M.options.min_brightness = 0.25

return M
