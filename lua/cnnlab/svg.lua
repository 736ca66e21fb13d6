--- cnnlab.svg — the one set of SVG primitives, and the charts built on them. Pictures made of
-- tensors (heat colour maps, embedded PNGs, colour bars, captioned grids) are cnnlab.figure,
-- built on these primitives too; no script writes SVG markup of its own.
--
--   Primitives, each returning a string: svg.text(x, y, s[, attrs]), svg.vtext (turned a
--   quarter left), svg.rect(x, y, w, h[, attrs]), svg.line(x1, y1, x2, y2[, attrs]),
--   svg.path(d[, attrs]), svg.polyline({{x, y}, ...}[, attrs]), svg.circle(cx, cy, r[, attrs]),
--   svg.image(x, y, w, h, href), svg.swatch(x, y, size, {r, g, b}), svg.hex(r, g, b),
--   svg.esc(s), svg.num(v); svg.doc(w, h, parts) → the document (a white page);
--   svg.side_by_side(docs) → one document with the given ones left to right.
--
--   svg.heatmap{values = {{row 1}, {row 2}, ...}, row_labels = {...}, col_labels = {...},
--               title =, xlabel =, ylabel =, fmt = "%d" (cell annotation, false for none),
--               vmin =, vmax = (colour scale range; default the data's), cell = 36}
--       a matrix (confusion matrix, colour-vs-label counts): row i drawn top to bottom,
--       annotated cells, axis labels and a colour scale bar.
--   svg.bars{labels = {...}, series = {{name =, values = {...}, errors = {...}}, ...} (or values = {...}),
--            title =, xlabel =, ylabel =, ymin =, ymax =, fmt = "%.1f" (value labels or false)}
--       grouped bar chart; a series' optional errors draw ± error bars (e.g. one standard deviation).
--   svg.lines{series = {{name =, x = {...}, y = {...}, dashed = bool}, ...}, title =, xlabel =,
--             ylabel =, xmin =, xmax =, ymin =, ymax =, markers = bool, width =, height =,
--             value_fmt = "%.4g" (values of single points)}
--       line chart (training curves, accuracy versus ε, ...).
--       (every series a single point, e.g. a one-epoch run: large markers, each value in the
--       legend; a single x value is centred).
--   svg.text_width(s[, size[, bold]]) → estimated width in pixels; charts size their legends,
--       titles and axis labels from it so that no text runs out of the picture.
--   svg.save(path, text)        atomic write (cnnlab.util.write_file)
-- Each chart function returns the SVG document as a string. Series colours follow
-- svg.palette; all text is XML-escaped.
local svg = {}

svg.palette = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"}

-- ------------------------------------------------------------------ primitives
-- Every SVG string of the library and the scripts comes from these.

--- XML-escaped text.
function svg.esc(s)
  return (tostring(s):gsub("[<>&\"']", {["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;",
                                         ['"'] = "&quot;", ["'"] = "&apos;"}))
end
local esc = svg.esc

--- A coordinate: at most two decimals, no trailing zeros.
function svg.num(v)
  return (string.format("%.2f", v):gsub("%.?0+$", ""))
end
local num = svg.num

-- Advance widths of Helvetica/Arial (1/1000 em) for ASCII 32..126; the width estimate scales
-- them by 1.15 (bold: 1.16 more) so that wider stand-ins (DejaVu Sans, the usual fallback) still fit.
local WIDTHS = {278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278,
  278, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015,
  667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722,
  667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556,
  556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500,
  722, 500, 500, 500, 334, 260, 334, 584}

--- Estimated width in pixels of text s at font size `size` (default 12), bold or not: a
-- slight overestimate for the sans-serif fonts browsers use, so that layouts computed from
-- it (legends, titles) keep their text inside the picture.
function svg.text_width(s, size, bold)
  local em = 0
  for _, c in utf8.codes(tostring(s)) do
    em = em + (c >= 32 and c <= 126 and WIDTHS[c - 31] or 750) / 1000
  end
  return em * (size or 12) * 1.15 * (bold and 1.16 or 1)
end
local text_width = svg.text_width

--- A <text> element with s (XML-escaped) at (x, y); attrs: a string of attributes
-- ('font-size="11" fill="#444"'), or nil.
function svg.text(x, y, s, attrs)
  return string.format('<text x="%s" y="%s"%s>%s</text>', num(x), num(y),
    attrs and (" " .. attrs) or "", esc(s))
end
local text = svg.text

--- Text turned a quarter left about its anchor (axis labels).
function svg.vtext(x, y, s, attrs)
  return string.format('<text x="%s" y="%s"%s transform="rotate(-90 %s %s)">%s</text>', num(x),
    num(y), attrs and (" " .. attrs) or "", num(x), num(y), esc(s))
end

--- A <rect> at (x, y) of size w×h; attrs default to an unfilled grey outline.
function svg.rect(x, y, w, h, attrs)
  return string.format('<rect x="%s" y="%s" width="%s" height="%s" %s/>', num(x), num(y), num(w),
    num(h), attrs or 'fill="none" stroke="#444"')
end
local rect = svg.rect

--- A <line> from (x1, y1) to (x2, y2); attrs default to a grey stroke.
function svg.line(x1, y1, x2, y2, attrs)
  return string.format('<line x1="%s" x2="%s" y1="%s" y2="%s" %s/>', num(x1), num(x2), num(y1),
    num(y2), attrs or 'stroke="#444"')
end
local line = svg.line

--- A <path> with path data d (not escaped); attrs default to a dark unfilled stroke.
function svg.path(d, attrs)
  return string.format('<path d="%s" %s/>', d, attrs or 'stroke="#222" fill="none"')
end

--- A line through points {{x, y}, ...}.
function svg.polyline(points, attrs)
  local pts = {}
  for i, p in ipairs(points) do pts[i] = num(p[1]) .. "," .. num(p[2]) end
  return string.format('<polyline %s points="%s"/>', attrs or 'fill="none" stroke="#444"',
    table.concat(pts, " "))
end

--- A <circle> of radius r centred at (cx, cy); attrs default to a grey fill.
function svg.circle(cx, cy, r, attrs)
  return string.format('<circle cx="%s" cy="%s" r="%s" %s/>', num(cx), num(cy), num(r),
    attrs or 'fill="#444"')
end

--- An embedded picture (href: a data URI, so that the SVG stands alone, also inside <img>).
function svg.image(x, y, w, h, href)
  return string.format('<image x="%s" y="%s" width="%s" height="%s" xlink:href="%s" '
    .. 'style="image-rendering:pixelated" preserveAspectRatio="none"/>', num(x), num(y), num(w),
    num(h), esc(href))
end

--- "#rrggbb" of r, g, b in [0,1].
function svg.hex(r, g, b)
  local function c(v) return math.floor(math.max(0, math.min(1, v)) * 255 + 0.5) end
  return string.format("#%02x%02x%02x", c(r), c(g), c(b))
end

--- A square of colour rgb = {r, g, b} in [0,1].
function svg.swatch(x, y, size, rgb)
  return rect(x, y, size, size, string.format('fill="%s" stroke="#666"',
    svg.hex(rgb[1], rgb[2], rgb[3])))
end

--- The document: a white page w×h around the parts (a list of strings).
function svg.doc(w, h, parts)
  w, h = math.ceil(w), math.ceil(h)
  return table.concat({
    string.format('<svg xmlns="http://www.w3.org/2000/svg" '
      .. 'xmlns:xlink="http://www.w3.org/1999/xlink" width="%d" height="%d" '
      .. 'viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">',
      w, h, w, h),
    string.format('<rect width="%d" height="%d" fill="white"/>', w, h),
    table.concat(parts, "\n"),
    "</svg>\n"}, "\n")
end
local doc = svg.doc

--- Documents (from svg.doc) placed side by side in one, left to right, tops aligned.
function svg.side_by_side(docs)
  local x, h, parts = 0, 0, {}
  for _, d in ipairs(docs) do
    local w, hh = d:match('width="(%d+)" height="(%d+)"')
    w, hh = tonumber(w), tonumber(hh)
    parts[#parts + 1] = (d:gsub('^<svg xmlns="http://www.w3.org/2000/svg" ',
      ('<svg x="%d" y="0" '):format(x), 1))
    x, h = x + w, math.max(h, hh)
  end
  return doc(x, h, parts)
end

-- ------------------------------------------------------------------ charts

--- Round tick positions covering [lo, hi] ("nice numbers": steps of 1, 2 or 5 × 10^k).
function svg.ticks(lo, hi, count)
  count = count or 5
  if hi <= lo then hi = lo + 1 end
  local raw = (hi - lo) / count
  local mag = 10 ^ math.floor(math.log(raw, 10))
  local step = mag
  for _, m in ipairs({1, 2, 5, 10}) do
    step = m * mag
    if step >= raw then break end
  end
  local t = {}
  local first = math.ceil(lo / step - 1e-9) * step
  for v = first, hi + step * 1e-9, step do t[#t + 1] = math.abs(v) < step * 1e-9 and 0 or v end
  return t, step
end

local function tick_label(v, step)
  if step >= 1 and v == math.floor(v) then return string.format("%d", math.floor(v)) end
  local decimals = math.max(0, -math.floor(math.log(step, 10) + 1e-9))
  return string.format("%." .. decimals .. "f", v)
end

-- White → dark blue, t in [0, 1].
local function blues(t)
  t = math.max(0, math.min(1, t))
  local r = math.floor(247 + (8 - 247) * t + 0.5)
  local g = math.floor(251 + (48 - 251) * t + 0.5)
  local b = math.floor(255 + (107 - 255) * t + 0.5)
  return string.format("#%02x%02x%02x", r, g, b), t > 0.55
end

-- x of a centred title (or axis label) over [left, left + pw] that keeps it inside the picture, and the
-- width the picture needs for it.
local function title_place(title, left, pw, w, size, bold)
  local tw = text_width(title, size or 15, bold ~= false)
  local x = math.max(left + pw / 2, tw / 2 + 8)
  return x, math.max(w, x + tw / 2 + 8)
end
svg.title_place = title_place

-- Width of a legend block (swatch, gap, the longest name).
local function legend_width(series)
  local wmax = 0
  for i, s in ipairs(series) do wmax = math.max(wmax, text_width(s.name or ("series " .. i))) end
  return 17 + wmax
end

--- svg.heatmap({values = {{row}, ...}, row_labels =, col_labels =, title =, fmt =, vmin =, vmax =, cell =}) → svg:
-- A matrix (a confusion matrix, colour-versus-label counts) as an SVG document of coloured,
-- annotated cells with axis labels and a colour scale bar; see the header for the options.
function svg.heatmap(o)
  local values = assert(o.values, "svg.heatmap: values (a table of rows) required")
  local nr, nc = #values, #(values[1] or {})
  local cell = o.cell or 36
  local vmin, vmax = o.vmin, o.vmax
  if not vmin or not vmax then
    local lo, hi = math.huge, -math.huge
    for _, row in ipairs(values) do
      for _, v in ipairs(row) do
        if v == v then lo, hi = math.min(lo, v), math.max(hi, v) end
      end
    end
    vmin, vmax = vmin or (lo < math.huge and lo or 0), vmax or (hi > -math.huge and hi or 1)
  end
  local span = vmax > vmin and vmax - vmin or 1
  local left, top = 70, o.title and 48 or 24
  local gw, gh = nc * cell, nr * cell
  local w, h = left + gw + 110, top + gh + 56
  local b = {}
  if o.title then
    local tx
    tx, w = title_place(o.title, left, gw, w)
    b[#b + 1] = text(tx, 22, o.title, 'text-anchor="middle" font-size="15" font-weight="bold"')
  end
  local xlabel_x = left + gw / 2
  if o.xlabel then xlabel_x, w = title_place(o.xlabel, left, gw, w, 13, false) end
  local fmt = o.fmt == nil and "%d" or o.fmt
  for i, row in ipairs(values) do
    for j, v in ipairs(row) do
      local x, y = left + (j - 1) * cell, top + (i - 1) * cell
      local fill, dark = blues((v - vmin) / span)
      if v ~= v then fill, dark = "#dddddd", false end
      b[#b + 1] = rect(x, y, cell, cell, ('fill="%s" stroke="white"'):format(fill))
      if fmt then
        local s = (v ~= v) and "–" or (fmt == "%d" and string.format("%d", math.floor(v + 0.5))
          or string.format(fmt, v))
        local size = math.max(7, math.min(12, math.floor(cell * 1.6 / math.max(#s, 2))))
        b[#b + 1] = text(x + cell / 2, y + cell / 2 + size * 0.35, s,
          string.format('text-anchor="middle" font-size="%d" fill="%s"', size, dark and "white" or "#222"))
      end
    end
  end
  b[#b + 1] = rect(left, top, gw, gh)
  for j = 1, nc do
    local l = o.col_labels and o.col_labels[j] or tostring(j - 1)
    b[#b + 1] = text(left + (j - 0.5) * cell, top + gh + 15, l, 'text-anchor="middle"')
  end
  for i = 1, nr do
    local l = o.row_labels and o.row_labels[i] or tostring(i - 1)
    b[#b + 1] = text(left - 6, top + (i - 0.5) * cell + 4, l, 'text-anchor="end"')
  end
  if o.xlabel then b[#b + 1] = text(xlabel_x, top + gh + 38, o.xlabel, 'text-anchor="middle" font-size="13"') end
  if o.ylabel then
    b[#b + 1] = svg.vtext(18, top + gh / 2, o.ylabel, 'text-anchor="middle" font-size="13"')
  end
  -- colour scale
  local sx, steps = left + gw + 24, 40
  for k = 0, steps - 1 do
    local fill = blues(1 - k / (steps - 1))
    b[#b + 1] = rect(sx, top + k * gh / steps, 16, gh / steps + 0.5, ('fill="%s"'):format(fill))
  end
  b[#b + 1] = rect(sx, top, 16, gh)
  local ticks, step = svg.ticks(vmin, vmax, 4)
  for _, v in ipairs(ticks) do
    local y = top + gh - (v - vmin) / span * gh
    b[#b + 1] = line(sx + 16, y, sx + 20, y)
    b[#b + 1] = text(sx + 23, y + 4, tick_label(v, step))
  end
  return doc(w, h, b)
end

-- Shared frame for charts with numeric y: axes, grid, ticks, labels. Returns a y → pixel map.
local function frame(b, o, left, top, pw, ph, ymin, ymax, title_x, xlabel_x)
  local ticks, step = svg.ticks(ymin, ymax, 5)
  local function py(v) return top + ph - (v - ymin) / (ymax - ymin) * ph end
  for _, v in ipairs(ticks) do
    if v >= ymin - 1e-12 and v <= ymax + 1e-12 then
      b[#b + 1] = line(left, py(v), left + pw, py(v), 'stroke="#e5e5e5"')
      b[#b + 1] = text(left - 6, py(v) + 4, tick_label(v, step), 'text-anchor="end"')
    end
  end
  b[#b + 1] = line(left, top, left, top + ph)
  b[#b + 1] = line(left, top + ph, left + pw, top + ph)
  if o.title then b[#b + 1] = text(title_x or (left + pw / 2), 22, o.title, 'text-anchor="middle" font-size="15" font-weight="bold"') end
  if o.xlabel then b[#b + 1] = text(xlabel_x or (left + pw / 2), top + ph + 40, o.xlabel, 'text-anchor="middle" font-size="13"') end
  if o.ylabel then
    b[#b + 1] = svg.vtext(16, top + ph / 2, o.ylabel, 'text-anchor="middle" font-size="13"')
  end
  return py
end

local function legend(b, series, x, y)
  for i, s in ipairs(series) do
    local c = s.color or svg.palette[(i - 1) % #svg.palette + 1]
    b[#b + 1] = rect(x, y + (i - 1) * 18, 12, 12, ('fill="%s"'):format(c))
    b[#b + 1] = text(x + 17, y + (i - 1) * 18 + 10, s.name or ("series " .. i))
  end
end

local function range(o, all)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(all) do
    if v == v and v ~= math.huge and v ~= -math.huge then lo, hi = math.min(lo, v), math.max(hi, v) end
  end
  if lo == math.huge then lo, hi = 0, 1 end
  lo, hi = o.ymin or lo, o.ymax or hi
  if hi <= lo then hi = lo + 1 end
  return lo, hi
end

--- svg.bars({labels =, series = {{name =, values =, errors =}, ...} | values =, title =, ymin =, ymax =, fmt =}) → svg:
-- A grouped bar chart as an SVG document, with ± error bars for series that give errors; see
-- the header for the options.
function svg.bars(o)
  local series = o.series or {{name = o.name, values = assert(o.values, "svg.bars: values or series required")}}
  local labels = o.labels or {}
  local n = 0
  local all = {0}
  for _, s in ipairs(series) do
    n = math.max(n, #s.values)
    for _, v in ipairs(s.values) do all[#all + 1] = v end
  end
  local ymin, ymax = range(o, all)
  if not o.ymin then ymin = math.min(0, ymin) end
  local left, top = 64, o.title and 40 or 20
  local group = math.max(24, 14 * #series + 12)
  local pw, ph = o.width or math.max(260, n * group), o.height or 260
  -- the legend's width comes from its longest name, so that no name is cut at the edge
  local w, h = left + pw + (#series > 1 and 14 + legend_width(series) + 10 or 24), top + ph + 60
  local title_x
  if o.title then title_x, w = title_place(o.title, left, pw, w) end
  local xlabel_x
  if o.xlabel then xlabel_x, w = title_place(o.xlabel, left, pw, w, 13, false) end
  local b = {}
  local py = frame(b, o, left, top, pw, ph, ymin, ymax, title_x, xlabel_x)
  local gw = pw / math.max(n, 1)
  local bw = (gw - 8) / #series
  local fmt = o.fmt == nil and "%.1f" or o.fmt
  for si, s in ipairs(series) do
    local c = s.color or svg.palette[(si - 1) % #svg.palette + 1]
    for i, v in ipairs(s.values) do
      if v == v then
        local x = left + (i - 1) * gw + 4 + (si - 1) * bw
        local y0, y1 = py(math.max(ymin, math.min(0, ymax))), py(v)
        b[#b + 1] = rect(x, math.min(y0, y1), math.max(bw - 1, 1), math.abs(y1 - y0),
          ('fill="%s"'):format(c))
        local top_y = math.min(y0, y1)
        local e = s.errors and s.errors[i]
        if e and e == e and e > 0 then -- error bar ± e (e.g. one standard deviation)
          local ya, yb = py(math.min(ymax, v + e)), py(math.max(ymin, v - e))
          local xc, cap = x + bw / 2, math.min(4, bw / 3)
          b[#b + 1] = svg.path(("M%s %sV%sM%s %sH%sM%s %sH%s"):format(num(xc), num(ya),
            num(yb), num(xc - cap), num(ya), num(xc + cap), num(xc - cap), num(yb), num(xc + cap)))
          top_y = math.min(top_y, ya)
        end
        if fmt and #series * n <= 40 then
          b[#b + 1] = text(x + bw / 2, top_y - 3, string.format(fmt, v), 'text-anchor="middle" font-size="10"')
        end
      end
    end
  end
  for i = 1, n do
    b[#b + 1] = text(left + (i - 0.5) * gw, top + ph + 16, labels[i] or tostring(i - 1), 'text-anchor="middle"')
  end
  if #series > 1 then legend(b, series, left + pw + 14, top) end
  return doc(w, h, b)
end

--- svg.lines({series = {{name =, x =, y =, dashed =}, ...}, title =, xlabel =, ylabel =, markers =, ...}) → svg:
-- A line chart (training curves, accuracy versus ε) as an SVG document, with a legend; see the
-- header for the options.
function svg.lines(o)
  local series = assert(o.series, "svg.lines: series required")
  local xs, ys = {}, {}
  for _, s in ipairs(series) do
    assert(#s.x == #s.y, "svg.lines: x and y of a series must have the same length")
    for i = 1, #s.x do xs[#xs + 1], ys[#ys + 1] = s.x[i], s.y[i] end
  end
  local ymin, ymax = range(o, ys)
  local xmin, xmax = range({ymin = o.xmin, ymax = o.xmax}, xs)
  if not o.xmin and not o.xmax and #xs > 0 then
    -- one x value (a single epoch): centre it rather than pin it to the y axis
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(xs) do if v == v then lo, hi = math.min(lo, v), math.max(hi, v) end end
    if lo == hi then xmin, xmax = lo - 1, lo + 1 end
  end
  -- Every series a single point (a one-epoch run): the legend gives each point's value.
  local single = #series > 0
  for _, s in ipairs(series) do single = single and #s.y == 1 end
  if single then
    local named = {}
    for i, s in ipairs(series) do
      named[i] = setmetatable({name = ("%s: %s"):format(s.name or ("series " .. i),
        (o.value_fmt or "%.4g"):format(s.y[1]))}, {__index = s})
    end
    series = named
  end
  local left, top = 64, o.title and 40 or 20
  local pw, ph = o.width or 420, o.height or 260
  -- the legend's width comes from its longest name, so that no name is cut at the edge
  local w, h = left + pw + 14 + legend_width(series) + 10, top + ph + 60
  local title_x
  if o.title then title_x, w = title_place(o.title, left, pw, w) end
  local xlabel_x
  if o.xlabel then xlabel_x, w = title_place(o.xlabel, left, pw, w, 13, false) end
  local b = {}
  local py = frame(b, o, left, top, pw, ph, ymin, ymax, title_x, xlabel_x)
  local function px(v) return left + (v - xmin) / (xmax - xmin) * pw end
  local xt, xstep = svg.ticks(xmin, xmax, 6)
  for _, v in ipairs(xt) do
    if v >= xmin - 1e-12 and v <= xmax + 1e-12 then
      b[#b + 1] = line(px(v), top + ph, px(v), top + ph + 4)
      b[#b + 1] = text(px(v), top + ph + 16, tick_label(v, xstep), 'text-anchor="middle"')
    end
  end
  for si, s in ipairs(series) do
    local c = s.color or svg.palette[(si - 1) % #svg.palette + 1]
    local pts = {}
    for i = 1, #s.x do
      local x, y = s.x[i], s.y[i]
      if y == y and x == x then
        pts[#pts + 1] = {px(x), py(math.max(ymin, math.min(ymax, y)))}
      end
    end
    if #pts > 0 then
      b[#b + 1] = svg.polyline(pts, ('fill="none" stroke="%s" stroke-width="2"%s'):format(c,
        s.dashed and ' stroke-dasharray="6 4"' or ""))
      -- few points (a one-epoch run): large markers, so the chart shows something
      local few = #pts <= 3
      if o.markers or few then
        for _, p in ipairs(pts) do b[#b + 1] = svg.circle(p[1], p[2], few and 4 or 3, ('fill="%s"'):format(c)) end
      end

    end
  end
  legend(b, series, left + pw + 14, top)
  return doc(w, h, b)
end

--- svg.save(path, text): Writes the SVG text to path atomically (cnnlab.util.write_file).
function svg.save(path, text_)
  require("cnnlab.util").write_file(path, text_)
end

return svg
