--- bench/bench.lua — how fast cnnlab trains and runs every model plug-in (lua/cnnlab/models/:
-- the seed network of SPEC §3, lff_mlp, bn_cnn, simple_convnet), and with --compare how that
-- stands against PyTorch (the same architectures, bench/torch_models.py) on the same machine in
-- the same run.
--
--   make bench                      build, then: cnnlab bench/bench.lua --peak build/bench/peak
--   make bench ARGS=--compare       … and PyTorch beside it (Debian's python3-torch)
--   make bench-compare              the same
--   make bench ARGS="--arch bn_cnn" one model (simple_convnet: at both of its batches)
--   cnnlab bench/bench.lua --help   every option
--
-- What it measures (docs/performance.md explains the method and the figures):
--   * for every model of BENCH_MODELS (or the one --arch names): training (forward,
--     cross-entropy, backward, Adam) and inference (forward under no_grad, evaluation mode)
--     images/s at batch 128 (simple_convnet at 256 too), for each thread count (1 and 2 by
--     default); with --compare the PyTorch steps take turns with cnnlab's, block by block, so
--     that both see the same machine; every figure is the median of --rounds blocks; a heavy
--     model runs fewer steps per block (--block-seconds), never fewer than one;
--   * the seed network's GFLOP/s of each convolution forward and backward, timed inside real
--     training steps by module and tensor hooks;
--   * the processor's peak FMA rate (bench/peak.c) and the share of it training reaches;
--   * peak resident memory: of this process, and of a probe that holds a Task-1-sized data set
--     (70,000 × 3×28×28 bytes) while it trains;
--   * the start-up time of `cnnlab -e ''` and the fixed (batch-independent) cost of a step,
--     which bounds what Lua and the bindings add.
-- Results also go to --out (bench/results.json).
local lab = require "cnnlab"
local util = require "cnnlab.util"

local spec = {
  name = "bench", script = "bench/bench.lua",
  description = "Throughput of every model plug-in; --compare runs PyTorch in the same run.",
  options = {
    {"compare", false, "also time PyTorch (python3-torch) and print the ratios"},
    {"arch", "all", "the model to measure: a name of lua/cnnlab/models/, or all"},
    {"threads", "1,2", "thread counts to measure, comma-separated"},
    {"batch", 128, "images per step (simple_convnet is measured at 256 as well)"},
    {"rounds", 5, "timed blocks per figure (the median is reported)"},
    {"steps", 8, "training steps per block (at most, unless --min-block-seconds asks for more)"},
    {"infer_steps", 20, "inference passes per block (at most, unless --min-block-seconds asks for more)"},
    {"block_seconds", 1.0, "a block takes as many steps as fit in this many seconds, at least one"},
    {"min_block_seconds", 0.25, "a block takes at least this long: fast models (lff_mlp) take more steps than --steps and --infer-steps"},
    {"warmup", 30, "untimed training steps per thread count (allocator and caches settle; at most 3 s of them)"},
    {"layer_steps", 8, "training steps timed layer by layer"},
    {"out", "bench/results.json", "where the results go (JSON)"},
    {"peak", "", "the peak-FMA probe (bench/peak.c, built by make bench)"},
    {"python", "", "a python3 with torch (default: python3, then /usr/bin/python3)"},
    {"quick", false, "one short round of everything (a smoke test, not a measurement)"},
    {"rss_probe", false, "internal: the Task-1 memory probe"},
  },
}
local opt = util.parse_args(arg, spec)
if opt.quick then
  opt.rounds, opt.steps, opt.infer_steps, opt.warmup, opt.layer_steps = 1, 2, 2, 2, 2
  opt.min_block_seconds = 0
end
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
local exe = arg[-1] or "cnnlab"

-- ------------------------------------------------------------------ small helpers

local function median(list)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  table.sort(t)
  local n = #t
  if n == 0 then return 0 / 0 end
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

local function status_kb(field)
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+)"))
end

