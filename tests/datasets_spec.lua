-- Data sets as plug-ins (lua/cnnlab/datasets/): the registry, and each shipped builder
-- against its definition (SPEC §2, PROTOCOLS §1 and §2): counts per (label, bias) cell, the
-- pixel formula on hand-worked pixels, determinism for a seed. The literature's assignment
-- rules are checked on the real MNIST labels against counts computed here, independently,
-- from the labels and the rule's arithmetic (pending without data/mnist).
local lab = require "cnnlab"
local data = require "cnnlab.data"
local util = require "cnnlab.util"
local datasets = require "cnnlab.datasets"
local study = require "cnnlab.study"

local source = data.generated{n = 600, n_test = 300, seed = 5}
local function ctx(seed, src)
  return {seed = seed, data = "generated", digits = function() return src or source end}
end
local function build(name, opts, seed, src)
  return datasets.build(datasets.load(name, opts), ctx(seed or 1, src))
end
local function equal(a, b) return a:numel() == b:numel() and a:eq(b):sum():item() == a:numel() end
local have_mnist = util.exists("data/mnist/train-images-idx3-ubyte")
  and util.exists("data/mnist/t10k-labels-idx1-ubyte")
local mnist_cache
local function mnist()
  mnist_cache = mnist_cache or data.mnist("data/mnist", {fetch = false})
  return mnist_cache
end

-- cell counts[y][b] (Lua, 0-based keys) of labels and bias
local function cells(set)
  local c = {}
  for y = 0, 9 do c[y] = {} for b = 0, 9 do c[y][b] = 0 end end
  local ys, bs = set.labels:totable(), set.bias:totable()
  for i = 1, #ys do c[ys[i]][bs[i]] = c[ys[i]][bs[i]] + 1 end
  return c
end
local function class_sizes(labels)
  local n = {}
  for y = 0, 9 do n[y] = 0 end
  for _, y in ipairs(labels:totable()) do n[y] = n[y] + 1 end
  return n
end

describe("the data-set registry", function()
  it("lists the shipped data sets", function()
    assert.same({"biased_mnist", "colored_fashion_mnist", "colored_mnist", "lff_colored_mnist",
      "safetensors"}, datasets.available())
  end)

  it("names what exists for an unknown name, and the options for an unknown option", function()
    local ok, err = pcall(datasets.load, "nope")
    assert.is_false(ok)
    assert.truthy(err:find("biased_mnist", 1, true), err)
    ok, err = pcall(datasets.load, "biased_mnist", {size = "3"})
    assert.is_false(ok)
    assert.truthy(err:find("options: eval_rho, rho", 1, true), err)
    ok, err = pcall(datasets.load, "biased_mnist", {rho = "high"})
    assert.is_false(ok)
    assert.truthy(err:find("must be a number", 1, true), err)
  end)

  it("checks what a builder returns and adds colors, conflicting, n", function()
    local dir = os.tmpname()
    util.write_file(dir, [[return {build = function() return {train = {images = require("cnnlab").zeros({4, 3, 8, 8}):byte(),
      labels = require("cnnlab").tensor({0, 1, 2, 3}, {dtype = "int64"})}} end}]])
    local ok, err = pcall(datasets.build, datasets.load(dir .. ".lua" == dir and dir or (function()
      os.rename(dir, dir .. ".lua") return dir .. ".lua" end)()), ctx(1))
    assert.is_false(ok)
    assert.truthy(err:find("no 'hard' split", 1, true), err)
    os.remove(dir .. ".lua")
    local s = datasets.check_split("t", "train", {images = lab.zeros({2, 3, 4, 4}):byte(),
      labels = lab.tensor({1, 2}, {dtype = "int64"}), bias = lab.tensor({1, 5}, {dtype = "int64"})}, 10)
    assert.same({0, 1}, s.conflicting:totable())
    assert.same({1, 5}, s.colors:totable())
    assert.same({0, 1}, s.index:totable())
    ok, err = pcall(datasets.check_split, "t", "train", {images = lab.zeros({2, 4, 4}):byte(),
      labels = lab.tensor({1, 2}, {dtype = "int64"})}, 10)
    assert.truthy(err:find("uint8 N×C×H×W", 1, true), err)
    ok, err = pcall(datasets.check_split, "t", "train", {images = lab.zeros({2, 3, 4, 4}):byte(),
      labels = lab.tensor({1, 12}, {dtype = "int64"})}, 10)
    assert.truthy(err:find("0..9", 1, true), err)
  end)
end)

