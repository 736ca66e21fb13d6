--- cnnlab.report.page — the page itself: the findings, one section per task, a section per
-- other run folder, the style; lua/cnnlab/report.lua assembles the parts.
--
--   report.write{runs = "runs", manifest = {...}, quick = false} → path of report.html
local util = require "cnnlab.util"
local core = require "cnnlab.core"
local H = require "cnnlab.report.html"
local F = require "cnnlab.report.figures"
local findings = require "cnnlab.report.findings"
local esc, fmt, read_metrics, number_table, wide_table = H.esc, H.fmt, H.read_metrics,
  H.number_table, H.wide_table
local is_dir, svg_title = H.is_dir, H.svg_title
local figures_of, figures_html, file_links = F.figures_of, F.figures_html, F.file_links

local page = {}

-- lab.report.sections, looked up at each call, so that a section added to it is shown.
local report = setmetatable({}, {__index = function(_, k) return require("cnnlab.report")[k] end})

-- ------------------------------------------------------------------ other runs

-- Run folders besides the seven tasks: <runs>/<name>/ or <runs>/<name>/<sub>/ with a
-- metrics.json (other data sets, runs/benchmarks/*). The quick run's folder is not one.
local function extra_runs(runs)
  local found = {}
  for _, name in ipairs(core.listdir(runs) or {}) do
    local path = runs .. "/" .. name
    if is_dir(path) and not name:match("^task%d+$") and name ~= "quick" and not name:match("^%.") then
      if util.exists(path .. "/metrics.json") then found[#found + 1] = name end
      for _, sub in ipairs(core.listdir(path) or {}) do
        if util.exists(path .. "/" .. sub .. "/metrics.json") then found[#found + 1] = name .. "/" .. sub end
      end
    end
  end
  return found
end

local function scalar_rows(m)
  local keys = {}
  for k, v in pairs(m) do
    local t = type(v)
    if t == "number" or t == "string" or t == "boolean" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local rows = {}
  for _, k in ipairs(keys) do rows[#rows + 1] = {esc(k), fmt(m[k])} end
  return rows
end

local function extra_section(runs, name, number)
  local dir = runs .. "/" .. name
  local m = read_metrics(dir) or {}
  local html = {('<section id="run-%s"><h2>%s</h2>'):format(esc(name:gsub("[^%w]", "-")), esc(name))}
  -- a benchmark table's folder (scripts/benchmarks.lua): ours beside the published figures
  local bench = name:match("^benchmarks/(.+)$") and require("cnnlab.report.benchmarks").html(
    name:match("^benchmarks/(.+)$"), m)
  if bench then
    html[#html + 1] = bench
  else
    html[#html + 1] = ("<p>Outputs of a run besides the seven tasks, in %s/.</p>"):format(esc(name))
  end
  local rows = bench and {} or scalar_rows(m)
  if #rows > 0 then
    local shown = {}
    for i = 1, math.min(#rows, 24) do shown[i] = rows[i] end
    html[#html + 1] = wide_table({"key", "value"}, shown)
    if #rows > 24 then
      local rest = {}
      for i = 25, #rows do rest[#rest + 1] = rows[i] end
      html[#html + 1] = ("<details><summary>%d more values</summary>%s</details>"):format(#rest,
        wide_table({"key", "value"}, rest))
    end
  end
  html[#html + 1] = ('<p class="src">Numbers from <a href="%s/metrics.json">%s/metrics.json</a>.</p>')
    :format(esc(name), esc(name))
  local figs = figures_of(name, dir, m)
  for _, f in ipairs(figs) do
    if not f.caption and f.name:match("%.svg$") then
      local t = svg_title(dir .. "/" .. f.name)
      if t then f.caption = ("%s, as this run drew it."):format(t) end
    end
  end
  html[#html + 1] = figures_html(name, figs, number)
  html[#html + 1] = file_links(name, dir)
  html[#html + 1] = "</section>"
  return table.concat(html, "\n")
end

-- ------------------------------------------------------------------ the page

local STYLE = [[
*{box-sizing:border-box}
body{font-family:Helvetica,Arial,sans-serif;max-width:1280px;margin:0 auto;padding:0 16px 3em;
 color:#222;line-height:1.5;overflow-wrap:break-word}
p,ul{max-width:52em}
h1{font-size:1.9em;line-height:1.2;margin:.8em 0 .2em}
h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2.2em}
.sub{color:#666}
ul.findings li{margin:.5em 0}
table.nums{border-collapse:collapse;margin:1em 0;max-width:100%}
table.nums td,table.nums th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}
table.nums code{overflow-wrap:anywhere}
table.nums th{background:#f6f6f6;text-align:left}
table.nums td{text-align:right;font-variant-numeric:tabular-nums}
table.nums td:first-child,table.nums td:last-child:nth-child(4){text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:1.5em 2em;align-items:flex-start;margin:1.2em 0}
figure.fig{margin:0;max-width:100%}
figure.fig img{display:block;max-width:100%;height:auto;border:1px solid #ddd}
img.px{image-rendering:pixelated}
figcaption{font-size:.9em;color:#333;margin-top:.4em;max-width:52em}
figcaption .file{color:#888;font-size:.9em;overflow-wrap:anywhere}
code{font-size:.9em;background:#f3f3f3;padding:0 .2em;overflow-wrap:anywhere}
.src{font-size:.85em;color:#555}
details{font-size:.85em;color:#555;overflow-wrap:anywhere;margin:.5em 0}
.missing{color:#a33} .quick{background:#fff4d6;padding:.5em 1em;border:1px solid #e6c65c}
nav{display:flex;flex-wrap:wrap;gap:.2em 1.2em}
@media (max-width:720px){
 table.wide,table.wide tbody,table.wide tr,table.wide td{display:block;width:100%}
 table.wide thead{display:none}
 table.wide tr{border:1px solid #ccc;margin-bottom:.8em}
 table.wide td{display:flow-root;border:0;border-bottom:1px solid #eee;text-align:right}
 table.wide td:last-child{border-bottom:0}
 table.wide td::before{content:attr(data-label);float:left;color:#666;text-align:left;
  padding-right:1em}
 table.wide td:last-child:nth-child(4){text-align:right}
}
]]

--- report.write({runs = "runs", manifest =, quick = false}) → path: Writes the study's self-contained
-- HTML page from the run folders under runs to runs/report.html and returns that path.
function page.write(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    util.user_error("report.write: options must be a table {runs =, manifest =, quick =}, got " .. type(opts))
  end
  local runs = opts.runs or "runs"
  local manifest = opts.manifest or {steps = {}}
  local metrics = {}
  for _, s in ipairs(report.sections) do metrics[s.task] = read_metrics(runs .. "/" .. s.task) end
  local extras = extra_runs(runs)
  local html = {"<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>cnnlab — how a CNN cheats on Colored MNIST</title>",
    "<style>" .. STYLE .. "</style></head><body>",
    "<h1>How a CNN cheats on Colored MNIST, and how to stop it</h1>",
    ('<p class="sub">cnnlab %s · generated %s · %d threads, %s GEMM · the study told in '
      .. "docs/study.md</p>"):format(esc(require("cnnlab").version), os.date("%Y-%m-%d %H:%M"),
      core.get_threads(), core.gemm_backend())}
  if opts.quick then
    html[#html + 1] = '<p class="quick">Quick run: every task on a small subset (one training '
      .. "epoch), for a first look; its numbers are not the study's. Run <code>make demo</code> "
      .. "for the full study.</p>"
  end
  local nav = {'<nav><a href="#findings">findings</a>'}
  for _, s in ipairs(report.sections) do
    nav[#nav + 1] = ('<a href="#%s">%s</a>'):format(s.task, esc(s.title:match("^(Task %d+)") or s.task))
  end
  for _, name in ipairs(extras) do
    nav[#nav + 1] = ('<a href="#run-%s">%s</a>'):format(esc(name:gsub("[^%w]", "-")), esc(name))
  end
  nav[#nav + 1] = "</nav>"
  html[#html + 1] = table.concat(nav, "")
  html[#html + 1] = '<section id="findings"><h2>Findings</h2>'
  local ok_f, f = pcall(findings, runs, metrics)
  html[#html + 1] = ok_f and f or ('<p class="missing">%s</p>'):format(esc(f))
  html[#html + 1] = "</section>"
  for n, s in ipairs(report.sections) do
    local dir = runs .. "/" .. s.task
    html[#html + 1] = ('<section id="%s"><h2>%s</h2>'):format(s.task, esc(s.title))
    html[#html + 1] = "<p>" .. s.narrative .. "</p>"
    local m = metrics[s.task]
    if not m then
      html[#html + 1] = ('<p class="missing">Not run yet: no %s/metrics.json (<code>./cnnlab %s</code>).</p>')
        :format(esc(s.task), esc(s.script))
    else
      local ok, rows = pcall(s.rows, m)
      if ok and #rows > 0 then html[#html + 1] = number_table(rows) end
      if s.html then
        local ok_html, extra = pcall(s.html, m)
        html[#html + 1] = ok_html and extra or ('<p class="missing">%s</p>'):format(esc(extra))
      end
      local step = manifest.steps and manifest.steps[s.task]
      local cmd = step and step.command or ("./cnnlab " .. s.script)
      local when = step and step.finished and (" on %s in %.0f s"):format(step.finished,
        step.seconds or 0) or ""
      local log = util.exists(dir .. "/log.txt")
        and ('; its output: <a href="%s/log.txt">%s/log.txt</a>'):format(s.task, s.task) or ""
      html[#html + 1] = ('<p class="src">Numbers from <a href="%s/metrics.json">%s/metrics.json</a>, '
        .. "written by <code>%s</code>%s%s.</p>"):format(s.task, s.task, esc(cmd), when, log)
      html[#html + 1] = figures_html(s.task, figures_of(s.task, dir, m), (n - 1) .. ".")
      html[#html + 1] = file_links(s.task, dir)
    end
    html[#html + 1] = "</section>"
  end
  for i, name in ipairs(extras) do
    local ok, s = pcall(extra_section, runs, name, ("R%d."):format(i))
    html[#html + 1] = ok and s or ('<p class="missing">%s: %s</p>'):format(esc(name), esc(s))
  end
  html[#html + 1] = "</body></html>\n"
  local path = runs .. "/report.html"
  util.write_file(path, table.concat(html, "\n"))
  return path
end

return page
