-- Bad files and bad places to write them (docs/reliability.md):
--   * data/fetch.sh with corrupt, truncated and wrong-checksum MNIST files (raw and .gz): an
--     error naming the file, and the bad file never used;
--   * every truncation of a small valid IDX (raw and gzip), safetensors and PNG file: an error
--     naming the file (or, for a PNG cut after its image data, the same image), never a crash;
--   * checkpoints with a missing, extra, mis-shaped, mistyped or truncated tensor: an error
--     naming the tensor;
--   * an unwritable or full output folder: a clear error, the earlier file intact, no
--     temporary left behind. "Full" is a 64 kB tmpfs when this process may mount one, and a
--     file-size limit (ulimit -f, EFBIG) otherwise and always.
local lab = require "cnnlab"
local util = lab.util

local BIN = os.getenv("CNNLAB_BIN") or "./cnnlab"

local tmp = os.tmpname()
os.remove(tmp)
util.mkdir_p(tmp)
local mounts = {}
teardown(function()
  for _, m in ipairs(mounts) do os.execute("umount " .. util.shell_quote(m) .. " 2>/dev/null") end
  os.execute("rm -rf " .. util.shell_quote(tmp))
end)
local function path(name) return tmp .. "/" .. name end
local function write(p, bytes)
  local f = assert(io.open(p, "wb"))
  f:write(bytes)
  f:close()
  return p
