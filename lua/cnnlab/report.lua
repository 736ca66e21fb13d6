--- cnnlab.report — one self-contained HTML page with the whole study.
--
--   report.write{runs = "runs", manifest = {...}, quick = false} → path of report.html
--
-- Each task has a section: a few sentences of narrative, the key numbers beside the seed's,
-- every picture the task wrote (pictures are referenced relative to the runs folder, so the
-- page works from disk with no server), and links to every output file. Numbers come from
-- each task's metrics.json; a task that has not run yet says so.
local util = require "cnnlab.util"
local core = require "cnnlab.core"

local report = {}

local function esc(s)
  return (tostring(s):gsub("[<>&\"]", {["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;",
    ['"'] = "&quot;"}))
end

local function read_metrics(dir)
  local path = dir .. "/metrics.json"
  if not util.exists(path) then return nil end
  local ok, m = pcall(util.json_decode, util.read_file(path))
  return ok and m or nil
end

local function fmt(v, unit)
  if v == nil then return "—" end
  if type(v) ~= "number" then return esc(v) end
  if unit == "%" then return ("%.2f%%"):format(v) end
  if unit == "s" then return ("%.0f s"):format(v) end
  if v == math.floor(v) and math.abs(v) < 1e15 then
    -- whole numbers (JSON gives them as floats) with thousands separators: 48,000
    local digits = ("%d"):format(math.tointeger(v))
    return (digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^(%-?),", "%1"))
  end
  return ("%.4g"):format(v)
end

-- Rows: {label, our value (number or string), unit, seed's figure (string or nil)}.
local function number_table(rows)
  local out = {'<table class="nums"><tr><th></th><th>cnnlab</th><th>seed study</th></tr>'}
  for _, r in ipairs(rows) do
    out[#out + 1] = ("<tr><td>%s</td><td>%s</td><td>%s</td></tr>"):format(esc(r[1]),
      fmt(r[2], r[3]), r[4] and esc(r[4]) or "")
  end
  out[#out + 1] = "</table>"
  return table.concat(out, "\n")
end

local function files_of(dir)
  local list = {}
  for _, name in ipairs(core.listdir(dir) or {}) do
    if not name:match("^%.") and not name:match("%.tmp") then list[#list + 1] = name end
  end
  return list
end

-- Every picture of a task (PNG and SVG), in name order, with the task's captions if given.
local function pictures(task, dir, captions)
  local out = {}
  for _, name in ipairs(files_of(dir)) do
    if name:match("%.png$") or name:match("%.svg$") then
      local caption = captions and captions[name] or name
      out[#out + 1] = ('<figure><a href="%s/%s"><img src="%s/%s" alt="%s"></a>'
        .. "<figcaption>%s</figcaption></figure>"):format(task, esc(name), task, esc(name),
        esc(name), esc(caption))
    end
  end
  if #out == 0 then return "" end
  return '<div class="figs">' .. table.concat(out, "\n") .. "</div>"
end

local function file_links(task, dir)
  local out = {}
  for _, name in ipairs(files_of(dir)) do
    out[#out + 1] = ('<a href="%s/%s">%s</a>'):format(task, esc(name), esc(name))
  end
  return #out > 0 and ('<p class="files">Files: ' .. table.concat(out, " · ") .. "</p>") or ""
end

-- ------------------------------------------------------------------ per task

local sections = {}

sections[#sections + 1] = {task = "task0", title = "Task 0 — the data",
  narrative = [[Real MNIST digits, painted. In the <b>easy</b> set (training and validation)
  every digit wears its class colour — a 0 is red, a 1 green, and so on — so colour alone
  predicts the label. In the <b>hard</b> set (the MNIST test digits) colours are drawn at random,
  independent of the digit. Everything is a pure function of the seed, ρ and β (SPEC §2).]],
  rows = function(m)
    return {{"training digits", m.n_train or m.train_n}, {"validation digits", m.n_val or m.val_n},
      {"hard digits", m.n_hard or m.hard_n},
      {"easy set painted in its class colour", m.train_aligned_pct, "%", "100% (ρ = 1)"},
      {"hard set painted in its class colour", m.hard_aligned_pct, "%", "≈ 10% by design"}}
  end}

sections[#sections + 1] = {task = "task1", title = "Task 1 — the network learns colour",
  narrative = [[The seed's 3-layer CNN trained on the easy set is nearly perfect on easy
  digits and collapses on the hard set: it answers with the class whose colour the digit wears.
  The confusion matrix of the hard set is spread evenly across columns — the predictions follow
  the colours, which are random, not the digits.]],
  rows = function(m)
    return {{"train accuracy (easy)", m.train_acc, "%", "≈ 96%"},
      {"validation accuracy (easy)", m.val_acc, "%", "≈ 96%"},
      {"hard accuracy", m.hard_acc, "%", "15–20%"},
      {"hard, colour ≠ label", m.hard_conflicting_acc, "%"},
      {"hard predictions equal to the colour's class", m.hard_follows_colour, "%"},
      {"epochs", m.epochs}, {"training time", m.seconds, "s"},
      m.example_label and {("example.png: hard digit #%d, a %d painted in the colour of %d"):format(
        m.example_index, m.example_label, m.example_color), ("read as %d (%.1f%%)"):format(
        m.example_pred, m.example_confidence)} or nil}
  end}

sections[#sections + 1] = {task = "task2", title = "Task 2 — what each layer sees",
  narrative = [[Forward hooks capture every channel of conv1–conv3 for a few inputs: an easy
  digit, the same digit in another colour, and a hard digit wearing another class's colour.
  The first layer's channels separate the palette colours; the share of activation variance
  explained by colour versus by digit class says which one the layers encode.]],
  rows = function(m)
    local rows = {}
    for _, layer in ipairs({"relu1", "relu2", "relu3", "fc"}) do
      local c, d = m["eta2_unit_color_" .. layer], m["eta2_unit_digit_" .. layer]
      if c and d then
        rows[#rows + 1] = {("%s: share of a unit's variance explained by colour / by digit (η², hard set)")
          :format(layer), ("%.2f / %.3f"):format(c, d)}
      end
    end
    return rows
  end}

sections[#sections + 1] = {task = "task3", title = "Task 3 — where the network looks (Grad-CAM)",
  narrative = [[Grad-CAM weighs the last convolutional layer's channels by the gradient of the
  chosen class's score and shows where the evidence lies. For a colour reader, the evidence is
  wherever the colour is — strokes and tinted background alike — so the share of the map on the
  digit's strokes is a measure of shape reading.]],
  rows = function(m)
    local rows = {}
    local function add(label, key, seed)
      if m[key] then rows[#rows + 1] = {label, m[key], "%", seed} end
    end
    add("hard digits: share of the Grad-CAM map (relu3) on the strokes", "gradcam_share_hard")
    add("hard digits: share of the Grad-CAM map (relu2) on the strokes", "gradcam_relu2_share_hard")
    add("hard digits: share of Grad-CAM++ on the strokes", "gradcampp_share_hard")
    add("hard digits: share of the saliency map on the strokes", "saliency_share_hard")
    add("the strokes' share of the image (a uniform map's share)", "hard_stroke_area")
    add("easy digits: share of the Grad-CAM map (relu3) on the strokes", "gradcam_share_easy")
    if m.hard_n and m.hard_n_follows_colour then
      rows[#rows + 1] = {"hard digits read as their colour's class", 100 * m.hard_n_follows_colour / m.hard_n, "%"}
    end
    return rows
  end}

sections[#sections + 1] = {task = "task4", title = "Task 4 — debiasing",
  narrative = [[Each method is one Lua file in lua/cnnlab/debias/, picked at run time with
  --method. The seed's two fixes — a grey/colour consistency penalty and dropout — are
  implemented as described and measured on the data of SPEC §2; stronger methods follow.]],
  -- One row per method (ours: mean ± sd over the seeds run), the seed's figures beside ours,
  -- then the evidence of why the seed's figures do not carry over to SPEC §2's data.
  html = function(m)
    local order = {"erm", "dropout", "grey_consistency", "grey_invariant", "colour_augment",
      "lff", "jtt", "group_dro"}
    local seen = {}
    for _, name in ipairs(order) do seen[name] = true end
    for k in pairs(m) do -- methods given as files appear too
      local name = k:match("^(.-)_hard_acc_mean$")
      if name and not seen[name] and name ~= "best" and not name:find("^sweep_")
        and not name:find("^gradcam_") and not name:find("^evidence") then
        order[#order + 1] = name
        seen[name] = true
      end
    end
    local seed = {grey_consistency = "83.64%", dropout = "86.60%"}
    local function cell(name, field)
      local v, sd = m[name .. "_" .. field .. "_mean"], m[name .. "_" .. field .. "_sd"]
      if v == nil then return "—" end
      if sd and m.seeds and m.seeds > 1 then return ("%.2f ± %.2f"):format(v, sd) end
      return ("%.2f"):format(v)
    end
    local out = {('<table class="nums"><tr><th>method (%d seed%s)</th><th>train %%</th>'
      .. '<th>validation %%</th><th>hard %%</th><th>hard, colour ≠ label %%</th><th>epochs</th>'
      .. '<th>seconds</th><th>seed study, hard</th></tr>'):format(m.seeds or 1,
        (m.seeds or 1) > 1 and "s" or "")}
    for _, name in ipairs(order) do
      if m[name .. "_hard_acc_mean"] then
        local best = name == m.best_method and " <b>(best)</b>" or ""
        out[#out + 1] = ("<tr><td>%s%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
          .. "<td>%s</td><td>%s</td></tr>"):format(esc(name), best, cell(name, "train_acc"),
          cell(name, "val_acc"), cell(name, "hard_acc"), cell(name, "hard_conflicting_acc"),
          fmt(m[name .. "_epochs_mean"]), fmt(m[name .. "_seconds_mean"], "s"), seed[name] or "")
      end
    end
    out[#out + 1] = "</table>"
    local ev = {}
    local function add(label, key)
      if m[key] then ev[#ev + 1] = {label, m[key], "%"} end
    end
    add("a colour-only reader: validation", "evidence_colour_reader_val_acc")
    add("a colour-only reader: hard", "evidence_colour_reader_hard_acc")
    add("a grey-brightness-only reader: validation", "evidence_brightness_reader_val_acc")
    add("a CNN trained on raw grey images: hard (grey)", "evidence_grey_only_hard_grey_acc")
    add("… on hard digits whose colour has another grey level", "evidence_grey_only_hard_grey_conflicting_other_brightness_acc")
    add("a CNN trained on brightness-normalised grey: hard (grey)", "evidence_grey_only_normalised_hard_grey_acc")
    for _, name in ipairs(order) do
      local g, c = m["gradcam_" .. name .. "_gradcam_stroke_share"], m["input_gradient_" .. name .. "_chromatic_share"]
      if g then ev[#ev + 1] = {name .. ": share of the Grad-CAM map on the strokes (Task 3's measure)", g, "%"} end
      if c then ev[#ev + 1] = {name .. ": chromatic share of the input gradient (shape reader 0%, random 67%)", c, "%"} end
    end
    if #ev > 0 then
      out[#out + 1] = "<p>Why the seed's grey consistency does not carry over: SPEC §2's grey "
        .. "image of a digit painted P[k] is mean(P[k])·s, so its brightness still tells the colour. "
        .. "And where the models look: on this data colour sits on the strokes, so the share of a "
        .. "map on the strokes cannot tell colour from shape; the direction of the input gradient "
        .. "(along grey, or across colours) can.</p>"
      out[#out + 1] = number_table(ev)
    end
    return table.concat(out, "\n")
  end,
  rows = function() return {} end}

sections[#sections + 1] = {task = "task5", title = "Task 5 — a 7 read as a 3",
  narrative = [[A targeted attack (projected gradient steps on the input, the same autograd that
  trains the network) may change every pixel of a 7 by at most ε so that the network answers 3
  with at least 90% confidence. The seed expected this at ε = 0.05. Against the colour reader it
  fails there: the network answers with the colour, and turning an orange 7 into 3's yellow
  needs +0.5 in the green channel on the strokes, ten times the budget. The success curve shows
  the ε at which the attack takes over; the hard set's 7s that already wear a colour close to
  yellow fall at once.]],
  captions = {
    ["min_eps_cdf.svg"] = "Smallest L∞ ε per digit that makes each model answer the target with p ≥ 0.9 (bisection with APGD): empirical CDF per model, 7 → 3 solid, all pairs dashed",
    ["grid_median.png"] = "7s attacked at each model's median minimal ε: original, adversarial, perturbation",
    ["grid_median.svg"] = "7s attacked at each model's median minimal ε, captioned with p(3) and L∞",
  },
  rows = function(m)
    local rows = {{("validation 7s turned into 3s (≥ 90%%) at ε = %g"):format(m.eps or 0.05),
      m.val_success_rate or m.success_rate, "%", "expected ≥ 99% at ε = 0.05"},
      {"hard-set 7s turned into 3s at the same ε", m.hard_success_rate, "%"},
      {"largest L∞ change used (must be ≤ ε)", m.val_max_linf, nil, "≤ 0.05"}}
    for i = 1, m.n_models or 0 do -- the minimal ε of every measured model
      local key = (m["model_" .. i .. "_name"] or ""):gsub("[^%w]", "_")
      if m[key .. "_min_eps_median"] then
        rows[#rows + 1] = {("%s: median smallest ε turning a 7 into a confident 3"):format(
          m["model_" .. i .. "_name"]), m[key .. "_min_eps_median"], nil, "−1: > 0.3"}
      end
    end
    -- the smallest ε of the curve at which 90% / 99% of the 7s fall
    for _, want in ipairs({90, 99}) do
      local i = 0
      while m["curve_eps_" .. i] ~= nil do
        if (m["curve_baseline_" .. i] or 0) >= want then
          rows[#rows + 1] = {("smallest ε of the curve turning ≥ %d%% of validation 7s into 3s"):format(want),
            m["curve_eps_" .. i]}
          break
        end
        i = i + 1
      end
    end
    return rows
  end}

sections[#sections + 1] = {task = "task6", title = "Task 6 — the neurons that carry the decision",
  narrative = [[Forward hooks record how every channel responds to each colour and each digit,
  rank the channels, and silence them. Zeroing the channels that carry the decision changes the
  answer; the ablation curves show which kind of channel the accuracy rests on.]],
  rows = function(m)
    local rows = {}
    for _, layer in ipairs({"conv1", "conv2", "conv3"}) do
      local c, d = m[layer .. "_mean_color_selectivity"], m[layer .. "_mean_class_selectivity"]
      if c and d then
        rows[#rows + 1] = {("%s: mean selectivity for colour / for digit (0–1)"):format(layer),
          ("%.2f / %.2f"):format(c, d)}
      end
      local n = m[layer .. "_color_more_selective_count"]
      if n then rows[#rows + 1] = {layer .. ": channels more colour- than digit-selective", n} end
      local base, best = m[layer .. "_hard_baseline"], m[layer .. "_hard_best_color_order"]
      if base and best then
        rows[#rows + 1] = {("%s: hard accuracy, nothing zeroed → best after zeroing the most "
          .. "colour-selective channels (%d)"):format(layer, m[layer .. "_hard_best_color_order_k"] or 0),
          ("%.2f%% → %.2f%% (random channels at that count: %.2f%%)"):format(base, best,
            m[layer .. "_hard_random_at_best_k"] or 0 / 0)}
      end
    end
    if m.flip_conv3_median then
      rows[#rows + 1] = {"conv3: channels zeroed (by attribution) before an easy digit's answer changes, median",
        m.flip_conv3_median}
    end
    return rows
  end}

-- ------------------------------------------------------------------ the page

local STYLE = [[
body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
 color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
.sub{color:#666} table.nums{border-collapse:collapse;margin:1em 0}
table.nums td,table.nums th{border:1px solid #ccc;padding:.3em .8em;text-align:right;white-space:nowrap}
table.nums td:first-child{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0;max-width:520px}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555} .files{font-size:.85em;color:#555}
.missing{color:#a33} .quick{background:#fff4d6;padding:.5em 1em;border:1px solid #e6c65c}
nav a{margin-right:1em}
]]

function report.write(opts)
  local runs = opts.runs or "runs"
  local manifest = opts.manifest or {steps = {}}
  local html = {"<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
    "<title>cnnlab — how a CNN cheats on Colored MNIST</title>",
    "<style>" .. STYLE .. "</style></head><body>",
    "<h1>How a CNN cheats on Colored MNIST</h1>",
    ('<p class="sub">cnnlab %s · generated %s · %d threads, %s GEMM</p>'):format(
      esc(require("cnnlab").version), os.date("%Y-%m-%d %H:%M"), core.get_threads(),
      core.gemm_backend())}
  if opts.quick then
    html[#html + 1] = '<p class="quick">Quick run: every task on a small subset, for a first '
      .. "look. Run <code>make demo</code> for the full study.</p>"
  end
  local nav = {"<nav>"}
  for _, s in ipairs(sections) do nav[#nav + 1] = ('<a href="#%s">%s</a>'):format(s.task, s.task) end
  nav[#nav + 1] = "</nav>"
  html[#html + 1] = table.concat(nav, "")
  for _, s in ipairs(sections) do
    local dir = runs .. "/" .. s.task
    html[#html + 1] = ('<section id="%s"><h2>%s</h2>'):format(s.task, esc(s.title))
    html[#html + 1] = "<p>" .. s.narrative .. "</p>"
    local m = read_metrics(dir)
    if not m then
      html[#html + 1] = ('<p class="missing">Not run yet: no %s/metrics.json.</p>'):format(esc(dir))
    else
      local ok, rows = pcall(s.rows, m)
      if ok and #rows > 0 then html[#html + 1] = number_table(rows) end
      if s.html then
        local ok_html, extra = pcall(s.html, m)
        html[#html + 1] = ok_html and extra or ('<p class="missing">%s</p>'):format(esc(extra))
      end
      local step = manifest.steps and manifest.steps[s.task]
      if step and step.seconds then
        html[#html + 1] = ('<p class="sub">Ran in %.0f s (%s).</p>'):format(step.seconds,
          esc(step.finished or ""))
      end
      html[#html + 1] = pictures(s.task, dir, s.captions)
      html[#html + 1] = file_links(s.task, dir)
    end
    html[#html + 1] = "</section>"
  end
  -- Marks how many pictures loaded, for the browser test (tests/report_spec.lua).
  html[#html + 1] = [[<script>window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  document.body.setAttribute('data-images', ok + '/' + imgs.length);
});</script>]]
  html[#html + 1] = "</body></html>\n"
  local path = runs .. "/report.html"
  util.write_file(path, table.concat(html, "\n"))
  return path
end

-- ------------------------------------------------------------------ rendering

--- Renders an HTML file in headless Chromium (Debian's chromium): returns the DOM after the
-- page's scripts ran, and writes a PNG screenshot when opts.screenshot is a path. Returns nil
-- and a reason when Chromium is not installed.
function report.render(html_path, opts)
  opts = opts or {}
  local browser
  for _, name in ipairs({"chromium", "chromium-browser", "google-chrome"}) do
    local p = io.popen("command -v " .. name .. " 2>/dev/null")
    local found = p:read("l")
    p:close()
    if found and found ~= "" then browser = found break end
  end
  if not browser then return nil, "chromium is not installed (apt-get install chromium)" end
  local abs = html_path
  if abs:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    abs = p:read("l") .. "/" .. html_path
    p:close()
  end
  local profile = os.tmpname()
  os.remove(profile)
  -- The flags keep a headless Chromium from reaching for the network on a closed machine.
  local base = ("%s --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
    .. "--disable-background-networking --disable-component-update --disable-sync "
    .. "--user-data-dir=%s --virtual-time-budget=10000"):format(util.shell_quote(browser),
    util.shell_quote(profile))
  local p = io.popen(("%s --dump-dom %s 2>/dev/null"):format(base, util.shell_quote("file://" .. abs)))
  local dom = p:read("a")
  p:close()
  if opts.screenshot then
    os.execute(("%s --hide-scrollbars --window-size=%d,%d --screenshot=%s %s >/dev/null 2>&1")
      :format(base, opts.width or 1200, opts.height or 2400, util.shell_quote(opts.screenshot),
        util.shell_quote("file://" .. abs)))
  end
  os.execute("rm -rf " .. util.shell_quote(profile))
  return dom
end

return report
