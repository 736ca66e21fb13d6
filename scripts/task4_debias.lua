-- Task 4: fix the cheat — debiasing methods as Lua modules, compared on one table.
--
-- The seed CNN trained on the easy set reads colour, not shape, and collapses on the hard set.
-- Each debias method is one Lua file in lua/cnnlab/debias/ (or any .lua file named on the
-- command line), loaded by name through lab.debias.load and handed to the same trainer
-- (lab.train.fit); nothing is recompiled to swap one. This script trains the chosen methods on
-- the easy set, evaluates them on the training, validation and hard sets, and puts them side by
-- side with the seed's two published figures (grey consistency 83.64%, dropout 86.60% hard
-- accuracy).
--
-- It also measures why those figures need not hold on SPEC §2's data: a colour-only reader,
-- a brightness-only reader of the *grey* images (the grey version of a digit painted P[k] is
-- mean(P[k])·s, so its brightness still tells the colour), and two CNNs trained on grey
-- images alone (raw and brightness-normalised), scored on the hard set's grey images.
-- Every hard-conflicting accuracy is also split by whether the digit's random colour has the
-- same grey brightness as its label's colour (a brightness reader cannot tell those apart).
--
-- --sweep repeats erm and the bias-unaware methods (LfF, JTT) at ρ ∈ {1, 0.999, 0.995, 0.99}:
-- with ρ = 1 there is no bias-conflicting sample for them to find.
--
--   ./cnnlab scripts/task4_debias.lua [--methods all|a,b,c --seeds 3 --sweep --epochs 0
--       --method-opt lff.q=0.7 --rho 1 --quick --data mnist|generated --out runs/task4]
-- Writes into --out: metrics.json (flat keys), table.txt, comparison.svg, sweep.svg (with
-- --sweep), evidence.svg, gradcam.png/gradcam.svg (when lua/cnnlab/gradcam.lua is there), log.txt (every
-- invocation's command and table, appended), and per run: <method>/model.safetensors (the
-- first seed; seed s > first in <method>/seed<s>/; sweep runs in sweep/rho<ρ>/<method>/seed<s>/),
-- checkpoint.safetensors (--resume) and result.json (reused when the settings match).
local lab = require "cnnlab"
local util = lab.util
local study = lab.study
local metrics = lab.metrics
local svg = lab.svg

local ALL = {"erm", "dropout", "grey_consistency", "grey_invariant", "colour_augment", "lff",
  "jtt", "group_dro"}
local SEED_REPORTED = {grey_consistency = 83.64, dropout = 86.60}

local spec = {
  name = "task4_debias", script = "scripts/task4_debias.lua",
  description = "Train debias methods on the easy set and compare them on one table.",
  options = study.options({
    {"methods", "all", "comma list of method names or .lua files (all: " .. table.concat(ALL, ",") .. ")"},
    {"method_opt", {}, "NAME.key=value: a setting for one method (key=value: for every method that has it)"},
    {"epochs", 0, "epochs for every method (0: each method's own default)"},
    {"batch", 128, "mini-batch size"},
    {"lr", 1e-3, "learning rate"},
    {"optimizer", "adam", "adam or sgd"},
    {"seeds", 1, "repeat every run with seeds seed, seed+1, ... and report mean ± sd"},
    {"table", true, "train the methods at --rho (the main table; --no-table skips it)"},
    {"sweep", false, "also run the rho sweep (erm and the bias-unaware methods)"},
    {"sweep_rhos", "1.0,0.999,0.995,0.99", "rho values of the sweep"},
    {"sweep_methods", "erm,lff,jtt", "methods of the sweep"},
    {"sweep_seeds", 0, "seeds of the sweep (0: as --seeds)"},
    {"evidence", true, "measure the colour left in grey images (readers and grey-only CNNs)"},
    {"evidence_epochs", 2, "epochs of the grey-only CNNs"},
    {"gradcam", true, "Grad-CAM stroke share of erm and the best method (Task 3's measure)"},
    {"gradcam_n", 2000, "hard digits used for the Grad-CAM measure"},
    {"generated_n", 3000, "digits generated with --data generated"},
    {"reuse", true, "reuse finished runs whose result.json has the same settings"},
    {"resume", false, "continue unfinished runs from their checkpoints"},
    {"out", "runs/task4", "output folder"},
    {"progress", true, "show training progress"},
  }),
}
local opts = util.parse_args(arg, spec)
local t_start = lab.now()

-- ------------------------------------------------------------------ helpers

