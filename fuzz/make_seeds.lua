--- fuzz/make_seeds.lua OUT — writes the fuzz targets' seed corpora into OUT/idx,
-- OUT/safetensors and OUT/png: small valid files of every kind each reader accepts, so the
-- fuzzer starts from the deep paths instead of having to discover the formats.
--
--   cnnlab fuzz/make_seeds.lua build-fuzz/seeds        (what `make fuzz` runs)
--
-- Files come from two sources: cnnlab's own writers (real deflate streams, the layouts
-- cnnlab produces) and encoders written here for what cnnlab never writes (other IDX element
-- types, every safetensors dtype, every PNG colour type and bit depth, palettes with
-- transparency, Adam7 interlacing, all five row filters, ancillary chunks). The hand-made
-- zlib and gzip streams use stored (uncompressed) deflate blocks: valid, and byte-transparent
-- for the mutator. Nothing here is committed; the corpus is regenerated on demand.
local lab = require "cnnlab"

local out = arg[1] or "build-fuzz/seeds"
local function mkdir(p) assert(os.execute("mkdir -p '" .. p:gsub("'", "'\\''") .. "'")) end
for _, d in ipairs({"idx", "safetensors", "png"}) do mkdir(out .. "/" .. d) end

local count = {idx = 0, safetensors = 0, png = 0}
local function put(kind, name, bytes)
  local f = assert(io.open(("%s/%s/%s"):format(out, kind, name), "wb"))
  f:write(bytes)
  f:close()
  count[kind] = count[kind] + 1
end
local function path(kind, name)
  count[kind] = count[kind] + 1
  return ("%s/%s/%s"):format(out, kind, name)
end

-- ------------------------------------------------------------------ checksums, deflate

local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1 == 1) and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
  crc_table[i] = c
end
local function crc32(s, crc)
  crc = (crc or 0) ~ 0xFFFFFFFF
  for i = 1, #s do crc = crc_table[(crc ~ s:byte(i)) & 0xFF] ~ (crc >> 8) end
  return crc ~ 0xFFFFFFFF
end

local function adler32(s)
  local a, b = 1, 0
  for i = 1, #s do
    a = (a + s:byte(i)) % 65521
    b = (b + a) % 65521
  end
  return (b << 16) | a
end

