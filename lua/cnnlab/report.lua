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
  if math.type(v) == "integer" then return tostring(v) end
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
      {"easy set painted in its class colour", m.train_aligned_fraction and
        m.train_aligned_fraction * (m.train_aligned_fraction <= 1 and 100 or 1), "%"},
      {"hard set painted in its class colour", m.hard_aligned_fraction and
        m.hard_aligned_fraction * (m.hard_aligned_fraction <= 1 and 100 or 1), "%", "≈ 10% by design"}}
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
      {"epochs", m.epochs}, {"training time", m.seconds, "s"}}
  end}

sections[#sections + 1] = {task = "task2", title = "Task 2 — what each layer sees",
  narrative = [[Forward hooks capture every channel of conv1–conv3 for a few inputs: an easy
  digit, the same digit in another colour, and a hard digit wearing another class's colour.
  The first layer's channels separate the palette colours; the share of activation variance
  explained by colour versus by digit class says which one the layers encode.]],
  rows = function(m)
    local rows = {}
    for _, layer in ipairs({"conv1", "conv2", "conv3", "relu1", "relu2", "relu3"}) do
      for _, key in ipairs({layer .. "_variance_colour", layer .. "_variance_color",
        layer .. "_eta2_colour", layer .. "_eta2_color"}) do
        if m[key] then rows[#rows + 1] = {layer .. ": variance explained by colour", m[key]} end
      end
      for _, key in ipairs({layer .. "_variance_class", layer .. "_eta2_class"}) do
        if m[key] then rows[#rows + 1] = {layer .. ": variance explained by digit", m[key]} end
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
    for k, v in pairs(m) do
      if type(v) == "number" and (k:find("stroke") or k:find("mass")) then
        rows[#rows + 1] = {k:gsub("_", " "), v}
      end
    end
    table.sort(rows, function(a, b) return a[1] < b[1] end)
    return rows
  end}

sections[#sections + 1] = {task = "task4", title = "Task 4 — debiasing",
  narrative = [[Each method is one Lua file in lua/cnnlab/debias/, picked at run time with
  --method. The seed's two fixes — a grey/colour consistency penalty and dropout — are
  implemented as described and measured on the data of SPEC §2; stronger methods follow.]],
  rows = function(m)
    local rows, methods = {}, {}
    for k in pairs(m) do
      local method = k:match("^(.-)_hard_acc$")
      if method and not method:find("_sd$") then methods[#methods + 1] = method end
    end
    table.sort(methods)
    local seed = {grey_consistency = "83.64%", dropout = "86.60%"}
    for _, method in ipairs(methods) do
      local v = m[method .. "_hard_acc"]
      local sd = m[method .. "_hard_acc_sd"]
      rows[#rows + 1] = {method .. ": hard accuracy" .. (sd and (" (± %.2f)"):format(sd) or ""),
        v, "%", seed[method]}
      if m[method .. "_hard_conflicting_acc"] then
        rows[#rows + 1] = {method .. ": hard, colour ≠ label", m[method .. "_hard_conflicting_acc"], "%"}
      end
    end
    return rows
  end}

sections[#sections + 1] = {task = "task5", title = "Task 5 — a 7 read as a 3",
  narrative = [[A targeted attack changes every pixel of a 7 by at most 0.05 (L∞) so that the
  network answers 3 with at least 90% confidence. Projected gradient steps use the gradient of
  the loss with respect to the input — the same autograd that trains the network.]],
  rows = function(m)
    return {{"validation 7s turned into 3s (≥ 90% confidence)", m.val_success_rate or m.success_rate,
      "%", "a 7 read as 3, ≥ 90%"},
      {"hard-set 7s turned into 3s", m.hard_success_rate, "%"},
      {"mean steps", m.val_mean_steps or m.mean_steps},
      {"mean L∞ of the change", m.val_mean_linf or m.mean_linf, nil, "≤ 0.05"}}
  end}

sections[#sections + 1] = {task = "task6", title = "Task 6 — the neurons that carry the decision",
  narrative = [[Forward hooks record how every channel responds to each colour and each digit,
  rank the channels, and silence them. Zeroing the channels that carry the decision changes the
  answer; the ablation curves show which kind of channel the accuracy rests on.]],
  rows = function(m)
    local rows = {}
    for k, v in pairs(m) do
      if type(v) == "number" and not k:find("_%d+$") and not k:find("curve") then
        rows[#rows + 1] = {k:gsub("_", " "), v}
      end
    end
    table.sort(rows, function(a, b) return a[1] < b[1] end)
    local cut = {}
    for i = 1, math.min(#rows, 16) do cut[i] = rows[i] end
    return cut
  end}

-- ------------------------------------------------------------------ the page

local STYLE = [[
body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
 color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
.sub{color:#666} table.nums{border-collapse:collapse;margin:1em 0}
table.nums td,table.nums th{border:1px solid #ccc;padding:.3em .8em;text-align:right}
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