describe("colored_mnist", function()
  it("is data.colored_mnist's bytes (SPEC §2), through the registry and study.load_data", function()
    local sets = build("colored_mnist", {rho = 0.9, beta = 0.2}, 3)
    local ref = data.colored_mnist{seed = 3, rho = 0.9, beta = 0.2, source = source}
    for _, name in ipairs({"train", "val", "hard"}) do
      assert.is_true(equal(ref[name].images, sets[name].images), name)
      assert.is_true(equal(ref[name].colors, sets[name].bias), name)
    end
    local s2 = study.load_data{seed = 3, rho = 0.9, beta = 0.2, data = "generated",
      generated_n = 600, data_dir = "", dataset_opt = {}}
    local r2 = data.colored_mnist{seed = 3, rho = 0.9, beta = 0.2,
      source = data.generated{n = 600, seed = 3}}
    assert.is_true(equal(r2.hard.images, s2.hard.images))
    assert.is_nil(s2.signature.dataset) -- the default's signature is what it was
  end)
end)

describe("lff_colored_mnist (PROTOCOLS §1)", function()
  local lff = dofile("lua/cnnlab/datasets/lff_colored_mnist.lua")

  -- the rule's arithmetic, written again: ratios, cumulative sums in doubles, round half to
  -- even, cell count = difference of consecutive milestones
  local function expected_counts(labels, a)
    local function rnd(x)
      local f = math.floor(x)
      if x - f > 0.5 or (x - f == 0.5 and f % 2 == 1) then f = f + 1 end
      return f
    end
    local n, out = class_sizes(labels), {}
    for y = 0, 9 do
      out[y] = {}
      local cum, prev = 0.0, 0
      for b = 0, 9 do
        cum = cum + (b == y and a or (1 - a) / 9)
        local m = rnd(n[y] * cum)
        out[y][b] = m - prev
        prev = m
      end
    end
    return out
  end

  it("reproduces the milestones' cell counts on the real MNIST labels (train a = 0.99, eval 0.1)", function()
    if not have_mnist then pending("real MNIST not in data/mnist (run 'make data')") return end
    local sets = build("lff_colored_mnist", {conflicting = 0.01}, 1, mnist())
    assert.equal(60000, sets.train.n)
    assert.equal(10000, sets.hard.n)
    assert.same(expected_counts(mnist().train.labels, 0.99), cells(sets.train))
    assert.same(expected_counts(mnist().test.labels, 0.1), cells(sets.hard))
    -- colours are handed out in MNIST index order: within a class they never decrease
    local last, ys, bs = {}, sets.train.labels:totable(), sets.train.bias:totable()
    for i = 1, #ys do
      assert.is_true((last[ys[i]] or 0) <= bs[i])
      last[ys[i]] = bs[i]
    end
    -- 1135 test ones at a = 0.1: milestones 113.5 → 114 (half to even), 227, 340.50…06 → 341
    assert.same({114, 227, 341, 454, 568, 681, 794, 908, 1021, 1135},
      lff.milestones(1135, 0.1, 1))
  end)

  it("paints c·g truncated, c = clamp(M[b] + σz, 0, 1), on hand-worked pixels", function()
    local grey = lab.tensor({{{0, 1, 128, 255}}, {{255, 200, 3, 0}}}):byte()     -- 2×1×4
    local src = {train = {images = grey, labels = lab.tensor({3, 7}, {dtype = "int64"})},
                 test = {images = grey, labels = lab.tensor({3, 7}, {dtype = "int64"})}}
    local sets = build("lff_colored_mnist", {conflicting = 0, severity = 1}, 9, src)
    assert.same({3, 7}, sets.train.bias:totable()) -- a = 1: every digit its class colour
    -- the noise: one N(0, I₃) draw per image from the seed's generator, σ = 0.05 at severity 1
    local z = lab.randn({2, 3}, {generator = lab.Generator(9, lff.STREAM.train)}):totable()
    local x = sets.train.images:totable()
    for i, b in ipairs({3, 7}) do
      for ch = 1, 3 do
        local c = math.min(1, math.max(0, lff.COLORS[b + 1][ch] + 0.05 * z[i][ch]))
        local f32 = string.unpack("f", string.pack("f", c)) -- the colour as float32
        for j = 1, 4 do
          local g = grey:totable()[i][1][j]
          local want = math.floor(string.unpack("f", string.pack("f", f32 * g)))
          assert.equal(want, x[i][ch][1][j], ("image %d channel %d pixel %d"):format(i, ch, j))
        end
      end
    end
  end)

  it("is a pure function of the seed; the noise changes with it", function()
    local a = build("lff_colored_mnist", {}, 4)
    local b = build("lff_colored_mnist", {}, 4)
    local c = build("lff_colored_mnist", {}, 5)
    assert.is_true(equal(a.train.images, b.train.images))
    assert.is_true(equal(a.hard.images, b.hard.images))
    assert.is_false(equal(a.train.images, c.train.images))
    assert.is_true(equal(a.train.bias, c.train.bias)) -- the assignment has no randomness
  end)

  it("refuses a severity outside 1…5", function()
    local ok, err = pcall(build, "lff_colored_mnist", {severity = 6}, 1)
    assert.is_false(ok)
    assert.truthy(err:find("severity", 1, true), err)
  end)
end)

