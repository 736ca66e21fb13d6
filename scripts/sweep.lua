-- Sweep: a grid of debias methods × ρ × seeds, each point an independent training run, and
-- a summary of mean ± sd over the seeds.
--
-- One seed proves little: LESSONS asks for headline numbers as mean ± sd over several seeds,
-- and for methods compared at several ρ (with ρ = 1 there is no bias-conflicting training
-- digit at all). Every point (method, ρ, seed) builds its own Colored MNIST (seed, ρ), trains
-- the method with train.fit alone (never data-parallel: points are the unit of parallelism
-- here) and writes runs/sweep/<method>_rho<ρ>_seed<s>/{metrics.json, model.safetensors,
-- checkpoint.safetensors}. Under MPI the points are spread over the ranks — rank r runs points
-- r, r + K, r + 2K, ... of the grid — and without MPI one process runs them all in turn:
--
--   ./cnnlab scripts/sweep.lua --methods erm,colour_augment --rhos 1,0.99 --seeds 1,2,3
--   ./cnnlab scripts/sweep.lua --methods erm,lff --arch lff_mlp --arch-opt hidden=100 ...
--   mpirun -np 2 ./build-mpi/cnnlab scripts/sweep.lua --methods erm,colour_augment ...
--
-- Every point trains the network --arch names (with --arch-opt; default the seed network),
-- recorded in its metrics.json and model.safetensors. A point that already has its
-- metrics.json is reused (--redo runs it again) — unless it records another network, which is
-- an error for that point; one with only a checkpoint resumes from it. A point that fails writes error.txt beside and the sweep goes
-- on. When every rank is done, rank 0 reads all the points and writes summary.json (one row
-- per method and ρ: mean and sd over seeds of the validation, hard, hard-aligned and
-- hard-conflicting accuracies), summary.svg (hard-set accuracies with ± sd bars) and prints
-- the table. Exit status 1 when a point failed.
local lab = require "cnnlab"
local util, study, mpi = lab.util, lab.study, lab.mpi
local runs = require "cnnlab.runs"

local spec = {
  name = "sweep", script = "scripts/sweep.lua",
  description = "Train a grid of methods × rho × seeds (points spread over MPI ranks); " ..
    "summarise mean ± sd over seeds.",
  options = study.options({
    {"methods", "erm", "comma list of debias methods (names in lua/cnnlab/debias/ or .lua files)"},
    {"rhos", "1", "comma list of rho values (share of easy digits in their class colour)"},
    {"seeds", "1,2,3", "comma list of seeds (data set and training)"},
    "generated_n",
    {"epochs", 0, "epochs per point (0: each method's default)"},
    "batch", "lr", "optimizer", "arch", "arch_opt",
    {"method_opt", {}, "method:key=value, an option for one method (repeatable)"},
    {"out", "runs/sweep"},
    {"redo", false, "run points again even when their metrics.json exists"},
    {"progress", true, "print a line per point"},
  }, {without = {"seed", "rho"}}), -- --seeds and --rhos give the grid
}
local opts = util.parse_args(arg, spec)
local t0 = lab.now()
local rank, size = mpi.rank(), mpi.size()

local function fail(msg)
  io.stderr:write("sweep: ", msg, "\n")
  os.exit(2)
end

local function list_of(text, what, convert)
  local ok, list = pcall(study.list, text, what, convert)
  if not ok then fail(list) end
  return list
end

local methods = list_of(opts.methods, "methods")
local rhos = list_of(opts.rhos, "rhos", study.number_in(0, 1))
local seeds = list_of(opts.seeds, "seeds", study.integer)

-- method:key=value → per-method overrides
local overrides = {}
for _, item in ipairs(opts.method_opt) do
  local m, kv = item:match("^([^:]+):(.+)$")
  if not m then fail(("--method-opt expects method:key=value, got '%s'"):format(item)) end
  overrides[m] = overrides[m] or {}
  table.insert(overrides[m], kv)
end

--- The folder name of a point: erm_rho0.99_seed2.
local function point_name(method, rho, seed)
  local base = method:match("([^/]+)%.lua$") or method
  return ("%s_rho%s_seed%d"):format(base, ("%g"):format(rho), seed)
end

-- The grid, methods varying fastest so that consecutive points of a rank often share data.
local grid = {}
for _, seed in ipairs(seeds) do
  for _, rho in ipairs(rhos) do
    for _, method in ipairs(methods) do
      grid[#grid + 1] = {method = method, rho = rho, seed = seed,
        name = point_name(method, rho, seed)}
    end
  end
end

