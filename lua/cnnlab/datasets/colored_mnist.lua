--- colored_mnist — the study's Colored MNIST (SPEC §2): each digit's strokes painted in a
-- palette colour, with background noise; easy training/validation sets (colour = label with
-- probability rho), a hard set of the test digits in uniformly random colours. Built by the C
-- builder (src/formats/cmnist.c) through data.colored_mnist: the same seed, rho and beta give
-- the same bytes. rho and beta follow the scripts' --rho and --beta.
local data = require "cnnlab.data"

return {
  name = "colored_mnist",
  description = "SPEC §2's Colored MNIST: stroke colour = label with probability rho",
  source = "MNIST (SPEC §1)",
  options = {rho = 1.0, beta = 0.25},
  classes = 10,
  spec_palette = true, -- painted with SPEC §2's palette on the strokes (the study's evidence applies)
  build = function(o, ctx)
    local sets = data.colored_mnist{seed = ctx.seed, rho = o.rho, beta = o.beta,
      source = ctx.digits()}
    local src = ctx.digits()
    for _, name in ipairs({"train", "val"}) do
      sets[name].bias, sets[name].source_images = sets[name].colors, src.train.images
    end
    sets.hard.bias, sets.hard.source_images = sets.hard.colors, src.test.images
    return sets
  end,
}
