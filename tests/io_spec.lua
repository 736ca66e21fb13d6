-- File formats from Lua: IDX (raw and gzip, malformed headers, truncation), PNG (round trips,
-- grids, bad files), safetensors (round trips, every dtype, corrupt files), the MD5 check of
-- data/fetch.sh, argument misuse of every io function, and the small util/svg modules.
local lab = require "cnnlab"
local util = require "cnnlab.util"
local svg = require "cnnlab.svg"

local tmp = os.tmpname()
os.remove(tmp)
util.mkdir_p(tmp)
local function path(name) return tmp .. "/" .. name end

local function write_bytes(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
  return p
end

local function equal(a, b)
  return a.dtype == b.dtype and table.concat(a.shape, "x") == table.concat(b.shape, "x")
    and (a:numel() == 0 or a:eq(b):sum():item() == a:numel())
end

local function be32(v) return string.pack(">I4", v) end

local function errmsg(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

teardown(function() os.execute("rm -rf " .. util.shell_quote(tmp)) end)

describe("IDX", function()
  it("round-trips uint8, int64 and float32, raw and gzip", function()
    local u8 = lab.tensor({{{0, 1, 2}, {250, 255, 7}}, {{9, 8, 7}, {6, 5, 4}}}, {dtype = "uint8"})
    local i64 = lab.tensor({0, -1, 2147483647, -2147483648, 42}, {dtype = "int64"})
    local f32 = lab.tensor({{1.5, -2.25}, {1e-20, 3}})
    for _, gz in ipairs({false, true}) do
      for _, t in ipairs({u8, i64, f32}) do
        local p = path(gz and "rt.idx.gz" or "rt.idx")
        lab.write_idx(p, t, {gzip = gz})
        assert.is_true(equal(t, lab.read_idx(p)))
      end
    end
    -- gzip is chosen by the name unless told otherwise
    lab.write_idx(path("auto.gz"), u8)
    assert.equal("\x1f\x8b", util.read_file(path("auto.gz")):sub(1, 2))
    lab.write_idx(path("plain"), u8)
    assert.equal("\0\0\8\3", util.read_file(path("plain")):sub(1, 4))
  end)

  it("reads the other IDX element types", function()
    write_bytes(path("i16"), "\0\0\x0B\1" .. be32(2) .. "\x80\0\x12\x34")
    local t = lab.read_idx(path("i16"))
    assert.equal("int64", t.dtype)
    assert.same({-32768, 0x1234}, t:totable())
    write_bytes(path("f64"), "\0\0\x0E\1" .. be32(1) .. string.pack(">d", 0.1))
    assert.equal("float32", lab.read_idx(path("f64")).dtype)
    assert.is_true(math.abs(lab.read_idx(path("f64")):get(0) - 0.1) < 1e-8)
  end)

  it("names the file and the problem for every malformed header", function()
    local cases = {
      {"", "truncated: expected a 4-byte header, got 0 bytes"},
      {"\0\0", "truncated: expected a 4-byte header, got 2 bytes"},
      {"\1\2\8\1" .. be32(1) .. "x", "not an IDX file: magic 01 02 08 01"},
      {"\0\0\7\1" .. be32(1) .. "x", "unknown element type 0x07"},
      {"\0\0\8\9", "9 dimensions, at most 8 supported"},
      {"\0\0\8\2" .. be32(1), "truncated: the header of 2 dimensions needs 12 bytes, got 8"},
      {"\0\0\8\2" .. be32(2) .. be32(2) .. "abc", "truncated: expected 16 bytes, got 15"},
      {"\0\0\8\1" .. be32(2) .. "abc", "trailing data: expected 10 bytes, the file has 11"},
      {"\0\0\x0C\1" .. be32(2) .. "abcdefg", "truncated: expected 16 bytes, got 15"},
    }
    for i, c in ipairs(cases) do
      local p = write_bytes(path("bad" .. i), c[1])
      local msg = errmsg(lab.read_idx, p)
      assert.truthy(msg:find(p, 1, true), msg)
      assert.truthy(msg:find(c[2], 1, true), "case " .. i .. ": " .. msg)
    end
    assert.truthy(errmsg(lab.read_idx, path("nope")):find("cannot open"))
  end)

  it("detects truncation and trailing data inside gzip", function()
    local t = lab.zeros({50, 50}, {dtype = "uint8"})
    lab.write_idx(path("ok.gz"), t, {gzip = true})
    local whole = util.read_file(path("ok.gz"))
    write_bytes(path("cut.gz"), whole:sub(1, #whole // 2))
    local msg = errmsg(lab.read_idx, path("cut.gz"))
    assert.truthy(msg:find("cut.gz", 1, true) and (msg:find("truncated") or msg:find("corrupt")), msg)
  end)

  it("refuses int64 values that IDX's int32 cannot hold, before creating the file", function()
    local msg = errmsg(lab.write_idx, path("big.idx"), lab.tensor({3e9}, {dtype = "int64"}))
    assert.truthy(msg:find("does not fit IDX's int32"), msg)
    assert.is_false(util.exists(path("big.idx")))
  end)
end)

describe("PNG", function()
  it("writes and reads back the same bytes, grey and RGB", function()
    local g = lab.tensor({{{0, 10, 20}, {30, 200, 255}}}, {dtype = "uint8"})
    lab.write_png(path("g.png"), g)
    assert.is_true(equal(g, lab.read_png(path("g.png"))))
    local rgb = lab.synth_digits(3, 1):narrow(1, 10, 8):narrow(2, 4, 8):clone()
    lab.write_png(path("c.png"), rgb)
    assert.is_true(equal(rgb, lab.read_png(path("c.png"))))
    -- a float image is clipped and scaled: 0.5 → 128
    lab.write_png(path("f.png"), lab.tensor({{-1, 0.5, 2}}))
    assert.same({{{0, 128, 255}}}, lab.read_png(path("f.png")):totable())
  end)

  it("makes grids of the documented size", function()
    local ims = lab.zeros({5, 3, 4, 4}, {dtype = "uint8"})
    local g = lab.image_grid(ims, {ncol = 3, pad = 2, scale = 2, pad_value = 255})
    assert.same({3, 22, 32}, g.shape)
    assert.equal(255, g:get(0, 0, 0))
    assert.equal(0, g:get(0, 2, 2))
    assert.same({1, 6, 26}, lab.image_grid(lab.zeros({5, 4, 4}), {ncol = 5, pad = 1}).shape)
    assert.equal("float32", lab.image_grid(lab.zeros({2, 1, 4, 4})).dtype)
  end)

  it("gives an error, never a crash, on bad PNGs", function()
    write_bytes(path("bad.png"), "\x89PNG\r\n\x1a\n garbage garbage garbage")
    assert.truthy(errmsg(lab.read_png, path("bad.png")):find("png: .*bad.png"))
    write_bytes(path("txt.png"), "hello")
    assert.truthy(errmsg(lab.read_png, path("txt.png")):find("not a PNG file"))
    local whole = util.read_file(path("g.png"))
    write_bytes(path("cut.png"), whole:sub(1, #whole - 20))
    assert.truthy(errmsg(lab.read_png, path("cut.png")):find("cut.png", 1, true))
    assert.truthy(errmsg(lab.write_png, path("x.png"), lab.zeros({2, 2, 2, 2})):find("expected an image"))
    assert.truthy(errmsg(lab.write_png, path("x.png"), lab.zeros({4, 2, 2})):find("got 4×2×2"))
  end)
end)

describe("safetensors", function()
  it("round-trips float32, uint8 and int64 with metadata", function()
    local ts = {
      w = lab.randn({3, 4}),
      img = lab.tensor({{1, 2}, {3, 255}}, {dtype = "uint8"}),
      idx = lab.tensor({0, -5, 1 << 40}, {dtype = "int64"}),
      scalar = lab.tensor(2.5),
      view = lab.randn({4, 3}):transpose(0, 1),
    }
    lab.save_safetensors(path("a.safetensors"), ts, {epoch = 3, note = "hé \"quoted\""})
    local back, meta = lab.load_safetensors(path("a.safetensors"))
    for name, t in pairs(ts) do assert.is_true(equal(t, back[name]), name) end
    assert.same({epoch = "3", note = "hé \"quoted\""}, meta)
    local info, meta2 = lab.safetensors_info(path("a.safetensors"))
    assert.equal(5, #info)
    assert.same(meta, meta2)
    local byname = {}
    for _, e in ipairs(info) do byname[e.name] = e end
    assert.same({3, 4}, byname.w.shape)
    assert.equal("U8", byname.img.dtype)
    assert.equal("I64", byname.idx.dtype)
    assert.same({0, 24}, byname.idx.offsets) -- 8-byte dtypes first
  end)

  it("writes the same bytes for the same contents", function()
    local a, b = lab.randn({5}), lab.zeros({2}, {dtype = "uint8"})
    lab.save_safetensors(path("x1"), {a = a, b = b}, {k1 = "1", k2 = "2"})
    lab.save_safetensors(path("x2"), {b = b, a = a}, {k2 = "2", k1 = "1"})
    assert.equal(util.read_file(path("x1")), util.read_file(path("x2")))
    local s = util.read_file(path("x1"))
    local n = string.unpack("<I8", s)
    assert.equal(0, n % 8)
    assert.truthy(s:sub(9, 8 + n):match("^{\"__metadata__\":{\"k1\":\"1\",\"k2\":\"2\"},\"a\":{\"dtype\":\"F32\""))
  end)

  local function file(header, data)
    return string.pack("<I8", #header) .. header .. (data or "")
  end

  it("converts every dtype the format has", function()
    local cases = {
      {"F64", string.pack("<dd", 1.5, -2), {1.5, -2}},
      {"F16", "\0\x3e\0\xc0", {1.5, -2}},
      {"BF16", "\xc0\x3f\0\xc0", {1.5, -2}},
      {"I8", "\xff\x7f", {-1, 127}},
      {"I16", string.pack("<i2i2", -300, 300), {-300, 300}},
      {"I32", string.pack("<i4i4", -70000, 70000), {-70000, 70000}},
      {"U16", string.pack("<I2I2", 65535, 1), {65535, 1}},
      {"U32", string.pack("<I4I4", 4000000000, 1), {4000000000, 1}},
      {"U64", string.pack("<I8I8", 7, 8), {7, 8}},
      {"BOOL", "\1\0", {1, 0}},
    }
    for _, c in ipairs(cases) do
      local h = string.format('{"t":{"dtype":"%s","shape":[2],"data_offsets":[0,%d]}}', c[1], #c[2])
      write_bytes(path("d.st"), file(h, c[2]))
      local t = lab.load_safetensors(path("d.st")).t
      assert.same(c[3], t:totable(), c[1])
    end
  end)

  it("names the file and the tensor for every corruption", function()
    local d8 = string.rep("\0", 8)
    local cases = {
      {file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}', d8), "invalid JSON"},
      {file('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', d8),
       "tensor 'a': shape [3] of F32 needs 12 bytes, data_offsets [0, 8] span 8"},
      {file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', d8:sub(1, 5)),
       "truncated: tensor 'a' ends at data byte 8, the file has 5"},
      {file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', d8:sub(1, 4)),
       "overlap tensor"},
      {file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', d8),
       "duplicate tensor name 'a'"},
      {file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', d8), "tensor 'a': gap of 4 bytes"},
      {file('{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}', d8), "tensor 'a': unsupported dtype 'C64'"},
      {string.pack("<I8", 1000) .. "{}", "header length 1000 exceeds the 2 bytes after it"},
      {"abc", "too short for the 8-byte header length"},
    }
    for i, c in ipairs(cases) do
      local p = write_bytes(path("corrupt" .. i .. ".safetensors"), c[1])
      local msg = errmsg(lab.load_safetensors, p)
      assert.truthy(msg:find(p, 1, true), msg)
      assert.truthy(msg:find(c[2], 1, true), "case " .. i .. ": " .. msg)
    end
  end)

  it("refuses bad saves and leaves the earlier file intact", function()
    local p = path("keep.safetensors")
    lab.save_safetensors(p, {a = lab.ones({2})})
    local before = util.read_file(p)
    assert.truthy(errmsg(lab.save_safetensors, p, {a = 1}):find("'a' must be a tensor, got number"))
    assert.truthy(errmsg(lab.save_safetensors, p, {lab.ones({1})}):find("names must be strings"))
    assert.truthy(errmsg(lab.save_safetensors, p, {__metadata__ = lab.ones({1})}):find("cannot name a tensor"))
    assert.truthy(errmsg(lab.save_safetensors, p, {a = lab.ones({1})}, {k = {}}):find("metadata 'k' must be a string"))
    assert.truthy(errmsg(lab.save_safetensors, "/nonexistent-dir/x.safetensors", {a = lab.ones({1})}):find("cannot create"))
    assert.equal(before, util.read_file(p))
    local leftovers = io.popen("ls " .. util.shell_quote(tmp) .. " | grep -c '\\.tmp\\.'"):read("a")
    assert.equal("0", leftovers:match("%d+"))
  end)
end)

describe("io argument checks", function()
  it("name the function and the argument", function()
    local t = lab.zeros({2, 3, 4, 4}, {dtype = "uint8"})
    local l = lab.tensor({1, 2}, {dtype = "int64"})
    local cases = {
      {lab.read_idx, {nil}, "string expected"},
      {lab.write_idx, {path("x"), 3}, "tensor expected"},
      {lab.write_idx, {path("x"), t, {zip = true}}, "write_idx: unknown option 'zip'"},
      {lab.image_grid, {t, {ncol = 0}}, "image_grid: option 'ncol' must be an integer in 1..1048576, got 0"},
      {lab.image_grid, {t, {size = 2}}, "image_grid: unknown option 'size'"},
      {lab.image_grid, {l}, "image_grid: expected images"},
      {lab.assign_colors, {l, 2, "easy", 0, "train"}, "assign_colors: rho (argument #2) must be in [0, 1], got 2"},
      {lab.assign_colors, {l, 1, "medium", 0, "train"}, "kind (argument #3) must be \"easy\" or \"hard\""},
      {lab.assign_colors, {l, 1, "easy", 0.5, "train"}, "assign_colors: seed (argument #4) must be an integer"},
      {lab.assign_colors, {l, 1, "easy", 0, "test"}, "set (argument #5) must be \"train\", \"val\", \"hard\""},
      {lab.assign_colors, {lab.tensor({12}, {dtype = "int64"}), 1, "easy", 0, 2}, "labels[0] = 12 is not a class"},
      {lab.colorize, {t, l, 0.25, 0, "train"}, "colorize: grey must be uint8 N×H×W, got uint8 2×3×4×4"},
      {lab.colorize, {lab.zeros({3, 4, 4}, {dtype = "uint8"}), l, 0.25, 0, "train"}, "colorize: 2 colours for 3 images"},
      {lab.colorize, {lab.zeros({2, 4, 4}, {dtype = "uint8"}), l, 2, 0, "train"}, "colorize: beta (argument #3) must be in [0, 1]"},
      {lab.split_indices, {-1, 0}, "split_indices: n (argument #1) must be an integer"},
      {lab.to_grey, {lab.zeros({2, 4, 4, 4})}, "to_grey: expected float32 or uint8 images N×3×H×W"},
      {lab.gather_batch, {t, lab.tensor({5}, {dtype = "int64"})}, "gather_batch: index[0] = 5 out of range for 2 images"},
      {lab.gather_batch, {t, lab.tensor({0})}, "gather_batch: index must be a 1-D int64 tensor"},
      {lab.synth_digits, {1.5, 0}, "synth_digits: n (argument #1) must be an integer"},
      {lab.load_safetensors, {path("missing")}, "cannot open"},
    }
    for i, c in ipairs(cases) do
      local msg = errmsg(c[1], table.unpack(c[2], 1, 5))
      assert.truthy(msg:find(c[3], 1, true), "case " .. i .. ": " .. msg)
    end
  end)

  it("leaks nothing when they fail", function()
    collectgarbage()
    collectgarbage()
    local before = lab.memory().in_use
    for _ = 1, 50 do
      pcall(lab.read_idx, path("bad6"))
      pcall(lab.load_safetensors, path("corrupt3.safetensors"))
      pcall(lab.read_png, path("cut.png"))
      pcall(lab.colorize, lab.zeros({2, 4, 4}, {dtype = "uint8"}), lab.tensor({1, 11}, {dtype = "int64"}), 0.1, 0, 2)
    end
    collectgarbage()
    collectgarbage()
    assert.equal(before, lab.memory().in_use)
  end)
end)

describe("data/fetch.sh", function()
  local real = "data/mnist"
  local have_real = util.exists(real .. "/t10k-labels-idx1-ubyte")

  local function run(dir)
    local out = path("fetch.out")
    local ok = os.execute("sh data/fetch.sh --offline --dir " .. util.shell_quote(dir) .. " >"
      .. out .. " 2>&1")
    return ok, util.read_file(out)
  end

  it("rejects a file whose MD5 differs, naming it", function()
    local dir = path("mnist-bad")
    util.mkdir_p(dir)
    local content = have_real and util.read_file(real .. "/t10k-labels-idx1-ubyte")
      or ("\0\0\8\1" .. be32(10000) .. string.rep("\7", 10000))
    -- one changed byte
    content = content:sub(1, 99) .. string.char((content:byte(100) + 1) % 256) .. content:sub(101)
    write_bytes(dir .. "/t10k-labels-idx1-ubyte", content)
    local ok, out = run(dir)
    assert.is_falsy(ok)
    assert.truthy(out:find("t10k-labels-idx1-ubyte: MD5 mismatch", 1, true), out)
    assert.truthy(out:find("27ae3e4e09519cfbb04c329615203637", 1, true), out)
  end)

  it("says what to place where when offline with nothing to use", function()
    local dir = path("mnist-empty")
    util.mkdir_p(dir)
    local ok, out = run(dir)
    assert.is_falsy(ok)
    assert.truthy(out:find("Place these files", 1, true), out)
    assert.truthy(out:find("train-images-idx3-ubyte  (MD5 6bbc9ace898e44ae57da46a324031adb)", 1, true), out)
  end)

  it("accepts valid files (raw and .gz) and does nothing when all are there", function()
    if not have_real then
      pending("real MNIST not in data/mnist (run 'make data'); skipped")
      return
    end
    local dir = path("mnist-good")
    util.mkdir_p(dir)
    local cwd = io.popen("pwd"):read("l")
    for _, f in ipairs({"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"}) do
      os.execute(string.format("ln -s %s %s", util.shell_quote(cwd .. "/" .. real .. "/" .. f),
        util.shell_quote(dir .. "/" .. f)))
    end
    os.execute(string.format("gzip -c %s > %s", util.shell_quote(real .. "/t10k-labels-idx1-ubyte"),
      util.shell_quote(dir .. "/t10k-labels-idx1-ubyte.gz")))
    local ok, out = run(dir)
    assert.is_truthy(ok, out)
    assert.truthy(out:find("t10k-labels-idx1-ubyte from", 1, true), out)
    ok, out = run(dir)
    assert.is_truthy(ok)
    assert.truthy(out:match("^MNIST ok in"), out)
  end)
end)

describe("util and svg", function()
  it("encodes JSON with sorted keys and numbers as numbers", function()
    assert.equal('{"a":1,"b":[1.5,"x",true],"c":null,"d":2.0}',
      util.json_encode({d = 2.0, b = {1.5, "x", true}, a = 1, c = 0 / 0}))
    assert.equal('"q\\"\\n"', util.json_encode('q"\n'))
    assert.equal("0.1", util.json_encode(0.1))
    local back = util.json_decode(util.json_encode({x = {1, 2}, y = "z"}))
    assert.same({x = {1, 2}, y = "z"}, back)
  end)

  it("parses --flag value, --flag=value, switches, and refuses unknown flags", function()
    local spec = {name = "t", options = {{"seed", 0, "seed"}, {"rho", 1.0, "rho"},
      {"out", "runs/x", "out"}, {"quick", false, "quick"}}}
    local o = util.parse_args({"--seed", "7", "--rho=0.5", "--quick", "--out", "d"}, spec, {exit = false})
    assert.same({seed = 7, rho = 0.5, quick = true, out = "d"}, o)
    assert.equal("integer", math.type(o.seed))
    assert.same({seed = 0, rho = 1.0, out = "runs/x", quick = false}, util.parse_args({}, spec, {exit = false}))
    assert.truthy(errmsg(util.parse_args, {"--sed", "1"}, spec, {exit = false}):find("unknown option %-%-sed"))
    assert.truthy(errmsg(util.parse_args, {"--seed", "x"}, spec, {exit = false}):find("expects an integer"))
    assert.truthy(errmsg(util.parse_args, {"--seed"}, spec, {exit = false}):find("needs a value"))
    local _, help = util.parse_args({"--help"}, spec, {exit = false})
    assert.truthy(help:find("--rho X", 1, true))
  end)

  it("writes files atomically and draws well-formed SVG", function()
    util.write_file(path("w.txt"), "hello")
    assert.equal("hello", util.read_file(path("w.txt")))
    local docs = {
      svg.heatmap{values = {{1, 2}, {3, 4}}, title = "t <&>", xlabel = "x", ylabel = "y"},
      svg.bars{labels = {"a", "b"}, series = {{name = "s1", values = {1, 2}}, {name = "s2", values = {2, 0.5}}}},
      svg.lines{series = {{name = "l", x = {0, 1, 2}, y = {0.5, 0.7, 0.9}}}, xlabel = "epoch"},
    }
    for _, d in ipairs(docs) do
      assert.truthy(d:match("^<svg .*</svg>\n$"))
      local _, opens = d:gsub("<text", "")
      local _, closes = d:gsub("</text>", "")
      assert.equal(opens, closes)
      assert.is_falsy(d:find("<&>", 1, true))
    end
    svg.save(path("h.svg"), docs[1])
    assert.equal(docs[1], util.read_file(path("h.svg")))
  end)
end)
