-- Hostile input (docs/reliability.md, "Hostile arguments"): each case is one finding of an
-- attack campaign on the Lua API and the file readers — a crash, a hang, undefined behaviour,
-- a silently wrong answer or a small input taking huge memory. Each must now give a clear
-- error or the right answer. The cases that used to hang (a FIFO as a path, printing a huge
-- view, Ctrl-C in the REPL) run in a child process under `timeout`, so a regression fails the
-- case instead of hanging the suite.
local lab = require "cnnlab"
local util = lab.util

local BIN = os.getenv("CNNLAB_BIN") or "./cnnlab"
local function q(s) return util.shell_quote(s) end

local tmp = os.tmpname()
os.remove(tmp)
util.mkdir_p(tmp)
teardown(function() os.execute("rm -rf " .. q(tmp)) end)
local function path(name) return tmp .. "/" .. name end

-- Runs code in a child cnnlab under `timeout`; returns its output and exit status
-- (124: timed out).
local function child(code, seconds)
  local out = path("child.out")
  local _, _, status = os.execute(("timeout %d %s -e %s >%s 2>&1"):format(seconds or 60, q(BIN),
    q(code), q(out)))
  local f = io.open(out, "rb")
  local text = f and f:read("a") or ""
  if f then f:close() end
  return text, status
end

