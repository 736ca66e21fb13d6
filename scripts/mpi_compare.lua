-- MPI check: does training on K ranks give the single-process result, and how much faster?
--
-- Data-parallel training sums the ranks' gradients, which changes only the order of
-- floating-point additions; this script measures what that does to the weights, step by step,
-- and what it buys in time. Two modes:
--
--   train (default): one training run (the trainer, a debias method, --epochs, usually 1),
--     run in one process or under mpirun. Rank 0 saves the weights after every step (runs of
--     up to 100 steps; else after steps 1, 2, 4, 8, ...) and at the end
--     (snapshot_<step>.safetensors), and result.json: accuracies, seconds per
--     step, time inside MPI per step (during training, which includes waiting for the slower
--     rank; and for the all-reduce alone, measured after training on the real buffer).
--
--       ./build-mpi/cnnlab scripts/mpi_compare.lua --quick --threads 1 --out runs/mpi/k1
--       mpirun -np 2 ./build-mpi/cnnlab scripts/mpi_compare.lua --quick --threads 1 --out runs/mpi/k2
--
--   compare: --compare DIR1,DIR2,... takes DIR1 as the reference and prints, for every other
--     run, the largest relative weight difference at each saved step (max |a − b| / max |a| per
--     tensor, the worst tensor; and ‖a − b‖ / ‖a‖), the accuracies and the timings; writes
--     divergence.svg (the difference against the step, log scale) and compare.json into --out.
--
--       ./cnnlab scripts/mpi_compare.lua --compare runs/mpi/k1,runs/mpi/k2,runs/mpi/k1t2 --out runs/mpi
--
-- --arch/--arch-opt pick the network (default the seed network), recorded in result.json;
-- runs of different networks are not compared.
--
-- A one-process run with another thread count (--threads 2) is the yardstick: it changes the
-- summation order inside the kernels exactly as splitting the batch does.
local lab = require "cnnlab"
local util, study, mpi = lab.util, lab.study, lab.mpi

local spec = {
  name = "mpi_compare", script = "scripts/mpi_compare.lua",
  description = "Train once saving weight snapshots (any number of MPI ranks), or compare such runs.",
  options = study.options({
    {"epochs", 1},
    {"batch", nil, "global mini-batch size (split across the ranks)"},
    "lr", "optimizer", "method", "method_opt", "arch", "arch_opt",
    {"micro_batches", 1, "one process only: split each batch as that many ranks would (2: the 2-rank run's exact arithmetic)"},
    {"out", "runs/mpi/run"},
    {"compare", "", "comma list of run folders to compare (the first is the reference)"},
    {"bench", 50, "all-reduces of the gradient buffer timed after training (0: none)"},
    {"progress", true, "show the trainer's progress line"},
    {"snapshots", true, "save the weights after the steps (--no-snapshots for timing runs)"},
  }),
}
local opts = util.parse_args(arg, spec)

local function fail(msg)
  io.stderr:write("mpi_compare: ", msg, "\n")
  os.exit(1)
end

-- ------------------------------------------------------------------ compare