end
local function errmsg(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end
local function temporaries(dir)
  local n = 0
  for _, name in ipairs(lab.listdir(dir) or {}) do
    if name:find("%.tmp%.") or name:find("^%.fetch%.") then n = n + 1 end
  end
  return n
end
local function same(a, b)
  return a.dtype == b.dtype and table.concat(a.shape, "x") == table.concat(b.shape, "x")
    and (a:numel() == 0 or a:eq(b):sum():item() == a:numel())
end
local function sh(cmd)
  local out = os.tmpname()
  local ok, how, code = os.execute(cmd .. " >" .. out .. " 2>&1")
  local text = util.read_file(out)
  os.remove(out)
  return ok, text, code, how
end

-- ------------------------------------------------------------------ data/fetch.sh

describe("data/fetch.sh", function()
  local labels = "t10k-labels-idx1-ubyte"
  local real = "data/mnist/" .. labels
  local have_real = util.exists(real)
  -- the real file when there is one, else a well-formed stand-in (whose MD5 is then wrong)
  local content = have_real and util.read_file(real)
    or ("\0\0\8\1" .. string.pack(">I4", 10000) .. string.rep("\7", 10000))

  local function fetch(dir)
    return sh("sh data/fetch.sh --offline --dir " .. util.shell_quote(dir))
  end
  local function fresh(name)
    local d = path(name)
    util.mkdir_p(d)
    return d
  end

  it("refuses a truncated raw file, naming it and its expected MD5", function()
    local d = fresh("fetch-truncated")
    write(d .. "/" .. labels, content:sub(1, #content // 2))
    local ok, out = fetch(d)
    assert.is_falsy(ok)
    assert.truthy(out:find(d .. "/" .. labels .. ": MD5 mismatch", 1, true), out)
    assert.truthy(out:find("27ae3e4e09519cfbb04c329615203637", 1, true), out)
    assert.truthy(out:find("corrupt or partial", 1, true), out)
    assert.equal(0, temporaries(d))
  end)

  it("refuses a .gz that is not gzip, or is cut short, naming it and using nothing", function()
    for _, case in ipairs({{"garbage", "this is not gzip"}, {"cut", nil}}) do
      local d = fresh("fetch-gz-" .. case[1])
      local gz = case[2]
      if not gz then
        write(d .. "/full", content)
        assert(os.execute("gzip -c " .. util.shell_quote(d .. "/full") .. " > "
          .. util.shell_quote(d .. "/full.gz")))
        local whole = util.read_file(d .. "/full.gz")
        gz = whole:sub(1, #whole - 100)
        os.remove(d .. "/full")
        os.remove(d .. "/full.gz")
      end
      write(d .. "/" .. labels .. ".gz", gz)
      local ok, out = fetch(d)
      assert.is_falsy(ok)
      assert.truthy(out:find(d .. "/" .. labels .. ".gz: not a valid gzip file (corrupt or partial)",
        1, true), out)
      assert.is_false(util.exists(d .. "/" .. labels), "the bad file was used")
      assert.equal(0, temporaries(d))
    end
  end)

  it("refuses a valid .gz whose content has the wrong MD5, naming it", function()
    local d = fresh("fetch-gz-md5")
    local changed = content:sub(1, 99) .. string.char((content:byte(100) + 1) % 256)
      .. content:sub(101)
    write(d .. "/changed", changed)
    assert(os.execute("gzip -c " .. util.shell_quote(d .. "/changed") .. " > "
      .. util.shell_quote(d .. "/" .. labels .. ".gz")))
    os.remove(d .. "/changed")
    local ok, out = fetch(d)
    assert.is_falsy(ok)
    assert.truthy(out:find(labels .. " from " .. d .. "/" .. labels .. ".gz: MD5 mismatch", 1, true),
      out)
    assert.truthy(out:find("the file was not used", 1, true), out)
    assert.is_false(util.exists(d .. "/" .. labels), "the bad file was used")
    assert.equal(0, temporaries(d))
  end)

  it("names the file when MNIST in a folder is truncated (data.mnist, no fetch)", function()
    local d = fresh("mnist-cut")
    local idx = "\0\0\8\3" .. string.pack(">I4I4I4", 3, 2, 2) .. string.rep("\1", 12)
    for _, f in ipairs({"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"}) do write(d .. "/" .. f, idx) end
    write(d .. "/train-labels-idx1-ubyte", "\0\0\8\1" .. string.pack(">I4", 3) .. "\1\2\3")
    write(d .. "/t10k-labels-idx1-ubyte", "\0\0\8\1" .. string.pack(">I4", 3) .. "\1\2") -- 1 short
    local msg = errmsg(lab.data.mnist, d, {fetch = false})
    assert.truthy(msg:find("idx: " .. d .. "/t10k-labels-idx1-ubyte: truncated: expected 11 bytes, got 10",
      1, true), msg)
  end)
end)

-- ------------------------------------------------------------------ truncated files

describe("every truncation of a valid file", function()
  -- Reads every strict prefix of `bytes` with `read`; each must fail naming the file, except
  -- that accept(result) may allow a prefix that still holds everything (a PNG without IEND).
  local function sweep(name, bytes, read, accept)
    local p = path(name)
    local problems, accepted = {}, 0
    for n = 0, #bytes - 1 do
      write(p, bytes:sub(1, n))
      local ok, res = pcall(read, p)
      if ok then
        if accept and accept(res) then
          accepted = accepted + 1
        else
          problems[#problems + 1] = ("%s cut to %d of %d bytes was accepted"):format(name, n, #bytes)
        end
      elseif not tostring(res):find(p, 1, true) then
        problems[#problems + 1] = ("%s cut to %d bytes: message does not name the file: %s")
          :format(name, n, tostring(res))
      end
    end
    assert.same({}, problems)
    return accepted
  end

  it("is refused for IDX, raw and gzip", function()
    local t = lab.tensor({{1, 2, 3}, {4, 5, 6}}, {dtype = "int64"})
    lab.write_idx(path("whole.idx"), t, {gzip = false})
    sweep("raw.idx", util.read_file(path("whole.idx")), lab.read_idx)
    lab.write_idx(path("whole.idx.gz"), t, {gzip = true})
    -- a gzip stream cut inside its 8-byte trailer still holds all the data: accepted only if
    -- the values are exactly right
    sweep("cut.idx.gz", util.read_file(path("whole.idx.gz")), lab.read_idx,
      function(r) return same(r, t) end)
  end)

  it("is refused for safetensors", function()
    lab.save_safetensors(path("whole.safetensors"), {["fc.weight"] = lab.ones(2, 3),
      ["fc.bias"] = lab.zeros(2), labels = lab.tensor({1, 2}, {dtype = "int64"})}, {k = "v"})
    sweep("cut.safetensors", util.read_file(path("whole.safetensors")), lab.load_safetensors)
  end)

  it("is refused for PNG unless all the image data is there", function()
    local img = lab.synth_digits(1, 4):narrow(1, 4, 12):narrow(2, 4, 12):clone()
    lab.write_png(path("whole.png"), img)
    local whole = lab.read_png(path("whole.png"))
    sweep("cut.png", util.read_file(path("whole.png")), lab.read_png,
      function(r) return same(r, whole) end)
  end)
end)

-- ------------------------------------------------------------------ checkpoints

describe("a checkpoint", function()
  local function seed_sd()
    return lab.models.seed_cnn{generator = lab.Generator(1)}:state_dict()
  end
  local function load_into_model(file)
    local net = lab.models.seed_cnn{generator = lab.Generator(2)}
    return net:load_state_dict(lab.load_safetensors(file))
  end

  it("loads when whole, into a model with identical outputs", function()
    local src = lab.models.seed_cnn{generator = lab.Generator(1)}:eval()
    lab.save_safetensors(path("good.safetensors"), src:state_dict())
    local net = load_into_model(path("good.safetensors")):eval()
    local x = lab.rand({2, 3, 28, 28}, {generator = lab.Generator(3)})
    assert.equal(0, (net(x) - src(x)):abs():max():item())
  end)

  it("missing a tensor is refused, naming it", function()
    local sd = seed_sd()
    sd["conv2.bias"] = nil
    lab.save_safetensors(path("missing.safetensors"), sd)
    local msg = errmsg(load_into_model, path("missing.safetensors"))
    assert.truthy(msg:find("load_state_dict: missing tensor(s): conv2.bias", 1, true), msg)
  end)

  it("with an extra tensor is refused, naming it", function()
    local sd = seed_sd()
    sd["conv4.weight"] = lab.zeros(3)
    lab.save_safetensors(path("extra.safetensors"), sd)
    local msg = errmsg(load_into_model, path("extra.safetensors"))
    assert.truthy(msg:find("load_state_dict: unexpected tensor(s): conv4.weight", 1, true), msg)
  end)

  it("with a mis-shaped tensor is refused, naming it and both shapes", function()
    local sd = seed_sd()
    sd["fc.weight"] = lab.zeros(10, 511)
    lab.save_safetensors(path("shape.safetensors"), sd)
    local msg = errmsg(load_into_model, path("shape.safetensors"))
    assert.truthy(msg:find("load_state_dict: 'fc.weight' has shape 10×511 in the file but 10×512 "
      .. "in the model", 1, true), msg)
  end)

  it("whose file is cut inside a tensor is refused, naming the file and the tensor", function()
    lab.save_safetensors(path("cut.safetensors"), seed_sd())
    local whole = util.read_file(path("cut.safetensors"))
    write(path("cut.safetensors"), whole:sub(1, #whole - 1000))
    local msg = errmsg(load_into_model, path("cut.safetensors"))
    -- data is ordered by dtype size, then name: fc.weight comes last
    assert.truthy(msg:find("safetensors: " .. path("cut.safetensors")
      .. ": truncated: tensor 'fc.weight' ends at data byte", 1, true), msg)
  end)

  it("whose header lies about a tensor is refused, naming it", function()
    local h = '{"fc.bias":{"dtype":"F32","shape":[10],"data_offsets":[0,36]}}'
    write(path("lie.safetensors"), string.pack("<I8", #h) .. h .. string.rep("\0", 36))
    local msg = errmsg(load_into_model, path("lie.safetensors"))
    assert.truthy(msg:find("tensor 'fc.bias': shape [10] of F32 needs 40 bytes, data_offsets [0, 36] "
      .. "span 36", 1, true), msg)
  end)
end)

-- ------------------------------------------------------------------ where outputs go

-- Each writer: writes a small file, then tries a big one over it.
local writers = {
  {"safetensors", "model.safetensors",
    function(p, big) lab.save_safetensors(p, {w = lab.ones(big and 200000 or 4)}) end},
  {"png", "grid.png", function(p, big)
    lab.write_png(p, big and lab.rand({3, 400, 400}, {generator = lab.Generator(1)}) or lab.ones(1, 2, 2))
  end},
  {"idx", "digits.idx", function(p, big) lab.write_idx(p, lab.ones(big and 200000 or 4)) end},
  {"json", "metrics.json", function(p, big)
    util.write_json(p, {acc = 1, pad = big and string.rep("x", 300000) or "x"})
  end},
}

local function tmpfs(name, opts)
  local d = path(name)
  util.mkdir_p(d)
  local ok = os.execute(("mount -t tmpfs -o %s tmpfs %s 2>/dev/null"):format(opts,
    util.shell_quote(d)))
  if ok then mounts[#mounts + 1] = d end
  return ok and d or nil
end

describe("an output folder", function()
  it("that is full (tmpfs of 64 kB) gives a clear error and keeps the earlier file", function()
    local d = tmpfs("full", "size=64k")
    if not d then
      pending("cannot mount a tmpfs here (not root?): covered by the file-size limit case")
      return
    end
    for _, w in ipairs(writers) do
      local p = d .. "/" .. w[2]
      w[3](p, false)
      local before = util.read_file(p)
      local msg = errmsg(w[3], p, true)
      assert.truthy(msg:find(p, 1, true), w[1] .. ": " .. msg)
      assert.truthy(msg:find("No space left on device", 1, true), w[1] .. ": " .. msg)
      assert.equal(before, util.read_file(p), w[1] .. ": the earlier file changed")
      assert.equal(0, temporaries(d), w[1] .. ": temporary left behind")
    end
  end)

  it("over the file-size limit (ulimit -f) gives a clear error and keeps the earlier file", function()
    local d = path("limited")
    util.mkdir_p(d)
    for _, w in ipairs(writers) do
      local p = d .. "/" .. w[2]
      w[3](p, false)
      local before = util.read_file(p)
      -- a child process with a 64 kB limit; SIGXFSZ ignored so writes fail with EFBIG
      local script = path("write_big.lua")
      write(script, ([==[
        local lab = require "cnnlab"
        local util = lab.util
        local writers = {
          safetensors = function(p) lab.save_safetensors(p, {w = lab.ones(200000)}) end,
          png = function(p) lab.write_png(p, lab.rand({3, 400, 400})) end,
          idx = function(p) lab.write_idx(p, lab.ones(200000)) end,
          json = function(p) util.write_json(p, {acc = 1, pad = string.rep("x", 300000)}) end,
        }
        local ok, err = pcall(writers[arg[1]], arg[2])
        io.stderr:write(ok and "WROTE" or tostring(err), "\n")
        os.exit(ok and 0 or 3)
      ]==]))
      local ok, out, code = sh(("sh -c 'ulimit -f 128; trap \"\" XFSZ; exec \"$0\" \"$@\"' %s %s %s %s")
        :format(util.shell_quote(BIN), util.shell_quote(script), w[1], util.shell_quote(p)))
      assert.is_falsy(ok, w[1] .. ": the big write succeeded: " .. out)
      assert.equal(3, code, w[1] .. ": " .. out)
      assert.truthy(out:find(p, 1, true), w[1] .. ": " .. out)
      assert.truthy(out:find("File too large", 1, true), w[1] .. ": " .. out)
      assert.equal(before, util.read_file(p), w[1] .. ": the earlier file changed")
      assert.equal(0, temporaries(d), w[1] .. ": temporary left behind")
    end
  end)

  it("that cannot be written to gives a clear error and keeps the earlier file", function()
    local d = path("readonly")
    util.mkdir_p(d)
    for _, w in ipairs(writers) do w[3](d .. "/" .. w[2], false) end
    local before = {}
    for _, w in ipairs(writers) do before[w[1]] = util.read_file(d .. "/" .. w[2]) end
    -- root ignores permission bits: make the folder read-only by remounting it, else chmod
    local ro = false
    if os.execute("mount --bind " .. util.shell_quote(d) .. " " .. util.shell_quote(d) .. " 2>/dev/null") then
      mounts[#mounts + 1] = d
      ro = os.execute("mount -o remount,bind,ro " .. util.shell_quote(d) .. " 2>/dev/null")
    end
    if not ro then os.execute("chmod 555 " .. util.shell_quote(d)) end
    local probe = io.open(d .. "/probe", "wb")
    if probe then
      probe:close()
      os.remove(d .. "/probe")
      os.execute("chmod 755 " .. util.shell_quote(d))
      pending("cannot make a read-only folder here (root without mount)")
      return
    end
    for _, w in ipairs(writers) do
      local p = d .. "/" .. w[2]
      local msg = errmsg(w[3], p, false)
      assert.truthy(msg:find(p, 1, true), w[1] .. ": " .. msg)
      assert.truthy(msg:find("cannot create", 1, true), w[1] .. ": " .. msg)
      assert.truthy(msg:find("Read-only file system", 1, true) or msg:find("Permission denied", 1, true),
        w[1] .. ": " .. msg)
      assert.equal(before[w[1]], util.read_file(p), w[1] .. ": the earlier file changed")
    end
    assert.equal(0, temporaries(d))
    if not ro then os.execute("chmod 755 " .. util.shell_quote(d)) end
  end)

  it("that does not exist gives an error naming the path", function()
    for _, w in ipairs(writers) do
      local p = path("no/such/folder/" .. w[2])
      local msg = errmsg(w[3], p, false)
      assert.truthy(msg:find(p, 1, true), w[1] .. ": " .. msg)
      assert.truthy(msg:find("No such file or directory", 1, true), w[1] .. ": " .. msg)
    end
  end)
end)
