-- The report in a real browser: headless Chromium loads the page at 1280×800 and at a 390-px
-- phone width and every SVG it shows on its own (report.check); the test fails when an element
-- is wider than the viewport, a picture did not load, SVG text runs outside its picture, a
-- figure has no caption sentence, or a section of the study is missing. It checks the real
-- report when a run is there (runs/, else runs/quick/: the page is rewritten with this code)
-- and a fixture run folder otherwise, drawn with the same chart functions and file names as
-- the task scripts; the full-page screenshot goes to runs/report.png. Skipped (pending) only
-- when Chromium is not installed. About 20 s on a quiet machine (two Chromium runs).
local lab = require "cnnlab"
local report = lab.report
local svg = lab.svg
local util = lab.util

local TASKS = {"task0", "task1", "task2", "task3", "task4", "task5", "task6"}

local function tmpdir()
  local root = os.tmpname()
  os.remove(root)
  util.mkdir_p(root)
  return root
end

local function png(path, h, w, seed)
  lab.write_png(path, lab.rand({3, h, w}, {generator = lab.Generator(seed or 1)}))
end

-- The long names the scripts give their legends and titles.
local function lines(title, names)
  local series = {}
  for i, name in ipairs(names) do
    series[i] = {name = name, x = {0, 0.02, 0.05, 0.1}, y = {0, 10 * i, 40 + i, 99}, dashed = i == 3}
  end
  return svg.lines{title = title, xlabel = "ε (L∞ budget)", ylabel = "success (%)",
    series = series, markers = true}
end

local function bars(title, labels, names)
  local series = {}
  for i, name in ipairs(names) do
    local v = {}
    for k = 1, #labels do v[k] = (i * 17 + k * 13) % 100 end
    series[i] = {name = name, values = v}
  end
  return svg.bars{title = title, labels = labels, series = series, ylabel = "%",
    xlabel = "method (quick run: one seed, two epochs per method)"}
end

local function heat(title)
  local v = {}
  for i = 1, 10 do
    v[i] = {}
    for j = 1, 10 do v[i][j] = (i == j) and 4721 or (i * j) % 7 end
  end
  return svg.heatmap{values = v, title = title, xlabel = "colour index (red, green, blue, yellow, "
    .. "magenta, cyan, white, orange, olive, teal)", ylabel = "label (digit)"}
end

