--- cnnlab.benchmarks — the registry of benchmark tables (benchmark plug-ins), and what the
-- runner (scripts/benchmarks.lua) and the report share: cell keys, the metrics.json merge,
-- the printed table and the chart.
--
-- A benchmark table is one Lua file returning a table (lua/cnnlab/benchmarks/NAME.lua, found
-- by name, or any other file by its path; see docs/benchmarks.md):
--   name, description, paper     (name defaults to the file's base name)
--   dataset, dataset_options     a data-set plug-in and its fixed options
--   arch, arch_options           a model plug-in and its options
--   optimizer, lr, batch, epochs the schedule (a method whose epoch count depends on its
--                                options, as jtt's T + final_epochs, runs its own count)
--   methods                      the methods of the full table, in order (names in
--                                lua/cnnlab/debias/); labels = {name = "Vanilla"} names rows
--   method_options               {name = {key = value}}: each method's settings in this table
--   seeds                        the seeds of the full table
--   param = {name =, flag =, option =, values =, scale =, unit =}
--                                the table's own varying parameter: its name in keys
--                                ("share"), the command-line list option (--shares), the
--                                data-set option it sets (conflicting), its values as printed
--                                (0.5, 1, 2, 5), the factor from printed value to option value
--                                (0.01: per cent to a share; default 1) and its unit
--   measure                      one line: what the numbers are
--   quick = {epochs, methods, values, seeds}   the --quick run (a subset of the data)
--   published = {{method =, value =, unbiased =, conflicting =, source =, note =}, ...}
--                                the literature's figures (percent; nil where no source read
--                                gives them, with a note saying so); source names paper,
--                                table and column
--
--   local t = benchmarks.load("lff_colored_mnist")      -- or a path
--   benchmarks.cell_key(t, "erm", 0.5) → "erm_share0p5"
local plugins = require "cnnlab.plugins"
local util = require "cnnlab.util"

local benchmarks = {}

--- The measures of a cell, as they appear in metrics.json keys (<cell>_<measure>_mean, ...).
benchmarks.MEASURES = {"unbiased", "conflicting", "aligned", "conflicting_samples"}

local function is_list(t, kind)
  if type(t) ~= "table" or #t == 0 then return false end
  for _, v in ipairs(t) do if type(v) ~= kind then return false end end
  return true
end

local registry = plugins.folder{kind = "benchmark", dir = plugins.caller_dir(1),
  check = function(t)
    for _, k in ipairs({"dataset", "arch", "optimizer", "measure"}) do
      if type(t[k]) ~= "string" then return ("has no %s (a string), got %s"):format(k, type(t[k])) end
    end
    for _, k in ipairs({"epochs", "batch"}) do
      if math.type(t[k]) ~= "integer" or t[k] < 1 then
        return ("has no %s (a positive integer), got %s"):format(k, tostring(t[k]))
      end
    end
    if type(t.lr) ~= "number" then return ("has no lr (a number), got %s"):format(type(t.lr)) end
    if not is_list(t.methods, "string") then return "has no methods (a list of method names)" end
    if not is_list(t.seeds, "number") then return "has no seeds (a list of integers)" end
    local p = t.param
    if type(p) ~= "table" or type(p.name) ~= "string" or type(p.flag) ~= "string"
      or type(p.option) ~= "string" or not is_list(p.values, "number") then
      return "has no param {name, flag, option, values} (the table's varying parameter)"
    end
    if type(t.published) ~= "table" then return "has no published list (may be empty: {})" end
    for i, f in ipairs(t.published) do
      if type(f.method) ~= "string" or type(f.value) ~= "number" or type(f.source) ~= "string" then
        return ("published entry %d needs method, value and source, got %s, %s, %s"):format(i,
          type(f.method), type(f.value), type(f.source))
      end
    end
  end}

benchmarks.available = registry.available

--- Loads a benchmark table by name or path (checked; see the header).
function benchmarks.load(name_or_path)
  local ok, t = pcall(registry.load, name_or_path)
  if not ok then error((tostring(t):gsub("^[^\n]-%.lua:%d+: ", "")), 2) end
  t.labels, t.method_options = t.labels or {}, t.method_options or {}
  t.dataset_options, t.arch_options = t.dataset_options or {}, t.arch_options or {}
  t.param.scale, t.param.unit = t.param.scale or 1, t.param.unit or ""
  return t
end

--- A parameter value as a key part: 0.5 → "0p5", 0.995 → "0p995", 1 → "1" (no "_", so that
-- no cell's key is the start of another's).
function benchmarks.value_text(v)
  return (("%g"):format(v):gsub("%.", "p"):gsub("%-", "m"))
end

--- The key of a cell (method, parameter value) in metrics.json: "erm_share0p5".
function benchmarks.cell_key(t, method, value)
  return ("%s_%s%s"):format(method, t.param.name, benchmarks.value_text(value))
end

--- The row label of a method: the table's label ("Vanilla") beside the name, or the name.
function benchmarks.label(t, method)
  local l = t.labels[method]
  return l and ("%s (%s)"):format(l, method) or method
end

--- The published figures of a method at a value: the table's entry or nil.
function benchmarks.published(t, method, value)
  for _, f in ipairs(t.published) do
    if f.method == method and math.abs(f.value - value) < 1e-9 then return f end
  end
end

--- Adds to flat metrics m the aggregate of a cell: runs is a list of {seed, unbiased,
-- conflicting, aligned, conflicting_samples, seconds} (one per seed); keys
-- <cell>_<measure>_mean/_sd/_n/_seed<s>, <cell>_seconds_..., <cell>_seeds. Keys of the cell
-- that m held are removed first, so a cell's keys always describe the runs given.
function benchmarks.put_cell(m, t, method, value, runs)
  local metrics = require "cnnlab.metrics"
  local key = benchmarks.cell_key(t, method, value)
  for k in pairs(m) do
    if k:sub(1, #key + 1) == key .. "_" and not k:find("_published_", #key, true) then m[k] = nil end
  end
  table.sort(runs, function(a, b) return a.seed < b.seed end)
  local seeds = {}
  for _, r in ipairs(runs) do
    r.seed = math.tointeger(r.seed) or r.seed -- through JSON a seed comes back as 1.0
    seeds[#seeds + 1] = tostring(r.seed)
  end
  m[key .. "_seeds"] = table.concat(seeds, ",")
  local fields = {"seconds"}
  for _, f in ipairs(benchmarks.MEASURES) do fields[#fields + 1] = f end
  for _, f in ipairs(fields) do
    local xs = {}
    for _, r in ipairs(runs) do
      if type(r[f]) == "number" then
        xs[#xs + 1] = r[f]
        m[("%s_%s_seed%d"):format(key, f, r.seed)] = r[f]
      end
    end
    if #xs > 0 then
      local mean, sd = metrics.mean_sd(xs)
      m[key .. "_" .. f .. "_mean"], m[key .. "_" .. f .. "_sd"], m[key .. "_" .. f .. "_n"] = mean, sd, #xs
    end
  end
  local pub = benchmarks.published(t, method, value)
  if pub then
    m[key .. "_published_unbiased"] = pub.unbiased
    m[key .. "_published_conflicting"] = pub.conflicting
    m[key .. "_published_source"] = pub.source
  end
  return m
end

--- The protocol of a table as flat metrics keys (protocol_*), as the runner ran it (o: the
-- run's epochs and quick flag).
function benchmarks.protocol(t, o)
  local models = require "cnnlab.models"
  return {protocol_dataset = t.dataset, protocol_dataset_options = models.options_text(t.dataset_options),
    protocol_arch = t.arch, protocol_arch_options = models.options_text(t.arch_options),
    protocol_optimizer = t.optimizer, protocol_lr = t.lr, protocol_batch = t.batch,
    protocol_epochs = o.epochs, protocol_param = t.param.name, protocol_param_option = t.param.option,
    protocol_param_scale = t.param.scale, protocol_measure = t.measure, protocol_quick = o.quick,
    table = t.name, paper = t.paper}
end

--- Reads dir/metrics.json (nil when absent or not JSON).
function benchmarks.read(dir)
  local path = dir .. "/metrics.json"
  if not util.exists(path) then return nil end
  local ok, m = pcall(function() return util.json_decode(util.read_file(path)) end)
  return ok and type(m) == "table" and m or nil
end

--- The (method, value) cells metrics m holds for table t, in the table's order (methods of
-- the table first, then any other method m has), values ascending: {methods =, values =}.
function benchmarks.cells_in(t, m)
  local methods, values, seen_m, seen_v = {}, {}, {}, {}
  local function add_method(x) if not seen_m[x] then seen_m[x] = true; methods[#methods + 1] = x end end
  local found = {}
  for k in pairs(m) do
    local meth, vtext = k:match("^(.-)_" .. t.param.name .. "([%dpm]+)_unbiased_mean$")
    if meth then
      found[meth] = true
      local v = tonumber((vtext:gsub("m", "-"):gsub("p", ".")))
      if v and not seen_v[v] then seen_v[v] = true; values[#values + 1] = v end
    end
  end
  for _, x in ipairs(t.methods) do if found[x] then add_method(x) end end
  local rest = {}
  for x in pairs(found) do if not seen_m[x] then rest[#rest + 1] = x end end
  table.sort(rest)
  for _, x in ipairs(rest) do add_method(x) end
  table.sort(values)
  return {methods = methods, values = values}
end

local function pm(m, key)
  local mean = m[key .. "_mean"]
  if not mean then return "—" end
  if (m[key .. "_n"] or 1) > 1 then return ("%.2f ± %.2f"):format(mean, m[key .. "_sd"]) end
  return ("%.2f"):format(mean)
end

--- The comparison as rows: {method, value, ours_unbiased, published_unbiased, ours_conflicting,
-- published_conflicting, seeds, seconds} (texts), one per cell metrics m holds.
function benchmarks.rows(t, m)
  local rows = {}
  local cells = benchmarks.cells_in(t, m)
  for _, meth in ipairs(cells.methods) do
    for _, v in ipairs(cells.values) do
      local key = benchmarks.cell_key(t, meth, v)
      if m[key .. "_unbiased_mean"] then
        local pub = benchmarks.published(t, meth, v)
        local function p(x) return pub and pub[x] and ("%.2f"):format(pub[x]) or "—" end
        rows[#rows + 1] = {benchmarks.label(t, meth), ("%g%s"):format(v, t.param.unit),
          pm(m, key .. "_unbiased"), p("unbiased"), pm(m, key .. "_conflicting"), p("conflicting"),
          m[key .. "_seeds"] or "", m[key .. "_seconds_mean"] and ("%.0f"):format(m[key .. "_seconds_mean"]) or "—"}
      end
    end
  end
  return rows
end

--- The column titles of the comparison (the second is replaced by the table's parameter).
benchmarks.HEADER = {"method", "value", "unbiased % (ours)", "published", "conflicting % (ours)",
  "published", "seeds", "s/run"}

--- The comparison as text lines for the terminal (ours mean ± sd over seeds beside the
-- published figure; "—" where there is none), followed by the sources of the published figures.
function benchmarks.lines(t, m)
  local runs = require "cnnlab.runs"
  local header = table.move(benchmarks.HEADER, 1, #benchmarks.HEADER, 1, {})
  header[2] = t.param.name
  local rows = benchmarks.rows(t, m)
  local widths = {}
  for i, h in ipairs(header) do widths[i] = utf8.len(h) end
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do widths[i] = math.max(widths[i], utf8.len(c) or #c) end
  end
  local lines = {("%s — %s%s"):format(t.name, t.measure, m.protocol_quick and " (QUICK run: a subset, a few epochs)" or "")}
  lines[#lines + 1] = runs.row(header, widths)
  for _, r in ipairs(rows) do lines[#lines + 1] = runs.row(r, widths) end
  lines[#lines + 1] = "published figures:"
  local notes = {}
  for _, f in ipairs(t.published) do
    notes[#notes + 1] = ("  %s at %g%s: %s%s"):format(f.method, f.value, t.param.unit, f.source,
      f.note and (" — " .. f.note) or "")
  end
  for _, n in ipairs(t.notes or {}) do notes[#notes + 1] = "  " .. n end
  if #notes == 0 then notes[1] = "  (none)" end
  for _, n in ipairs(notes) do lines[#lines + 1] = n end
  return lines
end

--- The chart (an SVG text, drawn with cnnlab.svg): unbiased and conflicting accuracy against
-- the table's parameter, one line per method (ours, mean over seeds), the published figures
-- as dashed lines beside them.
function benchmarks.chart(t, m)
  local svg = require "cnnlab.svg"
  local cells = benchmarks.cells_in(t, m)
  local docs = {}
  for _, measure in ipairs({"unbiased", "conflicting"}) do
    local series = {}
    for _, meth in ipairs(cells.methods) do
      local xs, ys, px, py = {}, {}, {}, {}
      for _, v in ipairs(cells.values) do
        local mean = m[benchmarks.cell_key(t, meth, v) .. "_" .. measure .. "_mean"]
        if mean then xs[#xs + 1], ys[#ys + 1] = v, mean end
        local pub = benchmarks.published(t, meth, v)
        if pub and pub[measure] then px[#px + 1], py[#py + 1] = v, pub[measure] end
      end
      if #xs > 0 then series[#series + 1] = {name = meth, x = xs, y = ys} end
      if #px > 0 then series[#series + 1] = {name = meth .. " (published)", x = px, y = py, dashed = true} end
    end
    if #series > 0 then
      docs[#docs + 1] = svg.lines{series = series, markers = true, ymin = 0, ymax = 100,
        title = ("%s: %s accuracy"):format(t.name, measure),
        xlabel = ("%s (%s)"):format(t.param.name, t.param.unit ~= "" and t.param.unit or t.param.option),
        ylabel = measure .. " accuracy, %"}
    end
  end
  if #docs == 0 then return nil end
  return #docs == 1 and docs[1] or svg.side_by_side(docs)
end

return benchmarks