-- Every method and the network must load (and take their options) before anything trains: a
-- typo should stop the sweep at once, not after hours.
local ok_arch, arch = pcall(study.arch, opts)
if not ok_arch then fail(tostring(arch)) end
local arch_record = study.record_arch({}, arch) -- {} for the seed network
for _, m in ipairs(methods) do
  local ok, err = pcall(lab.debias.load, m, lab.debias.parse_options(overrides[m] or {}))
  if not ok then fail(tostring(err)) end
end
for m in pairs(overrides) do
  local known = false
  for _, x in ipairs(methods) do known = known or x == m end
  if not known then fail(("--method-opt names method '%s', which is not in --methods"):format(m)) end
end

local function say(fmt, ...)
  if not opts.progress then return end
  io.stdout:write(("[%7.1fs] %s"):format(lab.now() - t0, size > 1 and ("[rank %d/%d] "):format(rank, size) or ""),
    fmt:format(...), "\n")
  io.stdout:flush()
end

if rank == 0 then
  say("sweep of %d points (%d methods × %d rho × %d seeds) over %d rank%s into %s", #grid,
    #methods, #rhos, #seeds, size, size > 1 and "s" or "", opts.out)
end

-- ------------------------------------------------------------------ one point

local cache = study.data_cache(opts)

local function run_point(p)
  local dir = opts.out .. "/" .. p.name
  local done = dir .. "/metrics.json"
  if not opts.redo and util.exists(done) then
    -- reused only when it trained the same network
    local old = util.json_decode(util.read_file(done))
    if old.arch ~= arch_record.arch or old.arch_options ~= arch_record.arch_options then
      error(("%s was trained with --arch %s%s, not --arch %s%s: use another --out, or --redo")
        :format(done, old.arch or lab.models.DEFAULT, old.arch_options and (" " .. old.arch_options) or "",
        arch_record.arch or lab.models.DEFAULT, arch_record.arch_options and (" " .. arch_record.arch_options) or ""), 0)
    end
    return "reused"
  end
  util.mkdir_p(dir)
  os.remove(dir .. "/error.txt")
  local resume = not opts.redo and util.exists(dir .. "/checkpoint.safetensors")
  local started = lab.now()
  local method = lab.debias.load(p.method, lab.debias.parse_options(overrides[p.method] or {}))
  local sets = cache:get(p.seed, p.rho)
  local run = study.train_and_evaluate(opts, method, sets, {seed = p.seed, out = dir,
    resume = resume, progress = false, evaluate = {"val", "hard"},
    comm = mpi.self}) -- each point trains alone, whatever the number of ranks
  if run.interrupted then error("interrupted (Ctrl-C); run the sweep again to resume", 0) end
  local result = run.fit
  local m = study.accuracies(run.ev, {val = {"acc"},
    hard = {"acc", "aligned_acc", "conflicting_acc"}})
  m.train_acc = (result.history[#result.history] or {}).train_acc -- the epoch's running accuracy
  for k, v in pairs({method = method.name, rho = p.rho, seed = p.seed, beta = opts.beta,
      data = opts.data, quick = opts.quick, epochs = result.epochs_done, batch = opts.batch,
      lr = opts.lr, optimizer = opts.optimizer, n_train = sets.train.n, n_val = sets.val.n,
      n_hard = sets.hard.n, seconds = lab.now() - started, train_seconds = result.seconds,
      rank = rank, ranks = size, threads = lab.get_threads(), resumed = resume}) do
    m[k] = v
  end
  study.record_arch(m, arch)
  for k, v in pairs(method.options or {}) do
    if type(v) ~= "table" then m["option_" .. k] = v end
  end
  study.write_metrics(dir, m)
  return "trained", m
end

local mine = mpi.points(#grid)
local failures = 0
for count, i in ipairs(mine) do
  local p = grid[i]
  local ok, status, m = pcall(run_point, p)
  if ok and status == "trained" then
    say("point %d/%d %-34s val %6.2f%%  hard %6.2f%%  conflicting %6.2f%%  (%.0f s; %d/%d of this rank)",
      i, #grid, p.name, m.val_acc, m.hard_acc, m.hard_conflicting_acc or 0 / 0, m.seconds, count,
      #mine)
  elseif ok then
    say("point %d/%d %-34s already done (metrics.json kept; --redo runs it again)", i, #grid, p.name)
  else
    failures = failures + 1
    local msg = tostring(status)
    io.stderr:write(("sweep: point %s failed: %s\n"):format(p.name, msg))
    pcall(util.write_file, opts.out .. "/" .. p.name .. "/error.txt", msg .. "\n")
  end
end
cache:clear()

-- ------------------------------------------------------------------ summary (rank 0)

mpi.barrier() -- every rank's points are on disk
local failed_total = mpi.allreduce_numbers({failures})[1]
if rank ~= 0 then os.exit(failed_total > 0 and 1 or 0) end

local KEYS = {
  {"val_acc", "validation"}, {"hard_acc", "hard"}, {"hard_aligned_acc", "hard aligned"},
  {"hard_conflicting_acc", "hard conflicting"},
}
local FIELDS = {}
for i, k in ipairs(KEYS) do FIELDS[i] = k[1] end
local rows, failed = {}, {}
for _, method in ipairs(methods) do
  for _, rho in ipairs(rhos) do
    local row = {method = method:match("([^/]+)%.lua$") or method, rho = rho, seeds = {}}
    local found = {}
    for _, seed in ipairs(seeds) do
      local dir = opts.out .. "/" .. point_name(method, rho, seed)
      local ok, m = pcall(function() return util.json_decode(util.read_file(dir .. "/metrics.json")) end)
      if ok and type(m) == "table" and (m.arch ~= arch_record.arch
        or m.arch_options ~= arch_record.arch_options) then
        ok, m = false, nil -- another network's point (its error.txt says so) is not summarised
      end
      if ok and type(m) == "table" then
        row.seeds[#row.seeds + 1], found[#found + 1] = seed, m
      else
        local err = util.exists(dir .. "/error.txt") and util.read_file(dir .. "/error.txt") or "no metrics.json"
        failed[#failed + 1] = {point = point_name(method, rho, seed), error = (err:gsub("%s+$", ""))}
      end
    end
    row.n = #row.seeds
    for f, a in pairs(runs.aggregate(found, FIELDS)) do
      row[f .. "_mean"], row[f .. "_sd"], row[f .. "_n"] = a.mean, a.sd, a.n
    end
    rows[#rows + 1] = row
  end
end

print()
print(("Mean ± sd over seeds (accuracy %%; %d seeds: %s; %s%s%s)"):format(#seeds,
  table.concat(seeds, ","), opts.data, opts.quick and ", quick subsets" or "",
  arch_record.arch and (", network %s %s"):format(arch_record.arch, arch_record.arch_options) or ""))
print(table.concat(lab.metrics.mean_sd_table(rows, KEYS), "\n"))
if #failed > 0 then
  print(("\n%d point%s missing:"):format(#failed, #failed > 1 and "s" or ""))
  for _, f in ipairs(failed) do print(("  %s: %s"):format(f.point, f.error)) end
end

util.mkdir_p(opts.out)
util.write_json(opts.out .. "/summary.json", {
  rows = rows, failed = failed, methods = methods, rhos = rhos, seeds = seeds,
  settings = study.record_arch({beta = opts.beta, data = opts.data, quick = opts.quick,
    epochs = opts.epochs, batch = opts.batch, lr = opts.lr, optimizer = opts.optimizer}, arch),
  points = #grid, ranks = size, seconds = lab.now() - t0,
})

-- The chart: one group of bars per (method, ρ), the validation (easy), hard and
-- hard-conflicting accuracies with ± sd error bars.
local labels, series = {}, {}
for i, k in ipairs({KEYS[1], KEYS[2], KEYS[4]}) do
  series[i] = {name = k[2] == "validation" and "validation (easy)" or
    (k[2] == "hard" and "hard" or "hard, conflicting"), values = {}, errors = {}}
end
for g, row in ipairs(rows) do
  labels[g] = #rhos > 1 and ("%s, ρ=%g"):format(row.method, row.rho) or row.method
  for i, k in ipairs({KEYS[1], KEYS[2], KEYS[4]}) do
    series[i].values[g] = row[k[1] .. "_mean"] or 0 / 0
    series[i].errors[g] = row[k[1] .. "_sd"] or 0
  end
end
local longest = 0
for _, l in ipairs(labels) do longest = math.max(longest, utf8.len(l) or #l) end
lab.svg.save(opts.out .. "/summary.svg", lab.svg.bars{
  title = ("Accuracy by method, mean ± sd over %d seed%s%s"):format(#seeds, #seeds > 1 and "s" or "",
    #rhos == 1 and (" (ρ = %g)"):format(rhos[1]) or ""),
  labels = labels, series = series, ylabel = "accuracy (%)", ymin = 0, ymax = 100,
  xlabel = #rhos > 1 and "method, ρ" or "method",
  width = #labels * math.max(120, longest * 7 + 16), fmt = "%.1f",
})
say("wrote %s/summary.json and summary.svg (%d points, %d rank%s, %.0f s)", opts.out,
  #grid, size, size > 1 and "s" or "", lab.now() - t0)
if failed_total > 0 or #failed > 0 then os.exit(1) end
