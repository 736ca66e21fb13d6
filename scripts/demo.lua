-- The whole study in one command: Tasks 0–6 in order, then the report.
--
--   ./cnnlab scripts/demo.lua [--quick] [--force] [--only task3,task5] [--runs runs]
--   (--only report: no step runs; the report and its pictures are rewritten from the folders)
--   (make demo, make demo QUICK=1)
--
-- Each step runs its task script as a separate process with progress on the terminal and a
-- copy of its output in <runs>/<task>/log.txt. A step whose outputs are already there and
-- whose inputs have not changed — the script, its arguments, the cnnlab library and binary,
-- and the steps it depends on — is reused; its key lives in <runs>/manifest.json. --force
-- redoes everything. --quick runs every task on a subset (a first look in about a minute)
-- into <runs>/quick/. The report is <root>/report.html; with Chromium installed, report.png
-- is a screenshot of the whole page and report_top.png its top with the findings (the
-- README's picture, docs/img/report.png, is the quick run's).
local lab = require "cnnlab"
local util = lab.util

local spec = {
  name = "demo", script = "scripts/demo.lua",
  description = "Run the whole study (Tasks 0-6) and write the report.",
  options = {
    {"quick", false, "a small subset of every set, a first look in about a minute"},
    {"force", false, "redo every step even when its outputs are up to date"},
    {"only", "", "comma-separated steps to run (others are reused or skipped)"},
    {"runs", "runs", "folder for every output"},
    {"threads", 0, "threads for the C kernels (0: all cores)"},
    {"top_height", 1150, "height of report_top.png, the top of the page with the findings (docs/img/report.png)"},
  },
}
local opts = util.parse_args(arg, spec)
local root = opts.quick and (opts.runs .. "/quick") or opts.runs
local exe = arg[-1] or "./cnnlab"

-- ------------------------------------------------------------------ the steps

