--- cnnlab.report — one self-contained HTML page with the whole study.
--
--   report.write{runs = "runs", manifest = {...}, quick = false} → path of report.html
--   report.check(html_path[, opts]) → result of the page in headless Chromium (below)
--   report.screenshot(html_path, png[, opts]) → height of a full-page screenshot
--
-- The page opens with the findings (the shortcut, the fix, the numbers beside the seed
-- study's, each naming the file and key it comes from, and a figure of them), then one
-- section per task in the study's order: a few sentences, the key numbers, the line that says
-- which command wrote them, every figure once in the order of report.CAPTIONS with a caption
-- sentence (click for full size), and the task's files. Run folders besides the tasks (other
-- data sets, runs/benchmarks/*) get a section each. Pictures are referenced relative to the
-- runs folder, so the page works from disk with no server and no script.
--
-- The parts, one concern each, under lua/cnnlab/report/: html (escaping, numbers, tables,
-- run folders), captions (report.CAPTIONS), figures, sections (report.sections), findings,
-- page (report.write) and browser (report.check, .screenshot, .render, .browser).
local page = require "cnnlab.report.page"
local browser = require "cnnlab.report.browser"

local report = {}

report.CAPTIONS = require "cnnlab.report.captions"
report.sections = require "cnnlab.report.sections"
report.write = page.write
report.browser = browser.browser
report.check = browser.check
report.screenshot = browser.screenshot
report.render = browser.render

return report
