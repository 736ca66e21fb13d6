--- cnnlab.runs — repeated method runs: the methods a command line selects, seeds, results
-- cached in result.json, mean ± sd over seeds, and the text tables that show them.
--
--   local entries = runs.method_entries("erm,lff", {"lff.q=0.7"}, ALL)
--   local r = runs.cached(dir .. "/result.json", settings, function() ... return r end,
--     {reuse = true})                          -- reused when settings match, else computed
--   local agg = runs.aggregate({r1, r2, r3}, {"hard_acc", "val_acc"})
--   runs.pm(agg.hard_acc) → "41.20 ± 3.10";  runs.flatten("erm_", agg, seeds, metrics)
local util = require "cnnlab.util"

local runs = {}

--- Seeds first, first + 1, ..., count of them.
function runs.seeds(first, count)
  if math.type(count) ~= "integer" or count < 1 then
    error(("runs.seeds: count must be an integer of at least 1, got %s"):format(tostring(count)), 2)
  end
  local list = {}
  for i = 0, count - 1 do list[#list + 1] = first + i end
  return list
end

--- The methods a command line selects: list_text is "all" (the names in all) or a comma list
-- of names or .lua files; method_opts holds "NAME.key=value" (for that method) or
-- "key=value" (for every selected method that has the option). Every method is loaded with
-- its options now, so that a typo stops the command before any training. Returns entries
-- {label = the method's name (row and folder name), name = as given, options = {...}}.
-- what names the option in errors (default "methods").
function runs.method_entries(list_text, method_opts, all, what)
  local debias = require "cnnlab.debias"
  local names = list_text == "all" and all
    or require("cnnlab.study").list(list_text, what or "methods")
  local entries, seen = {}, {}
  for _, name in ipairs(names) do
    local probe = require("cnnlab.study").load_option("--" .. (what or "methods"), name,
      debias.load, name) -- fails early, listing what exists
    local label = probe.name
    if seen[label] then error(("--methods: %s is listed twice"):format(label), 0) end
    seen[label] = true
    local o = {}
    for _, item in ipairs(method_opts) do
      local m, k, v = item:match("^([%w_%-%.]+)%.([%w_]+)=(.*)$")
      if m and (m == label or m == name) then o[k] = v
      elseif not m then
        local k2, v2 = item:match("^([%w_]+)=(.*)$")
        if not k2 then
          error(("--method-opt expects NAME.key=value or key=value, got '%s'"):format(item), 0)
        end
        if probe.options[k2] ~= nil then o[k2] = v2 end
      end
    end
    debias.load(name, o) -- checks the options now, not after an hour of training
    entries[#entries + 1] = {label = label, name = name, options = o}
  end
  -- A NAME.key=value naming no selected method is a mistake worth stopping for.
  for _, item in ipairs(method_opts) do
    local m = item:match("^([%w_%-%.]+)%.[%w_]+=")
    if m and not seen[m] then
      local labels, found = {}, false
      for _, e in ipairs(entries) do
        labels[#labels + 1] = e.label
        found = found or e.name == m
      end
      if not found then
        error(("--method-opt %s: no selected method is called %s (selected: %s)"):format(item, m,
          table.concat(labels, ", ")), 0)
      end
    end
  end
  return entries
end

--- Do two settings tables agree once both have made the trip through JSON? (result.json
-- gives every number back as a float: 5 comes back as 5.0.)
function runs.same_settings(a, b)
  local function canonical(v) return util.json_encode(util.json_decode(util.json_encode(v))) end
  return canonical(a) == canonical(b)
end

--- The result stored at path when opts.reuse is set and its settings match `settings`;
-- otherwise compute() → r, stored with r.settings = settings. Returns r and whether it was
-- reused. A result.json that cannot be read counts as absent.
function runs.cached(path, settings, compute, opts)
  if opts and opts.reuse and util.exists(path) then
    local ok, r = pcall(function() return util.json_decode(util.read_file(path)) end)
    if ok and type(r) == "table" and r.settings and runs.same_settings(r.settings, settings) then
      return r, true
    end
  end
  local r = compute()
  r.settings = settings
  util.mkdir_p(path:match("^(.*)/[^/]*$") or ".")
  util.write_json(path, r)
  return r, false
end

--- Mean, sd, n and the values of each field over a list of results (numbers only; a field
-- no result has is left out).
function runs.aggregate(results, fields)
  local metrics = require "cnnlab.metrics"
  local agg = {}
  for _, f in ipairs(fields) do
    local xs = {}
    for _, r in ipairs(results) do
      if type(r[f]) == "number" then xs[#xs + 1] = r[f] end
    end
    if #xs > 0 then
      local mean, sd = metrics.mean_sd(xs)
      agg[f] = {mean = mean, sd = sd, n = #xs, values = xs}
    end
  end
  return agg
end

--- "mean ± sd" with `digits` decimals (2), the mean alone for one value, "-" for none.
function runs.pm(a, digits)
  if not a then return "-" end
  digits = digits or 2
  if a.n > 1 then return ("%." .. digits .. "f ± %." .. digits .. "f"):format(a.mean, a.sd) end
  return ("%." .. digits .. "f"):format(a.mean)
end

--- Adds an aggregate to flat metrics: prefix..field_mean, _sd and _seed<s> per value.
function runs.flatten(prefix, agg, seeds, out)
  for f, a in pairs(agg) do
    out[prefix .. f .. "_mean"] = a.mean
    out[prefix .. f .. "_sd"] = a.sd
    for i, v in ipairs(a.values) do out[("%s%s_seed%d"):format(prefix, f, seeds[i])] = v end
  end
  return out
end

--- s padded to w characters on the right (lpad) or the left (rpad); UTF-8 aware, so "±" and
-- "≠" count once.
function runs.lpad(s, w)
  s = tostring(s)
  return s .. string.rep(" ", math.max(0, w - (utf8.len(s) or #s)))
end
function runs.rpad(s, w)
  s = tostring(s)
  return string.rep(" ", math.max(0, w - (utf8.len(s) or #s))) .. s
end

--- A log that prints each line and keeps it, to be appended to a file at the end.
function runs.log()
  local log = {lines = {}}
  function log.say(fmt, ...)
    local text = select("#", ...) > 0 and fmt:format(...) or fmt
    print(text)
    log.lines[#log.lines + 1] = text
  end
  function log.append_to(path, footer)
    local f = io.open(path, "a")
    if not f then return false end
    f:write(table.concat(log.lines, "\n"), footer or "\n")
    f:close()
    return true
  end
  return log
end

-- ------------------------------------------------------------------ one method run

--- The fields of a run's result that runs.aggregate summarises for a table.
runs.FIELDS = {"train_acc", "val_acc", "hard_acc", "hard_conflicting_acc", "hard_aligned_acc",
  "hard_conflicting_same_brightness_acc", "hard_conflicting_other_brightness_acc",
  "hard_follows_colour", "val_conflicting_acc", "epochs", "seconds"}

--- One method (an entry of runs.method_entries) trained at seed and rho into dir and evaluated
-- on the train, validation and hard sets; its result.json is reused when opts.reuse is set and
-- it was made with the same settings. opts: the script's options (epochs (0: the method's
-- own), batch, lr, optimizer, beta, data, quick, generated_n, reuse, resume, progress); data:
-- a study.data_cache, asked for the sets only when the run trains. A Ctrl-C exits with 130
-- (the checkpoint lets --resume continue). Returns the result: accuracies (set_acc,
-- set_conflicting_acc, hard_aligned_acc, the brightness split), hard_follows_colour, epochs,
-- seconds, history, per-colour and per-label hard accuracy, and the settings.
function runs.run(entry, seed, rho, dir, opts, data)
  local lab = require "cnnlab"
  local study = require "cnnlab.study"
  local evidence = require "cnnlab.evidence"
  local method = lab.debias.load(entry.name, entry.options)
  local epochs = opts.epochs > 0 and opts.epochs or nil
  local settings = {method = method.name, options = method.options,
    epochs = epochs or method.epochs or lab.defaults.fit.epochs, batch = opts.batch, lr = opts.lr,
    optimizer = opts.optimizer, seed = seed, rho = rho, beta = opts.beta, data = opts.data,
    quick = opts.quick, generated_n = opts.data == "generated" and opts.generated_n or nil}
  -- the data set and network, recorded when they are not the study's defaults (so that the
  -- default runs' result.json files stay as they were)
  local ds, arch = study.dataset(opts), study.arch(opts)
  if not ds.is_default then
    settings.dataset, settings.dataset_options = ds.spec, lab.models.options_text(ds.options)
  end
  if not arch.is_default then
    settings.arch, settings.arch_options = arch.source, lab.models.options_text(arch.options)
  end
  local rho_text = study.format_rho(rho)
  local r, reused = runs.cached(dir .. "/result.json", settings, function()
    local sets = data:get(seed, rho)
    local resume = opts.resume and util.exists(dir .. "/checkpoint.safetensors")
    util.progress("%-18s seed %d rho %s: training %d epochs into %s%s", entry.label, seed,
      rho_text, settings.epochs, dir, resume and " (resuming)" or "")
    local run = study.train_and_evaluate(opts, method, sets, {seed = seed, out = dir,
      resume = resume})
    if run.interrupted then
      io.stderr:write("interrupted; continue with the same command and --resume\n")
      os.exit(130)
    end
    local ev, fit = run.ev, run.fit
    local r = study.accuracies(ev, {train = {"acc", "conflicting_acc"},
      val = {"acc", "conflicting_acc"}, hard = {"acc", "conflicting_acc", "aligned_acc"}})
    -- the brightness split is about SPEC §2's palette: only for data sets painted with it
    if ds.module.spec_palette and sets.hard.colors then
      r.hard_conflicting_same_brightness_acc, r.hard_conflicting_other_brightness_acc,
        r.n_hard_conflicting_same_brightness, r.n_hard_conflicting_other_brightness =
        evidence.brightness_split(sets.hard, ev.hard.preds)
    end
    r.hard_follows_colour = study.follows_colour(ev.hard, sets.hard)
    r.epochs, r.seconds, r.history = fit.epochs_done, fit.seconds, fit.history
    r.hard_acc_by_color, r.hard_acc_by_label = ev.hard.by_color, ev.hard.by_label
    return r
  end, {reuse = opts.reuse})
  if reused then
    util.progress("%-18s seed %d rho %s: reusing %s/result.json (hard %.2f%%)", entry.label, seed,
      rho_text, dir, r.hard_acc)
  else
    util.progress("%-18s seed %d rho %s: train %.2f%%  val %.2f%%  hard %.2f%%  "
      .. "hard-conflicting %.2f%%  (%.0f s)", entry.label, seed, rho_text, r.train_acc,
      r.val_acc, r.hard_acc, r.hard_conflicting_acc, r.seconds)
  end
  return r
end

--- A table row: cells[1] left-aligned in widths[1] characters, the others right-aligned in
-- theirs (the last width repeats), separated by one space.
function runs.row(cells, widths)
  local out = {runs.lpad(cells[1], widths[1])}
  for i = 2, #cells do out[#out + 1] = runs.rpad(cells[i], widths[i] or widths[#widths]) end
  return table.concat(out, " ")
end

--- rho as a folder or metrics-key part: 0.995 → "rho0_995", 1 → "rho1_0".
function runs.rho_key(r)
  return "rho" .. (require("cnnlab.study").format_rho(r):gsub("%.", "_"))
end

--- A rho sweep's table: per method (labels), the hard-conflicting accuracy (mean ± sd over
-- seeds) at each rho, rho descending. results["label@rho"] holds the runs. Adds the
-- aggregates to flat metrics M as sweep_<rho key>_<label>_<field>_...; returns the text
-- lines and one chart series per method (x: 100·(1 − rho), in the order of rho ascending).
function runs.sweep_table(labels, rhos, results, seeds, M)
  local fmt_rho = require("cnnlab.study").format_rho
  local shown = table.move(rhos, 1, #rhos, 1, {})
  table.sort(shown, function(a, b) return a > b end)
  local series = {}
  local lines = {("rho sweep: hard accuracy on colour≠label digits, %% (mean ± sd over %d seed(s) %s)")
    :format(#seeds, table.concat(seeds, ","))}
  local head = runs.lpad("method", 12)
  for _, r in ipairs(shown) do head = head .. runs.rpad("rho " .. fmt_rho(r), 18) end
  lines[#lines + 1] = head
  for _, label in ipairs(labels) do
    local xs, ys, row = {}, {}, runs.lpad(label, 12)
    for _, r in ipairs(shown) do
      local a = runs.aggregate(results[label .. "@" .. r], runs.FIELDS)
      runs.flatten(("sweep_%s_%s_"):format(runs.rho_key(r), label), a, seeds, M)
      row = row .. runs.rpad(runs.pm(a.hard_conflicting_acc), 18)
      table.insert(xs, 1, 100 * (1 - r))
      table.insert(ys, 1, a.hard_conflicting_acc.mean)
    end
    lines[#lines + 1] = row
    series[#series + 1] = {name = label, x = xs, y = ys}
  end
  return lines, series
end

return runs