local function command_output(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out
end

-- The models measured, in the table's order: every shipped model plug-in at --batch, and
-- simple_convnet (≈ 64 × the seed network's work per image) at 256 as well, the batch its
-- paper trains with. --arch NAME keeps the rows of that model.
local BENCH_MODELS = {
  {arch = "seed_cnn"}, {arch = "lff_mlp"}, {arch = "bn_cnn"}, {arch = "simple_convnet"},
  {arch = "simple_convnet", batch = 256},
}
local SHAPE, CLASSES = {3, 28, 28}, 10

-- A model's multiply-adds per image, counted as 2 FLOP each by a dry forward with hooks:
-- convolutions and linear layers (pooling, BatchNorm, ReLU and the loss are not counted).
-- Backward is twice the forward (dx and dW), except for the first layer, whose input needs
-- no gradient. Returns the forward and training FLOP and the convolutions ({name, c, o, h, k,
-- fwd, bwd}: the per-layer table's rows).
local function count_flop(net)
  local rows, handles = {}, {}
  for _, entry in ipairs(net:named_modules()) do
    local name, m = entry[1], entry[2]
    local kind = getmetatable(m).__name
    if kind == "Conv2d" or kind == "Linear" then
      handles[#handles + 1] = m:register_forward_hook(function(_, input, output)
        local w = m.weight.shape
        local per_out = kind == "Conv2d" and w[2] * w[3] * w[4] or w[2]
        rows[#rows + 1] = {name = name, kind = kind, fwd = 2 * output:numel() * per_out,
          c = w[2], o = w[1], h = input:dim() == 4 and input:size(2) or nil,
          k = kind == "Conv2d" and w[3] or nil}
      end)
    end
  end
  local was = net.training
  net:eval()
  lab.no_grad(function() return net(lab.zeros({1, SHAPE[1], SHAPE[2], SHAPE[3]})) end)
  net:train(was)
  for _, h in ipairs(handles) do h:remove() end
  local forward, train, convs = 0, 0, {}
  for i, r in ipairs(rows) do
    r.bwd = i == 1 and r.fwd or 2 * r.fwd
    forward, train = forward + r.fwd, train + r.fwd + r.bwd
    if r.kind == "Conv2d" then convs[#convs + 1] = r end
  end
  return forward, train, convs
end

local function make_batch(batch, gen)
  local x = lab.rand({batch, SHAPE[1], SHAPE[2], SHAPE[3]}, {generator = gen})
  local labels = {}
  for i = 1, batch do labels[i] = (i * 7) % 10 end
  return x, lab.tensor(labels, {dtype = "int64"})
end

-- A network of the model plug-in `arch`, its Adam and one batch: train() is one training step
-- (training mode), infer() one forward under no_grad (evaluation mode: BatchNorm uses its
-- running statistics, as it does when a trained model is evaluated).
local function make_trainer(batch, arch)
  local gen = lab.Generator(11)
  local net = lab.models.load(arch or "seed_cnn").build(SHAPE, CLASSES, {generator = gen})
  local adam = lab.optim.Adam(net:parameters(), {lr = 1e-3})
  local x, y = make_batch(batch, gen)
  local function train_step()
    if not net.training then net:train() end
    adam:zero_grad()
    local loss = lab.cross_entropy(net(x), y)
    loss:backward()
    adam:step()
  end
  local function infer_step()
    if net.training then net:eval() end
    lab.no_grad(function() return net(x) end)
  end
  return {net = net, x = x, y = y, adam = adam, train = train_step, infer = infer_step}
end

-- ------------------------------------------------------------------ the memory probe

-- A subprocess: hold a data set of Task 1's size as bytes, train from it at the bench's batch,
-- report the peak resident set. Colored MNIST keeps its 70,000 images as 3×28×28 bytes.
if opt.rss_probe then
  lab.set_threads(tonumber(opt.threads:match("%d+")) or 1)
  local n = 70000
  local data = lab.empty({n, 3, 28, 28}, {dtype = "uint8"})
  data:fill_(128) -- resident, as a loaded data set is
  local gen = lab.Generator(5)
  local net = lab.models.seed_cnn{generator = gen}
  local adam = lab.optim.Adam(net:parameters(), {lr = 1e-3})
  local labels = {}
  for i = 1, opt.batch do labels[i] = (i * 3) % 10 end
  local y = lab.tensor(labels, {dtype = "int64"})
  local steps = opt.quick and 5 or 200
  for step = 1, steps do
    local idx = lab.randperm(n, {generator = gen}):narrow(0, 0, opt.batch)
    local x = data:index_select(0, idx):float() / 255
    adam:zero_grad()
    local loss = lab.cross_entropy(net(x), y)
    loss:backward()
    adam:step()
    if step == 1 then io.write(string.format("after_first_step_kb %d\n", status_kb("VmRSS"))) end
  end
  io.write(string.format("peak_rss_kb %d\n", status_kb("VmHWM")))
  io.write(string.format("data_kb %d\n", n * 3 * 28 * 28 // 1024))
  return
end

-- ------------------------------------------------------------------ PyTorch, in turns

local torch = nil -- {send = fn(cmd) → seconds per step, close = fn()}

local function find_python()
  local candidates = opt.python ~= "" and {opt.python} or {"python3", "/usr/bin/python3"}
  for _, py in ipairs(candidates) do
    if os.execute(py .. " -c 'import torch' >/dev/null 2>&1") then return py end
  end
  return nil
end

-- PyTorch runs in one python process for the whole bench, fed commands on its stdin; it
-- answers through a named pipe, so each block can wait for its answer before the next starts.
local function start_torch()
  local py = find_python()
  if not py then
    return nil, "no python3 with torch found (Debian: apt-get install python3-torch); " ..
      "--python PATH names one"
  end
  local fifo = os.tmpname()
  os.remove(fifo)
  if not os.execute("mkfifo " .. util.shell_quote(fifo)) then
    return nil, "cannot make a named pipe (mkfifo)"
  end
  local cmd = string.format("%s %s --serve > %s", py,
    util.shell_quote(here .. "/torch_models.py"), util.shell_quote(fifo))
  local stdin = io.popen(cmd, "w")
  local replies = io.open(fifo, "r")
  os.remove(fifo) -- both ends are open; the name is no longer needed
  local hello = replies:read("l")
  if not hello or not hello:match("^ready") then
    stdin:close()
    return nil, "PyTorch did not start (" .. tostring(hello) .. ")"
  end
  local version = hello:match("^ready torch (%S+)")
  return {
    version = version,
    send = function(kind, arch, batch, threads, steps)
      stdin:write(string.format("%s %s %d %d %d\n", kind, arch, batch, threads, steps))
      stdin:flush()
      local line = replies:read("l")
      local seconds = line and tonumber(line:match("^%S+ %d+ (%S+)$"))
      if not seconds then error("PyTorch answered '" .. tostring(line) .. "'") end
      return seconds
    end,
    close = function()
      stdin:write("quit\n")
      stdin:close()
      replies:close()
    end,
  }
end

-- ------------------------------------------------------------------ measurements

local results = {
  batch = opt.batch, rounds = opt.rounds, gemm = lab.gemm_backend(),
  models = {}, -- one entry per row group of the table: {arch, batch, flop_per_image, runs}
  runs = {},   -- the seed network's at --batch, with its convolutions (as before)
}

local function timed_block(fn, steps)
  local c0, t0 = os.clock(), lab.now()
  for _ = 1, steps do fn() end
  return (lab.now() - t0) / steps, (os.clock() - c0) / steps
end

-- Per-layer time inside training steps: a forward hook on every module marks when its
-- forward returned; on each convolution, hooks on its output and input tensors mark when the
-- gradient reaches it and when its backward has handed the gradient on.
local function layer_times(tr, steps, layers)
  local marks, order = {}, {}
  local handles = {}
  for _, entry in ipairs(tr.net:named_modules()) do
    local name, m = entry[1], entry[2]
    if name ~= "" then
      order[#order + 1] = name
      handles[#handles + 1] = m:register_forward_hook(function(_, input, output)
        marks["f:" .. name] = lab.now()
        if getmetatable(m).__name == "Conv2d" then
          output:register_hook(function() marks["go:" .. name] = lab.now() end)
          if input.requires_grad then
            input:register_hook(function() marks["gi:" .. name] = lab.now() end)
          end
        end
      end)
    end
  end
  local per = {}
  for _, l in ipairs(layers) do per[l.name] = {fwd = {}, bwd = {}} end
  for _ = 1, steps do
    marks = {}
    tr.adam:zero_grad()
    local t0 = lab.now()
    local loss = lab.cross_entropy(tr.net(tr.x), tr.y)
    loss:backward()
    local t_end = lab.now()
    tr.adam:step()
    local prev = t0
    for _, name in ipairs(order) do
      local t = marks["f:" .. name]
      if per[name] and marks["go:" .. name] then
        table.insert(per[name].fwd, t - prev)
        table.insert(per[name].bwd, (marks["gi:" .. name] or t_end) - marks["go:" .. name])
      end
      prev = t
    end
  end
  for _, h in ipairs(handles) do h:remove() end
  return per
end

-- Where a training step's time goes, Lua or C: every C function the step can reach (the
-- functions of lab and lab.core, the tensor methods) is wrapped to add its wall time to a
-- counter while the step runs; the rest is Lua — the modules, autograd's bookkeeping in the
-- binding, the optimizer loop, and the wrappers themselves (so the Lua share is, if anything,
-- overstated). core.no_grad calls back into Lua and is left alone; calls inside it count.
local function lua_share(tr, steps)
  local now, depth, c_time = lab.now, 0, 0
  local saved = {}
  local function wrap(tbl, name, f)
    saved[#saved + 1] = {tbl, name, f}
    tbl[name] = function(...)
      if depth > 0 then return f(...) end
      depth = 1
      local t0 = now()
      local r = table.pack(f(...))
      c_time = c_time + (now() - t0)
      depth = 0
      return table.unpack(r, 1, r.n)
    end
  end
  local skip = {no_grad = true, now = true}
  for _, tbl in ipairs({lab, lab.core, lab.core.Tensor}) do
    local names = {}
    for name, f in pairs(tbl) do
      if type(f) == "function" and not skip[name] and debug.getinfo(f, "S").what == "C" then
        names[#names + 1] = name
      end
    end
    for _, name in ipairs(names) do wrap(tbl, name, tbl[name]) end
  end
  for _ = 1, 3 do tr.train() end
  c_time = 0
  local t0 = now()
  for _ = 1, steps do tr.train() end
  local total = now() - t0
  for i = #saved, 1, -1 do saved[i][1][saved[i][2]] = saved[i][3] end
  return (total - c_time) / steps, total / steps
end

local function fixed_step_cost()
  -- A batch of one: what a step costs whatever the batch (Lua, bindings, autograd, Adam,
  -- the per-op setup of the kernels) — an upper bound on the Lua side.
  local tr = make_trainer(1)
  for _ = 1, 20 do tr.train() end
  local times = {}
  for r = 1, math.max(3, opt.rounds) do times[r] = timed_block(tr.train, 20) end
  return median(times)
end

local function startup_ms()
  local times = {}
  for i = 1, opt.quick and 3 or 21 do
    local t0 = lab.now()
    os.execute(util.shell_quote(exe) .. " -e '' >/dev/null 2>&1")
    times[i] = (lab.now() - t0) * 1000
  end
  return median(times)
end

local function probe_peak(threads)
  if opt.peak == "" then return nil end
  local out = command_output(util.shell_quote(opt.peak) .. " " .. threads)
  local cpu = out:match("cpu ([^\n]*)")
  local best, isa = nil, nil
  for name, rate in out:gmatch("peak (%S+) %d+ (%S+)") do
    rate = tonumber(rate)
    if rate and (not best or rate > best) then best, isa = rate, name end
  end
  return best, isa, cpu
end

-- ------------------------------------------------------------------ the run

local thread_counts = {}
for t in opt.threads:gmatch("%d+") do thread_counts[#thread_counts + 1] = tonumber(t) end

local load = command_output("cat /proc/loadavg 2>/dev/null"):match("^(%S+)") or "?"
local ncpu = tonumber(command_output("nproc 2>/dev/null"):match("%d+")) or 1
local peak1, isa, cpu = probe_peak(1)
results.machine = {cpu = cpu, cores = ncpu, load_average_at_start = tonumber(load),
                   peak_gflops_per_core = peak1, peak_isa = isa,
                   omp_wait_policy = os.getenv("OMP_WAIT_POLICY")}

-- The models to measure: BENCH_MODELS, or the rows of the one --arch names.
local plan = {}
for _, entry in ipairs(BENCH_MODELS) do
  if opt.arch == "all" or opt.arch == entry.arch then
    plan[#plan + 1] = {arch = entry.arch, batch = entry.batch or opt.batch}
  end
end
if #plan == 0 then
  local names = {}
  for _, entry in ipairs(BENCH_MODELS) do
    if names[#names] ~= entry.arch then names[#names + 1] = entry.arch end
  end
  io.stderr:write(("bench: --arch: expected all or one of %s, got '%s'\n"):format(
    table.concat(names, ", "), opt.arch))
  os.exit(2)
end
local seed_planned = false
for _, p in ipairs(plan) do
  local probe = make_trainer(1, p.arch)
  p.flop_forward, p.flop_train, p.convs = count_flop(probe.net)
  if p.arch == "seed_cnn" and p.batch == opt.batch then p.seed, seed_planned = true, true end
end
collectgarbage()

print(string.format("cnnlab bench — %s, float32, GEMM %s", opt.arch == "all"
  and "every model plug-in" or ("model " .. opt.arch), results.gemm))
print(string.format("machine: %s; %d cores; load average %s at start; OMP_WAIT_POLICY=%s",
  cpu and cpu:gsub("|", ", ") or "?", ncpu, load, os.getenv("OMP_WAIT_POLICY") or "(unset)"))
if peak1 then
  print(string.format("peak FMA rate: %.1f GFLOP/s per core (%s, measured by bench/peak.c)",
    peak1, isa))
end
local said = {}
for _, p in ipairs(plan) do
  if not said[p.arch] then
    said[p.arch] = true
    print(string.format("work per image, %-15s forward %8.2f MFLOP, training step %8.2f MFLOP",
      p.arch .. ":", p.flop_forward / 1e6, p.flop_train / 1e6))
  end
end

if opt.compare then
  local err
  torch, err = start_torch()
  if not torch then
    io.stderr:write("bench: --compare: ", err, "\n")
    os.exit(1)
  end
  results.torch_version = torch.version
  print("PyTorch " .. torch.version .. " takes turns with cnnlab, block by block")
end

-- How many steps a block takes: as many as fit in --block-seconds at the step time `seconds`
-- (at most `most`, at least one), so that a heavy model's figure does not take minutes.
-- A block of a few milliseconds (20 passes of the MLP) measures the host's hiccups more than
-- the model: two runs of the same bench gave 166,000 and 198,000 images/s. So a block lasts
-- at least --min-block-seconds, whatever the step counts say.
local function block_steps(most, seconds)
  seconds = math.max(seconds, 1e-9)
  local steps = math.max(1, math.min(most, math.floor(opt.block_seconds / seconds)))
  return math.max(steps, math.ceil(opt.min_block_seconds / seconds))
end

-- Untimed steps: --warmup of them, or fewer when they take more than 3 s; returns the time of
-- the last one.
local function warm_up(step)
  local t_start, last = lab.now(), 0
  for _ = 1, math.max(1, opt.warmup) do
    local t0 = lab.now()
    step()
    last = lab.now() - t0
    if lab.now() - t_start > 3 then break end
  end
  return last
end

local seed_tr
for _, p in ipairs(plan) do
  io.stderr:write(("bench: %s at batch %d\n"):format(p.arch, p.batch))
  local tr = make_trainer(p.batch, p.arch)
  local entry = {arch = p.arch, batch = p.batch,
    flop_per_image = {forward = p.flop_forward, train = p.flop_train}, runs = {}}
  for _, threads in ipairs(thread_counts) do
    lab.set_threads(threads)
    local step_time = {train = warm_up(tr.train), infer = warm_up(tr.infer)}
    local run = {threads = threads}
    for _, mode in ipairs({"train", "infer"}) do
      local steps = block_steps(mode == "train" and opt.steps or opt.infer_steps, step_time[mode])
      local ours, ours_cpu, theirs = {}, {}, {}
      for r = 1, opt.rounds do
        ours[r], ours_cpu[r] = timed_block(tr[mode], steps)
        if torch then theirs[r] = torch.send(mode, p.arch, p.batch, threads, steps) end
      end
      local flop = mode == "train" and p.flop_train or p.flop_forward
      local m = {
        steps_per_block = steps,
        seconds_per_step = median(ours),
        images_per_s = p.batch / median(ours),
        images_per_cpu_s = p.batch / median(ours_cpu),
      }
      m.gflops = m.images_per_s * flop / 1e9
      m.gflops_per_cpu_s = m.images_per_cpu_s * flop / 1e9
      if peak1 then
        m.peak_share = m.gflops / (peak1 * threads)
        m.peak_share_cpu = m.gflops_per_cpu_s / peak1
      end
      if torch then
        m.torch_images_per_s = p.batch / median(theirs)
        m.ratio = m.images_per_s / m.torch_images_per_s
      end
      run[mode] = m
    end
    if p.seed then
      -- the seed network's convolutions, timed inside training steps
      local per = layer_times(tr, opt.layer_steps, p.convs)
      run.layers = {}
      for _, l in ipairs(p.convs) do
        local f, b = median(per[l.name].fwd), median(per[l.name].bwd)
        run.layers[l.name] = {
          forward_ms = f * 1e3, backward_ms = b * 1e3,
          forward_gflops = p.batch * l.fwd / f / 1e9, backward_gflops = p.batch * l.bwd / b / 1e9,
        }
      end
      results.runs[#results.runs + 1] = run
    end
    entry.runs[#entry.runs + 1] = run
  end
  results.models[#results.models + 1] = entry
  if p.seed then
    seed_tr = tr
    results.batch, results.flop_per_image, results.seed_convs = p.batch, entry.flop_per_image, p.convs
  end
  tr = nil
  collectgarbage()
end
if torch then torch.close() end

lab.set_threads(1)
if seed_tr then
  local lua_s, step_s = lua_share(seed_tr, opt.layer_steps)
  results.lua_ms_per_step, results.step_ms_with_wrappers = lua_s * 1e3, step_s * 1e3
  seed_tr = nil
  collectgarbage()
  results.fixed_step_ms = fixed_step_cost() * 1e3
end
results.startup_ms = startup_ms()
-- Task 0's data path (the target: "well under a second" each), when make data has run
if util.exists("data/mnist/train-images-idx3-ubyte.gz") or util.exists("data/mnist/train-images-idx3-ubyte") then
  local reads, builds = {}, {}
  for i = 1, opt.quick and 1 or 5 do
    local t0 = lab.now()
    local src = lab.data.mnist("data/mnist", {fetch = false})
    local t1 = lab.now()
    local sets = lab.data.colored_mnist{seed = i, rho = 1.0, source = src}
    reads[i], builds[i] = t1 - t0, lab.now() - t1
    src, sets = nil, nil
    collectgarbage()
  end
  results.mnist_read_s, results.cmnist_build_s = median(reads), median(builds)
end
results.peak_rss_mb = (status_kb("VmHWM") or 0) / 1024
if seed_planned then
  local cmd = string.format("%s %s --rss-probe --batch %d --threads %d%s", util.shell_quote(exe),
    util.shell_quote(arg[0]), opt.batch, thread_counts[#thread_counts], opt.quick and " --quick" or "")
  local out = command_output(cmd)
  local kb = tonumber(out:match("peak_rss_kb (%d+)"))
  results.task1_probe_peak_rss_mb = kb and kb / 1024
  local data = tonumber(out:match("data_kb (%d+)"))
  results.task1_probe_data_mb = data and data / 1024
end

-- ------------------------------------------------------------------ report

-- A share over 100% cannot be a result: the peak probe under-read (too few FMA chains for the
-- processor, or a moment of interference), so it is printed as the error it is.
local function pct(v)
  if not v then return "?" end
  if v > 1 then return "probe err" end
  return string.format("%.1f%%", 100 * v)
end
print()
print("images/s: wall clock, median of " .. opt.rounds .. " blocks; % of peak: GFLOP/s over " ..
  "threads × the per-core peak; per CPU-s: the same per second of CPU time the process got")
print(string.format("%-15s %5s %7s %-5s %9s %8s %9s %10s %9s%s", "model", "batch", "threads",
  "mode", "images/s", "GFLOP/s", "% of peak", "img/CPU-s", "% (CPU)",
  torch and "  PyTorch img/s   ratio" or ""))
for _, entry in ipairs(results.models) do
  for _, run in ipairs(entry.runs) do
    for _, mode in ipairs({"train", "infer"}) do
      local m = run[mode]
      local line = string.format("%-15s %5d %7d %-5s %9.1f %8.1f %9s %10.1f %9s", entry.arch,
        entry.batch, run.threads, mode, m.images_per_s, m.gflops, pct(m.peak_share),
        m.images_per_cpu_s, pct(m.peak_share_cpu))
      if m.ratio then
        line = line .. string.format(" %15.1f %6.2f×", m.torch_images_per_s, m.ratio)
      end
      print(line)
    end
  end
end
if seed_planned then
  print()
  print("the seed network's convolutions, timed inside training steps (median of "
    .. opt.layer_steps .. " steps):")
  print(string.format("%-8s %-6s %-22s %9s %11s %9s %11s", "threads", "layer", "shape", "fwd ms",
    "fwd GFLOP/s", "bwd ms", "bwd GFLOP/s"))
  for _, run in ipairs(results.runs) do
    for _, l in ipairs(results.seed_convs) do
      local r = run.layers[l.name]
      print(string.format("%-8d %-6s %-22s %9.2f %11.1f %9.2f %11.1f", run.threads, l.name,
        string.format("%d→%d, %d×%d, %d×%d", l.c, l.o, l.h, l.h, l.k, l.k), r.forward_ms,
        r.forward_gflops, r.backward_ms, r.backward_gflops))
    end
  end
end
print()
if results.lua_ms_per_step then
  print(string.format("time in Lua per training step of the seed network (1 thread; everything "
    .. "outside C calls): %.3f ms of %.1f ms = %.2f%%", results.lua_ms_per_step,
    results.step_ms_with_wrappers, 100 * results.lua_ms_per_step / results.step_ms_with_wrappers))
  print(string.format("a whole step of the seed network at batch 1 (1 thread; all that does not "
    .. "grow with the batch): %.3f ms", results.fixed_step_ms))
end
print(string.format("start-up of `cnnlab -e ''`: %.1f ms (median)", results.startup_ms))
if results.mnist_read_s then
  print(string.format("MNIST: reading the four IDX files (70,000 digits) %.3f s; building Colored "
    .. "MNIST (70,000 images) %.3f s (1 thread, medians)", results.mnist_read_s, results.cmnist_build_s))
end
print(string.format("peak resident memory of this bench: %.0f MB", results.peak_rss_mb))
if results.task1_probe_peak_rss_mb then
  print(string.format("peak resident memory training beside a Task-1-sized data set (%.0f MB of "
    .. "bytes): %.0f MB", results.task1_probe_data_mb, results.task1_probe_peak_rss_mb))
end
if opt.out ~= "" then
  util.write_json(opt.out, results)
  print("results: " .. opt.out)
end
