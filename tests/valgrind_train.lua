-- A short training run for `make check-valgrind` (tests/valgrind.sh): the trainer, the seed
-- network, a checkpoint written and resumed, an evaluation, a PNG and an IDX file — small
-- enough to finish in a minute or two under memcheck. Usage: cnnlab tests/valgrind_train.lua DIR
local lab = require "cnnlab"
local out = assert(arg[1], "usage: cnnlab tests/valgrind_train.lua OUTDIR")
lab.set_threads(1)
local source = lab.data.generated{n = 160, n_test = 40, seed = 1}
local sets = lab.data.colored_mnist{seed = 1, source = source}
local function fit(epochs, resume)
  return lab.train.fit{method = lab.debias.load("erm"), data = {train = sets.train, val = sets.val},
    epochs = epochs, batch = 32, seed = 1, out = out, resume = resume, progress = false}
end
fit(1)
local r = fit(2, true) -- resumes from the checkpoint of epoch 1
local ev = lab.metrics.evaluate(r.model, sets.hard)
lab.write_png(out .. "/grid.png", lab.image_grid(sets.hard.images:narrow(0, 0, 8), {ncol = 4}))
lab.write_idx(out .. "/labels.idx.gz", sets.hard.labels)
assert(lab.read_idx(out .. "/labels.idx.gz"):numel() == sets.hard.n)
lab.data.export(sets.val, out .. "/val.safetensors")
assert(lab.data.load_export(out .. "/val.safetensors").n == sets.val.n)
print(("valgrind_train: %d steps, hard accuracy %.1f%%"):format(r.steps, ev.acc))