if opts.compare ~= "" then
  local ok, dirs = pcall(study.list, opts.compare, "compare")
  if not ok then fail(dirs) end
  if #dirs < 2 then fail("--compare needs at least two folders, got " .. #dirs) end
  local results = {}
  for i, d in ipairs(dirs) do
    local ok, r = pcall(function() return util.json_decode(util.read_file(d .. "/result.json")) end)
    if not ok then fail(("%s has no result.json: run the train mode into it first"):format(d)) end
    local r1 = results[1] or r -- the network must be the reference's (weights compare by name)
    if r.arch ~= r1.arch or r.arch_options ~= r1.arch_options then
      fail(("--compare: %s trained --arch %s %s, the reference %s trained --arch %s %s"):format(d,
        r.arch or lab.models.DEFAULT, r.arch_options or "{}", dirs[1], r1.arch or lab.models.DEFAULT,
        r1.arch_options or "{}"))
    end
    results[i] = r
  end
  local function label(r)
    return ("%d rank%s × %d thread%s"):format(r.ranks, r.ranks > 1 and "s" or "", r.threads,
      r.threads > 1 and "s" or "")
  end
  local ref = dirs[1]
  print(("reference: %s (%s, %s, lr %g, batch %d, %d steps)"):format(ref, label(results[1]),
    results[1].optimizer, results[1].lr, results[1].batch, results[1].steps))
  local report, series = {runs = {}}, {}
  for i = 2, #dirs do
    local rows = {}
    local xs, ys = {}, {}
    print(("\n%s (%s) against the reference:"):format(dirs[i], label(results[i])))
    print(("  %6s  %22s  %16s  %s"):format("step", "max|a-b|/max|a| worst", "‖a-b‖/‖a‖ worst", "worst tensor"))
    for _, step in ipairs(mpi.snapshot_steps(ref)) do
      local p = ("%s/snapshot_%d.safetensors"):format(dirs[i], step)
      if util.exists(p) then
        local a = lab.load_safetensors(("%s/snapshot_%d.safetensors"):format(ref, step))
        local b = lab.load_safetensors(p)
        local worst, worst_l2, where = mpi.weight_difference(a, b)
        rows[#rows + 1] = {step = step, max_rel = worst, l2_rel = worst_l2, tensor = where}
        print(("  %6d  %22.3e  %16.3e  %s"):format(step, worst, worst_l2, where))
        xs[#xs + 1], ys[#ys + 1] = step, math.log(math.max(worst, 1e-12), 10)
      end
    end
    local r, r0 = results[i], results[1]
    print(("  accuracy: validation %.2f%% (ref %.2f%%), hard %.2f%% (ref %.2f%%), hard conflicting " ..
      "%.2f%% (ref %.2f%%)"):format(r.val_acc, r0.val_acc, r.hard_acc, r0.hard_acc,
      r.hard_conflicting_acc, r0.hard_conflicting_acc))
    print(("  wall time per step %.1f ms (ref %.1f ms): speed-up %.2f× (load average %.1f / %.1f " ..
      "on this machine); in MPI %.2f ms/step during training, all-reduce alone %.2f ms")
      :format(1000 * r.seconds_per_step, 1000 * r0.seconds_per_step,
      r0.seconds_per_step / r.seconds_per_step, r.load_average or 0 / 0,
      r0.load_average or 0 / 0, 1000 * (r.comm_seconds_per_step or 0),
      1000 * (r.allreduce_seconds or 0)))
    if r.idle_seconds_per_step and r0.idle_seconds_per_step then
      print(("  on idle cores (CPU time per step outside MPI, slowest rank, + the all-reduce): " ..
        "%.1f ms (ref %.1f ms): speed-up %.2f×"):format(1000 * r.idle_seconds_per_step,
        1000 * r0.idle_seconds_per_step, r0.idle_seconds_per_step / r.idle_seconds_per_step))
    end
    report.runs[#report.runs + 1] = {dir = dirs[i], label = label(r), rows = rows,
      speedup = r0.seconds_per_step / r.seconds_per_step,
      idle_speedup = r.idle_seconds_per_step and r0.idle_seconds_per_step and
        r0.idle_seconds_per_step / r.idle_seconds_per_step or nil,
      val_acc_diff = r.val_acc - r0.val_acc, hard_acc_diff = r.hard_acc - r0.hard_acc}
    series[#series + 1] = {name = label(r), x = xs, y = ys}
  end
  report.reference = {dir = ref, label = label(results[1])}
  util.mkdir_p(opts.out)
  util.write_json(opts.out .. "/compare.json", report)
  local r0 = results[1]
  local lo, hi = -5, -5
  for _, se in ipairs(series) do
    for _, y in ipairs(se.y) do lo, hi = math.min(lo, y), math.max(hi, y) end
  end
  series[#series + 1] = {name = "1e-5", x = {1, r0.steps}, y = {-5, -5}, dashed = true}
  lab.svg.save(opts.out .. "/divergence.svg", lab.svg.lines{
    title = ("Weight difference from %s (%s, lr %g)"):format(label(r0), r0.optimizer, r0.lr),
    xlabel = ("training step (batch %d, %d %s digits)"):format(r0.batch, r0.n_train,
      r0.data == "mnist" and "Colored MNIST" or "generated"),
    ylabel = "log10 max |a − b| / max |a|, worst tensor",
    ymin = math.floor(lo) - 0.5, ymax = math.ceil(hi),
    series = series, markers = true, width = 600, height = 320})
  print(("\nwrote %s/compare.json and %s/divergence.svg"):format(opts.out, opts.out))
  os.exit(0)
end

-- ------------------------------------------------------------------ train

local root = mpi.rank() == 0
local ok_arch, arch = pcall(study.arch, opts) -- a wrong --arch stops before the data is built
if not ok_arch then fail(tostring(arch)) end
local ok_method, method = pcall(study.method, opts) -- so does a wrong --method or --method-opt
if not ok_method then fail(tostring(method)) end
local sets = study.load_data(opts)
local n = sets.train.n
local steps_total = opts.epochs * ((n + opts.batch - 1) // opts.batch)
-- every step of a short run (up to 100 steps), else steps 1, 2, 4, 8, ...
local wanted = {}
local s = 1
while s < steps_total do
  wanted[s] = true
  s = steps_total <= 100 and s + 1 or s * 2
end

if root then
  util.mkdir_p(opts.out)
  for _, st in ipairs(mpi.snapshot_steps(opts.out)) do os.remove(("%s/snapshot_%d.safetensors"):format(opts.out, st)) end
  util.progress("%d rank%s × %d thread%s: %d training digits, batch %d (%s per rank), %d steps",
    mpi.size(), mpi.size() > 1 and "s" or "", lab.get_threads(), lab.get_threads() > 1 and "s" or "",
    n, opts.batch, mpi.size() > 1 and ("%d"):format(opts.batch // mpi.size()) or "all", steps_total)
end

-- the weights before step s + 1 are the weights after s steps
local inner = method.before_step
method.before_step = function(ctx, batch)
  if inner then inner(ctx, batch) end
  if root and opts.snapshots and wanted[ctx.steps] then
    lab.save_safetensors(("%s/snapshot_%d.safetensors"):format(opts.out, ctx.steps), ctx.model:state_dict())
  end
end

-- The trainer resets the MPI counters at the start and at each epoch end; this communicator
-- (the world's, with stats() that keeps what each reset would drop) adds them up.
local in_mpi = {seconds = 0, cpu_seconds = 0}
local comm = setmetatable({stats = function(reset)
  local st = mpi.world.stats(reset)
  if reset then
    in_mpi.seconds = in_mpi.seconds + st.seconds
    in_mpi.cpu_seconds = in_mpi.cpu_seconds + (st.cpu_seconds or 0)
  end
  return st
end}, {__index = mpi.world})

local cpu0 = os.clock()
local result = lab.train.fit(study.fit_options(opts, method, sets,
  {validate = false, comm = comm, micro_batches = opts.micro_batches}))
local cpu = os.clock() - cpu0
local train_seconds = 0
for _, h in ipairs(result.history) do train_seconds = train_seconds + h.seconds end
local comm_seconds = in_mpi.seconds
-- CPU seconds per step outside MPI (busy waiting in MPI burns CPU too, so it is taken out):
-- with one thread per rank, about what a step costs on an idle core. The slowest rank counts.
local compute_cpu = mpi.allreduce_numbers({(cpu - in_mpi.cpu_seconds) / result.steps}, "max")[1]

-- The all-reduce alone, on the real gradient buffer, ranks in step (a barrier first).
local allreduce_seconds
if mpi.size() > 1 and opts.bench > 0 then
  local params = result.model:parameters()
  for _, p in ipairs(params) do p.grad = lab.zeros(p.shape) end
  mpi.barrier()
  local times = {}
  for i = 1, opts.bench do
    local t0 = lab.now()
    mpi.allreduce_grads(params, {0, 0, 0})
    times[i] = lab.now() - t0
  end
  table.sort(times)
  allreduce_seconds = times[(#times + 1) // 2] -- the median
end

if root then
  lab.save_safetensors(("%s/snapshot_%d.safetensors"):format(opts.out, result.steps), result.model:state_dict())
  local ev = {val = lab.metrics.evaluate(result.model, sets.val),
    hard = lab.metrics.evaluate(result.model, sets.hard)}
  local last = result.history[#result.history]
  local r = study.accuracies(ev, {val = {"acc"}, hard = {"acc", "conflicting_acc"}})
  for k, v in pairs({
    ranks = mpi.size(), threads = lab.get_threads(), steps = result.steps, batch = opts.batch,
    optimizer = opts.optimizer, lr = opts.lr, method = method.name, seed = opts.seed,
    data = opts.data, quick = opts.quick, n_train = n, epochs = opts.epochs,
    train_loss = last.loss, train_acc = last.train_acc, train_seconds = train_seconds,
    seconds_per_step = train_seconds / result.steps, comm_seconds = comm_seconds,
    comm_seconds_per_step = comm_seconds / result.steps, allreduce_seconds = allreduce_seconds,
    compute_cpu_per_step = compute_cpu,
    -- what a step would take on idle cores: the slowest rank's compute plus the all-reduce
    -- alone (one thread per rank only: with more, CPU time is not wall time)
    idle_seconds_per_step = lab.get_threads() == 1 and compute_cpu + (allreduce_seconds or 0) or nil,
    load_average = (function()
      local f = io.open("/proc/loadavg")
      local v = f and tonumber(f:read("a"):match("^(%S+)"))
      if f then f:close() end
      return v
    end)(),
    gradient_floats = (function()
      local c = 0
      for _, p in ipairs(result.model:parameters()) do c = c + p:numel() end
      return c
    end)(),
  }) do r[k] = v end
  study.record_arch(r, arch)
  util.write_json(opts.out .. "/result.json", r)
  util.progress("validation %.2f%%, hard %.2f%%; %.1f ms per step (%.2f ms of it in MPI%s); wrote %s",
    r.val_acc, r.hard_acc, 1000 * r.seconds_per_step, 1000 * r.comm_seconds_per_step,
    allreduce_seconds and (", all-reduce alone %.2f ms"):format(1000 * allreduce_seconds) or "",
    opts.out)
end
