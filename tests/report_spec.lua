-- The report: one self-contained page with a section per task. Rendered in headless
-- Chromium, every section must be there and every picture must load. A report built from
-- small stand-in outputs is always checked; the real runs/report.html (after make demo) is
-- checked too when present, and its screenshot goes to runs/report.png.
local lab = require "cnnlab"
local report = lab.report
local util = lab.util

local TASKS = {"task0", "task1", "task2", "task3", "task4", "task5", "task6"}

local function have_chromium()
  local p = io.popen("command -v chromium 2>/dev/null")
  local found = p:read("l")
  p:close()
  return found ~= nil and found ~= ""
end

local function fixture()
  local root = os.tmpname()
  os.remove(root)
  for i, task in ipairs(TASKS) do
    local dir = root .. "/" .. task
    util.mkdir_p(dir)
    util.write_json(dir .. "/metrics.json", {hard_acc = 10 + i, train_acc = 99.5, val_acc = 99.1})
    local img = lab.rand({3, 8, 8}, {generator = lab.Generator(i)})
    lab.write_png(dir .. "/picture.png", img)
    lab.svg.save(dir .. "/chart.svg", lab.svg.bars{labels = {"a", "b"}, values = {1, 2},
      title = task})
  end
  return root
end

local function check_dom(dom, expect_images)
  for _, task in ipairs(TASKS) do
    assert.truthy(dom:find('id="' .. task .. '"', 1, true), "section " .. task .. " missing")
  end
  local ok, total = dom:match('data%-images="(%d+)/(%d+)"')
  assert.is_not_nil(ok, "the page's load script did not run")
  ok, total = tonumber(ok), tonumber(total)
  assert.equal(total, ok, ("%d of %d pictures failed to load"):format(total - ok, total))
  if expect_images then assert.is_true(total >= expect_images) end
  return total
end

describe("report", function()
  it("has a section per task, numbers beside the seed's, and links to every file", function()
    local root = fixture()
    local path = report.write{runs = root}
    local html = util.read_file(path)
    for _, task in ipairs(TASKS) do
      assert.truthy(html:find('<section id="' .. task .. '">', 1, true))
      assert.truthy(html:find('href="' .. task .. '/metrics.json"', 1, true))
      assert.truthy(html:find('src="' .. task .. '/picture.png"', 1, true))
    end
    assert.truthy(html:find("15–20%", 1, true)) -- the seed's hard accuracy beside ours
    assert.is_nil(html:find("http://", 1, true) and html:find("<script src", 1, true))
  end)

  it("renders in headless Chromium with every section and every picture", function()
    if not have_chromium() then
      pending("chromium is not installed (apt-get install chromium)")
      return
    end
    local root = fixture()
    local path = report.write{runs = root}
    local shot = root .. "/report.png"
    local dom = assert(report.render(path, {screenshot = shot}))
    check_dom(dom, 2 * #TASKS)
    assert.is_true(util.exists(shot))
    local img = lab.read_png(shot)
    assert.equal(1200, img.shape[3])
  end)

  it("renders the real report of make demo when there is one (screenshot in runs/report.png)", function()
    if not util.exists("runs/report.html") or not have_chromium() then
      pending("no runs/report.html yet (make demo) or no chromium")
      return
    end
    local dom = assert(report.render("runs/report.html", {screenshot = "runs/report.png",
      height = 4000}))
    check_dom(dom, 7)
  end)
end)