local function split(s)
  local out = {}
  for item in tostring(s):gmatch("[^,%s]+") do out[#out + 1] = item end
  return out
end

local function fmt_rho(r) return (("%.4f"):format(r):gsub("0+$", ""):gsub("%.$", ".0")) end
local function key_rho(r) return "rho" .. fmt_rho(r):gsub("%.", "_") end

local log_lines = {}
local function say(fmt, ...)
  local text = select("#", ...) > 0 and fmt:format(...) or fmt
  print(text)
  log_lines[#log_lines + 1] = text
end

-- Method entries: label (row name, folder name), name (for debias.load), options.
local function method_entries(list_text, method_opts)
  local names = list_text == "all" and ALL or split(list_text)
  if #names == 0 then error("--methods names no method", 0) end
  local entries, seen = {}, {}
  for _, name in ipairs(names) do
    local probe = lab.debias.load(name) -- fails early, listing what exists
    local label = probe.name
    if seen[label] then error(("--methods: %s is listed twice"):format(label), 0) end
    seen[label] = true
    local o = {}
    for _, item in ipairs(method_opts) do
      local m, k, v = item:match("^([%w_%-%.]+)%.([%w_]+)=(.*)$")
      if m and (m == label or m == name) then o[k] = v
      elseif not m then
        local k2, v2 = item:match("^([%w_]+)=(.*)$")
        if not k2 then error(("--method-opt expects NAME.key=value or key=value, got '%s'"):format(item), 0) end
        if probe.options[k2] ~= nil then o[k2] = v2 end
      end
    end
    lab.debias.load(name, o) -- checks the options now, not after an hour of training
    entries[#entries + 1] = {label = label, name = name, options = o}
  end
  -- A NAME.key=value naming no selected method is a mistake worth stopping for.
  for _, item in ipairs(method_opts) do
    local m = item:match("^([%w_%-%.]+)%.[%w_]+=")
    if m and not seen[m] then
      local found = false
      for _, e in ipairs(entries) do if e.name == m then found = true end end
      if not found then
        error(("--method-opt %s: no selected method is called %s (selected: %s)"):format(item, m,
          table.concat((function() local t = {} for _, e in ipairs(entries) do t[#t + 1] = e.label end return t end)(), ", ")), 0)
      end
    end
  end
  return entries
end

local seeds, sweep_seeds = {}, {}
if opts.seeds < 1 then
  io.stderr:write("task4_debias: --seeds must be at least 1\n")
  os.exit(2)
end
for i = 0, opts.seeds - 1 do seeds[#seeds + 1] = opts.seed + i end
for i = 0, (opts.sweep_seeds > 0 and opts.sweep_seeds or opts.seeds) - 1 do
  sweep_seeds[#sweep_seeds + 1] = opts.seed + i
end

-- One data set at a time in memory (the full sets take ~170 MB).
local current_sets, current_key
local function sets_for(seed, rho)
  local key = seed .. "/" .. rho
  if current_key ~= key then
    current_sets = nil
    collectgarbage()
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.seed, o.rho = seed, rho
    util.progress("building Colored MNIST (seed %d, rho %s, beta %g%s%s)", seed, fmt_rho(rho),
      opts.beta, opts.quick and ", quick subset" or "", opts.data == "generated" and ", generated digits" or "")
    current_sets = study.load_data(o)
    current_sets.signature.generated_n = opts.data == "generated" and opts.generated_n or nil
    current_key = key
  end
  return current_sets
end

local function run_dir(label, rho, seed)
  if rho == opts.rho then
    return seed == seeds[1] and ("%s/%s"):format(opts.out, label)
      or ("%s/%s/seed%d"):format(opts.out, label, seed)
  end
  return ("%s/sweep/%s/%s/seed%d"):format(opts.out, key_rho(rho), label, seed)
end

-- Mean of P[k] per palette colour: the brightness of a grey digit painted k (SPEC §2).
local BRIGHT = {}
for k = 1, 10 do
  local p = lab.cmnist_palette[k]
  BRIGHT[k - 1] = (p[1] + p[2] + p[3]) / 3
end

-- Per hard digit: 0 aligned, 1 conflicting with the same grey brightness as its label's
-- colour, 2 conflicting with another brightness.
local function brightness_kind(set)
  if set._bkind then return set._bkind end
  local ys, cs = set.labels:totable(), set.colors:totable()
  local kind = {}
  for i = 1, #ys do
    if ys[i] == cs[i] then kind[i] = 0
    elseif math.abs(BRIGHT[ys[i]] - BRIGHT[cs[i]]) < 1e-9 then kind[i] = 1
    else kind[i] = 2 end
  end
  set._bkind = kind
  return kind
end

local function split_by_brightness(set, preds)
  local kind, ys, ps = brightness_kind(set), set.labels:totable(), preds:totable()
  local right, total = {[1] = 0, [2] = 0}, {[1] = 0, [2] = 0}
  for i = 1, #ys do
    local k = kind[i]
    if k > 0 then
      total[k] = total[k] + 1
      if ps[i] == ys[i] then right[k] = right[k] + 1 end
    end
  end
  local function pct(a, b) return b > 0 and 100 * a / b or nil end
  return pct(right[1], total[1]), pct(right[2], total[2]), total[1], total[2]
end

-- Right-aligns s in a field of w characters (UTF-8 aware: "±" and "≠" count once).
local function rpad(s, w)
  s = tostring(s)
  return string.rep(" ", math.max(0, w - (utf8.len(s) or #s))) .. s
end
local function lpad(s, w)
  s = tostring(s)
  return s .. string.rep(" ", math.max(0, w - (utf8.len(s) or #s)))
end

-- Settings read back from result.json went through the JSON decoder, which gives every number
-- as a float (5 comes back as 5.0); both sides take the same trip before they are compared.
local function json_same(a, b)
  local function canonical(v) return util.json_encode(util.json_decode(util.json_encode(v))) end
  return canonical(a) == canonical(b)
end

-- ------------------------------------------------------------------ one run

local function run_one(entry, seed, rho)
  local dir = run_dir(entry.label, rho, seed)
  local method = lab.debias.load(entry.name, entry.options)
  local epochs = opts.epochs > 0 and opts.epochs or nil
  local settings = {method = method.name, options = method.options,
    epochs = epochs or method.epochs or 5, batch = opts.batch, lr = opts.lr,
    optimizer = opts.optimizer, seed = seed, rho = rho, beta = opts.beta, data = opts.data,
    quick = opts.quick, generated_n = opts.data == "generated" and opts.generated_n or nil}
  local result_path = dir .. "/result.json"
  if opts.reuse and util.exists(result_path) then
    local ok, r = pcall(function() return util.json_decode(util.read_file(result_path)) end)
    if ok and r.settings and json_same(r.settings, settings) then
      util.progress("%-18s seed %d rho %s: reusing %s (hard %.2f%%)", entry.label, seed,
        fmt_rho(rho), result_path, r.hard_acc)
      return r
    end
  end
  local sets = sets_for(seed, rho)
  local resume = opts.resume and util.exists(dir .. "/checkpoint.safetensors")
  util.progress("%-18s seed %d rho %s: training %d epochs into %s%s", entry.label, seed,
    fmt_rho(rho), settings.epochs, dir, resume and " (resuming)" or "")
  local fit = lab.train.fit{method = method, data = sets, epochs = epochs, batch = opts.batch,
    lr = opts.lr, optimizer = opts.optimizer, seed = seed, out = dir, resume = resume,
    progress = opts.progress, data_signature = sets.signature}
  if fit.interrupted then
    io.stderr:write(("task4_debias: interrupted; continue with the same command and --resume\n"))
    os.exit(130)
  end
  local model = fit.model
  local ev = {train = metrics.evaluate(model, sets.train), val = metrics.evaluate(model, sets.val),
    hard = metrics.evaluate(model, sets.hard)}
  local same, other, n_same, n_other = split_by_brightness(sets.hard, ev.hard.preds)
  local r = {settings = settings, train_acc = ev.train.acc, val_acc = ev.val.acc,
    hard_acc = ev.hard.acc, hard_conflicting_acc = ev.hard.conflicting_acc,
    hard_aligned_acc = ev.hard.aligned_acc, val_conflicting_acc = ev.val.conflicting_acc,
    train_conflicting_acc = ev.train.conflicting_acc,
    hard_conflicting_same_brightness_acc = same, hard_conflicting_other_brightness_acc = other,
    n_hard_conflicting_same_brightness = n_same, n_hard_conflicting_other_brightness = n_other,
    hard_follows_colour = 100 * ev.hard.preds:eq(sets.hard.colors):sum():item() / sets.hard.n,
    epochs = fit.epochs_done, seconds = fit.seconds, history = fit.history,
    hard_acc_by_color = ev.hard.by_color, hard_acc_by_label = ev.hard.by_label}
  util.mkdir_p(dir)
  util.write_json(result_path, r)
  util.progress("%-18s seed %d rho %s: train %.2f%%  val %.2f%%  hard %.2f%%  hard-conflicting %.2f%%  (%.0f s)",
    entry.label, seed, fmt_rho(rho), r.train_acc, r.val_acc, r.hard_acc, r.hard_conflicting_acc,
    r.seconds)
  return r
end

-- ------------------------------------------------------------------ aggregation

local FIELDS = {"train_acc", "val_acc", "hard_acc", "hard_conflicting_acc", "hard_aligned_acc",
  "hard_conflicting_same_brightness_acc", "hard_conflicting_other_brightness_acc",
  "hard_follows_colour", "val_conflicting_acc", "epochs", "seconds"}

local function aggregate(runs)
  local agg = {}
  for _, f in ipairs(FIELDS) do
    local xs = {}
    for _, r in ipairs(runs) do
      if type(r[f]) == "number" then xs[#xs + 1] = r[f] end
    end
    if #xs > 0 then
      local mean, sd = metrics.mean_sd(xs)
      agg[f] = {mean = mean, sd = sd, n = #xs, values = xs}
    end
  end
  return agg
end

local function pm(a, digits)
  if not a then return "-" end
  digits = digits or 2
  if a.n > 1 then return ("%." .. digits .. "f ± %." .. digits .. "f"):format(a.mean, a.sd) end
  return ("%." .. digits .. "f"):format(a.mean)
end

local M = {} -- metrics.json
local function put_agg(prefix, agg, seeds_used)
  for f, a in pairs(agg) do
    M[prefix .. f .. "_mean"] = a.mean
    M[prefix .. f .. "_sd"] = a.sd
    for i, v in ipairs(a.values) do M[("%s%s_seed%d"):format(prefix, f, seeds_used[i])] = v end
  end
end

-- ------------------------------------------------------------------ evidence

-- Predictions of model on set's images passed through transform(x) (float N×3×H×W → same).
local function predict_with(model, set, transform)
  local preds = {}
  lab.no_grad(function()
    model:eval()
    for start = 0, set.n - 1, 1000 do
      local count = math.min(1000, set.n - start)
      local x = set.images:narrow(0, start, count):float() / 255
      preds[#preds + 1] = model(transform(x)):argmax(1)
    end
  end)
  return lab.cat(preds, 0)
end

-- Brightness of each grey image: its largest pixel (uint8 grey, SPEC §2's rounding).
local function grey_peaks(set)
  local out = {}
  for start = 0, set.n - 1, 2000 do
    local count = math.min(2000, set.n - start)
    local g = lab.to_grey(set.images:narrow(0, start, count))  -- uint8
    local peak = g:float():reshape(count, -1):max(1)
    for _, v in ipairs(peak:totable()) do out[#out + 1] = math.floor(v + 0.5) end
  end
  return out
end

local function evidence(sets)
  local E = {}
  -- 1. A colour-only reader: answers the class whose colour the digit wears.
  E.colour_reader_val_acc = 100 * lab.data.aligned_fraction(sets.val)
  E.colour_reader_hard_acc = 100 * lab.data.aligned_fraction(sets.hard)
  -- 2. A brightness-only reader of the grey images: the label most often seen in training at
  -- each grey peak value (0..255); ties and unseen values → the overall majority.
  util.progress("evidence: brightness reader on the grey images")
  local tr_peak, tr_y = grey_peaks(sets.train), sets.train.labels:totable()
  local counts = {}
  for i, b in ipairs(tr_peak) do
    counts[b] = counts[b] or {}
    counts[b][tr_y[i]] = (counts[b][tr_y[i]] or 0) + 1
  end
  local best = {}
  for b, row in pairs(counts) do
    local arg, top = nil, -1
    for y = 0, 9 do if (row[y] or 0) > top then arg, top = y, row[y] or 0 end end
    best[b] = arg
  end
  local function reader_acc(set, target)
    local peaks, ys = grey_peaks(set), target:totable()
    local right = 0
    for i, b in ipairs(peaks) do if best[b] == ys[i] then right = right + 1 end end
    return 100 * right / #ys, peaks
  end
  local hard_peaks
  E.brightness_reader_val_acc = reader_acc(sets.val, sets.val.labels)
  E.brightness_reader_hard_acc, hard_peaks = reader_acc(sets.hard, sets.hard.labels)
  E.brightness_reader_hard_colour_acc = reader_acc(sets.hard, sets.hard.colors)
  -- Information about the colour left in the grey brightness of the hard set (bits, plug-in).
  local joint, pb, pk, n = {}, {}, {}, #hard_peaks
  local hc = sets.hard.colors:totable()
  for i, b in ipairs(hard_peaks) do
    local key = b * 16 + hc[i]
    joint[key] = (joint[key] or 0) + 1
    pb[b] = (pb[b] or 0) + 1
    pk[hc[i]] = (pk[hc[i]] or 0) + 1
  end
  local mi, hk = 0, 0
  for key, c in pairs(joint) do
    local b, k = key // 16, key % 16
    mi = mi + c / n * math.log(c * n / (pb[b] * pk[k]), 2)
  end
  for _, c in pairs(pk) do hk = hk - c / n * math.log(c / n, 2) end
  E.grey_brightness_colour_bits = mi
  E.colour_entropy_bits = hk
  local levels = {}
  for b in pairs(pb) do levels[#levels + 1] = b end
  E.grey_brightness_levels_hard = #levels
  -- 3. CNNs that see only grey images (grey_consistency with the colour terms switched off),
  -- raw and with each image divided by its brightest pixel; scored on the hard set in grey.
  local gc = lab.debias.load("grey_consistency")
  local runs = {}
  for _, variant in ipairs({{label = "grey_only", normalize = "none"},
      {label = "grey_only_normalised", normalize = "max"}}) do
    local entry = {label = variant.label, name = "grey_consistency",
      options = {colour_weight = 0, lambda = 0, normalize = variant.normalize}}
    local dir = ("%s/evidence/%s"):format(opts.out, variant.label)
    local method = lab.debias.load(entry.name, entry.options)
    local settings = {method = method.name, options = method.options, epochs = opts.evidence_epochs,
      batch = opts.batch, lr = opts.lr, optimizer = opts.optimizer, seed = seeds[1], rho = opts.rho,
      beta = opts.beta, data = opts.data, quick = opts.quick,
      generated_n = opts.data == "generated" and opts.generated_n or nil}
    local path = dir .. "/result.json"
    local r
    if opts.reuse and util.exists(path) then
      local ok, old = pcall(function() return util.json_decode(util.read_file(path)) end)
      if ok and old.settings and json_same(old.settings, settings) then
        r = old
        util.progress("evidence: %s reused from %s", variant.label, path)
      end
    end
    if not r then
      util.progress("evidence: training %s (%d epochs, grey images only)", variant.label,
        opts.evidence_epochs)
      local fit = lab.train.fit{method = method, data = sets, epochs = opts.evidence_epochs,
        batch = opts.batch, lr = opts.lr, optimizer = opts.optimizer, seed = seeds[1], out = dir,
        progress = opts.progress, data_signature = sets.signature}
      if fit.interrupted then os.exit(130) end
      local function transform(x) return gc.grey(x, variant.normalize) end
      local preds = predict_with(fit.model, sets.hard, transform)
      local vpreds = predict_with(fit.model, sets.val, transform)
      local correct = preds:eq(sets.hard.labels)
      local conf = sets.hard.conflicting
      local same, other = split_by_brightness(sets.hard, preds)
      r = {settings = settings,
        val_grey_acc = 100 * vpreds:eq(sets.val.labels):sum():item() / sets.val.n,
        hard_grey_acc = 100 * correct:sum():item() / sets.hard.n,
        hard_grey_conflicting_acc = 100 * (correct:long() * conf:long()):sum():item() / conf:sum():item(),
        hard_grey_aligned_acc = 100 * (correct:long() * (1 - conf:long())):sum():item()
          / (sets.hard.n - conf:sum():item()),
        hard_grey_conflicting_same_brightness_acc = same,
        hard_grey_conflicting_other_brightness_acc = other, seconds = fit.seconds}
      util.mkdir_p(dir)
      util.write_json(path, r)
    end
    runs[variant.label] = r
    for k, v in pairs(r) do
      if type(v) == "number" then E[variant.label .. "_" .. k] = v end
    end
  end
  return E, runs
end

-- ------------------------------------------------------------------ Grad-CAM

local function stroke_grey(set)
  -- the MNIST (or generated) grey digits of the hard set, in its order
  local source
  if opts.data == "generated" then
    source = lab.data.generated{n = opts.generated_n, seed = seeds[1]}
  else
    source = lab.data.mnist(opts.data_dir ~= "" and opts.data_dir or nil)
  end
  return source.test.images:index_select(0, set.index)
end

local function gradcam_measure(labels_to_check, sets)
  local ok, gradcam = pcall(require, "cnnlab.gradcam")
  if not ok or type(gradcam.compute) ~= "function" or type(gradcam.mass_share) ~= "function" then
    util.progress("Grad-CAM: lua/cnnlab/gradcam.lua is not usable yet; skipped")
    return nil
  end
  local n = math.min(opts.gradcam_n, sets.hard.n)
  local x = sets.hard.images:narrow(0, 0, n):float() / 255
  local grey = stroke_grey(sets.hard):narrow(0, 0, n)
  local mask = gradcam.stroke_mask(grey)
  local out, pictures = {}, {}
  for _, label in ipairs(labels_to_check) do
    local path = run_dir(label, opts.rho, seeds[1]) .. "/model.safetensors"
    if util.exists(path) then
      local model = study.load_model(path)
      local o = {stroke_area = 100 * mask:mean():item()}
      local conf = sets.hard.conflicting:narrow(0, 0, n)
      -- Task 3's measure: share of the map's mass on the strokes, for Grad-CAM at relu3 (the
      -- study's map), Grad-CAM at relu2 (13×13) and input-gradient saliency (pixel level).
      local maps = {}
      local res = gradcam.compute(model, x, {layer = gradcam.DEFAULT_LAYER})
      maps.gradcam = res.upsampled
      maps.gradcam_relu2 = gradcam.compute(model, x, {layer = "relu2"}).upsampled
      if gradcam.saliency then maps.saliency = gradcam.saliency(model, x).maps end
      for kind, m in pairs(maps) do
        local shares = gradcam.mass_share(m, mask)
        o[kind] = 100 * gradcam.mean_share(shares)
        o[kind .. "_conflicting"] = 100 * gradcam.mean_share(shares, conf)
      end
      -- On this data colour sits on the strokes, so "where" cannot tell colour from shape;
      -- "in which direction" can. The input gradient g (3 channels per pixel) splits into its
      -- luminance part, along (1,1,1) — what a change of grey level does — and the chromatic
      -- rest. A reader of grey shape has a purely luminance gradient (chromatic share 0); a
      -- gradient in random directions has 2/3 of its energy chromatic.
      local first = lab.hooks.layer_names(model)[1]
      local chroma, lum_total = 0.0, 0
      for start = 0, n - 1, 250 do
        local count = math.min(250, n - start)
        local r = lab.hooks.gradient(model, first, x:narrow(0, start, count), {input_grad = true})
        local g = r.input_grad
        local total = (g * g):sum(3):sum(2):sum(1)                        -- N
        local lum = g:mean(1):square():sum(2):sum(1) * 3                   -- N
        local share = (total - lum) / total:clamp(1e-30, math.huge)
        chroma = chroma + share:sum():item()
        lum_total = lum_total + count
      end
      o.chromatic = 100 * chroma / lum_total
      out[label] = o
      pictures[#pictures + 1] = {label = label, maps = res.upsampled, target = res.target}
      util.progress("Grad-CAM (%s, %d hard digits): share of the map on the strokes: Grad-CAM "
        .. "relu3 %.1f%%, relu2 %.1f%%, saliency %s; strokes cover %.1f%% of the pixels; "
        .. "chromatic share of the input gradient %.1f%%", label, n, o.gradcam, o.gradcam_relu2,
        o.saliency and ("%.1f%%"):format(o.saliency) or "-", o.stroke_area, o.chromatic)
    end
  end
  -- A picture: 8 colour-conflicting hard digits, then each model's map over them.
  local okf, figure = pcall(require, "cnnlab.figure")
  if okf and #pictures > 0 then
    local picks, conf = {}, sets.hard.conflicting:totable()
    for i = 1, n do
      if conf[i] == 1 then picks[#picks + 1] = i - 1 end
      if #picks == 8 then break end
    end
    local idx = lab.tensor(picks, {dtype = "int64"})
    local rows = {x:index_select(0, idx)}
    local under = lab.to_grey(rows[1]) -- maps drawn over the grey digit, so the heat stays legible
    for _, p in ipairs(pictures) do
      local maps = figure.per_map(p.maps:index_select(0, idx))
      local heat = figure.colormap(maps)
      rows[#rows + 1] = heat * 0.75 + under * 0.25
    end
    local grid = lab.image_grid(lab.cat(rows, 0), {ncol = #picks, scale = 4, pad = 2, pad_value = 1})
    lab.write_png(opts.out .. "/gradcam.png", grid)
    local parts, W, H = {}, grid.shape[3], grid.shape[2]
    local left = 150
    parts[#parts + 1] = figure.text(left, 20, "Grad-CAM (relu3, predicted class) on colour-conflicting hard digits",
      'font-size="14" font-weight="bold"')
    parts[#parts + 1] = figure.image(left, 30, W, H, figure.png_uri(opts.out .. "/gradcam.png"))
    local row_h = H / (#pictures + 1)
    local col_w = W / #picks
    parts[#parts + 1] = figure.text(left - 8, 30 + row_h / 2 + 4, "hard digit", 'text-anchor="end"')
    parts[#parts + 1] = figure.text(left - 8, 30 + row_h / 2 + 18, "(label, colour's class)",
      'text-anchor="end" font-size="10"')
    local ys, cs = sets.hard.labels:totable(), sets.hard.colors:totable()
    for j, i0 in ipairs(picks) do
      parts[#parts + 1] = figure.text(left + (j - 1) * col_w + 5, 30 + row_h - 6,
        ("%d, %d"):format(ys[i0 + 1], cs[i0 + 1]), 'font-size="11" fill="white"')
    end
    for i, p in ipairs(pictures) do
      local t = p.target:index_select(0, idx):totable()
      for j, i0 in ipairs(picks) do
        local right = t[j] == ys[i0 + 1]
        parts[#parts + 1] = figure.text(left + (j - 1) * col_w + 5, 30 + row_h * (i + 1) - 6,
          ("reads %d"):format(t[j]), ('font-size="11" fill="%s"'):format(right and "#7CFC00" or "#FF6060"))
      end
    end
    for i, p in ipairs(pictures) do
      local o = out[p.label]
      parts[#parts + 1] = figure.text(left - 8, 30 + row_h * (i + 0.5), p.label, 'text-anchor="end"')
      parts[#parts + 1] = figure.text(left - 8, 30 + row_h * (i + 0.5) + 14,
        ("%.0f%% on strokes"):format(o.gradcam), 'text-anchor="end" font-size="11"')
    end
    parts[#parts + 1] = figure.text(left, H + 48, ("Each map scaled to its own range, over the grey digit. "
      .. "Share of the raw map's mass on the strokes over %d hard digits (a uniform map: %.0f%%)."):format(n,
      100 * mask:mean():item()), 'font-size="11"')
    util.write_file(opts.out .. "/gradcam.svg", figure.doc(left + W + 20, H + 60, parts))
  end
  return out
end

-- ------------------------------------------------------------------ main

local ok, err = pcall(function()
  util.mkdir_p(opts.out)
  local entries = opts.table and method_entries(opts.methods, opts.method_opt) or {}
  local sweep_entries = opts.sweep and method_entries(opts.sweep_methods, opts.method_opt) or {}
  local rhos = {}
  for _, r in ipairs(split(opts.sweep_rhos)) do
    local v = tonumber(r)
    if not v or v < 0 or v > 1 then error(("--sweep-rhos: '%s' is not a number in [0, 1]"):format(r), 0) end
    rhos[#rhos + 1] = v
  end
  local command = "./cnnlab scripts/task4_debias.lua " .. table.concat(arg, " ")
  say("== %s  (%s)", command, os.date("!%Y-%m-%d %H:%M:%S UTC"))
  if opts.threads > 0 then lab.set_threads(opts.threads) end -- before the line that reports it
  util.progress("%d threads, %s GEMM; seeds %s", lab.get_threads(), lab.gemm_backend(),
    table.concat(seeds, ","))

  M.rho, M.beta, M.quick, M.data, M.seeds, M.batch, M.lr = opts.rho, opts.beta, opts.quick,
    opts.data, #seeds, opts.batch, opts.lr
  M.optimizer, M.first_seed = opts.optimizer, seeds[1]
  M.seed_reported_grey_consistency_hard_acc = SEED_REPORTED.grey_consistency
  M.seed_reported_dropout_hard_acc = SEED_REPORTED.dropout

  -- The main table.
  local aggs = {}
  if #entries > 0 then
    local runs = {}
    for _, seed in ipairs(seeds) do
      for _, e in ipairs(entries) do
        runs[e.label] = runs[e.label] or {}
        table.insert(runs[e.label], run_one(e, seed, opts.rho))
      end
    end
    local lines = {}
    local W = 16
    local function row(cells)
      local out = {lpad(cells[1], 22)}
      for i = 2, #cells do out[#out + 1] = rpad(cells[i], i >= 8 and 8 or W) end
      return table.concat(out, " ")
    end
    local header = row({"method", "train", "validation", "hard", "hard, colour≠label",
      "≠, same bright.", "≠, other bright.", "epochs", "seconds"})
    lines[#lines + 1] = ("Colored MNIST, rho %s, beta %g%s; %d seed(s) %s: accuracy %% (mean ± sd)")
      :format(fmt_rho(opts.rho), opts.beta, opts.quick and ", quick subset" or "", #seeds,
        table.concat(seeds, ","))
    lines[#lines + 1] = header
    local best, best_acc = nil, -1
    for _, e in ipairs(entries) do
      local a = aggregate(runs[e.label])
      aggs[e.label] = a
      put_agg(e.label .. "_", a, seeds)
      M[e.label .. "_options"] = util.json_encode(runs[e.label][1].settings.options)
      lines[#lines + 1] = row({e.label, pm(a.train_acc), pm(a.val_acc), pm(a.hard_acc),
        pm(a.hard_conflicting_acc), pm(a.hard_conflicting_same_brightness_acc),
        pm(a.hard_conflicting_other_brightness_acc), pm(a.epochs, 0), pm(a.seconds, 0)})
      if a.hard_acc.mean > best_acc then best, best_acc = e.label, a.hard_acc.mean end
    end
    lines[#lines + 1] = row({"seed's report: grey c.", "", "", ("%.2f"):format(SEED_REPORTED.grey_consistency)})
    lines[#lines + 1] = row({"seed's report: dropout", "", "", ("%.2f"):format(SEED_REPORTED.dropout)})
    lines[#lines + 1] = ("best: %s, hard accuracy %.2f%%"):format(best, best_acc)
    M.best_method, M.best_hard_acc_mean = best, best_acc
    print()
    for _, l in ipairs(lines) do say(l) end
    print()
    util.write_file(opts.out .. "/table.txt", table.concat(lines, "\n") .. "\n")

    -- The chart: ours (mean ± sd) beside the seed's two published figures.
    local labels, hard, hard_sd, conf, conf_sd, seedv = {}, {}, {}, {}, {}, {}
    for i, e in ipairs(entries) do
      local a = aggs[e.label]
      labels[i] = e.label
      hard[i], hard_sd[i] = a.hard_acc.mean, a.hard_acc.sd
      conf[i], conf_sd[i] = a.hard_conflicting_acc.mean, a.hard_conflicting_acc.sd
      seedv[i] = SEED_REPORTED[e.label] or 0 / 0
    end
    svg.save(opts.out .. "/comparison.svg", svg.bars{labels = labels,
      series = {{name = "hard", values = hard, errors = hard_sd},
        {name = "colour ≠ label", values = conf, errors = conf_sd},
        {name = "seed's report", values = seedv, color = "#999999"}},
      title = ("Hard-set accuracy by debias method (rho %s, %d seed%s, mean ± sd)")
        :format(fmt_rho(opts.rho), #seeds, #seeds > 1 and "s" or ""),
      ylabel = "hard-set accuracy (%)",
      xlabel = "method (bars: ours, mean ± sd; grey: the seed's published hard accuracy)",
      ymin = 0, ymax = 100, fmt = "%.1f",
      width = math.max(640, 118 * #labels)})

    if opts.evidence then
      local E, eruns = evidence(sets_for(seeds[1], opts.rho))
      for k, v in pairs(E) do M["evidence_" .. k] = v end
      local el = {
        ("Why grey is not colour-free here (seed %d, rho %s):"):format(seeds[1], fmt_rho(opts.rho)),
        ("  colour-only reader (answer = colour's class):    validation %6.2f%%  hard %6.2f%%")
          :format(E.colour_reader_val_acc, E.colour_reader_hard_acc),
        ("  brightness-only reader of the grey images:       validation %6.2f%%  hard %6.2f%%"
          .. "  (recovers the hard digit's colour %.2f%%)"):format(E.brightness_reader_val_acc,
          E.brightness_reader_hard_acc, E.brightness_reader_hard_colour_acc),
        ("  colour information left in grey brightness:       %.2f of %.2f bits (%d grey peak values)")
          :format(E.grey_brightness_colour_bits, E.colour_entropy_bits, E.grey_brightness_levels_hard),
      }
      for _, label in ipairs({"grey_only", "grey_only_normalised"}) do
        local r = eruns[label]
        el[#el + 1] = ("  %-22s (%d ep.) grey validation %6.2f%%  grey hard %6.2f%%  "
          .. "colour≠label %6.2f%% (same brightness %6.2f%%, other %6.2f%%)"):format(label,
          opts.evidence_epochs, r.val_grey_acc, r.hard_grey_acc, r.hard_grey_conflicting_acc,
          r.hard_grey_conflicting_same_brightness_acc or 0 / 0,
          r.hard_grey_conflicting_other_brightness_acc or 0 / 0)
      end
      for _, l in ipairs(el) do say(l) end
      print()
      util.write_file(opts.out .. "/evidence.txt", table.concat(el, "\n") .. "\n")
      local g, gn = eruns.grey_only, eruns.grey_only_normalised
      svg.save(opts.out .. "/evidence.svg", svg.bars{
        labels = {"colour reader", "brightness reader", "grey-only CNN", "grey-only CNN, normalised"},
        series = {{name = "validation", values = {E.colour_reader_val_acc,
            E.brightness_reader_val_acc, g.val_grey_acc, gn.val_grey_acc}},
          {name = "hard", values = {E.colour_reader_hard_acc, E.brightness_reader_hard_acc,
            g.hard_grey_acc, gn.hard_grey_acc}},
          {name = "same brightness", values = {0 / 0, 0 / 0,
            g.hard_grey_conflicting_same_brightness_acc, gn.hard_grey_conflicting_same_brightness_acc}},
          {name = "other brightness", values = {0 / 0, 0 / 0,
            g.hard_grey_conflicting_other_brightness_acc, gn.hard_grey_conflicting_other_brightness_acc}}},
        title = "How much colour a grey image still carries (readers see grey brightness only)",
        xlabel = "same / other brightness: hard digits whose colour ≠ label, its grey level = / ≠ the label colour's",
        ylabel = "accuracy (%)", ymin = 0, ymax = 100, width = 640})
    end

    if opts.gradcam then
      -- erm, the best method, and the two colour-blind methods when they ran
      local check, added = {}, {}
      for _, label in ipairs({"erm", best, "grey_invariant", "colour_augment"}) do
        if aggs[label] and not added[label] then
          check[#check + 1], added[label] = label, true
        end
      end
      local G = gradcam_measure(check, sets_for(seeds[1], opts.rho))
      for _, label in ipairs(check) do
        local g = G and G[label]
        if g then
          for k, v in pairs(g) do
            if k == "stroke_area" then M.gradcam_stroke_area = v
            elseif k == "chromatic" then M[("input_gradient_%s_chromatic_share"):format(label)] = v
            else M[("gradcam_%s_%s_stroke_share"):format(label, k)] = v end
          end
          say("Stroke share of the map (%d hard digits; uniform map %.1f%%), %s: Grad-CAM relu3 %.1f%%"
            .. " (colour≠label %.1f%%), Grad-CAM relu2 %.1f%%, saliency %s; chromatic share of the"
            .. " input gradient %.1f%% (grey-shape reader 0%%, random 66.7%%)", math.min(opts.gradcam_n,
            sets_for(seeds[1], opts.rho).hard.n), g.stroke_area, label, g.gradcam, g.gradcam_conflicting,
            g.gradcam_relu2, g.saliency and ("%.1f%%"):format(g.saliency) or "-", g.chromatic)
        end
      end
    end
  end

  -- The rho sweep: every run first (rho in the order given, then seed, then method, so that an
  -- interrupted sweep has whole rho values done), then the table with rho descending.
  if #sweep_entries > 0 then
    local results = {}
    for _, r in ipairs(rhos) do
      for _, seed in ipairs(sweep_seeds) do
        for _, e in ipairs(sweep_entries) do
          local key = e.label .. "@" .. r
          results[key] = results[key] or {}
          table.insert(results[key], run_one(e, seed, r))
        end
      end
    end
    local shown = {}
    for i, r in ipairs(rhos) do shown[i] = r end
    table.sort(shown, function(a, b) return a > b end)
    local series, lines = {}, {}
    lines[#lines + 1] = ("rho sweep: hard accuracy on colour≠label digits, %% (mean ± sd over %d seed(s) %s)")
      :format(#sweep_seeds, table.concat(sweep_seeds, ","))
    local head = lpad("method", 12)
    for _, r in ipairs(shown) do head = head .. rpad("rho " .. fmt_rho(r), 18) end
    lines[#lines + 1] = head
    for _, e in ipairs(sweep_entries) do
      local xs, ys, row = {}, {}, lpad(e.label, 12)
      for _, r in ipairs(shown) do
        local a = aggregate(results[e.label .. "@" .. r])
        put_agg(("sweep_%s_%s_"):format(key_rho(r), e.label), a, sweep_seeds)
        row = row .. rpad(pm(a.hard_conflicting_acc), 18)
        table.insert(xs, 1, 100 * (1 - r))
        table.insert(ys, 1, a.hard_conflicting_acc.mean)
      end
      lines[#lines + 1] = row
      series[#series + 1] = {name = e.label, x = xs, y = ys}
    end
    print()
    for _, l in ipairs(lines) do say(l) end
    util.write_file(opts.out .. "/sweep.txt", table.concat(lines, "\n") .. "\n")
    svg.save(opts.out .. "/sweep.svg", svg.lines{series = series, markers = true,
      title = ("Hard accuracy on colour-conflicting digits (mean of %d seed%s)")
        :format(#sweep_seeds, #sweep_seeds > 1 and "s" or ""),
      xlabel = "bias-conflicting share of the training set, 100·(1 − rho) (%)",
      ylabel = "hard, colour ≠ label (%)", ymin = 0, ymax = 100, width = 520})
  end

  M.total_seconds = lab.now() - t_start
  M.threads = lab.get_threads()
  study.write_metrics(opts.out, M)
  -- The log: every invocation's command and tables, appended.
  local f = io.open(opts.out .. "/log.txt", "a")
  if f then
    f:write(table.concat(log_lines, "\n"), ("\n(total %.0f s)\n\n"):format(lab.now() - t_start))
    f:close()
  end
  local wrote = {"metrics.json"}
  for _, f in ipairs({"table.txt", "comparison.svg", "evidence.txt", "evidence.svg", "gradcam.png",
      "gradcam.svg"}) do
    if #entries > 0 and (f:match("^table") or f:match("^comparison") or (opts.evidence and f:match("^evidence"))
        or (opts.gradcam and f:match("^gradcam") and util.exists(opts.out .. "/" .. f))) then
      wrote[#wrote + 1] = f
    end
  end
  if #sweep_entries > 0 then wrote[#wrote + 1] = "sweep.txt, sweep.svg" end
  wrote[#wrote + 1] = "log.txt"
  util.progress("wrote %s/{%s}", opts.out, table.concat(wrote, ", "))
end)
if not ok then
  io.stderr:write("task4_debias: ", tostring(err), "\n")
  os.exit(1)
end
