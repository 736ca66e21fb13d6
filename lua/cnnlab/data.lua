--- cnnlab.data — MNIST, Colored MNIST (SPEC §2) and mini-batches.
--
--   data.mnist([dir], {fetch = bool}) → {train = {images, labels}, test = {images, labels}, dir}
--       the four IDX files of dir (default data/mnist), raw or .gz; images uint8 N×H×W,
--       labels int64. Missing MNIST in the default folder is fetched with `sh data/fetch.sh`
--       (fetch = false forbids, true allows it for any dir). Fashion-MNIST works the same:
--       data.mnist("/usr/share/datasets/fashion-mnist") (Debian's dataset-fashion-mnist).
--   data.generated{n = 1000, n_test = n // 5, seed = 0} → the same shape as data.mnist:
--       synthetic seven-segment digits for tests on machines without MNIST.
--   data.colored_mnist{seed = 0, rho = 1, beta = 0.25, dir =, source =} →
--       {train =, val =, hard =, hard_conflicting =, seed =, rho =, beta =}; each set is
--       {images = uint8 N×3×H×W, labels = int64 N, colors = int64 N, index = int64 N (position
--        in its MNIST file), conflicting = uint8 N (colour ≠ label), n = N, name = "train"|...}
--       source: a table like data.mnist's result (default data.mnist(dir)).
--   data.batches(set, batch_size, {shuffle = true, generator =, drop_last = false, grey = false})
--       iterator: for x, y, idx, colors in data.batches(set, 64) do ... end; x float32 in [0,1]
--       (byte / 255, grey version when grey = true), y int64 labels, idx int64 positions in
--       the set, colors int64.
--   data.export(set, path, {float = false, metadata = {...}}) → writes SPEC §4's safetensors
--       (images, labels, colors, index); data.load_export(path) reads one back as a set.
--   data.grey(x) → grey version of coloured images (channel mean on three channels).
--   data.aligned_fraction(set) → share of samples whose colour is their label's.
--   data.color_label_counts(set) → counts[label + 1][color + 1] (Lua table 10×10).
--   data.PALETTE → SPEC §2's palette, PALETTE[k + 1] = {r, g, b}.
local lab = require "cnnlab.core"

local data = {}

data.FILES = {
  train_images = "train-images-idx3-ubyte", train_labels = "train-labels-idx1-ubyte",
  test_images = "t10k-images-idx3-ubyte", test_labels = "t10k-labels-idx1-ubyte",
}
data.PALETTE = lab.cmnist_palette
data.PALETTE_NAMES = {"red", "green", "blue", "yellow", "magenta", "cyan", "white", "orange",
                      "olive", "teal"}

-- The repository root (this file is lua/cnnlab/data.lua), for data/ and data/fetch.sh.
local function repo_root()
  local src = debug.getinfo(1, "S").source
  local path = src:sub(1, 1) == "@" and src:sub(2) or "lua/cnnlab/data.lua"
  local root = path:match("^(.*)/lua/cnnlab/data%.lua$")
  return root or "."
end

data.DEFAULT_DIR = "data/mnist"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function locate(dir, name)
  if exists(dir .. "/" .. name) then return dir .. "/" .. name end
  if exists(dir .. "/" .. name .. ".gz") then return dir .. "/" .. name .. ".gz" end
end

local function missing_files(dir)
  local missing = {}
  for _, key in ipairs({"train_images", "train_labels", "test_images", "test_labels"}) do
    if not locate(dir, data.FILES[key]) then missing[#missing + 1] = data.FILES[key] end
  end
  return missing
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs data/fetch.sh for dir; raises with its advice when it fails.
function data.fetch(dir)
  dir = dir or data.DEFAULT_DIR
  local script = repo_root() .. "/data/fetch.sh"
  if not exists(script) then
    error(string.format("data: MNIST is missing in %s and %s is not there to fetch it; place the "
      .. "four IDX files (raw or .gz) in %s", dir, script, dir), 2)
  end
  io.stderr:write(string.format("data: MNIST not found in %s; fetching it with sh %s\n", dir, script))
  local ok = os.execute("sh " .. shell_quote(script) .. " --dir " .. shell_quote(dir) .. " >&2")
  if not ok then
    error(string.format("data: could not fetch MNIST into %s (see the messages above); place the "
      .. "four IDX files there and try again", dir), 2)
  end
end

--- data.mnist([dir], {fetch = bool}) → {train = {images, labels}, test = {images, labels}, dir}: Loads
-- the four MNIST IDX files (raw or .gz) of dir, default data/mnist, as uint8 N×H×W images and
-- int64 labels; missing files of the default folder are fetched unless fetch = false.
function data.mnist(dir, opts)
  local default = dir == nil
  dir = dir or data.DEFAULT_DIR
  opts = opts or {}
  local missing = missing_files(dir)
  if #missing > 0 then
    local allowed = opts.fetch == true or (opts.fetch == nil and (default or dir == data.DEFAULT_DIR))
    if not allowed then
      error(string.format("data.mnist: %s is missing in %s (expected the IDX files %s, raw or .gz; "
        .. "'make data' fetches MNIST into data/mnist)", table.concat(missing, ", "), dir,
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        .. "t10k-labels-idx1-ubyte"), 2)
    end
    data.fetch(dir)
  end
  local function load(key)
    return lab.read_idx(locate(dir, data.FILES[key]))
  end
  local out = {dir = dir,
    train = {images = load("train_images"), labels = load("train_labels"):long()},
    test = {images = load("test_images"), labels = load("test_labels"):long()}}
  for _, part in ipairs({"train", "test"}) do
    local s = out[part]
    if s.images:dim() ~= 3 or s.images:type() ~= "uint8" or s.labels:dim() ~= 1
      or s.labels:size(0) ~= s.images:size(0) then
      error(string.format("data.mnist: %s: %s images must be uint8 N×H×W with N labels, got %s "
        .. "%s and %d labels", dir, part, s.images:type(), table.concat(s.images.shape, "×"),
        s.labels:numel()), 2)
    end
    -- the seed network and every task take 28×28 digits: other sizes are refused here, not
    -- deep inside the model
    if s.images:size(1) ~= 28 or s.images:size(2) ~= 28 then
      error(string.format("data.mnist: %s: %s images must be 28×28 (MNIST's IDX size), got "
        .. "%d×%d", dir, part, s.images:size(1), s.images:size(2)), 2)
    end
  end
  return out
end

--- data.generated({n = 1000, n_test = n // 5, seed = 0}) → {train =, test =}: Synthetic
-- seven-segment digits shaped like data.mnist's result, for tests on machines without MNIST.
function data.generated(opts)
  opts = opts or {}
  local n = opts.n or 1000
  local n_test = opts.n_test or math.max(10, n // 5)
  local seed = opts.seed or 0
  local xtr, ytr = lab.synth_digits(n, seed)
  -- A seed the training call never uses, so test digits are new ones.
  local xte, yte = lab.synth_digits(n_test, seed ~ 0x5a5a5a5a5a)
  return {dir = "(generated)", train = {images = xtr, labels = ytr},
          test = {images = xte, labels = yte}}
end

local function set_of(name, images, labels, colors, index)
  local s = {name = name, images = images, labels = labels, colors = colors, index = index,
             n = labels:numel()}
  s.conflicting = colors:ne(labels)
  return s
end

--- data.colored_mnist({seed = 0, rho = 1, beta = 0.25, dir =, source =}) → {train =, val =, hard =, hard_conflicting =, ...}: Builds
-- the Colored MNIST sets of SPEC §2 from MNIST (or from source, a table like
-- data.mnist's result): each set holds images, labels, colours, MNIST positions and which
-- samples conflict (see the header).
function data.colored_mnist(opts)
  opts = opts or {}
  local known = {seed = true, rho = true, beta = true, dir = true, source = true}
  for k in pairs(opts) do
    if not known[k] then
      error("data.colored_mnist: unknown option '" .. tostring(k)
        .. "' (known: seed, rho, beta, dir, source)", 2)
    end
  end
  local seed = opts.seed or 0
  local rho = opts.rho or 1.0
  local beta = opts.beta or 0.25
  if math.type(seed) ~= "integer" then error("data.colored_mnist: seed must be an integer", 2) end
  if type(rho) ~= "number" or rho < 0 or rho > 1 then
    error("data.colored_mnist: rho must be a number in [0, 1], got " .. tostring(rho), 2)
  end
  if type(beta) ~= "number" or beta < 0 or beta > 1 then
    error("data.colored_mnist: beta must be a number in [0, 1], got " .. tostring(beta), 2)
  end
  local src = opts.source or data.mnist(opts.dir)
  local n = src.train.labels:numel()
  local tr_idx, va_idx = lab.split_indices(n, seed)
  -- too few training images leave a set empty: refused before anything trains on nothing
  if tr_idx:numel() < 1 or va_idx:numel() < 1 then
    error(string.format("data.colored_mnist: %d training image%s give %d for training and %d "
      .. "for validation; both need at least 1 (is the data folder complete?)", n,
      n == 1 and "" or "s", tr_idx:numel(), va_idx:numel()), 2)
  end
  local function easy(name, index)
    local grey = src.train.images:index_select(0, index)
    local labels = src.train.labels:index_select(0, index)
    local colors = lab.assign_colors(labels, rho, "easy", seed, name)
    return set_of(name, lab.colorize(grey, colors, beta, seed, name), labels, colors,
      index:contiguous())
  end
  local out = {seed = seed, rho = rho, beta = beta}
  out.train = easy("train", tr_idx)
  out.val = easy("val", va_idx)
  local hy = src.test.labels
  local hc = lab.assign_colors(hy, nil, "hard", seed, "hard")
  out.hard = set_of("hard", lab.colorize(src.test.images, hc, beta, seed, "hard"), hy, hc,
    lab.arange(0, hy:numel()))
  out.hard_conflicting = out.hard.conflicting
  return out
end

--- The grey version of coloured images: the channel mean of N×3×H×W (lab.to_grey).
function data.grey(x)
  return lab.to_grey(x)
end

--- data.batches(set, batch_size[, {shuffle = true, generator =, drop_last = false, grey = false}]) → iterator: Iterates
-- over a set in mini-batches: for x, y, idx, colors in data.batches(set, 64), x
-- float32 in [0,1] (grey when asked), y the labels, idx the positions in the set.
function data.batches(set, batch_size, opts)
  opts = opts or {}
  if math.type(batch_size) ~= "integer" or batch_size < 1 then
    error("data.batches: batch_size must be a positive integer, got " .. tostring(batch_size), 2)
  end
  local n = set.n or set.labels:numel()
  local order
  if opts.shuffle == false then
    order = lab.arange(0, n)
  else
    order = lab.randperm(n, {generator = opts.generator})
  end
  local i = 0
  return function()
    if i >= n then return nil end
    local len = math.min(batch_size, n - i)
    if opts.drop_last and len < batch_size then return nil end
    local idx = order:narrow(0, i, len)
    i = i + len
    local x = lab.gather_batch(set.images, idx)
    if opts.grey then x = lab.to_grey(x) end
    local colors = set.colors and set.colors:index_select(0, idx) or nil
    return x, set.labels:index_select(0, idx), idx, colors
  end
end

--- data.export(set, path[, {float = false, metadata = {...}}]) → nil: Writes a set (images,
-- labels, colors, index) to the safetensors file of SPEC §4 at path; data.load_export reads it back.
function data.export(set, path, opts)
  opts = opts or {}
  -- without this a set missing a tensor was written as a file missing it, silently
  for _, name in ipairs({"images", "labels", "colors", "index"}) do
    if not lab.is_tensor(set[name]) then
      error(("data.export: the set has no tensor '%s' (a set of data.colored_mnist has images, "
        .. "labels, colors and index)"):format(name), 2)
    end
  end
  local images = set.images
  if opts.float then images = lab.gather_batch(images, lab.arange(0, set.n)) end
  local meta = {format = "cnnlab colored-mnist", set = set.name or "?",
                images = opts.float and "float32 byte/255" or "uint8 bytes as stored"}
  for k, v in pairs(opts.metadata or {}) do meta[k] = tostring(v) end
  lab.save_safetensors(path, {images = images, labels = set.labels, colors = set.colors,
                              index = set.index}, meta)
end

--- Reads a set written by data.export back from path, with the file's metadata as set.metadata.
function data.load_export(path)
  local t, meta = lab.load_safetensors(path)
  for _, name in ipairs({"images", "labels", "colors", "index"}) do
    if not t[name] then
      error(string.format("data.load_export: %s has no tensor '%s' (an exported set holds images, "
        .. "labels, colors and index)", path, name), 2)
    end
  end
  local s = set_of(meta.set, t.images, t.labels, t.colors, t.index)
  s.metadata = meta
  return s
end

--- The share of a set's images whose colour is their label's colour (NaN for an empty set).
function data.aligned_fraction(set)
  if set.n == 0 then return 0 / 0 end
  return set.colors:eq(set.labels):sum():item() / set.n
end

--- data.color_label_counts(set) → counts: How many images of a set have each label and colour,
-- as a Lua table 10×10 indexed counts[label + 1][color + 1].
function data.color_label_counts(set)
  local counts = {}
  for y = 1, 10 do
    counts[y] = {}
    for k = 1, 10 do counts[y][k] = 0 end
  end
  local ys, ks = set.labels:totable(), set.colors:totable()
  for i = 1, #ys do
    local row = counts[ys[i] + 1]
    row[ks[i] + 1] = row[ks[i] + 1] + 1
  end
  return counts
end

return data
