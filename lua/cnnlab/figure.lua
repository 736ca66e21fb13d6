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
--   figure.heat_panels{images =, mask =, columns = {{maps =, vmax =, smooth =}, ...},
--       scale = 4, outline = {r, g, b}} → float 3×H×W: one row per image, its input enlarged
--       `scale` times, then each column's maps (N×h×w, raw) as heat on a fixed scale [0, vmax],
--       enlarged bilinearly (smooth) or by whole pixels, with the mask's outline painted on
--   figure.panel_page{png =, rows =, width =, height =, left =, top =, row_height =, lines =,
--       headings =, row_texts =, swatches =, colorbars =} → SVG document: a panel PNG of
--       `rows` rows with title lines above (y = 24, 44, 59, ...), column headings, per row the
--       given text lines ({dy, text, attrs}) and an optional colour swatch left of it, and
--       colour bars ({label, vmax, clipped}) right of it
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