local function fails_with(fragment, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error containing: " .. fragment)
  assert.truthy(tostring(err):find(fragment, 1, true),
    ("expected %q in the error, got: %s"):format(fragment, tostring(err)))
  -- the error is reported at the caller's line, not inside the binding
  assert.truthy(tostring(err):find("hostile_spec.lua:%d+:"), "no caller position in: " .. tostring(err))
end

local function i64(t) return lab.tensor(t, {dtype = "int64"}) end

describe("crash", function()
  it("narrow with a length near 2^63 is refused (was a heap overflow)", function()
    fails_with("narrow: start 1, length 9223372036854775807 are outside dimension 0 of size 3",
      function() return lab.ones(3):narrow(0, 1, math.maxinteger) end)
  end)
  it("narrow with a start near 2^63 is refused (printed garbage)", function()
    fails_with("narrow: start 9223372036854775807, length 2 are outside",
      function() return lab.ones(3):narrow(0, math.maxinteger, 2) end)
  end)
  it("a valid narrow still works, and set stays inside it", function()
    local t = lab.zeros(5)
    local v = t:narrow(0, 3, 2)
    v:set(1, 7)
    assert.same({0, 0, 0, 0, 7}, t:totable())
    fails_with("set: index 2 out of range", function() v:set(2, 7) end)
  end)
end)

describe("hang", function()
  local function fifo(name)
    local p = path(name)
    assert(os.execute("mkfifo " .. q(p)))
    return p
  end
  for _, call in ipairs({"load_safetensors", "safetensors_info", "read_idx", "read_png"}) do
    it(call .. " on a FIFO says it is not a regular file, at once", function()
      local p = fifo(call .. ".fifo")
      local out, status = child(("local ok, e = pcall(lab.%s, %q); print(ok, e)"):format(call, p), 20)
      assert.are_not.equal(124, status, "timed out: " .. out)
      assert.truthy(out:find("not a regular file", 1, true), out)
    end)
  end
  it("a script's --model given a FIFO fails instead of blocking", function()
    local p = fifo("model.fifo")
    local out, status = child(("local ok, e = pcall(lab.load_safetensors, %q); print(ok, e)"):format(p), 20)
    assert.are_not.equal(124, status)
    assert.truthy(out:find("false", 1, true) and out:find("not a regular file", 1, true), out)
  end)
  it("printing ones(1):expand(2^40) shows the edges at once", function()
    local out, status = child("print(lab.ones(1):expand(2^40))", 20)
    assert.are.equal(0, status, out)
    assert.truthy(out:find("tensor(float32, 1099511627776, edges shown)", 1, true), out)
    assert.truthy(out:find("[1.0000, 1.0000, 1.0000, ..., 1.0000, 1.0000, 1.0000]", 1, true), out)
  end)
  it("printing a 1×20000×20000 tensor reads only the shown elements", function()
    local t = lab.zeros(1, 1, 20000):expand(1, 20000, 20000)
    local t0 = lab.now()
    local s = tostring(t)
    assert.truthy(lab.now() - t0 < 1, "printing took " .. (lab.now() - t0) .. " s")
    assert.truthy(#s < 2000, "printed " .. #s .. " characters")
    assert.truthy(s:find("...,", 1, true))
  end)
  it("printing int64 values shows them exactly", function()
    assert.truthy(tostring(i64({math.maxinteger, math.mininteger})):find(
      "9223372036854775807, -9223372036854775808", 1, true))
  end)
  it("Ctrl-C in the REPL stops a long C loop; the REPL goes on", function()
    local out = path("repl.out")
    -- the REPL says its own process id (read from /proc) before the long loop starts, and the
    -- signal goes to it directly rather than through timeout(1)
    os.execute(("( (echo 'local f = io.open(\"/proc/self/stat\"); io.stderr:write(\"started \" .. " ..
      "f:read(\"n\") .. \" \"); f:close(); x = lab.zeros(1, {dtype=\"int64\"})" ..
      ":expand(2^40):sum()'; sleep 4; echo 'print(\"alive \" .. 40 + 2)') | timeout 60 %s -i " ..
      ">%s 2>&1; wait ) &"):format(q(BIN), q(out)))
    -- SIGINT only once the REPL runs the long loop (a sanitizer build starts slowly; a signal
    -- before the REPL's handler is installed would just end the process)
    local function output()
      local g = io.open(out, "rb")
      local t = g and g:read("a") or ""
      if g then g:close() end
      return t
    end
    local start_deadline = lab.now() + 30
    while lab.now() < start_deadline and not output():find("started %d+ ") do
      os.execute("sleep 0.2")
    end
    local pid = assert(output():match("started (%d+) "), "the REPL did not start: " .. output())
    os.execute("sleep 0.5")
    os.execute("kill -INT " .. pid)
    local text = ""
    local deadline = lab.now() + 40
    while lab.now() < deadline do
      os.execute("sleep 0.5")
      local g = io.open(out, "rb")
      text = g and g:read("a") or ""
      if g then g:close() end
      if text:find("alive 42", 1, true) then break end
    end
    assert.truthy(text:find("interrupted", 1, true), text)
    assert.truthy(text:find("alive 42", 1, true), text)
  end)
end)

describe("undefined behaviour", function()
  it("view(2^62, 2^62) is refused naming the sizes", function()
    fails_with("reshape: shape 4611686018427387904×4611686018427387904 has more elements than",
      function() return lab.ones(4):view(2^62, 2^62) end)
  end)
  it("expand(2^40, 2^40, 2^40) is refused naming the sizes", function()
    fails_with("expand: shape 1099511627776×1099511627776×1099511627776 has more elements",
      function() return lab.ones(1):expand(2^40, 2^40, 2^40) end)
  end)
  it("expand(2^40) counts its elements right", function()
    assert.equal(1 << 40, lab.ones(1):expand(2^40):numel())
  end)
  it("upsample_bilinear(x, 2^30, 2^30) is refused", function()
    fails_with("upsample_bilinear: shape 1×1×1073741824×1073741824: tensor of more than 2^40",
      function() return lab.upsample_bilinear(lab.ones(1, 1, 2, 2), 2^30, 2^30) end)
  end)
  it("an int64 sum that overflows is refused, not wrapped", function()
    fails_with("sum: the int64 sum overflows",
      function() return i64({math.maxinteger, 1}):sum() end)
  end)
  it("arange with 1e300 elements is refused (the count no longer overflows)", function()
    fails_with("arange: 1.0000000000000001e+300 elements (from 0 to 1e+300 by 1): tensor of more than 2^40",
      function() return lab.arange(0, 1e300) end)
  end)
end)

describe("silently wrong", function()
  it("expand(-5, 3) is refused; -1 keeps a size", function()
    fails_with("expand: a size must be >= 0 (or -1 to keep the size), got -5",
      function() return lab.ones(1, 3):expand(-5, 3) end)
    assert.same({4, 3}, lab.ones(1, 3):expand(4, -1).shape)
    fails_with("expand: size -1 of dimension 0 is invalid",
      function() return lab.ones(3):expand(-1, 3) end)
  end)
  it("int64 maxinteger round-trips through tensor/item/get/totable", function()
    local t = i64({math.maxinteger, math.mininteger, (1 << 53) + 1})
    assert.equal(math.maxinteger, t:get(0))
    assert.equal(math.mininteger, t:get(1))
    assert.equal((1 << 53) + 1, t:get(2))
    assert.equal(math.maxinteger, i64({math.maxinteger}):item())
    assert.same({math.maxinteger, math.mininteger, (1 << 53) + 1}, t:totable())
    assert.equal((1 << 53) + 1, t:clone():get(2))
    assert.equal((1 << 53) + 1, t:narrow(0, 1, 2):contiguous():get(1))
    assert.equal((1 << 53) + 1 + math.mininteger, t:narrow(0, 1, 2):sum():item())
  end)
  it("set and fill_ on int64 are exact", function()
    local t = lab.zeros(2, {dtype = "int64"})
    t:set(0, (1 << 53) + 1)
    t:fill_(math.maxinteger)
    assert.equal(math.maxinteger, t:get(1))
    t:set(1, (1 << 53) + 1)
    assert.equal((1 << 53) + 1, t:get(1))
    assert.equal(math.maxinteger, lab.full({1}, math.maxinteger, {dtype = "int64"}):item())
  end)
  it("NaN, 2^70 and 2^63 are refused for int64; 300 for uint8", function()
    fails_with("tensor: NaN cannot be stored in a int64 tensor",
      function() return lab.tensor({0 / 0}, {dtype = "int64"}) end)
    fails_with("fill_: 1.1805916207174113e+21 is outside the range of int64",
      function() lab.zeros(2, {dtype = "int64"}):fill_(2^70) end)
    fails_with("is outside the range of int64",
      function() lab.zeros(2, {dtype = "int64"}):set(0, 2^63) end)
    fails_with("300 is outside the range of uint8",
      function() lab.zeros(2, {dtype = "uint8"}):set(0, 300) end)
  end)
  it("dimension arguments beyond int are refused with their real value", function()
    fails_with("unsqueeze: position 4294967296 out of range 0..2",
      function() return lab.ones(2, 3):unsqueeze(2^32) end)
    fails_with("permute: dimension 4294967297 out of range",
      function() return lab.ones(2, 3):permute(2^32 + 1, 2^32) end)
    fails_with("sum: dimension 4294967296 out of range for a tensor with 2 dimensions (expected -2..1",
      function() return lab.ones(2, 3):sum(2^32) end)
    fails_with("size: dimension -4294967296 out of range",
      function() return lab.ones(2, 3):size(-2^32) end)
    fails_with("select: dimension 4294967296 out of range",
      function() return lab.ones(2, 3):select(2^32, 0) end)
  end)
  it("names with an embedded NUL are refused", function()
    fails_with("save_safetensors: a tensor name contains a NUL byte",
      function() lab.save_safetensors(path("a.st"), {["a\0b"] = lab.ones(2)}) end)
    fails_with("save_safetensors: a metadata key contains a NUL byte",
      function() lab.save_safetensors(path("b.st"), {a = lab.ones(2)}, {["k\0x"] = "v"}) end)
    fails_with("save_safetensors: a metadata value contains a NUL byte",
      function() lab.save_safetensors(path("c.st"), {a = lab.ones(2)}, {k = "v\0x"}) end)
    fails_with("save_safetensors: path contains a NUL byte",
      function() lab.save_safetensors(path("d.st\0.txt"), {a = lab.ones(2)}) end)
    fails_with("read_idx: path contains a NUL byte", function() lab.read_idx("a\0b") end)
    assert.is_nil(io.open(path("a.st"), "rb"))
  end)
  it("NaN options are refused: clamp, Adam, SGD", function()
    fails_with("clamp: min must be a number, got NaN", function() return lab.ones(2):clamp(0 / 0, 1) end)
    fails_with("clamp: max must be a number, got NaN", function() return lab.ones(2):clamp(0, 0 / 0) end)
    local p = lab.zeros(2, {requires_grad = true})
    fails_with("Adam: option 'lr' must be a finite number, got nan",
      function() lab.optim.Adam({p}, {lr = 0 / 0}) end)
    fails_with("SGD: option 'momentum' must be a finite number, got nan",
      function() lab.optim.SGD({p}, {lr = 0.1, momentum = 0 / 0}) end)
    fails_with("adam_step: lr must be a finite number, got nan", function()
      lab.adam_step(lab.zeros(2), lab.zeros(2), lab.zeros(2), lab.zeros(2), 1, 0 / 0)
    end)
  end)
  it("a negative Adam step count from a checkpoint is refused", function()
    local p = lab.zeros(2, {requires_grad = true})
    local opt = lab.optim.Adam({p}, {lr = 0.1})
    local tensors, scalars = opt:state_dict()
    scalars.step = -3
    fails_with("load_state_dict: the step count must be a non-negative integer, got -3",
      function() opt:load_state_dict(tensors, scalars) end)
    scalars.step = "0/0"
    fails_with("the step count must be a non-negative integer",
      function() opt:load_state_dict(tensors, scalars) end)
  end)
end)

describe("small inputs, huge memory", function()
  local function write(name, bytes)
    local f = assert(io.open(path(name), "wb"))
    f:write(bytes)
    f:close()
    return path(name)
  end
  it("an IDX of i8 reads as float32, not int64", function()
    local p = write("i8.idx", "\0\0\9\1\0\0\0\3\128\127\255")
    local t = lab.read_idx(p)
    assert.equal("float32", t.dtype)
    assert.same({-128, 127, -1}, t:totable())
  end)
  it("a small gzip IDX announcing 400 MB is refused before allocating", function()
    -- 52 million i8 elements would take 208 MB as float32; the gzip file is a few bytes
    local p = write("big.idx", "\0\0\9\1" .. string.pack(">I4", 52000000))
    os.execute("gzip -c " .. q(p) .. " > " .. q(p .. ".gz"))
    fails_with("more than a", function() return lab.read_idx(p .. ".gz") end)
  end)
  it("an IDX announcing more than 2^31 elements is refused", function()
    local p = write("huge.idx", "\0\0\8\2" .. string.pack(">I4>I4", 65536, 65537))
    fails_with("at most 2^31 accepted", function() return lab.read_idx(p) end)
  end)
  it("a PNG over 2^26 pixels is refused, naming the limit", function()
    -- a 16384×16384 grey header with valid CRCs: refused before any pixel is decoded
    local function crc32(s)
      local c = 0xFFFFFFFF
      for i = 1, #s do
        c = c ~ s:byte(i)
        for _ = 1, 8 do c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
      end
      return c ~ 0xFFFFFFFF
    end
    local function chunk(kind, data)
      return string.pack(">I4", #data) .. kind .. data .. string.pack(">I4", crc32(kind .. data))
    end
    local p = write("big.png", "\137PNG\r\n\26\n" ..
      chunk("IHDR", string.pack(">I4>I4BBBBB", 16384, 16384, 8, 0, 0, 0, 0)) ..
      chunk("IDAT", "") .. chunk("IEND", ""))
    fails_with("16384×16384 pixels (at most 2^26 = 8192×8192 accepted)",
      function() return lab.read_png(p) end)
  end)
  it("a safetensors header above 8 MiB is refused before parsing", function()
    local n = 9 * 1024 * 1024
    local p = write("big.st", string.pack("<I8", n) .. "{" .. string.rep(" ", n - 2) .. "}")
    fails_with("larger than the 8 MiB accepted", function() return lab.safetensors_info(p) end)
  end)
  it("a safetensors header of more than 65536 entries is refused", function()
    local parts = {}
    for i = 1, 70000 do parts[i] = ('"t%d":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}'):format(i) end
    local hdr = "{" .. table.concat(parts, ",") .. "}"
    local p = write("many.st", string.pack("<I8", #hdr) .. hdr)
    fails_with("70000 entries in the header, at most 65536 accepted",
      function() return lab.safetensors_info(p) end)
  end)
end)