-- Raw deflate with stored blocks (at most 65535 bytes each).
local function stored(s)
  local parts, pos = {}, 1
  repeat
    local chunk = s:sub(pos, pos + 65534)
    pos = pos + #chunk
    local final = pos > #s and 1 or 0
    parts[#parts + 1] = string.pack("<BI2I2", final, #chunk, (~#chunk) & 0xFFFF) .. chunk
  until pos > #s
  return table.concat(parts)
end

local function zlib_stored(s) return "\x78\x01" .. stored(s) .. string.pack(">I4", adler32(s)) end

local function gzip_stored(s)
  return "\x1f\x8b\x08\x00\0\0\0\0\0\xff" .. stored(s) .. string.pack("<I4I4", crc32(s), #s)
end

-- ------------------------------------------------------------------ IDX

local function idx(type_byte, dims, body)
  local h = {string.char(0, 0, type_byte, #dims)}
  for _, d in ipairs(dims) do h[#h + 1] = string.pack(">I4", d) end
  return table.concat(h) .. body
end

local function rep_pack(fmt, values)
  local p = {}
  for i, v in ipairs(values) do p[i] = string.pack(fmt, v) end
  return table.concat(p)
end

local idx_files = {
  u8_1d = idx(0x08, {5}, "\0\1\127\128\255"),
  u8_2d = idx(0x08, {2, 3}, "\1\2\3\4\5\6"),
  u8_3d = idx(0x08, {2, 2, 2}, "abcdefgh"),
  u8_scalar = idx(0x08, {}, "\42"),
  u8_empty = idx(0x08, {0, 28, 28}, ""),
  i8 = idx(0x09, {4}, "\0\1\127\128"),
  i16 = idx(0x0B, {3}, rep_pack(">i2", {-32768, 0, 0x1234})),
  i32 = idx(0x0C, {2, 2}, rep_pack(">i4", {-2147483648, -1, 0, 2147483647})),
  f32 = idx(0x0D, {3}, rep_pack(">f", {1.5, -0.0, 1e30})) .. "",
  f32_special = idx(0x0D, {3}, "\x7f\x80\0\0\xff\xc0\0\0\0\0\0\1"), -- inf, nan, denormal
  f64 = idx(0x0E, {2}, rep_pack(">d", {0.1, -1e300})),
  labels = idx(0x08, {10}, "\0\1\2\3\4\5\6\7\8\9"),
}
for name, bytes in pairs(idx_files) do
  put("idx", name, bytes)
  put("idx", name .. ".stored.gz", gzip_stored(bytes))
end
-- gzread reads concatenated members as one stream: header and body in separate members.
local two = idx_files.u8_2d
put("idx", "two_members.gz", gzip_stored(two:sub(1, 12)) .. gzip_stored(two:sub(13)))
-- Real deflate streams from cnnlab's writer.
local g = lab.Generator(7)
local img = (lab.rand({3, 8, 8}, {generator = g}) * 255):byte()
lab.write_idx(path("idx", "images.gz"), img, {gzip = true})
lab.write_idx(path("idx", "images.raw"), img, {gzip = false})
lab.write_idx(path("idx", "labels64.gz"), lab.tensor({3, -1, 70000}, {dtype = "int64"}),
  {gzip = true})
lab.write_idx(path("idx", "floats.gz"), lab.randn({2, 3}, {generator = g}), {gzip = true})

-- ------------------------------------------------------------------ safetensors

-- header: JSON text (padded with spaces to a multiple of 8 as the reference writer does).
local function st(header, data)
  header = header .. string.rep(" ", (8 - #header % 8) % 8)
  return string.pack("<I8", #header) .. header .. (data or "")
end

local function entry(name, dtype, shape, b, e)
  return ('"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}'):format(name, dtype,
    table.concat(shape, ","), b, e)
end

local dtype_data = {
  F64 = rep_pack("<d", {0.5, -2}), F16 = rep_pack("<I2", {0x3C00, 0xFC00}),
  BF16 = rep_pack("<I2", {0x3F80, 0x7FC0}), BOOL = "\0\1", I8 = "\x80\x7f",
  I16 = rep_pack("<i2", {-2, 300}), I32 = rep_pack("<i4", {-70000, 5}),
  U16 = rep_pack("<I2", {65535, 1}), U32 = rep_pack("<I4", {4294967295, 2}),
  U64 = rep_pack("<I8", {1 << 62, 3}), F32 = rep_pack("<f", {1.25, -3}),
  U8 = "\0\255", I64 = rep_pack("<i8", {math.mininteger, 9}),
}
for dt, bytes in pairs(dtype_data) do
  put("safetensors", "one_" .. dt, st("{" .. entry("t", dt, {2}, 0, #bytes) .. "}", bytes))
end
-- several tensors, metadata, scalar and empty tensors, unicode names, no padding
put("safetensors", "many", st("{" .. table.concat({
  '"__metadata__":{"format":"pt","note":"caf\\u00e9"}',
  entry("a", "F32", {2, 2}, 0, 16), entry("b", "I64", {}, 16, 24),
  entry("c", "U8", {0, 3}, 24, 24), entry("d\\u00e9", "F16", {1}, 24, 26)}, ",") .. "}",
  rep_pack("<f", {1, 2, 3, 4}) .. string.pack("<i8", 7) .. "\0\60"))
put("safetensors", "empty", st("{}"))
put("safetensors", "metadata_only", st('{"__metadata__":{"k":"v"}}'))
put("safetensors", "unpadded", string.pack("<I8", 2) .. "{}")
-- What cnnlab writes: the seed network's layout, sorted, with metadata.
local gen = lab.Generator(3)
lab.save_safetensors(path("safetensors", "cnnlab_model"), {
  ["conv1.weight"] = lab.randn({4, 3, 3, 3}, {generator = gen}), ["conv1.bias"] = lab.zeros(4),
  ["fc.weight"] = lab.randn({2, 4}, {generator = gen}), ["fc.bias"] = lab.ones(2)},
  {format = "cnnlab seed_cnn", seed = 3})
lab.save_safetensors(path("safetensors", "cnnlab_export"), {
  images = (lab.rand({2, 3, 4, 4}, {generator = gen}) * 255):byte(),
  labels = lab.tensor({1, 7}, {dtype = "int64"}), colors = lab.tensor({1, 2}, {dtype = "int64"}),
  index = lab.tensor({0, 1}, {dtype = "int64"})}, {set = "hard"})

-- ------------------------------------------------------------------ PNG

local function chunk(kind, data)
  return string.pack(">I4", #data) .. kind .. data .. string.pack(">I4", crc32(kind .. data))
end

local function paeth(a, b, c)
  local p = a + b - c
  local pa, pb, pc = math.abs(p - a), math.abs(p - b), math.abs(p - c)
  if pa <= pb and pa <= pc then return a elseif pb <= pc then return b else return c end
end

-- Filters one scanline (a byte string) against the previous one with filter type ft.
local function filter_row(ft, row, prev, bpp)
  local outb = {string.char(ft)}
  for i = 1, #row do
    local x = row:byte(i)
    local a = i > bpp and row:byte(i - bpp) or 0
    local b = prev and prev:byte(i) or 0
    local c = (prev and i > bpp) and prev:byte(i - bpp) or 0
    local pred = ft == 0 and 0 or ft == 1 and a or ft == 2 and b or ft == 3 and (a + b) // 2
      or paeth(a, b, c)
    outb[#outb + 1] = string.char((x - pred) & 0xFF)
  end
  return table.concat(outb)
end

-- Packs one row of samples (integers) at `bits` per sample, MSB first.
local function pack_row(samples, bits)
  if bits == 8 then
    local t = {}
    for i, v in ipairs(samples) do t[i] = string.char(v) end
    return table.concat(t)
  elseif bits == 16 then
    return rep_pack(">I2", samples)
  end
  local bytes, acc, n = {}, 0, 0
  for _, v in ipairs(samples) do
    acc = (acc << bits) | v
    n = n + bits
    if n == 8 then
      bytes[#bytes + 1] = string.char(acc)
      acc, n = 0, 0
    end
  end
  if n > 0 then bytes[#bytes + 1] = string.char(acc << (8 - n)) end
  return table.concat(bytes)
end

local CHANNELS = {[0] = 1, [2] = 3, [3] = 1, [4] = 2, [6] = 4}
local ADAM7 = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4},
               {1, 0, 2, 2}, {0, 1, 1, 2}}

-- A PNG of w×h with colour type ct and bit depth bits; pixel(x, y) gives the samples of a
-- pixel as a list. opts: interlace, filters (list cycled over rows), extra chunks before
-- IDAT (list of {type, data}), split (IDAT pieces).
local function png(w, h, ct, bits, pixel, opts)
  opts = opts or {}
  local ch = CHANNELS[ct]
  local bpp = math.max(1, ch * bits // 8)
  local raw, row_no = {}, 0
  local function emit_rows(x0, y0, dx, dy)
    local prev
    for y = y0, h - 1, dy do
      local samples = {}
      for x = x0, w - 1, dx do
        for _, v in ipairs(pixel(x, y)) do samples[#samples + 1] = v end
      end
      if #samples == 0 then return end
      local row = pack_row(samples, bits)
      local filters = opts.filters or {0}
      local ft = filters[row_no % #filters + 1]
      row_no = row_no + 1
      raw[#raw + 1] = filter_row(ft, row, prev, bpp)
      prev = row
    end
  end
  if opts.interlace then
    for _, p in ipairs(ADAM7) do emit_rows(p[1], p[2], p[3], p[4]) end
  else
    emit_rows(0, 0, 1, 1)
  end
  local z = zlib_stored(table.concat(raw))
  local parts = {"\x89PNG\r\n\x1a\n",
    chunk("IHDR", string.pack(">I4I4BBBBB", w, h, bits, ct, 0, 0, opts.interlace and 1 or 0))}
  for _, c in ipairs(opts.extra or {}) do parts[#parts + 1] = chunk(c[1], c[2]) end
  local pieces = opts.split or 1
  local step = math.max(1, math.ceil(#z / pieces))
  for i = 1, #z, step do parts[#parts + 1] = chunk("IDAT", z:sub(i, i + step - 1)) end
  parts[#parts + 1] = chunk("IEND", "")
  return table.concat(parts)
end

local function grey(bits) return function(x, y) return {(x * 3 + y * 5) % (1 << bits)} end end
local function rgb(bits, alpha)
  local m = (1 << bits) - 1
  return function(x, y)
    local p = {(x * 37) % (m + 1), (y * 91) % (m + 1), ((x + y) * 53) % (m + 1)}
    if alpha then p[4] = (x * y * 29) % (m + 1) end
    return p
  end
end
local function ga(bits)
  local m = (1 << bits) - 1
  return function(x, y) return {(x * 17) % (m + 1), ((x + 2 * y) * 41) % (m + 1)} end
end

local palette = "\255\0\0\0\255\0\0\0\255\255\255\0\255\0\255\0\255\255\255\255\255\10\20\30"
local trns = "\0\128\255"

for _, bits in ipairs({1, 2, 4, 8, 16}) do
  put("png", "grey" .. bits, png(5, 4, 0, bits, grey(bits)))
end
for _, bits in ipairs({8, 16}) do
  put("png", "rgb" .. bits, png(4, 3, 2, bits, rgb(bits)))
  put("png", "rgba" .. bits, png(4, 3, 6, bits, rgb(bits, true)))
  put("png", "ga" .. bits, png(3, 3, 4, bits, ga(bits)))
end
for _, bits in ipairs({1, 2, 4, 8}) do
  local n = math.min(8, 1 << bits)
  put("png", "palette" .. bits, png(6, 3, 3, bits, function(x, y) return {(x + y) % n} end,
    {extra = {{"PLTE", palette:sub(1, 3 * n)}, {"tRNS", trns:sub(1, math.min(3, n))}}}))
end
put("png", "grey8_trns", png(4, 4, 0, 8, grey(8), {extra = {{"tRNS", "\0\5"}}}))
put("png", "rgb8_trns", png(4, 4, 2, 8, rgb(8), {extra = {{"tRNS", "\0\37\0\91\0\53"}}}))
put("png", "grey8_filters", png(7, 6, 0, 8, grey(8), {filters = {0, 1, 2, 3, 4}}))
put("png", "rgb16_filters", png(5, 5, 2, 16, rgb(16), {filters = {4, 3, 2, 1, 0}}))
put("png", "grey8_adam7", png(9, 9, 0, 8, grey(8), {interlace = true}))
put("png", "rgba8_adam7", png(5, 3, 6, 8, rgb(8, true), {interlace = true, filters = {1, 4}}))
put("png", "grey1_adam7", png(11, 2, 0, 1, grey(1), {interlace = true}))
put("png", "rgb8_chunks", png(3, 2, 2, 8, rgb(8), {split = 3, extra = {
  {"gAMA", string.pack(">I4", 45455)}, {"sRGB", "\0"},
  {"cHRM", string.pack(">I4I4I4I4I4I4I4I4", 31270, 32900, 64000, 33000, 30000, 60000, 15000,
    6000)},
  {"tEXt", "Comment\0fuzz seed"}, {"sBIT", "\5\6\5"}, {"pHYs", string.pack(">I4I4B", 1, 1, 0)}}}))
put("png", "one_pixel", png(1, 1, 0, 8, grey(8)))
-- What cnnlab writes (real deflate).
lab.write_png(path("png", "cnnlab_grey.png"), (lab.rand({1, 6, 5}, {generator = g}) * 255):byte())
lab.write_png(path("png", "cnnlab_rgb.png"), lab.rand({3, 4, 7}, {generator = g}))

-- Seeds must be valid: a refused seed would only teach the fuzzer an error path.
local readers = {idx = lab.read_idx, safetensors = lab.load_safetensors, png = lab.read_png}
for kind, read in pairs(readers) do
  for _, name in ipairs(lab.listdir(out .. "/" .. kind)) do
    local ok, err = pcall(read, out .. "/" .. kind .. "/" .. name)
    if not ok then error("make_seeds: seed " .. kind .. "/" .. name .. " is refused: " .. err, 0) end
  end
end

print(("seeds in %s: %d idx, %d safetensors, %d png"):format(out, count.idx, count.safetensors,
  count.png))
