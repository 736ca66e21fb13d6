-- Benchmarks: cnnlab held against the literature's tables. Each table is one file in
-- lua/cnnlab/benchmarks/ (found by name, or any file by path): the protocol (data set and its
-- options, network, optimiser and schedule, methods, seeds, the table's own varying
-- parameter) and the published figures with their sources. For each table this trains every
-- cell (method × parameter value × seed) it is asked for and writes into --out/<table>/:
--
--   metrics.json   flat keys (SPEC §5), per cell <method>_<param><value>_<measure>_mean/_sd/
--                  _n/_seed<s> for unbiased, conflicting, aligned and conflicting_samples
--                  accuracy (percent), <cell>_seconds_* (wall time of each run), <cell>_seeds,
--                  the published figures beside them, and the protocol (protocol_*)
--   chart.svg      unbiased and conflicting accuracy against the parameter (cnnlab.svg)
--   table.txt      the printed comparison; log.txt the run's lines
--   <method>/<param><value>/seed<s>/  each run: result.json, model.safetensors, checkpoint
--
-- Any cell runs alone and merges into the table's metrics.json (the other cells stay); a run
-- whose result.json was made with the same protocol is reused unless --force:
--
--   ./cnnlab scripts/benchmarks.lua --table lff_colored_mnist --methods erm --shares 1 --seeds 1
--   ./cnnlab scripts/benchmarks.lua --table lff_colored_mnist            # the full table
--   ./cnnlab scripts/benchmarks.lua --quick                              # every table, quick
local lab = require "cnnlab"
local util, study = lab.util, lab.study
local runs = require "cnnlab.runs"
local benchmarks = require "cnnlab.benchmarks"

-- The list option of every shipped table's parameter (--shares, --rhos), plus --values for any.
local param_flags, seen_flag = {}, {}
for _, name in ipairs(benchmarks.available()) do
  local ok, t = pcall(benchmarks.load, name)
  if ok and not seen_flag[t.param.flag] then
    seen_flag[t.param.flag] = true
    param_flags[#param_flags + 1] = {t.param.flag, "", ("comma list of %s values of table %s "
      .. "(default: the table's)"):format(t.param.name, t.name)}
  end
end