describe("biased_mnist (PROTOCOLS §2)", function()
  local bm = dofile("lua/cnnlab/datasets/biased_mnist.lua")

  -- per class: ⌊n·ρ⌋ aligned, the rest in chunks of ⌈(n − ⌊n·ρ⌋)/9⌉ (the last one shorter)
  local function expected(labels, rho)
    local n, out = class_sizes(labels), {}
    for y = 0, 9 do
      local k = math.floor(n[y] * rho)
      local rest, size = n[y] - k, math.max(1, math.ceil((n[y] - k) / 9))
      local chunks = {}
      for _ = 1, 9 do
        local c = math.min(size, rest)
        chunks[#chunks + 1] = c
        rest = rest - c
      end
      table.sort(chunks)
      out[y] = {aligned = k, others = chunks}
    end
    return out
  end
  local function observed(set)
    local c, out = cells(set), {}
    for y = 0, 9 do
      local others = {}
      for b = 0, 9 do if b ~= y then others[#others + 1] = c[y][b] end end
      table.sort(others)
      out[y] = {aligned = c[y][y], others = others}
    end
    return out
  end

  it("reproduces the rule's cell counts on the real MNIST labels (ρ 0.99, 0.997; eval 0.1)", function()
    if not have_mnist then pending("real MNIST not in data/mnist (run 'make data')") return end
    for _, rho in ipairs({0.99, 0.997}) do
      local sets = build("biased_mnist", {rho = rho}, 2, mnist())
      assert.same(expected(mnist().train.labels, rho), observed(sets.train))
      assert.same(expected(mnist().test.labels, 0.1), observed(sets.hard))
    end
  end)

  it("paints the digit white and the background in the bias colour (hand-worked pixels)", function()
    local sets = build("biased_mnist", {rho = 0.5}, 1)
    local s = sets.train
    for _, i in ipairs({0, 1, 17, 100}) do
      local g = source.train.images:select(0, s.index:get(i))
      local x = s.images:select(0, i)
      local b = s.bias:get(i)
      local lit = g:gt(0)
      for ch = 0, 2 do
        local xc = x:select(0, ch):long()
        -- strokes (g ≠ 0) 255; background (g = 0) the palette byte
        local want = lit:long() * 255 + (lit:long() * -1 + 1) * bm.PALETTE[b + 1][ch + 1]
        assert.is_true(equal(want, xc), ("image %d channel %d"):format(i, ch))
      end
    end
  end)

  it("is a pure function of the seed", function()
    local a = build("biased_mnist", {rho = 0.9}, 4)
    local b = build("biased_mnist", {rho = 0.9}, 4)
    local c = build("biased_mnist", {rho = 0.9}, 5)
    assert.is_true(equal(a.train.images, b.train.images))
    assert.is_true(equal(a.hard.bias, b.hard.bias))
    assert.is_false(equal(a.train.bias, c.train.bias))
    assert.same(expected(source.train.labels, 0.9), observed(a.train))
  end)

  it("repaints the background for colour_augment, the white digit kept", function()
    local sets = build("biased_mnist", {rho = 1}, 1)
    local x = sets.train.images:narrow(0, 0, 6):float() / 255
    local c = sets.train.bias:narrow(0, 0, 6)
    assert.equal(0, (bm.recolour(x, c, c, true) - x):abs():max():item())
    local new = lab.tensor({9, 8, 7, 6, 5, 4}, {dtype = "int64"})
    local y = bm.recolour(x, c, new, true)
    local want = datasets.build(datasets.load("biased_mnist", {rho = 1}), ctx(1))
    for i = 0, 5 do
      local g = source.train.images:select(0, sets.train.index:get(i))
      local painted = bm.paint(g:reshape({1, 28, 28}), new:narrow(0, i, 1)):float() / 255
      assert.is_true(equal((y:narrow(0, i, 1) * 255):byte(), (painted * 255):byte()), "image " .. i)
    end
    assert.truthy(want)
  end)

  it("takes --rho from the command line, its own 0.99 otherwise", function()
    local ds = study.dataset{dataset = "biased_mnist", dataset_opt = {}, rho = 1.0, beta = 0.25}
    assert.equal(0.99, ds.options.rho)
    ds = study.dataset{dataset = "biased_mnist", dataset_opt = {}, rho = 0.995, beta = 0.25}
    assert.equal(0.995, ds.options.rho)
    ds = study.dataset{dataset = "biased_mnist", dataset_opt = {"rho=0.997"}, rho = 0.995}
    assert.equal(0.997, ds.options.rho)
  end)
end)

describe("colored_fashion_mnist", function()
  it("is SPEC §2's formula: the same builder as colored_mnist on the same digits", function()
    local a = build("colored_fashion_mnist", {rho = 0.95}, 6)
    local b = build("colored_mnist", {rho = 0.95}, 6)
    assert.is_true(equal(a.train.images, b.train.images))
    assert.is_true(equal(a.hard.bias, b.hard.bias))
  end)

  it("paints real Fashion-MNIST: cells and hand-worked pixels (g = 255 → round(255·P))", function()
    if not util.exists("data/fashion-mnist/train-images-idx3-ubyte")
      and not util.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") then
      pending("Fashion-MNIST missing (make data installs dataset-fashion-mnist)") return
    end
    local ds = datasets.load("colored_fashion_mnist", {rho = 1})
    local sets = datasets.build(ds, {seed = 1, data = "mnist", digits = function() error("unused") end})
    assert.equal(48000, sets.train.n)
    assert.equal(12000, sets.val.n)
    assert.equal(10000, sets.hard.n)
    local c = cells(sets.train)
    local n = class_sizes(sets.train.labels)
    for y = 0, 9 do assert.equal(n[y], c[y][y]) end -- rho = 1: every garment its class colour
    local src = dofile("lua/cnnlab/datasets/colored_fashion_mnist.lua").files("")
    local s, checked = sets.hard, 0
    for i = 0, 20 do
      local g = src.test.images:select(0, i):reshape({784}):totable()
      local k = s.bias:get(i)
      local x = s.images:select(0, i):reshape({3, 784}):totable()
      for p = 1, 784 do
        if g[p] == 255 then
          for ch = 1, 3 do
            assert.equal(math.floor(255 * data.PALETTE[k + 1][ch] + 0.5), x[ch][p])
          end
          checked = checked + 1
        elseif g[p] == 0 then
          for ch = 1, 3 do assert.is_true(x[ch][p] <= math.floor(255 * 0.25 * data.PALETTE[k + 1][ch] + 0.5) + 1) end
        end
      end
    end
    assert.is_true(checked > 0)
  end)
end)

describe("safetensors (the user's files)", function()
  local dir
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    util.mkdir_p(dir)
  end)
  teardown(function() os.execute("rm -rf " .. util.shell_quote(dir)) end)

  local function write(name, t)
    lab.save_safetensors(dir .. "/" .. name, t, {})
    return dir .. "/" .. name
  end

  it("reads images, labels and bias; val defaults to the evaluation split", function()
    local imgs = lab.rand({6, 1, 5, 5}):mul(255):byte()
    local p = write("a.safetensors", {images = imgs, labels = lab.tensor({0, 1, 2, 0, 1, 2}, {dtype = "int64"}),
      bias = lab.tensor({0, 1, 2, 1, 1, 1}, {dtype = "int64"})})
    local sets = build("safetensors", {train = p, hard = p, classes = "3"})
    assert.equal(6, sets.train.n)
    assert.same({1, 5, 5}, sets.input_shape)
    assert.equal(3, sets.classes)
    assert.same({0, 0, 0, 1, 0, 1}, sets.train.conflicting:totable())
    assert.equal(sets.hard, sets.val)
  end)

  it("says what is missing or mis-shaped", function()
    local cases = {
      {{labels = lab.tensor({0}, {dtype = "int64"})}, "no tensor 'images'"},
      {{images = lab.zeros({2, 5, 5}):byte(), labels = lab.tensor({0, 1}, {dtype = "int64"})}, "N×1×H×W"},
      {{images = lab.zeros({2, 1, 5, 5}), labels = lab.tensor({0, 1}, {dtype = "int64"})}, "uint8"},
      {{images = lab.zeros({2, 1, 5, 5}):byte()}, "no tensor 'labels'"},
      {{images = lab.zeros({2, 1, 5, 5}):byte(), labels = lab.tensor({0, 1, 1}, {dtype = "int64"})}, "vector of 2"},
      {{images = lab.zeros({2, 1, 5, 5}):byte(), labels = lab.tensor({0, 1}, {dtype = "int64"}),
        bias = lab.tensor({0}, {dtype = "int64"})}, "bias must be a vector of 2"},
    }
    for i, c in ipairs(cases) do
      local p = write(("bad%d.safetensors"):format(i), c[1])
      local ok, err = pcall(build, "safetensors", {train = p, hard = p})
      assert.is_false(ok)
      assert.truthy(err:find(c[2], 1, true), err)
      assert.truthy(err:find(p, 1, true), err)
    end
    local ok, err = pcall(build, "safetensors", {hard = "x"})
    assert.truthy(not ok and err:find("train=FILE", 1, true), err)
    ok, err = pcall(build, "safetensors", {train = dir .. "/none.safetensors", hard = "x"})
    assert.truthy(not ok and err:find("no such file", 1, true), err)
  end)
end)
