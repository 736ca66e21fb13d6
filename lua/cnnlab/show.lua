--- lab.show(x[, opts]) — draws an image, a batch of images or a 2-D map inline in the terminal.
--
--   lab.show(img)                       C×H×W, 1 or 3 channels (uint8 0..255 or float 0..1)
--   lab.show(batch)                     N×C×H×W: a grid of the images (lab.image_grid)
--   lab.show(map)                       H×W (a feature map, a Grad-CAM heat map): through a
--                                       colour map, with a scale bar giving min and max
--   lab.show(x, {file = "a.png"})       writes a PNG instead and returns its path
--   opts: width = 80 (most terminal columns used; larger pictures are sampled down),
--         terminal = true|false (default: whether stdout is a terminal), out = a file handle
--         (default io.stdout)
-- In the terminal each character cell shows two pixels: '▀' with the upper pixel as its 24-bit
-- foreground colour and the lower as its background. When stdout is not a terminal, the
-- picture goes to a PNG in the temporary folder and its path is printed.
local core = require "cnnlab.core"

-- A perceptual colour map (viridis, five stops, linearly interpolated).
local STOPS = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}

local function colour_of(v) -- v in [0, 1] → r, g, b bytes
  if v ~= v then v = 0 end
  v = math.max(0, math.min(1, v)) * (#STOPS - 1)
  local i = math.min(math.floor(v), #STOPS - 2)
  local f = v - i
  local a, b = STOPS[i + 1], STOPS[i + 2]
  return math.floor(a[1] + (b[1] - a[1]) * f + 0.5), math.floor(a[2] + (b[2] - a[2]) * f + 0.5),
    math.floor(a[3] + (b[3] - a[3]) * f + 0.5)
end

local function fail(msg) error(require("cnnlab.util").user_location(3) .. "show: " .. msg, 0) end

-- The picture as {h, w, px = function(y, x) → r, g, b} plus, for maps, the range.
local function picture(x)
  if not core.is_tensor(x) then fail("x must be a tensor, got " .. type(x)) end
  local shape = x.shape
  if #shape == 4 then
    if shape[2] ~= 1 and shape[2] ~= 3 then
      fail(("a batch must be N×C×H×W with 1 or 3 channels, got %s"):format(table.concat(shape, "×")))
    end
    x = core.image_grid(x, {ncol = math.min(shape[1], 8), pad = 1})
    shape = x.shape
  end
  if #shape == 3 then
    if shape[1] ~= 1 and shape[1] ~= 3 then
      fail(("an image must be C×H×W with 1 or 3 channels, got %s"):format(table.concat(shape, "×")))
    end
    local f = x:float()
    if x.dtype == "uint8" then f = f / 255 end
    local v = f:clamp(0, 1):totable()
    local c = shape[1]
    return {h = shape[2], w = shape[3], image = f:clamp(0, 1), px = function(i, j)
      local r = math.floor(v[1][i][j] * 255 + 0.5)
      if c == 1 then return r, r, r end
      return r, math.floor(v[2][i][j] * 255 + 0.5), math.floor(v[3][i][j] * 255 + 0.5)
    end}
  end
  if #shape == 2 then
    local f = x:float()
    local lo, hi = f:min():item(), f:max():item()
    local span = hi > lo and hi - lo or 1
    local v = f:totable()
    return {h = shape[1], w = shape[2], lo = lo, hi = hi, px = function(i, j)
      return colour_of((v[i][j] - lo) / span)
    end}
  end
  fail(("x must be H×W (a map), C×H×W (an image) or N×C×H×W (a batch), got %d dimensions")
    :format(#shape))
end

-- The picture as RGB bytes 3×H×W (a map through its colour map), for write_png.
local function rgb(p)
  if p.image then return p.image end
  local img = core.zeros({3, p.h, p.w}, {dtype = "uint8"})
  for i = 1, p.h do
    for j = 1, p.w do
      local r, g, b = p.px(i, j)
      img:set(0, i - 1, j - 1, r)
      img:set(1, i - 1, j - 1, g)
      img:set(2, i - 1, j - 1, b)
    end
  end
  return img
end

local function fg(r, g, b) return ("\27[38;2;%d;%d;%dm"):format(r, g, b) end
local function bg(r, g, b) return ("\27[48;2;%d;%d;%dm"):format(r, g, b) end

-- The terminal drawing of a picture as a string.
local function draw(p, width)
  local step = math.max(1, math.ceil(p.w / width))
  local lines = {}
  for i = 1, p.h, 2 * step do
    local parts = {}
    for j = 1, p.w, step do
      local r, g, b = p.px(i, j)
      if i + step <= p.h then
        parts[#parts + 1] = fg(r, g, b) .. bg(p.px(i + step, j)) .. "▀"
      else
        parts[#parts + 1] = fg(r, g, b) .. "\27[49m▀"
      end
    end
    lines[#lines + 1] = table.concat(parts) .. "\27[0m"
  end
  if p.lo then -- the scale bar: min, the colour map, max
    local bar = {}
    for k = 0, 19 do bar[#bar + 1] = fg(colour_of(k / 19)) .. "█" end
    lines[#lines + 1] = ("%.4g "):format(p.lo) .. table.concat(bar) .. "\27[0m" .. (" %.4g"):format(p.hi)
  end
  return table.concat(lines, "\n") .. "\n"
end

--- lab.show(x[, {file =, width =, terminal =}]): draws an image, a batch or a 2-D map in the terminal, or writes a PNG.
local function show(x, opts)
  if opts ~= nil and type(opts) ~= "table" then fail("opts must be a table, got " .. type(opts)) end
  opts = opts or {}
  local p = picture(x)
  local file = opts.file
  local terminal = opts.terminal
  if terminal == nil then terminal = core.isatty(1) end
  if file == nil and not terminal then
    local base = os.tmpname() -- a fresh name; the picture goes beside it with .png
    os.remove(base)
    file = base .. ".png"
  end
  if file ~= nil then
    if type(file) ~= "string" or file == "" then fail("opts.file must be a path, got " .. type(file)) end
    core.write_png(file, rgb(p))
    if opts.file == nil then
      print(("show: stdout is not a terminal; wrote %s"):format(file))
    end
    return file
  end
  local text = draw(p, opts.width or 80)
  local out = opts.out or io.stdout
  out:write(text)
  out:flush()
  return text
end

return show