-- A run folder with every file the report captions, drawn like the scripts draw them.
local function fixture()
  local root = tmpdir()
  local function dir(t) util.mkdir_p(root .. "/" .. t) return root .. "/" .. t end
  local d = dir("task0")
  png(d .. "/palette.png", 36, 342)
  png(d .. "/easy_grid.png", 582, 582, 2)
  png(d .. "/hard_grid.png", 582, 582, 3)
  for _, set in ipairs({"train", "val", "hard"}) do
    svg.save(d .. "/colors_" .. set .. ".svg", heat(set .. " set: colour versus label (n = 48000)"))
  end
  util.write_json(d .. "/metrics.json", {train_n = 48000, val_n = 12000, hard_n = 10000,
    train_aligned_pct = 100, hard_aligned_pct = 10.12})
  d = dir("task1")
  svg.save(d .. "/curve.svg", svg.lines{title = "Training curve", xlabel = "epoch",
    ylabel = "accuracy (%) / loss × 100", markers = true,
    series = {{name = "train accuracy (running)", x = {1}, y = {76.9}},
      {name = "validation accuracy", x = {1}, y = {99.55}},
      {name = "loss × 100", x = {1}, y = {72.2}, dashed = true}}})
  svg.save(d .. "/confusion.svg", heat("Hard set: hard accuracy 9.9% — predictions follow colour"))
  png(d .. "/example.png", 224, 224, 4)
  util.write_json(d .. "/metrics.json", {train_acc = 99.48, val_acc = 99.55, hard_acc = 9.85,
    hard_conflicting_acc = 0, hard_follows_colour = 98.65, epochs = 1, seconds = 15,
    example_index = 74, example_label = 1, example_color = 0, example_pred = 0,
    example_confidence = 99.3})
  d = dir("task2")
  svg.save(d .. "/features.svg", svg.doc(1526, 904, {svg.text(12, 24, "Every channel of conv1, "
    .. "conv2 and conv3 after ReLU, each map scaled to its own range", 'font-size="15" font-weight="bold"')}))
  svg.save(d .. "/color_response.svg", heat("conv1 colour response"))
  svg.save(d .. "/variance.svg", bars("Activation variance explained by colour vs by digit (η², hard set)",
    {"input", "relu1", "relu2", "relu3", "fc"}, {"colour (ch.)", "digit (ch.)", "colour (units)", "digit (units)"}))
  png(d .. "/features_A_easy.png", 64, 48)
  util.write_json(d .. "/metrics.json", {eta2_unit_color_relu1 = 0.43, eta2_unit_digit_relu1 = 0.04})
  d = dir("task3")
  for _, kind in ipairs({"easy", "hard"}) do
    svg.save(d .. "/overlays_" .. kind .. ".svg", heat("Hard set: digits misread as the class their colour belongs to"))
    png(d .. "/overlays_" .. kind .. ".png", 120, 48)
  end
  svg.save(d .. "/share.svg", bars("Share of the map's mass on the digit strokes (uniform map: the strokes' area)",
    {"Grad-CAM relu3", "Grad-CAM++ relu3", "saliency", "Grad-CAM relu2", "Grad-CAM pool3"},
    {"easy, right", "hard, right", "hard, = colour", "uniform map"}))
  util.write_json(d .. "/metrics.json", {gradcam_share_hard = 19.5, hard_stroke_area = 12.2})
  d = dir("task4")
  local methods = {"erm", "dropout", "grey_consistency", "grey_invariant", "colour_augment", "lff", "jtt", "group_dro"}
  svg.save(d .. "/comparison.svg", bars("Debias methods: accuracy per set (mean ± sd over 3 seeds)",
    methods, {"train", "validation", "hard", "hard, colour ≠ label (conflicting)"}))
  svg.save(d .. "/evidence.svg", bars("How much colour a grey image still carries (readers see grey brightness only)",
    {"colour reader", "brightness reader", "grey CNN", "normalised grey CNN"}, {"validation", "hard (grey)"}))
  svg.save(d .. "/sweep.svg", lines("Hard digits whose colour ≠ label, against ρ", {"erm", "lff (hard, colour ≠ label)", "jtt"}))
  svg.save(d .. "/gradcam.svg", heat("Grad-CAM of every method"))
  png(d .. "/gradcam.png", 50, 50)
  util.mkdir_p(d .. "/erm")
  local m4 = {seeds = 1, best_method = "grey_invariant"}
  for i, name in ipairs(methods) do
    for _, f in ipairs({"train_acc", "val_acc", "hard_acc", "hard_conflicting_acc", "epochs", "seconds"}) do
      m4[name .. "_" .. f .. "_mean"] = f == "epochs" and 2 or (f == "seconds" and 60 or 10 * i)
    end
  end
  util.write_json(d .. "/metrics.json", m4)
  d = dir("task5")
  png(d .. "/grid.png", 100, 300)
  svg.save(d .. "/grid.svg", heat("PGD: a 7 read as a 3 (ε = 0.05)"))
  svg.save(d .. "/curve.svg", lines("7 → 3: success (p(3) ≥ 0.9) against ε, baseline and debiased",
    {"baseline (Task 1)", "grey_invariant (hard, colour ≠ label)", "colour_augment"}))
  svg.save(d .. "/matrix.svg", heat("Targeted PGD success (%), ε = 0.05, p(target) ≥ 0.9"))
  util.write_json(d .. "/metrics.json", {eps = 0.05, val_success_rate = 0, hard_success_rate = 10.7,
    val_max_linf = 0.05})
  d = dir("task6")
  svg.save(d .. "/selectivity.svg", lines("colour selectivity of each channel", {"colour", "digit"}))
  svg.save(d .. "/demo.svg", lines("A yellow 3: P(3) as top channels are zeroed", {"relu1", "relu2", "relu3"}))
  png(d .. "/demo.png", 28, 28)
  for _, conv in ipairs({"conv1", "conv3"}) do
    svg.save(d .. "/curves_" .. conv .. ".svg", lines(conv .. " zeroed — hard accuracy",
      {"by colour selectivity", "by class selectivity", "by attribution (easy set)", "random (mean of 2)"}))
  end
  util.write_json(d .. "/metrics.json", {conv1_hard_baseline = 9.85, conv1_hard_best_color_order = 10.25,
    conv1_hard_best_color_order_k = 18, conv1_hard_random_at_best_k = 9.57})
  d = root .. "/benchmarks/seed_cnn"
  util.mkdir_p(d)
  util.write_json(d .. "/metrics.json", {images_per_second = 3600, batch = 128, threads = 2})
  svg.save(d .. "/speed.svg", bars("Images per second by batch size", {"32", "64", "128"}, {"cnnlab", "PyTorch"}))
  return root
