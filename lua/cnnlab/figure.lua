--- cnnlab.figure — pictures made of tensors, and SVG pages that caption them.
--
-- PNG cannot carry text, so a captioned figure is an SVG page that embeds the PNG (as a
-- base64 data URI: the SVG stands alone, also inside <img> where external files would not
-- load) and puts the captions, labels and colour scales around it.
--
--   figure.STOPS                       the heat colour map ("inferno"-like, dark → yellow)
--   figure.colormap(v) → N×3×H×W       v N×H×W (or H×W → 3×H×W) in [0,1], clamped
--   figure.normalize(maps[, vmax]) → maps / vmax clamped to [0,1] (vmax default: the max)
--   figure.per_map(maps) → each N×H×W map scaled to its own [min, max] (constant maps → 0)
--   figure.upscale(t, s) → nearest-neighbour enlargement of N×C×H×W by an integer factor
--   figure.contour(mask) → N×H×W 0/1: pixels of the 0/1 mask with a 4-neighbour outside it
--   figure.paint(img, mask, rgb) → img N×3×H×W with mask pixels set to the colour rgb
--   figure.base64(bytes) → string
--   figure.png_uri(path) → "data:image/png;base64,..." of a PNG file
--   figure.quantile(t, q) → the q-quantile of a tensor's values (a number)
--   figure.colorbar{x =, y =, w =, h =, vmin =, vmax =, label =, ticks = 4, fmt =, top_label =}
--       → SVG: a vertical bar with the same stops as colormap
--   figure.captioned_grid{png =, width =, height =, left =, top =, cell =, pad =, lines =,
--       rows =, captions =} → SVG document: the PNG of an image grid (lab.image_grid with
--       `pad` between cells of `cell` pixels) at (left, top), title lines above it
--       ({text, attrs} each, from y = 22 down in steps of 18 or 20), a bold and a plain label
--       left of each row (rows[r] = {bold, plain}) and a caption under each cell
--       (captions[r][c])
--   figure.scale_top(maps_list[, q]) → the top of a colour scale shared by several tensors of
--       maps: their largest value, or (q given) the q-quantile of all their values; 1 when that
--       is ≤ 0 or there are no maps
--   figure.heat_panels{images =, mask =, columns = {{maps =, vmax =, smooth =}, ...},
--       scale = 4, outline = {r, g, b}} → float 3×H×W: one row per image, its input enlarged
--       `scale` times, then each column's maps (N×h×w, raw) as heat on a fixed scale [0, vmax],
--       enlarged bilinearly (smooth) or by whole pixels, with the mask's outline painted on
--   figure.panel_page{png =, rows =, width =, height =, left =, top =, row_height =, lines =,
--       headings =, row_texts =, swatches =, colorbars =} → SVG document: a panel PNG of
--       `rows` rows with title lines above (y = 24, 44, 59, ...), column headings, per row the
--       given text lines ({dy, text, attrs}) and an optional colour swatch left of it, and
--       colour bars ({label, vmax, clipped}) right of it
--   figure.feature_grids(maps_list, layout) → float 3×H×W, boxes, width, height: each entry of
--       maps_list (C×h×w activations of one input at one layer) as a grid of its channels, each
--       scaled to its own range and coloured, layout[i] = {ncol =, scale =}; the grids stacked
--       top to bottom with a 26-pixel white gap above each, centred; boxes[i] = {x, y, w, h}
--       of grid i inside the image
--   figure.response_table{blank =, digit =, order =, pref =, palette =, n =} → SVG document:
--       two panels (blank | digit inputs), rows = channels in `order`, columns = the palette's
--       colours, each channel's row scaled by its largest mean over both panels; blank[ch][k]
--       and digit[ch][k] the mean response of channel ch to colour k, pref[ch] the colour the
--       channel prefers (nil: dead)
--   The SVG primitives (text, rect, image, swatch, doc, hex, esc, num) are cnnlab.svg's, also
--   reachable here as figure.text, ... for the scripts that draw with both.
local core = require "cnnlab.core"
local svg = require "cnnlab.svg"

local figure = {}

