-- Drawing (lua/cnnlab/svg.lua, lua/cnnlab/figure.lua): the one set of SVG primitives, the
-- documents built from them (side by side, a captioned image grid, a panel page), and the
-- tensor pictures (heat panels, feature grids) the task scripts write as PNG.
local lab = require "cnnlab"
local svg = lab.svg
local figure = require "cnnlab.figure"

local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

local function tmpfile(suffix)
  local p = os.tmpname()
  os.remove(p)
  return p .. suffix
end

describe("SVG primitives", function()
  it("escape text, round coordinates and name what they draw", function()
    assert.equal('<text x="1.5" y="2" font-size="9">a &lt;b&gt; &amp; &quot;c&quot;</text>',
      svg.text(1.5, 2.004, 'a <b> & "c"', 'font-size="9"'))
    assert.equal('<rect x="0" y="1" width="2.25" height="3" fill="none" stroke="#444"/>',
      svg.rect(0, 1, 2.25, 3))
    assert.equal('<line x1="0" x2="4" y1="1" y2="1" stroke="#444"/>', svg.line(0, 1, 4, 1))
    assert.equal('<polyline fill="none" stroke="#444" points="0,0 1,2.5"/>',
      svg.polyline({{0, 0}, {1, 2.5}}))
    assert.equal("#ff8000", svg.hex(1, 128 / 255, 0))
    assert.truthy(svg.vtext(5, 6, "y"):find('transform="rotate(-90 5 6)"', 1, true))
  end)

  it("make a whole document, and put documents side by side", function()
    local a = svg.doc(100, 50.2, {svg.text(1, 2, "one")})
    assert.truthy(a:find('^<svg xmlns="http://www.w3.org/2000/svg" '))
    assert.truthy(a:find('width="100" height="51"', 1, true)) -- sizes round up
    local b = svg.doc(30, 80, {svg.text(1, 2, "two")})
    local both = svg.side_by_side({a, b})
    assert.truthy(both:find('width="130" height="80"', 1, true))
    assert.truthy(both:find('<svg x="100" y="0" ', 1, true))
    assert.equal(3, count(both, "<svg "))
    assert.equal(3, count(both, "</svg>"))
  end)

  it("draw the charts from the primitives only", function()
    local chart = svg.lines{series = {{name = "a", x = {0, 1}, y = {0, 1}}}, markers = true}
    assert.equal(2, count(chart, "<circle "))
    assert.equal(1, count(chart, "<polyline "))
    local bars = svg.bars{labels = {"x"}, series = {{name = "s", values = {2}, errors = {1}}}}
    assert.equal(1, count(bars, "<path "))
  end)
end)

describe("figures", function()
  it("caption an image grid: one label pair per row, one caption per cell", function()
    local png = tmpfile(".png")
    lab.write_png(png, lab.ones(3, 4, 4))
    local page = figure.captioned_grid{png = png, width = 4, height = 4, left = 150, top = 74,
      cell = 28, pad = 30, lines = {{"title", 'font-weight="bold"'}, {"sub", 'fill="#444"'}},
      rows = {{"validation", "original"}}, captions = {{"a", "b"}}}
    os.remove(png)
    assert.truthy(page:find('<text x="150" y="22" font-weight="bold">title</text>', 1, true))
    assert.truthy(page:find('<text x="150" y="42" fill="#444">sub</text>', 1, true))
    assert.truthy(page:find('xlink:href="data:image/png;base64,', 1, true))
    assert.equal(2 + 2 + 2, count(page, "<text "))
  end)

  it("paint heat panels: input, then one column per map, outlined", function()
    local images = lab.zeros(2, 3, 2, 2)
    local mask = lab.tensor({{{1, 0}, {0, 0}}, {{0, 0}, {0, 1}}})
    local maps = lab.tensor({{{1, 0}, {0, 0}}, {{0, 0}, {0, 2}}})
    local img = figure.heat_panels{images = images, mask = mask, scale = 2, pad = 1,
      columns = {{maps = maps, vmax = 2, smooth = false}, {maps = maps, vmax = 1, smooth = true}}}
    -- 2 rows of 3 tiles of 4×4 with 1 pixel between and around
    assert.same({3, 2 * 5 + 1, 3 * 5 + 1}, img.shape)
  end)

  it("lay feature grids out one under another with their boxes", function()
    local img, boxes, w, h = figure.feature_grids({lab.rand({4, 3, 3}), lab.rand({2, 5, 5})},
      {{ncol = 2, scale = 1}, {ncol = 2, scale = 2}})
    assert.equal(2, #boxes)
    assert.equal(w, img:size(2))
    assert.equal(h, img:size(1))
    assert.equal(26, boxes[1].y)
    assert.equal(boxes[1].y + boxes[1].h + 26, boxes[2].y)
  end)

  it("map values to the colour scale's ends and encode PNGs in base64", function()
    local c = figure.colormap(lab.tensor({{0, 1}}))
    assert.same({3, 1, 2}, c.shape)
    local r0, g0, b0 = figure.color_of(0)
    assert.is_true(math.abs(c:get(0, 0, 0) - r0) < 1e-5 and math.abs(c:get(1, 0, 0) - g0) < 1e-5
      and math.abs(c:get(2, 0, 0) - b0) < 1e-5)
    assert.equal("TWFu", figure.base64("Man"))
    assert.equal("TWE=", figure.base64("Ma"))
    assert.equal("TQ==", figure.base64("M"))
  end)
end)

describe("figure.scale_top", function()
  it("is the largest value, a quantile on request, 1 for nothing to show", function()
    local a, b = lab.tensor({{1, 3}}), lab.tensor({{2, 0}})
    assert.equal(3, figure.scale_top({a, b}))
    assert.equal(1, figure.scale_top({a, b}, 0)) -- the 0-quantile is 0: a top ≤ 0 becomes 1
    assert.equal(2, figure.scale_top({a, b}, 2 / 3))
    assert.equal(1, figure.scale_top({}))
  end)
end)