end

local function complete(dir)
  for _, t in ipairs(TASKS) do
    if not util.exists(dir .. "/" .. t .. "/metrics.json") then return false end
  end
  return true
end

local function check(path, hint)
  local t0 = lab.now()
  local result = assert(report.check(path))
  assert.same({}, result.problems, "problems in headless Chromium:\n  "
    .. table.concat(result.problems, "\n  ") .. (hint or ""))
  local wide = result.pages["1280"]
  assert.is_true(wide.figures >= 20, ("only %d figures"):format(wide.figures))
  assert.equal(wide.figures, result.pages["390"].figures)
  return result, lab.now() - t0
end

describe("report in headless Chromium", function()
  local browser = report.browser()

  it("finds what the check looks for: overflow, a missing picture, clipped text, no caption", function()
    if not browser then pending("chromium is not installed (apt-get install chromium)") return end
    local root = tmpdir()
    util.mkdir_p(root .. "/task1")
    util.write_json(root .. "/task1/metrics.json", {hard_acc = 10})
    svg.save(root .. "/task1/mystery.svg", svg.doc(200, 60, {svg.text(150, 30, "a legend cut at the edge")}))
    svg.save(root .. "/task1/curve.svg", svg.doc(2000, 60, {svg.text(10, 30, "wide")}))
    local path = report.write{runs = root}
    local html = util.read_file(path)
    -- a picture that is not there, and a table cell that cannot wrap
    html = html:gsub("</body>", '<figure><img src="task1/gone.png" width="10" height="10"><figcaption>'
      .. "A picture that is not there at all.</figcaption></figure><table><tr><td style=\"white-space:"
      .. 'nowrap">' .. string.rep("unbreakable ", 60) .. "</td></tr></table></body>")
      :gsub('<section id="task3">', '<section id="elsewhere">')
    util.write_file(path, html)
    local result = assert(report.check(path))
    local all = table.concat(result.problems, "\n")
    assert.truthy(all:find("figure without a caption sentence: task1/mystery.svg", 1, true), all)
    assert.truthy(all:find('mystery.svg: text "a legend cut at the edge" extends outside', 1, true), all)
    assert.truthy(all:find("picture did not load: task1/gone.png", 1, true), all)
    assert.truthy(all:find("390 px: wider than the 390 px viewport: td", 1, true), all)
    assert.truthy(all:find("1280 px: wider than the 1280 px viewport: td", 1, true), all)
    assert.truthy(all:find('section "task3" is missing', 1, true), all)
    assert.is_nil(all:find("curve.svg: did not load", 1, true))
    os.execute("rm -rf " .. util.shell_quote(root))
  end)

  it("shows the study at 1280 and 390 px with nothing cut off; full-page screenshot in runs/report.png", function()
    if not browser then pending("chromium is not installed (apt-get install chromium)") return end
    -- the real run when there is one (the page rewritten with this code), else the fixture
    local root, fixture_root
    for _, dir in ipairs({"runs", "runs/quick"}) do
      if not root and complete(dir) then root = dir end
    end
    if not root then
      fixture_root = fixture()
      root = fixture_root
    end
    local manifest = util.exists(root .. "/manifest.json") and util.json_decode(util.read_file(root .. "/manifest.json"))
    local path = report.write{runs = root, manifest = manifest, quick = root == "runs/quick"}
    local result, seconds = check(path, not fixture_root and ("\n(the pictures are those of %s/; "
      .. "if they were drawn by older code, rerun the demo: make demo%s)"):format(root,
      root == "runs/quick" and " QUICK=1" or "") or nil)
    local height = result.pages["1280"].height
    util.mkdir_p("runs")
    local shot = "runs/report.png"
    assert.truthy(report.screenshot(path, shot, {height = height}))
    local img = lab.read_png(shot)
    assert.equal(1280, img.shape[3])
    assert.equal(math.ceil(height), img.shape[2]) -- the whole page, not its first 4,000 px
    print(("\n  checked %s (%d figures, %d SVGs) in %.0f s; screenshot %s, 1280 × %d"):format(
      fixture_root and "a fixture run folder" or path, result.pages["1280"].figures,
      #(function() local k = {} for n in pairs(result.svgs) do k[#k + 1] = n end return k end)(),
      seconds, shot, height))
    if fixture_root then os.execute("rm -rf " .. util.shell_quote(fixture_root)) end
  end)
end)
