-- The report (lua/cnnlab/report.lua) as HTML: the findings first, a section per task in the
-- study's order, every figure once with its caption, numbers traced to their file and command,
-- other run folders included. The page in a real browser is tests/report_browser_spec.lua.
local lab = require "cnnlab"
local report = lab.report
local util = lab.util

local TASKS = {"task0", "task1", "task2", "task3", "task4", "task5", "task6"}

local function tmpdir()
  local root = os.tmpname()
  os.remove(root)
  util.mkdir_p(root)
  return root
end

local function chart(title)
  return lab.svg.bars{labels = {"a", "b"}, values = {1, 2}, title = title}
end

local function fixture()
  local root = tmpdir()
  for i, task in ipairs(TASKS) do
    local dir = root .. "/" .. task
    util.mkdir_p(dir)
    util.write_json(dir .. "/metrics.json", {hard_acc = 10 + i, train_acc = 99.5, val_acc = 99.1})
  end
  -- task0's pictures out of the story's order by name; task3's panel PNG beside its SVG
  lab.write_png(root .. "/task0/palette.png", lab.rand({3, 4, 40}, {generator = lab.Generator(1)}))
  lab.write_png(root .. "/task0/easy_grid.png", lab.rand({3, 8, 8}, {generator = lab.Generator(2)}))
  lab.svg.save(root .. "/task0/colors_hard.svg", chart("hard"))
  lab.svg.save(root .. "/task0/colors_train.svg", chart("train"))
  lab.write_png(root .. "/task3/overlays_hard.png", lab.rand({3, 8, 8}, {generator = lab.Generator(3)}))
  lab.svg.save(root .. "/task3/overlays_hard.svg", chart("overlays"))
  lab.svg.save(root .. "/task6/curves_conv3.svg", chart("curves"))
  lab.svg.save(root .. "/task2/mystery.svg", chart("nobody captioned me"))
  util.mkdir_p(root .. "/task4/erm")
  util.mkdir_p(root .. "/benchmarks/seed_cnn")
  util.write_json(root .. "/benchmarks/seed_cnn/metrics.json", {images_per_second = 3600, batch = 128})
  lab.svg.save(root .. "/benchmarks/seed_cnn/speed.svg", chart("Images per second by batch size"))
  return root
end

local function pos(html, s) return html:find(s, 1, true) end

describe("report", function()
  local root, html
  setup(function()
    root = fixture()
    html = util.read_file(report.write{runs = root, manifest = {steps = {task1 = {
      command = "./cnnlab scripts/task1_train.lua --quick --out runs/quick/task1", seconds = 25,
      finished = "2026-01-01 10:00"}}}})
  end)
  teardown(function() os.execute("rm -rf " .. util.shell_quote(root)) end)

  it("opens with the findings, then a section per task in the study's order", function()
    local last = assert(pos(html, '<section id="findings">'))
    for _, task in ipairs(TASKS) do
      local at = assert(pos(html, '<section id="' .. task .. '">'), task)
      assert.is_true(at > last, task .. " out of order")
      last = at
      assert.truthy(pos(html, 'href="' .. task .. '/metrics.json"'))
    end
    assert.truthy(pos(html, "15–20%")) -- the seed's hard accuracy beside ours
    assert.truthy(pos(html, 'name="viewport"'))
    assert.is_nil(pos(html, "<script"))
    assert.truthy(util.exists(root .. "/findings.svg"))
  end)

  it("shows every figure once, in the caption table's order, with its caption", function()
    -- palette.png comes before easy_grid.png (the story), not after (the alphabet)
    assert.is_true(pos(html, 'src="task0/palette.png"') < pos(html, 'src="task0/easy_grid.png"'))
    assert.is_true(pos(html, 'src="task0/colors_train.svg"') < pos(html, 'src="task0/colors_hard.svg"'))
    assert.truthy(pos(html, "The ten class colours, class 0 on the left"))
    -- a PNG drawn into the SVG of the same name is a file, not a second figure
    assert.truthy(pos(html, 'src="task3/overlays_hard.svg"'))
    assert.is_nil(pos(html, 'src="task3/overlays_hard.png"'))
    assert.truthy(pos(html, 'href="task3/overlays_hard.png"'))
    -- pattern entries caption a family of files
    assert.truthy(pos(html, "as conv3's channels are zeroed"))
    -- a figure nobody captioned says so, for the browser test to fail on
    local fig = html:match('<figure[^>]-data%-uncaptioned[^>]*>.-</figure>')
    assert.truthy(fig and fig:find("task2/mystery.svg", 1, true))
    -- pictures at their natural size (the page scales them down, never to a fixed 520 px)
    assert.truthy(html:match('src="task0/palette.png" width="40" height="4"'))
  end)

  it("says which file and command every section's numbers come from", function()
    assert.truthy(pos(html, "written by <code>./cnnlab scripts/task1_train.lua --quick --out runs/quick/task1</code>"))
    assert.truthy(pos(html, "written by <code>./cnnlab scripts/task5_attack.lua</code>"))
    assert.truthy(pos(html, '<a href="task1/metrics.json">task1/metrics.json</a> <code>hard_acc</code>'))
  end)

  it("includes run folders besides the tasks, captioning their charts by title", function()
    assert.truthy(pos(html, '<section id="run-benchmarks-seed-cnn">'))
    assert.truthy(pos(html, "images_per_second"))
    assert.truthy(pos(html, "Images per second by batch size, as this run drew it."))
    assert.is_nil(pos(html, 'id="run-task4-erm"'))
  end)

  it("draws chart legends and titles inside the picture, and single points with values", function()
    local long = "grey_invariant (hard, colour ≠ label)"
    for _, doc in ipairs({
      lab.svg.lines{title = "t", series = {{name = long, x = {1, 2}, y = {1, 2}}}},
      lab.svg.bars{labels = {"a"}, series = {{name = long, values = {1}}, {name = "b", values = {2}}}},
      lab.svg.bars{labels = {"a"}, values = {1}, title = string.rep("a very long title ", 6)}}) do
      local w = tonumber(doc:match('width="(%d+)"'))
      for x, anchor, s in doc:gmatch('<text x="([%d.]+)" y="[%d.]+"%s*([^>]*)>([^<]*)</text>') do
        local size = tonumber(anchor:match('font%-size="(%d+)"') or 12)
        local tw = lab.svg.text_width(s, size, anchor:find("bold") ~= nil)
        local x0 = tonumber(x) - (anchor:find('middle') and tw / 2 or anchor:find('end') and tw or 0)
        assert.is_true(x0 >= 0 and x0 + tw <= w, ("%q runs out of the %d px picture"):format(s, w))
      end
    end
    local one = lab.svg.lines{series = {{name = "validation accuracy", x = {1}, y = {99.55}}}}
    assert.truthy(one:find("validation accuracy: 99.55", 1, true))
    assert.truthy(one:find("<circle ", 1, true))
  end)
end)