-- Eleven samples of matplotlib's "inferno", linearly interpolated between.
figure.STOPS = {
  {0.000, 0.001, 0.000, 0.014}, {0.100, 0.064, 0.028, 0.190},
  {0.200, 0.193, 0.041, 0.372}, {0.300, 0.318, 0.059, 0.429},
  {0.400, 0.441, 0.099, 0.431}, {0.500, 0.566, 0.141, 0.404},
  {0.600, 0.695, 0.200, 0.354}, {0.700, 0.813, 0.267, 0.270},
  {0.800, 0.907, 0.365, 0.164}, {0.900, 0.967, 0.506, 0.050},
  {1.000, 0.988, 0.998, 0.645},
}

local function no_grad(fn, ...)
  local was = core.set_grad_enabled(false)
  local r = table.pack(pcall(fn, ...))
  core.set_grad_enabled(was)
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

local function shape_string(t) return table.concat(t.shape, "×") end

--- Colour of a number v in [0,1] (Lua), as r, g, b in [0,1].
function figure.color_of(v)
  local s = figure.STOPS
  v = math.max(0, math.min(1, v))
  for i = 1, #s - 1 do
    local a, b = s[i], s[i + 1]
    if v <= b[1] then
      local t = (v - a[1]) / (b[1] - a[1])
      return a[2] + t * (b[2] - a[2]), a[3] + t * (b[3] - a[3]), a[4] + t * (b[4] - a[4])
    end
  end
  return s[#s][2], s[#s][3], s[#s][4]
end

function figure.colormap(v)
  if not core.is_tensor(v) or (v:dim() ~= 3 and v:dim() ~= 2) then
    error(("figure.colormap: v must be N×H×W or H×W values in [0,1], got %s"):format(
      core.is_tensor(v) and shape_string(v) or type(v)), 2)
  end
  return no_grad(function()
    local x = v:float():clamp(0, 1)
    local channels = {}
    local s = figure.STOPS
    for c = 1, 3 do
      -- piecewise linear: c(v) = c0 + Σ_i slope_i · clamp(v − t_i, 0, Δ_i)
      local acc = x * 0 + s[1][c + 1]
      for i = 1, #s - 1 do
        local d = s[i + 1][1] - s[i][1]
        local slope = (s[i + 1][c + 1] - s[i][c + 1]) / d
        acc = acc + (x - s[i][1]):clamp(0, d) * slope
      end
      channels[c] = acc:unsqueeze(x:dim() == 3 and 1 or 0)
    end
    return core.cat(channels, x:dim() == 3 and 1 or 0):clamp(0, 1)
  end)
end

function figure.normalize(maps, vmax)
  return no_grad(function()
    local m = maps:float()
    vmax = vmax or m:max():item()
    if vmax <= 0 then return m * 0 end
    return (m / vmax):clamp(0, 1)
  end)
end

function figure.per_map(maps)
  if not core.is_tensor(maps) or maps:dim() ~= 3 then
    error(("figure.per_map: maps must be N×H×W, got %s"):format(
      core.is_tensor(maps) and shape_string(maps) or type(maps)), 2)
  end
  return no_grad(function()
    local n = maps:size(0)
    local flat = maps:float():reshape(n, -1)
    local lo = flat:min(1):reshape(n, 1, 1)
    local hi = flat:max(1):reshape(n, 1, 1)
    local span = hi - lo
    local flatspan = span:eq(0):float()
    return (maps:float() - lo) / (span + flatspan) * (1 - flatspan)
  end)
end

function figure.upscale(t, s)
  if not core.is_tensor(t) or t:dim() ~= 4 then
    error(("figure.upscale: t must be N×C×H×W, got %s"):format(
      core.is_tensor(t) and shape_string(t) or type(t)), 2)
  end
  if math.type(s) ~= "integer" or s < 1 then
    error(("figure.upscale: factor must be a positive integer, got %s"):format(tostring(s)), 2)
  end
  if s == 1 then return t end
  local n, c, h, w = t:size(0), t:size(1), t:size(2), t:size(3)
  return no_grad(function()
    return t:reshape(n, c, h, 1, w, 1):expand(n, c, h, s, w, s):contiguous()
      :reshape(n, c, h * s, w * s)
  end)
end

-- t shifted by (dy, dx) with zeros coming in: out[i, j] = t[i − dy, j − dx].
local function shift(t, dy, dx)
  local n, h, w = t:size(0), t:size(1), t:size(2)
  local out = t
  if dy ~= 0 then
    local z = core.zeros(n, math.abs(dy), w)
    out = dy > 0 and core.cat({z, out:narrow(1, 0, h - dy)}, 1)
      or core.cat({out:narrow(1, -dy, h + dy), z}, 1)
  end
  if dx ~= 0 then
    local z = core.zeros(n, h, math.abs(dx))
    out = dx > 0 and core.cat({z, out:narrow(2, 0, w - dx)}, 2)
      or core.cat({out:narrow(2, -dx, w + dx), z}, 2)
  end
  return out
end

function figure.contour(mask)
  if not core.is_tensor(mask) or mask:dim() ~= 3 then
    error(("figure.contour: mask must be N×H×W of 0/1, got %s"):format(
      core.is_tensor(mask) and shape_string(mask) or type(mask)), 2)
  end
  return no_grad(function()
    local m = mask:float()
    local inner = m * shift(m, 1, 0) * shift(m, -1, 0) * shift(m, 0, 1) * shift(m, 0, -1)
    return m - inner
  end)
end

function figure.paint(img, mask, rgb)
  return no_grad(function()
    local m = mask:float():unsqueeze(1)
    local colour = core.tensor(rgb):reshape(1, 3, 1, 1)
    return img * (1 - m) + m * colour
  end)
end

function figure.quantile(t, q)
  local v = t:float():reshape(-1):totable()
  table.sort(v)
  if #v == 0 then return 0 / 0 end
  local pos = math.max(1, math.min(#v, math.floor(q * (#v - 1) + 1.5)))
  return v[pos]
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function figure.base64(bytes)
  local out = {}
  for i = 1, #bytes, 3 do
    local a, b, c = bytes:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local chars = {}
    for k = 3, 0, -1 do
      local idx = (n >> (6 * k)) & 63
      chars[#chars + 1] = B64:sub(idx + 1, idx + 1)
    end
    if not b then chars[3], chars[4] = "=", "=" elseif not c then chars[4] = "=" end
    out[#out + 1] = table.concat(chars)
  end
  return table.concat(out)
end

function figure.png_uri(path)
  local f, err = io.open(path, "rb")
  if not f then error("figure.png_uri: " .. tostring(err), 2) end
  local bytes = f:read("a")
  f:close()
  return "data:image/png;base64," .. figure.base64(bytes)
end

-- ------------------------------------------------------------------ SVG

for _, key in ipairs({"esc", "num", "text", "rect", "image", "hex", "swatch", "doc"}) do
  figure[key] = svg[key]
end
local hex = svg.hex

--- A vertical colour bar with ticks from vmin (bottom) to vmax (top).
function figure.colorbar(o)
  local x, y, w, h = o.x, o.y, o.w or 14, o.h
  local vmin, vmax = o.vmin or 0, o.vmax or 1
  local parts = {}
  local steps = 48
  for k = 0, steps - 1 do
    local v = 1 - (k + 0.5) / steps
    local r, g, b = figure.color_of(v)
    parts[#parts + 1] = svg.rect(x, y + k * h / steps, w, h / steps + 0.6,
      ('fill="%s"'):format(hex(r, g, b)))
  end
  parts[#parts + 1] = svg.rect(x, y, w, h)
  local nt = o.ticks or 4
  for i = 0, nt do
    local v = vmin + (vmax - vmin) * i / nt
    local ty = y + h - h * i / nt
    parts[#parts + 1] = svg.line(x + w, ty, x + w + 4, ty)
    local label = o.fmt and string.format(o.fmt, v) or string.format("%.3g", v)
    if i == nt and o.top_label then label = o.top_label end
    parts[#parts + 1] = svg.text(x + w + 7, ty + 4, label, 'font-size="11"')
  end
  if o.label then
    parts[#parts + 1] = svg.vtext(x - 6, y + h / 2, o.label, 'font-size="11" text-anchor="middle"')
  end
  return table.concat(parts, "\n")
end

function figure.captioned_grid(o)
  local left, top, cell, pad = o.left, o.top, o.cell, o.pad
  local parts = {}
  for i, l in ipairs(o.lines or {}) do
    parts[#parts + 1] = svg.text(left, i == 1 and 22 or 22 + 20 + (i - 2) * 18, l[1], l[2])
  end
  -- embedded, not linked: an SVG shown through <img> (the report) loads no other file
  parts[#parts + 1] = svg.image(left, top, o.width, o.height, figure.png_uri(o.png))
  for r, caps in ipairs(o.captions or {}) do
    local y0 = top + pad + (r - 1) * (cell + pad)
    local names = o.rows and o.rows[r] or {}
    if names[1] then
      parts[#parts + 1] = svg.text(left - 4, y0 + cell / 2 - 2, names[1],
        'text-anchor="end" font-weight="bold"')
    end
    if names[2] then
      parts[#parts + 1] = svg.text(left - 4, y0 + cell / 2 + 14, names[2], 'text-anchor="end"')
    end
    for c, s in ipairs(caps) do
      local x = left + pad + (c - 1) * (cell + pad) + cell / 2
      parts[#parts + 1] = svg.text(x, y0 + cell + 14, s,
        ('text-anchor="middle" font-size="%d"'):format(#s > 20 and 10 or 11))
    end
  end
  return svg.doc(left + o.width + 10, top + o.height + 10, parts)
end

function figure.scale_top(maps_list, q)
  local v = 0
  if q and #maps_list > 0 then
    v = figure.quantile(core.cat(maps_list, 0), q)
  else
    for _, t in ipairs(maps_list) do v = math.max(v, t:max():item()) end
  end
  return v > 0 and v or 1
end

function figure.heat_panels(o)
  local scale = o.scale or 4
  local n = o.images:size(0)
  local h, w = o.images:size(2), o.images:size(3)
  local big_h, big_w = h * scale, w * scale
  local input = figure.upscale(o.images, scale)
  local edge = figure.contour(figure.upscale(o.mask:unsqueeze(1), scale):squeeze(1))
  local tiles = {input:unsqueeze(1)}
  for _, c in ipairs(o.columns) do
    local m
    if c.smooth then
      m = core.upsample_bilinear(c.maps:unsqueeze(1), big_h, big_w):squeeze(1)
    else
      m = figure.upscale(c.maps:unsqueeze(1), scale):squeeze(1)
    end
    local heat = figure.paint(figure.colormap(figure.normalize(m, c.vmax)), edge,
      o.outline or {0.0, 0.9, 1.0})
    tiles[#tiles + 1] = heat:unsqueeze(1)
  end
  -- interleave: row i = input_i, column 1_i, column 2_i, ...
  local k = #tiles
  return core.image_grid(core.cat(tiles, 1):reshape(n * k, 3, big_h, big_w),
    {ncol = k, pad = o.pad or 6, pad_value = 1})
end

function figure.feature_grids(maps_list, layout)
  local grids, width = {}, 0
  for i, maps in ipairs(maps_list) do
    local coloured = figure.colormap(figure.per_map(maps))       -- each map to its own range
    grids[i] = core.image_grid(coloured, {ncol = layout[i].ncol, pad = layout[i].pad or 2,
      scale = layout[i].scale, pad_value = 1})
    width = math.max(width, grids[i]:size(2))
  end
  local parts, boxes, y = {}, {}, 0
  local gap = 26
  for i, g in ipairs(grids) do
    local h, w = g:size(1), g:size(2)
    local left = (width - w) // 2
    local row_img = core.ones(3, h, width)
    row_img:narrow(2, left, w):copy_(g)
    parts[#parts + 1] = core.ones(3, gap, width)
    parts[#parts + 1] = row_img
    boxes[i] = {x = left, y = y + gap, w = w, h = h}
    y = y + gap + h
  end
  return core.cat(parts, 1), boxes, width, y
end

function figure.response_table(o)
  local blank, digit, order, pref, palette = o.blank, o.digit, o.order, o.pref, o.palette
  local nc = #order
  local cell_w, cell_h = 30, 15
  local left, top = 92, 124
  local panel_w = #palette * cell_w
  local gap = 40
  local note = 'font-size="11" fill="#444"'
  local parts = {
    svg.text(12, 24, "conv1 colour response: mean activation (after ReLU) of each channel to "
      .. "each colour", 'font-size="15" font-weight="bold"'),
    svg.text(12, 44, ("Blank: background noise only (no digit, %d images per colour); digit: "
      .. "the same %d validation digits in each colour."):format(o.n, o.n), note),
    svg.text(12, 59, "Each row is scaled by its channel's largest mean over both panels (the "
      .. "value at the right);", note),
    svg.text(12, 74, "rows are sorted by the colour the channel prefers on digits (swatch at "
      .. "the left); dead channels come last.", note)}
  for p, panel in ipairs({{"blank inputs", blank}, {"digit inputs", digit}}) do
    local x0 = left + (p - 1) * (panel_w + gap)
    parts[#parts + 1] = svg.text(x0 + panel_w / 2, top - 34, panel[1],
      'text-anchor="middle" font-size="13" font-weight="bold"')
    for k = 1, #palette do
      local x = x0 + (k - 1) * cell_w
      parts[#parts + 1] = svg.swatch(x + 8, top - 24, 14, palette[k])
      parts[#parts + 1] = svg.text(x + 15, top - 3, tostring(k - 1),
        'font-size="9" text-anchor="middle"')
    end
    for r, ch in ipairs(order) do
      local peak = math.max(table.unpack(blank[ch]), table.unpack(digit[ch]))
      for k = 1, #palette do
        local v = peak > 0 and panel[2][ch][k] / peak or 0
        parts[#parts + 1] = svg.rect(x0 + (k - 1) * cell_w, top + (r - 1) * cell_h, cell_w,
          cell_h, ('fill="%s" stroke="white" stroke-width="0.5"'):format(hex(figure.color_of(v))))
      end
      if p == 1 then
        parts[#parts + 1] = svg.text(left - 30, top + (r - 0.5) * cell_h + 4,
          ("ch %2d"):format(ch - 1), 'text-anchor="end" font-size="10"')
        if pref[ch] then
          parts[#parts + 1] = svg.swatch(left - 24, top + (r - 1) * cell_h + 2, cell_h - 4,
            palette[pref[ch]])
        end
      else
        parts[#parts + 1] = svg.text(x0 + panel_w + 6, top + (r - 0.5) * cell_h + 4,
          peak > 0 and ("%.2f"):format(peak) or "dead", 'font-size="9" fill="#555"')
      end
    end
    parts[#parts + 1] = svg.rect(x0, top, panel_w, nc * cell_h)
    parts[#parts + 1] = svg.text(x0 + panel_w / 2, top + nc * cell_h + 18,
      "palette colour (class index)", 'text-anchor="middle" font-size="11"')
  end
  local bx = left + 2 * panel_w + gap + 60
  parts[#parts + 1] = figure.colorbar{x = bx, y = top, h = math.min(260, nc * cell_h), vmin = 0,
    vmax = 1, label = "share of the channel's largest mean", fmt = "%.2g"}
  return svg.doc(bx + 60, top + nc * cell_h + 36, parts)
end

function figure.panel_page(o)
  local left, top, rh, pad = o.left, o.top, o.row_height, o.pad or 6
  local parts = {}
  local y = {24, 44, 59}
  for i, l in ipairs(o.lines or {}) do
    parts[#parts + 1] = svg.text(12, y[i] or (59 + 15 * (i - 3)), l[1], l[2])
  end
  for j, h in ipairs(o.headings or {}) do
    parts[#parts + 1] = svg.text(left + pad + (j - 1) * (rh + pad) + rh / 2, top - 8, h,
      'text-anchor="middle" font-size="12" font-weight="bold"')
  end
  parts[#parts + 1] = svg.image(left, top, o.width, o.height, figure.png_uri(o.png))
  for i = 1, o.rows do
    local y0 = top + pad + (i - 1) * (rh + pad)
    if o.swatches and o.swatches[i] then
      parts[#parts + 1] = svg.swatch(12, y0 + 6, 14, o.swatches[i])
    end
    for _, t in ipairs(o.row_texts[i] or {}) do
      parts[#parts + 1] = svg.text(32, y0 + t[1], t[2], t[3])
    end
  end
  local bx = left + o.width + 30
  local bars = o.colorbars or {}
  local bh = math.min(220, (o.height - 40) / math.max(#bars, 1))
  for k, b in ipairs(bars) do
    local by = top + (k - 1) * (bh + 40) + 20
    parts[#parts + 1] = svg.text(bx - 10, by - 8, b[1], 'font-size="11" font-weight="bold"')
    parts[#parts + 1] = figure.colorbar{x = bx, y = by, h = bh, vmin = 0, vmax = b[2],
      top_label = b[3] and ("≥ %.3g"):format(b[2]) or nil}
  end
  return svg.doc(bx + 90, top + o.height + 20, parts)
end

return figure