local quick = opts.quick and {"--quick"} or {}
local function with(list, extra)
  local out = {}
  for _, v in ipairs(list) do out[#out + 1] = v end
  for _, v in ipairs(extra or {}) do out[#out + 1] = v end
  if opts.threads > 0 then
    out[#out + 1] = "--threads"
    out[#out + 1] = tostring(opts.threads)
  end
  return out
end

local function dir(task) return root .. "/" .. task end
local model1 = dir("task1") .. "/model.safetensors"

local steps = {
  {name = "task0", title = "Task 0: data", script = "scripts/task0_data.lua",
   args = with(quick, {"--out", dir("task0")}), outputs = {"metrics.json"}},
  {name = "task1", title = "Task 1: the shortcut", script = "scripts/task1_train.lua",
   args = with(quick, opts.quick and {"--out", dir("task1"), "--epochs", "1"}
     or {"--out", dir("task1")}), outputs = {"metrics.json", "model.safetensors"}},
  {name = "task2", title = "Task 2: feature maps", script = "scripts/task2_features.lua",
   args = with(quick, {"--model", model1, "--out", dir("task2")}), after = {"task1"},
   outputs = {"metrics.json"}},
  {name = "task3", title = "Task 3: Grad-CAM", script = "scripts/task3_gradcam.lua",
   args = with(quick, {"--model", model1, "--out", dir("task3")}), after = {"task1"},
   outputs = {"metrics.json"}},
  {name = "task4", title = "Task 4: debiasing", script = "scripts/task4_debias.lua",
   -- quick: two epochs per method (the full run uses each method's own schedule)
   args = with(quick, opts.quick and {"--out", dir("task4"), "--epochs", "2", "--evidence_epochs", "1",
     "--gradcam_n", "500"} or {"--out", dir("task4")}), outputs = {"metrics.json"}},
  {name = "task5", title = "Task 5: adversarial attack", script = "scripts/task5_attack.lua",
   args = with(quick, {"--model", model1, "--out", dir("task5"), "--compare-dir", dir("task4")}),
   after = {"task1", "task4"}, outputs = {"metrics.json"}},
  {name = "task6", title = "Task 6: neuron ablation", script = "scripts/task6_ablation.lua",
   args = with(quick, opts.quick and {"--model", model1, "--out", dir("task6"), "--steps", "8",
     "--random_repeats", "2", "--n_easy", "1000", "--n_hard", "1000"}
     or {"--model", model1, "--out", dir("task6")}), after = {"task1"},
   outputs = {"metrics.json"}},
}

-- ------------------------------------------------------------------ change detection

-- 64-bit FNV-1a over strings: enough to notice that an input changed.
local function fnv(h, s)
  h = h or -3750763034362895579 -- 0xcbf29ce484222325 as a signed integer
  for i = 1, #s, 8 do
    local chunk = s:sub(i, i + 7)
    local v = #chunk == 8 and string.unpack("<i8", chunk) or 0
    if #chunk < 8 then
      for j = 1, #chunk do v = v * 256 + chunk:byte(j) end
    end
    h = (h ~ v) * 1099511628211
  end
  return h
end

local function file_hash(h, path)
  local f = io.open(path, "rb")
  if not f then return fnv(h, "missing:" .. path) end
  local s = f:read("a")
  f:close()
  return fnv(fnv(h, path), s)
end

-- Everything a result can depend on besides the step's own script and arguments: the Lua
-- library (the report module and its parts excepted: they only present) and the interpreter with its core.
local library_hash = (function()
  local h = fnv(nil, "cnnlab")
  local function walk(d)
    for _, name in ipairs(lab.listdir(d) or {}) do
      local path = d .. "/" .. name
      if name:match("%.lua$") then
        if name ~= "report.lua" then h = file_hash(h, path) end
      elseif not name:find("%.") and path ~= "lua/cnnlab/report" then
        walk(path)
      end
    end
  end
  walk("lua/cnnlab")
  return file_hash(h, "build/cnnlab")
end)()

local manifest_path = root .. "/manifest.json"
local manifest = util.exists(manifest_path) and util.json_decode(util.read_file(manifest_path))
  or {steps = {}}

local keys = {}
local function step_key(step)
  local h = fnv(library_hash, step.name)
  h = file_hash(h, step.script)
  -- --threads changes no result (the kernels are bit-identical across thread counts), so it
  -- is not part of the key: a step run with --threads 1 stays up to date without it.
  local args, i = {}, 1
  while i <= #step.args do
    if step.args[i] == "--threads" then i = i + 2
    else args[#args + 1], i = step.args[i], i + 1 end
  end
  h = fnv(h, table.concat(args, "\0"))
  for _, dep in ipairs(step.after or {}) do h = fnv(h, keys[dep] or "") end
  return ("%016x"):format(h)
end

local function outputs_present(step)
  for _, f in ipairs(step.outputs) do
    if not util.exists(dir(step.name) .. "/" .. f) then return false end
  end
  return true
end

-- ------------------------------------------------------------------ running

local only = {}
for _, name in ipairs(lab.study.split(opts.only)) do only[name] = true end

local function run(step)
  util.mkdir_p(dir(step.name))
  local quoted = {util.shell_quote(exe), util.shell_quote(step.script)}
  for _, a in ipairs(step.args) do quoted[#quoted + 1] = util.shell_quote(a) end
  local log = dir(step.name) .. "/log.txt"
  local status_file = os.tmpname()
  -- keep the step's own exit status through the pipe into tee
  local cmd = ("{ %s; echo $? > %s; } 2>&1 | tee %s"):format(table.concat(quoted, " "),
    util.shell_quote(status_file), util.shell_quote(log))
  os.execute(cmd)
  local f = io.open(status_file)
  local status = f and tonumber(f:read("a")) or 1
  if f then f:close() end
  os.remove(status_file)
  return status
end

util.mkdir_p(root)
print(("cnnlab demo: %s into %s/ (%d threads, %s GEMM)"):format(
  opts.quick and "quick run on subsets" or "full study", root, lab.get_threads(), lab.gemm_backend()))
local t_all = lab.now()
local timings, failed = {}, nil
for _, step in ipairs(steps) do
  local key = step_key(step)
  keys[step.name] = key
  local previous = manifest.steps[step.name]
  local wanted = next(only) == nil or only[step.name]
  local fresh = previous and previous.key == key and outputs_present(step)
  if failed then
    print(("\n== %s: skipped (an earlier step failed)"):format(step.title))
  elseif fresh and (not opts.force or not wanted) then
    print(("\n== %s: up to date (ran %s, %.0f s); reusing %s/"):format(step.title,
      previous.finished or "?", previous.seconds or 0, dir(step.name)))
    timings[#timings + 1] = {step.name, 0, "reused"}
  elseif not wanted then
    print(("\n== %s: not selected and not up to date; skipped"):format(step.title))
  else
    print(("\n== %s: ./cnnlab %s %s"):format(step.title, step.script, table.concat(step.args, " ")))
    local t0 = lab.now()
    local status = run(step)
    local seconds = lab.now() - t0
    if status ~= 0 then
      failed = step.name
      print(("== %s failed (exit status %d) after %.0f s; its log: %s/log.txt"):format(step.title,
        status, seconds, dir(step.name)))
      manifest.steps[step.name] = nil
    else
      manifest.steps[step.name] = {key = key, seconds = seconds, finished = os.date("%Y-%m-%d %H:%M"),
        command = ("./cnnlab %s %s"):format(step.script, table.concat(step.args, " "))}
      timings[#timings + 1] = {step.name, seconds, "ran"}
    end
    util.write_json(manifest_path, manifest)
  end
end

print("\n== Report")
local ok, report_path = pcall(function()
  return lab.report.write{runs = root, manifest = manifest, quick = opts.quick}
end)
if not ok then
  print("report: " .. tostring(report_path))
  failed = failed or "report"
else
  -- Pictures of the page, when Debian's chromium is there (the report itself needs nothing):
  -- the whole page, and its top with the findings (the README's picture, docs/img/report.png).
  local png, top = root .. "/report.png", root .. "/report_top.png"
  local height, why = lab.report.screenshot(report_path, png)
  if height then
    print(("screenshot: %s (1280 × %d)"):format(png, height))
    if lab.report.screenshot(report_path, top, {width = 1280, height = opts.top_height}) then
      print(("top of the page: %s (1280 × %d)"):format(top, opts.top_height))
    end
  else
    print("no screenshot: " .. why)
  end
end
print("\nTime per step:")
for _, t in ipairs(timings) do
  print(("  %-8s %8.1f s  %s"):format(t[1], t[2], t[3]))
end
print(("  %-8s %8.1f s"):format("total", lab.now() - t_all))
if ok then print("\nReport: " .. report_path) end
if failed then
  io.stderr:write("demo: stopped at " .. failed .. "\n")
  os.exit(1)
end