local options = {
  {"table", "all", "comma list of benchmark tables (names in lua/cnnlab/benchmarks/ or .lua files), or all"},
  {"methods", "", "comma list of methods (default: the table's; with --quick the quick ones)"},
  {"seeds", "", "comma list of seeds (default: the table's; with --quick its first)"},
}
for _, o in ipairs(param_flags) do options[#options + 1] = o end
for _, o in ipairs({
  {"values", "", "comma list of values of the table's parameter (any table; same as its own flag)"},
  {"epochs", 0, "epochs per run (0: the table's; with --quick a few)"},
  {"quick", false, "a subset of the data, a few epochs, one seed and value: checks the pipeline"},
  {"force", false, "train again runs whose result.json has the same protocol"},
  {"resume", false, "continue an interrupted run from its checkpoint"},
  {"out", "", "output folder (default runs/benchmarks; with --quick runs/quick/benchmarks)"},
  {"data", "mnist", "mnist, or generated (synthetic digits, no download; for tests)"},
  {"data_dir", "", "folder with the MNIST IDX files (default data/mnist)"},
  {"generated_n", 3000, "digits generated with --data generated"},
  {"threads", 0, "threads for the C kernels (0: all cores)"},
  {"progress", true, "show training progress"},
}) do options[#options + 1] = o end

local spec = {name = "benchmarks", script = "scripts/benchmarks.lua",
  description = "Run benchmark tables (lua/cnnlab/benchmarks/): cnnlab's methods on the "
    .. "literature's protocols, beside the published figures.", options = options}
local opts = util.parse_args(arg, spec)
if opts.out == "" then opts.out = opts.quick and "runs/quick/benchmarks" or "runs/benchmarks" end
if opts.threads > 0 then lab.set_threads(opts.threads) end

local function list_or(text, what, default, convert, expected)
  if text == nil or text == "" then return default end
  return study.list(text, what, convert, expected)
end

--- The cells a table runs in this invocation: methods, values, seeds, epochs.
local function plan(t)
  local q = opts.quick and t.quick or {}
  local methods = list_or(opts.methods, "methods", q.methods or t.methods)
  local given = opts[t.param.flag] ~= nil and opts[t.param.flag] ~= "" and opts[t.param.flag]
    or opts.values
  local values = list_or(given, given == opts.values and "values" or t.param.flag,
    q.values or t.param.values, tonumber, "a number")
  local seeds = list_or(opts.seeds, "seeds", q.seeds or t.seeds, study.integer)
  local epochs = opts.epochs > 0 and opts.epochs or q.epochs or t.epochs
  return {methods = methods, values = values, seeds = seeds, epochs = epochs,
    overridden = opts.epochs > 0 or opts.quick}
end

--- The method instance of a table's row, with the table's settings.
local function method_of(t, name)
  local ok, m = pcall(lab.debias.load, name, t.method_options[name] or {})
  if not ok then error(("--methods: %s"):format(tostring(m):gsub("^[^\n]-%.lua:%d+: ", "")), 0) end
  return m
end

--- The settings a run's result.json records: the whole protocol of that run.
local function run_settings(t, method, value, seed, epochs)
  local models = lab.models
  local dopts = {}
  for k, v in pairs(t.dataset_options) do dopts[k] = v end
  dopts[t.param.option] = value * t.param.scale
  return {table = t.name, dataset = t.dataset, dataset_options = models.options_text(dopts),
    arch = t.arch, arch_options = models.options_text(t.arch_options), optimizer = t.optimizer,
    lr = t.lr, batch = t.batch, epochs = epochs, method = method.name,
    method_options = models.options_text(method.options), seed = seed, quick = opts.quick,
    data = opts.data, generated_n = opts.data == "generated" and opts.generated_n or nil,
    [t.param.name] = value}
end

--- The study options that build a table's data at a value and seed and train its network.
local function study_opts(t, value, seed, epochs)
  local dataset_opt = {}
  for k, v in pairs(t.dataset_options) do dataset_opt[#dataset_opt + 1] = ("%s=%s"):format(k, tostring(v)) end
  dataset_opt[#dataset_opt + 1] = ("%s=%.17g"):format(t.param.option, value * t.param.scale)
  local arch_opt = {}
  for k, v in pairs(t.arch_options) do arch_opt[#arch_opt + 1] = ("%s=%s"):format(k, tostring(v)) end
  return {dataset = t.dataset, dataset_opt = dataset_opt, arch = t.arch, arch_opt = arch_opt,
    seed = seed, rho = 1.0, beta = 0.25, data = opts.data, data_dir = opts.data_dir,
    generated_n = opts.generated_n, quick = opts.quick, threads = 0, epochs = epochs,
    batch = t.batch, lr = t.lr, optimizer = t.optimizer, progress = opts.progress}
end

--- One run: trains method at (value, seed) into dir and measures it on the evaluation split.
local function train_one(t, method, sets, so, seed, dir)
  local resume = opts.resume and not opts.force and util.exists(dir .. "/checkpoint.safetensors")
  local fit = lab.train.fit(study.fit_options(so, method, sets, {seed = seed, out = dir,
    resume = resume, validate = false}))
  if fit.interrupted then
    io.stderr:write("interrupted; continue with the same command and --resume\n")
    os.exit(130)
  end
  local hard = sets.hard
  local preds = lab.train.predict(fit.model, hard)
  local r = lab.metrics.cell_accuracies(preds, hard.labels, hard.colors)
  return {seed = seed, unbiased = r.unbiased, conflicting = r.conflicting, aligned = r.aligned,
    conflicting_samples = r.conflicting_samples, cells = r.cells, n_eval = r.n,
    n_train = sets.train.n, seconds = fit.seconds, epochs = fit.epochs_done, steps = fit.steps,
    history = fit.history}
end

--- Every result.json of a cell's folder made with the protocol of this invocation.
local function cell_results(t, dir, method, value, epochs)
  local found = {}
  for _, sub in ipairs(lab.listdir(dir) or {}) do
    local seed = math.tointeger(tonumber(sub:match("^seed(%-?%d+)$") or ""))
    local path = dir .. "/" .. sub .. "/result.json"
    if seed and util.exists(path) then
      local ok, r = pcall(function() return util.json_decode(util.read_file(path)) end)
      if ok and type(r) == "table" and r.settings and runs.same_settings(r.settings,
          run_settings(t, method, value, seed, epochs)) then
        found[#found + 1] = r
      end
    end
  end
  return found
end

local function run_table(t)
  local p = plan(t)
  local dir = opts.out .. "/" .. t.name
  util.mkdir_p(dir)
  local log = runs.log()
  local instances = {}
  for _, name in ipairs(p.methods) do instances[name] = method_of(t, name) end -- typos stop now
  log.say("%s: %d method(s) × %d %s value(s) × %d seed(s), %d epochs%s, into %s", t.name,
    #p.methods, #p.values, t.param.name, #p.seeds, p.epochs, opts.quick and " (quick)" or "", dir)
  local touched = {}
  for _, value in ipairs(p.values) do
    for _, seed in ipairs(p.seeds) do
      local sets -- built when the first run of this (value, seed) trains
      for _, name in ipairs(p.methods) do
        local method = instances[name]
        -- a method whose length depends on its options (jtt: T + final_epochs) runs its own
        -- count in the full table; --epochs and --quick set every method's
        local own = rawget(method, "epochs")
        local epochs = (not p.overridden and own) or p.epochs
        local cell = benchmarks.cell_key(t, name, value)
        local run_dir = ("%s/%s/%s%s/seed%d"):format(dir, method.name, t.param.name,
          benchmarks.value_text(value), seed)
        local so = study_opts(t, value, seed, epochs)
        local r, reused = runs.cached(run_dir .. "/result.json",
          run_settings(t, method, value, seed, epochs), function()
            if not sets then
              util.progress("building %s (%s %g%s, seed %d%s)", t.dataset, t.param.name, value,
                t.param.unit, seed, opts.quick and ", quick subset" or "")
              sets = study.load_data(so)
            end
            util.progress("%s seed %d: training %s for %d epochs", cell, seed,
              lab.debias.describe(method), epochs)
            return train_one(t, lab.debias.load(name, t.method_options[name] or {}), sets, so,
              seed, run_dir)
          end, {reuse = not opts.force})
        log.say("%-28s seed %d: unbiased %6.2f%%  conflicting %6.2f%%  aligned %6.2f%%  %6.0f s%s",
          cell, seed, r.unbiased or 0 / 0, r.conflicting or 0 / 0, r.aligned or 0 / 0,
          r.seconds or 0 / 0, reused and "  (reused: same protocol; --force trains again)" or "")
        touched[#touched + 1] = {method = method, name = name, value = value, epochs = epochs,
          dir = ("%s/%s/%s%s"):format(dir, method.name, t.param.name, benchmarks.value_text(value))}
      end
      sets = nil
      collectgarbage()
    end
  end
  -- merge: the cells run now replace their keys; every other cell of metrics.json stays
  local protocol = benchmarks.protocol(t, {epochs = p.epochs, quick = opts.quick})
  local m = benchmarks.read(dir) or {}
  for k, v in pairs(protocol) do
    if k ~= "protocol_epochs" and m[k] ~= nil and m[k] ~= v then
      log.say("%s/metrics.json was made with %s = %s, this run has %s: its cells are replaced",
        dir, k, tostring(m[k]), tostring(v))
      m = {}
      break
    end
  end
  for k, v in pairs(protocol) do m[k] = v end
  local done = {}
  for _, c in ipairs(touched) do
    local key = benchmarks.cell_key(t, c.name, c.value)
    if not done[key] then
      done[key] = true
      benchmarks.put_cell(m, t, c.name, c.value, cell_results(t, c.dir, c.method, c.value, c.epochs))
      m[key .. "_epochs"] = c.epochs
    end
  end
  study.write_metrics(dir, m)
  local lines = benchmarks.lines(t, m)
  print()
  for _, l in ipairs(lines) do log.say("%s", l) end
  util.write_file(dir .. "/table.txt", table.concat(lines, "\n") .. "\n")
  local chart = benchmarks.chart(t, m)
  if chart then lab.svg.save(dir .. "/chart.svg", chart) end
  log.append_to(dir .. "/log.txt", ("\n(%s)\n\n"):format(os.date("%Y-%m-%d %H:%M")))
end

study.main("benchmarks", function()
  local names = opts.table == "all" and benchmarks.available() or study.list(opts.table, "table")
  local tables = {}
  for _, name in ipairs(names) do -- every table loads (and is checked) before any trains
    local ok, t = pcall(benchmarks.load, name)
    if not ok then error(("--table: %s"):format(tostring(t):gsub("^[^\n]-%.lua:%d+: ", "")), 0) end
    tables[#tables + 1] = t
  end
  for _, t in ipairs(tables) do run_table(t) end
end)
