--- cnnlab.doc — the help of the public API: a signature and a one-line summary for every
-- public function, class and method, behind the REPL's help(x) and the generated reference of
-- docs/api.md (tools/gen_api_doc.lua). One source:
--   * functions written in C (lab.zeros, tensor methods, generator methods) are described in
--     the table C below, the only place that describes them;
--   * functions written in Lua are described by the `---` comment above their definition:
--     the summary is the comment's first sentence, the signature the definition's line (or a
--     comment line that starts with the call, as "--- Linear(in, out[, {...}])" does).
-- Names that start with "_" are internals and are never listed.
--
--   doc.help(x)            prints what x is, its signature and summary, and its members'
--   doc.describe(x)        {name =, signature =, summary =} of a function, class or module
--   doc.walk()             every public entry: {{name =, value =, kind =}, ...}, sorted
--   doc.markdown()         the generated reference section of docs/api.md
local doc = {}

-- name | signature | summary — the C functions (cnnlab.core) and C methods.
local C = [=[
lab.tensor | lab.tensor(data[, {dtype =, requires_grad =}]) → tensor | A tensor from a number, a nested table or another tensor (copied).
lab.zeros | lab.zeros(shape…[, {dtype =, requires_grad =}]) → tensor | A tensor of zeros; shape as sizes (2, 3) or a table {2, 3}.
lab.ones | lab.ones(shape…[, opts]) → tensor | A tensor of ones (options as lab.zeros).
lab.empty | lab.empty(shape…[, opts]) → tensor | A tensor whose values are not set (options as lab.zeros).
lab.full | lab.full(shape…, value[, opts]) → tensor | A tensor with every element equal to value.
lab.arange | lab.arange(n) or lab.arange(start, stop[, step]) → tensor | A range of numbers; int64 when all arguments are integers.
lab.rand | lab.rand(shape…[, {generator =, dtype =, requires_grad =}]) → tensor | Uniform random numbers in [0, 1).
lab.randn | lab.randn(shape…[, {generator =, ...}]) → tensor | Normal random numbers, mean 0 and deviation 1.
lab.randperm | lab.randperm(n[, {generator =}]) → int64 tensor | A random permutation of 0..n−1.
lab.cat | lab.cat({a, b, ...}[, dim]) → tensor | Concatenation of tensors along dim (default 0).
lab.Generator | lab.Generator(seed[, stream]) → generator | A PCG32 random generator: the same numbers for a seed on every machine.
lab.manual_seed | lab.manual_seed(seed) | Reseeds the default generator.
lab.default_generator | lab.default_generator() → generator | The generator used when no opts.generator is given.
lab.is_tensor | lab.is_tensor(x) → boolean | Whether x is a tensor.
lab.matmul | lab.matmul(a, b) → tensor | Matrix product of two 2-D tensors.
lab.conv2d | lab.conv2d(x, weight[, bias, stride, padding]) → tensor | 2-D convolution of N×C×H×W input with O×C×K×K weights.
lab.linear | lab.linear(x, weight[, bias]) → tensor | x · weightᵀ + bias for N×I input and O×I weights.
lab.max_pool2d | lab.max_pool2d(x, kernel[, stride]) → tensor | 2-D max pooling of N×C×H×W input.
lab.upsample_bilinear | lab.upsample_bilinear(x, height, width) → tensor | Bilinear resize of N×C×H×W maps.
lab.dropout | lab.dropout(x, p, training[, generator]) → tensor | Zeroes elements with probability p and scales the rest by 1/(1−p) when training.
lab.cross_entropy | lab.cross_entropy(logits, targets[, {weight =, reduction =}]) → tensor | Cross-entropy loss of N×K logits against int64 class targets.
lab.mse_loss | lab.mse_loss(input, target) → tensor | Mean squared error.
lab.nn.cross_entropy | lab.nn.cross_entropy(logits, targets[, opts]) → tensor | lab.cross_entropy, here for PyTorch's habit (nn.functional).
lab.nn.mse_loss | lab.nn.mse_loss(input, target) → tensor | lab.mse_loss, here for PyTorch's habit.
lab.sgd_step | lab.sgd_step(p, grad, buf, lr, momentum, weight_decay, nesterov) | One SGD update in place (what lab.optim.SGD runs).
lab.adam_step | lab.adam_step(p, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled) | One Adam update in place (what lab.optim.Adam runs).
lab.no_grad | lab.no_grad(fn, ...) → fn's results | Runs fn with gradient recording off; the mode comes back even when fn raises.
lab.set_grad_enabled | lab.set_grad_enabled(on) → previous | Turns gradient recording on or off.
lab.is_grad_enabled | lab.is_grad_enabled() → boolean | Whether operations record a graph for backward.
lab.read_idx | lab.read_idx(path) → tensor | Reads an IDX file (MNIST's format), raw or .gz.
lab.write_idx | lab.write_idx(path, t[, {gzip = bool}]) | Writes a tensor as an IDX file.
lab.read_png | lab.read_png(path) → uint8 C×H×W | Reads a PNG image.
lab.write_png | lab.write_png(path, t) | Writes a C×H×W (1 or 3 channels) uint8 or [0, 1] float image as PNG.
lab.image_grid | lab.image_grid(images[, {ncol = 8, pad = 2, scale = 1, pad_value = 0}]) → C×H×W | Tiles N images into one picture.
lab.save_safetensors | lab.save_safetensors(path, {name = tensor, ...}[, metadata]) | Writes tensors (and string metadata) as safetensors, atomically.
lab.load_safetensors | lab.load_safetensors(path) → tensors, metadata | Reads a safetensors file.
lab.safetensors_info | lab.safetensors_info(path) → entries, metadata | Names, dtypes, shapes and offsets of a safetensors file, without reading the data.
lab.split_indices | lab.split_indices(n, seed) → train, val | The study's 4/5 and 1/5 split of n positions (int64).
lab.assign_colors | lab.assign_colors(labels, rho, "easy"|"hard", seed, set) → int64 | The colour of each digit (Colored MNIST).
lab.colorize | lab.colorize(grey, colors, beta, seed, set) → uint8 N×3×H×W | Paints grey digits in their colours over a noisy background.
lab.to_grey | lab.to_grey(images) → tensor | Grey version of coloured images (channel mean).
lab.gather_batch | lab.gather_batch(images, index) → float32 | The images at index as a float batch (byte / 255).
lab.synth_digits | lab.synth_digits(n, seed) → images, labels | n generated seven-segment digits (uint8 N×28×28, int64 labels).
lab.cmnist_palette | lab.cmnist_palette | The ten colours of Colored MNIST: palette[k + 1] = {r, g, b}.
lab.set_threads | lab.set_threads(n) | Threads the C kernels use (0: all cores).
lab.get_threads | lab.get_threads() → n | Threads the C kernels use.
lab.gemm_backend | lab.gemm_backend() → name | The matrix-product backend compiled in.
lab.memory | lab.memory() → {bytes =, peak =, ...} | Memory the core's tensors use, now and at peak.
lab.now | lab.now() → seconds | Wall-clock seconds from a monotonic clock.
lab.isatty | lab.isatty([fd]) → boolean | Whether file descriptor fd (default 1, stdout) is a terminal.
lab.listdir | lab.listdir(path) → names | The sorted names in a folder; nil and a message when it cannot be read.
lab.file_mtime | lab.file_mtime(path) → seconds | When a file last changed (seconds since the epoch); nil when it cannot be read.
lab.getpid | lab.getpid() → pid | This process's id.
lab.trap_sigint | lab.trap_sigint(on) | Makes Ctrl-C set a flag (lab.sigint_pending) instead of stopping the process.
lab.sigint_pending | lab.sigint_pending() → boolean | Whether Ctrl-C was pressed since the trap was set.
lab.nn.Module | lab.nn.Module | The base class of layers: parameters, children, hooks, train/eval, state_dict.
lab.nn.Linear | lab.nn.Linear(in_features, out_features[, {bias = true, generator =}]) | A fully connected layer: x · weightᵀ + bias.
lab.nn.Conv2d | lab.nn.Conv2d(in_channels, out_channels, kernel[, {stride = 1, padding = 0, bias = true, generator =}]) | A 2-D convolution layer.
lab.nn.ReLU | lab.nn.ReLU() | max(x, 0) as a layer.
lab.nn.MaxPool2d | lab.nn.MaxPool2d(kernel[, stride]) | 2-D max pooling as a layer.
lab.nn.Flatten | lab.nn.Flatten() | Flattens each sample to a vector (N×... → N×D).
lab.nn.Dropout | lab.nn.Dropout(p[, {generator =}]) | Zeroes inputs with probability p while training.
lab.nn.Identity | lab.nn.Identity() | Returns its input (a placeholder layer).
lab.nn.Sequential | lab.nn.Sequential() | Layers run in order; net:add(layer[, name]) appends one.
lab.study.integer | lab.study.integer | A converter for study.list that accepts an integer.
lab.nn.class | lab.nn.class(name, parent) → class | Makes a layer class; calling it builds an instance through class.init(self, ...).
lab.Tensor | lab.Tensor | The tensor method table (t:sum(), t:reshape(...)); add methods to extend every tensor.
lab.core | lab.core | The C module cnnlab.core, whose functions lab also holds.
lab.version | lab.version | cnnlab's version, a string.
Tensor:abs | t:abs() → tensor | Absolute values.
Tensor:add | t:add(other) → tensor | t + other, broadcasting (other a tensor or a number).
Tensor:sub | t:sub(other) → tensor | t − other, broadcasting.
Tensor:mul | t:mul(other) → tensor | t × other elementwise, broadcasting.
Tensor:div | t:div(other) → tensor | t / other elementwise, broadcasting.
Tensor:pow | t:pow(e) → tensor | t to the power e.
Tensor:maximum | t:maximum(other) → tensor | Elementwise maximum.
Tensor:minimum | t:minimum(other) → tensor | Elementwise minimum.
Tensor:eq | t:eq(other) → uint8 tensor | 1 where t == other (no gradient).
Tensor:ne | t:ne(other) → uint8 tensor | 1 where t ~= other.
Tensor:lt | t:lt(other) → uint8 tensor | 1 where t < other.
Tensor:le | t:le(other) → uint8 tensor | 1 where t <= other.
Tensor:gt | t:gt(other) → uint8 tensor | 1 where t > other.
Tensor:ge | t:ge(other) → uint8 tensor | 1 where t >= other.
Tensor:neg | t:neg() → tensor | −t.
Tensor:exp | t:exp() → tensor | Elementwise eˣ.
Tensor:log | t:log() → tensor | Elementwise natural logarithm.
Tensor:relu | t:relu() → tensor | max(t, 0).
Tensor:sigmoid | t:sigmoid() → tensor | 1 / (1 + e⁻ᵗ).
Tensor:tanh | t:tanh() → tensor | Hyperbolic tangent.
Tensor:sign | t:sign() → tensor | −1, 0 or 1 by sign.
Tensor:sqrt | t:sqrt() → tensor | Square root.
Tensor:square | t:square() → tensor | t².
Tensor:clamp | t:clamp(lo, hi) → tensor | Values limited to [lo, hi] (nil: no limit).
Tensor:sum | t:sum([dim[, keepdim]]) → tensor | Sum of all elements, or along dim.
Tensor:mean | t:mean([dim[, keepdim]]) → tensor | Mean of all elements, or along dim.
Tensor:max | t:max([dim]) → max[, argmax] | Largest element, or largest along dim with its positions.
Tensor:min | t:min([dim]) → min[, argmin] | Smallest element, or smallest along dim with its positions.
Tensor:argmax | t:argmax(dim) → int64 tensor | Positions of the largest values along dim (counting from 0).
Tensor:softmax | t:softmax(dim) → tensor | Softmax along dim.
Tensor:log_softmax | t:log_softmax(dim) → tensor | Log-softmax along dim.
Tensor:matmul | t:matmul(other) → tensor | Matrix product.
Tensor:index_select | t:index_select(dim, index) → tensor | The slices of dim at the int64 positions index.
Tensor:gather | t:gather(dim, index) → tensor | Elements picked along dim by an int64 index of t's shape.
Tensor:reshape | t:reshape(size…) → tensor | The same elements in another shape (one size may be −1).
Tensor:view | t:view(size…) → tensor | A view in another shape of a contiguous tensor.
Tensor:flatten | t:flatten([start_dim]) → tensor | Dimensions from start_dim (default 0) merged into one.
Tensor:narrow | t:narrow(dim, start, length) → view | length slices of dim from start.
Tensor:select | t:select(dim, index) → view | The slice at index of dim, that dimension removed.
Tensor:transpose | t:transpose(d0, d1) → view | Dimensions d0 and d1 swapped.
Tensor:permute | t:permute(d…) → view | Dimensions reordered.
Tensor:unsqueeze | t:unsqueeze(dim) → view | A dimension of size 1 inserted at dim.
Tensor:squeeze | t:squeeze([dim]) → view | Dimensions of size 1 removed (or only dim).
Tensor:expand | t:expand(size…) → view | Size-1 dimensions stretched without copying.
Tensor:contiguous | t:contiguous() → tensor | t itself when contiguous, else a contiguous copy.
Tensor:is_contiguous | t:is_contiguous() → boolean | Whether the elements are laid out row-major without gaps.
Tensor:clone | t:clone() → tensor | A copy with its own storage.
Tensor:detach | t:detach() → tensor | The same values, cut from the graph (no gradient flows back).
Tensor:float | t:float() → float32 tensor | Converted to float32.
Tensor:byte | t:byte() → uint8 tensor | Converted to uint8.
Tensor:long | t:long() → int64 tensor | Converted to int64.
Tensor:type | t:type([dtype]) → name or tensor | The element type's name, or t converted to dtype.
Tensor:size | t:size([dim]) → sizes or n | The shape as a table, or the size of dim.
Tensor:dim | t:dim() → n | The number of dimensions.
Tensor:numel | t:numel() → n | The number of elements.
Tensor:get | t:get(i, j, …) → number | The element at a position (counting from 0).
Tensor:set | t:set(i, j, …, value) | Sets the element at a position.
Tensor:item | t:item() → number | The value of a one-element tensor.
Tensor:totable | t:totable() → table | The values as nested Lua tables.
Tensor:fill_ | t:fill_(value) → t | Sets every element to value, in place.
Tensor:zero_ | t:zero_() → t | Sets every element to 0, in place.
Tensor:copy_ | t:copy_(src) → t | Copies src into t, broadcasting and converting.
Tensor:backward | t:backward([grad]) | Back-propagates from t (a scalar, or with grad) into the .grad of the leaves.
Tensor:requires_grad_ | t:requires_grad_([on]) → t | Marks a leaf as needing gradients.
Tensor:retain_grad | t:retain_grad() → t | Keeps .grad on a non-leaf tensor after backward.
Tensor:register_hook | t:register_hook(fn) → handle | fn(grad) runs when t's gradient is computed and may replace it.
Tensor:zero_grad | t:zero_grad() | Drops t's .grad.
Tensor:free | t:free() | Releases t's memory now (later use is an error).
Tensor:is_freed | t:is_freed() → boolean | Whether t:free() was called.
Generator:uniform | g:uniform() → number | A number uniform in [0, 1).
Generator:normal | g:normal() → number | A number from N(0, 1).
Generator:integer | g:integer(n) → integer | An integer uniform in 0..n−1.
Generator:state | g:state() → string | The generator's state as text (for checkpoints).
Generator:set_state | g:set_state(s) → g | Restores a state from g:state().
Generator:seed | g:seed(seed[, stream]) → g | Reseeds the generator.
]=]

doc.C = {}
for line in C:gmatch("[^\n]+") do
  local name, sig, summary = line:match("^(%S+) | (.-) | (.+)$")
  if name then doc.C[name] = {signature = sig, summary = summary} end
end

-- Lua submodules documented by their own comments, as lab.NAME.
doc.MODULES = {"nn", "optim", "data", "train", "models", "metrics", "svg", "util", "hooks",
  "gradcam", "attack", "attacks", "attributions", "ablation", "debias", "gradcheck", "report",
  "mpi", "study", "defaults", "show", "doc", "robustness"}

local function public(name) return type(name) == "string" and not name:find("^_") end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do if public(k) then keys[#keys + 1] = k end end
  table.sort(keys)
  return keys
end

local file_cache = {}
local function lines_of(path)
  if file_cache[path] == nil then
    local f = io.open(path, "rb")
    local lines = false
    if f then
      lines = {}
      for l in f:lines() do lines[#lines + 1] = l end
      f:close()
    end
    file_cache[path] = lines
  end
  return file_cache[path] or nil
end

local function first_sentence(text)
  text = text:gsub("%s+", " "):gsub("^ ", "")
  local s = text:match("^(.-%.)%s") or text:match("^(.-%.)$") or text
  return s
end

-- The comment block right above line n of a file, as a list of lines without "--".
local function comment_above(lines, n)
  local block = {}
  local i = n - 1
  while i >= 1 and lines[i]:match("^%s*%-%-") do
    table.insert(block, 1, (lines[i]:gsub("^%s*%-%-%-?%s?", "")))
    i = i - 1
  end
  return block
end

-- {signature, summary} from a module file's header comment, which many modules open with a
-- list of calls ("--   data.mnist([dir], {fetch = bool}) → {...}" then the summary on the same
-- line after two spaces, or on the lines below).
local function from_header(lines, qualified)
  local short = qualified:match("([^.:]+)$")
  local mod = qualified:match("([%w_]+)[.:][^.:]+$")
  if not short or not mod then return nil end
  local n = 1
  while lines[n] and lines[n]:match("^%-%-") do n = n + 1 end
  for i = 1, n - 1 do
    local text = lines[i]:gsub("^%-%-%-?%s*", "")
    local call = text:match("^([%w_]*[.:]?" .. short .. "%b().*)$")
      or text:match("^([%w_]*[.:]?" .. short .. "%b{}.*)$")
    local owner = text:match("^([%w_]+)[.:]" .. short .. "[({]")
    if call and (owner == nil or owner == mod or owner == "lab" or #owner <= 3) then
      local sig, rest = call:match("^(.-)%s%s+(%S.*)$")
      sig = sig or call
      local summary = rest
      if not summary then -- the summary on the indented lines below
        local parts = {}
        for j = i + 1, n - 1 do
          local l = lines[j]:gsub("^%-%-", "")
          if not l:match("^%s%s%s%s") or l:match("^%s*$") then break end
          parts[#parts + 1] = l
        end
        summary = #parts > 0 and table.concat(parts, " ") or nil
      end
      if summary then
        return {signature = sig:gsub("%s+$", ""), summary = first_sentence(summary)}
      end
    end
  end
end

-- {signature, summary} of a Lua function from its source, or nil.
local function from_source(fn, qualified)
  local info = debug.getinfo(fn, "S")
  if not info or info.what ~= "Lua" or info.source:sub(1, 1) ~= "@" then return nil end
  local lines = lines_of(info.source:sub(2))
  if not lines or not lines[info.linedefined] then return nil end
  local def = lines[info.linedefined]
  local block = comment_above(lines, info.linedefined)
  if #block == 0 then return from_header(lines, qualified) end
  local params = def:match("function[^(]*(%b())") or "()"
  local short = qualified:match("([^.:]+)$")
  local signature
  -- a comment that starts with the call is the signature ("Linear(in, out[, {...}])")
  local first = block[1]
  if first:match("^[%w_.:]*" .. short .. "%(") then
    -- "m:train([on]) → m: what it does" — the signature runs to the first ": "
    local sig, rest = first:match("^(.-%b()[^:]*):%s+(.*)$")
    signature = sig or first:match("^(.-%b())") or first
    table.remove(block, 1)
    if rest then table.insert(block, 1, rest) end
  end
  if not signature then
    local sep = qualified:find(":", 1, true) and ":" or "."
    local prefix = qualified:match("^(.*)[.:][^.:]+$") or ""
    -- methods defined with "function X:name(...)" show as obj:name(...)
    signature = (prefix ~= "" and (prefix .. sep) or "") .. short .. params
  end
  local summary = first_sentence(table.concat(block, " "))
  if summary == "" then return nil end
  return {signature = signature, summary = summary}
end

-- The method tables of the classes help knows: Tensor, Generator, Module, Optimizer.
local function classes()
  local lab = require "cnnlab"
  local list = {{"Tensor", lab.Tensor}}
  local g = getmetatable(lab.Generator(0))
  list[#list + 1] = {"Generator", g and (type(g.__index) == "table" and g.__index or g) or {}}
  list[#list + 1] = {"Module", lab.nn.Module}
  local p = lab.zeros({1}, {requires_grad = true})
  local opt = lab.optim.SGD({p}, {lr = 0.1})
  local mt = getmetatable(opt)
  local methods = {}
  local t = mt and mt.__index
  while type(t) == "table" do
    for k, v in pairs(t) do if methods[k] == nil then methods[k] = v end end
    local m2 = getmetatable(t)
    t = m2 and m2.__index
  end
  for k, v in pairs(opt) do if type(v) == "function" then methods[k] = v end end
  list[#list + 1] = {"Optimizer", methods}
  return list
end

--- Every public entry of the API, sorted: {{name =, value =, kind = "function"|"class"|
-- "module"|"value"|"method"}, ...} over lab.*, lab.<module>.* and the methods of tensors,
-- generators, modules and optimizers.
function doc.walk()
  local lab = require "cnnlab"
  local out = {}
  local function add(name, value, kind) out[#out + 1] = {name = name, value = value, kind = kind} end
  for _, k in ipairs(sorted_keys(lab.core)) do
    add("lab." .. k, lab[k], type(lab[k]) == "function" and "function" or "value")
  end
  for _, k in ipairs({"relu", "sigmoid", "tanh", "softmax", "log_softmax", "sum", "mean",
    "accuracy", "version"}) do
    if lab.core[k] == nil then add("lab." .. k, lab[k], type(lab[k]) == "function" and "function" or "value") end
  end
  for _, mod in ipairs(doc.MODULES) do
    local ok, m = pcall(function() return lab[mod] end)
    if ok and type(m) == "function" then
      add("lab." .. mod, m, "function")
    elseif ok and type(m) == "table" then
      add("lab." .. mod, m, "module")
      for _, k in ipairs(sorted_keys(m)) do
        local v = m[k]
        local kind = type(v) == "function" and "function"
          or (type(v) == "table" and getmetatable(v) and getmetatable(v).__call and "class")
          or "value"
        add("lab." .. mod .. "." .. k, v, kind)
      end
    end
  end
  for _, c in ipairs(classes()) do
    for _, k in ipairs(sorted_keys(c[2])) do
      if type(c[2][k]) == "function" then add(c[1] .. ":" .. k, c[2][k], "method") end
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

local by_value
local function name_of(x)
  if by_value == nil then
    by_value = {}
    for _, e in ipairs(doc.walk()) do
      local t = type(e.value)
      if (t == "function" or t == "table") and by_value[e.value] == nil then
        by_value[e.value] = e.name
      end
    end
  end
  return by_value[x]
end

local function module_summary(name)
  -- the first sentence of a module file's header comment ("--- cnnlab.nn — layers ...")
  local mod = name:match("^lab%.([%w_]+)$")
  local file = mod and package.searchpath("cnnlab." .. mod, package.path)
  do
    do
      if file then
        local lines = lines_of(file)
        if lines and lines[1] and lines[1]:match("^%-%-%-") then
          local parts = {}
          for i = 1, #lines do
            if not lines[i]:match("^%-%-") or lines[i]:match("^%-%-%s*$") then break end
            parts[#parts + 1] = lines[i]:gsub("^%-%-%-?%s*", "")
          end
          local head = table.concat(parts, " ")
          local body = head:match("^cnnlab%.[%w_]+%s*—%s*(.*)$") or head
          return first_sentence(body)
        end
      end
    end
  end
end

--- {name, signature, summary} of a public entry (by qualified name, "lab.zeros",
-- "Tensor:sum", "lab.nn.Linear", or by value); nil when it has no help.
function doc.describe(x, name)
  name = name or (type(x) == "string" and x) or name_of(x)
  if not name then return nil end
  local value = x
  if type(x) == "string" then
    for _, e in ipairs(doc.walk()) do if e.name == x then value = e.value end end
  end
  local entry = doc.C[name] or doc.C[name:gsub("^lab%.core%.", "lab.")]
  if entry then return {name = name, signature = entry.signature, summary = entry.summary} end
  if type(value) == "function" then
    local e = from_source(value, name)
    if e then return {name = name, signature = e.signature, summary = e.summary} end
  elseif type(value) == "table" then
    local init = rawget(value, "init")
    if type(init) == "function" then -- a class: its init's comment
      local e = from_source(init, name:gsub("[.:]init$", ""))
      if e then
        local sig = e.signature:gsub("[.:]init%(", "(")
        return {name = name, signature = sig, summary = e.summary}
      end
    end
    local s = module_summary(name)
    if s then return {name = name, signature = name, summary = s} end
  end
  if value ~= nil and type(value) ~= "function" and not (type(value) == "table"
    and (rawget(value, "init") or getmetatable(value) and getmetatable(value).__call)) then
    -- a constant (a number, a string, a table of settings): what it holds
    local what = type(value) == "table" and "a table of " .. #sorted_keys(value) .. " entries"
      or (type(value) .. " " .. tostring(value))
    return {name = name, signature = name, summary = "A constant: " .. what .. ".", constant = true}
  end
  return nil
end

local function members_of(prefix, t, sep)
  local out = {}
  for _, k in ipairs(sorted_keys(t)) do
    local d = doc.describe(t[k], prefix .. sep .. k)
    out[#out + 1] = {k, d and d.summary or "(no help)", type(t[k]) == "function"}
  end
  return out
end

local function print_members(list)
  if #list == 0 then return end
  local w = 0
  for _, m in ipairs(list) do w = math.max(w, #m[1] + (m[3] and 2 or 0)) end
  w = math.min(w, 24)
  for _, m in ipairs(list) do
    local label = m[1] .. (m[3] and "()" or "")
    print(("  %-" .. w .. "s  %s"):format(label, m[2]))
  end
end

--- Prints help for x: the signature and summary of a function, class or method; a module's
-- or a class's members with their summaries; a tensor's or a layer's methods. fallback(x)
-- (the REPL's member listing) serves what the API does not describe.
function doc.help(x, fallback)
  local lab = require "cnnlab"
  local t = type(x)
  if t == "userdata" and lab.is_tensor(x) then
    print(("Tensor (%s, shape %s) — methods:"):format(x.dtype or x:type(),
      table.concat(x.shape, "×")))
    print_members(members_of("Tensor", lab.Tensor, ":"))
    return
  end
  if t == "table" and getmetatable(x) and rawget(x, "_children") ~= nil then -- a layer
    local cls = getmetatable(x)
    local cname = "lab.nn." .. tostring(cls.__name)
    local d = doc.describe(cname)
    print(("%s — %s"):format(tostring(x):match("^[^\n]*"), d and d.summary or cname))
    print("methods:")
    print_members(members_of("Module", lab.nn.Module, ":"))
    return
  end
  local name = x == lab and "lab" or name_of(x)
  if name == nil then
    if fallback then return fallback(x) end
    print(("%s: not part of cnnlab's API (help() lists where to start)"):format(tostring(x)))
    return
  end
  if name == "lab" then
    print("lab — cnnlab: tensors, autograd, layers and hooks in C, experiments in Lua.")
    local list = members_of("lab", lab.core, ".")
    for _, mod in ipairs(doc.MODULES) do
      local d = doc.describe("lab." .. mod)
      list[#list + 1] = {mod, d and d.summary or "(no help)", false}
    end
    for _, k in ipairs({"relu", "sigmoid", "tanh", "softmax", "log_softmax", "sum", "mean", "accuracy"}) do
      local d = doc.describe("lab." .. k)
      list[#list + 1] = {k, d and d.summary or "(no help)", true}
    end
    table.sort(list, function(a, b) return a[1] < b[1] end)
    print_members(list)
    return
  end
  local d = doc.describe(x, name)
  if d then
    if d.signature ~= name then print(d.signature) else print(name) end
    print("  " .. d.summary)
  else
    print(name .. ": (no help)")
  end
  if t == "table" then
    local methods = x
    local kind = "members:"
    if rawget(x, "init") then kind = "methods:" end
    local list = members_of(name, methods, kind == "methods:" and ":" or ".")
    if #list > 0 then
      print(kind)
      print_members(list)
    end
  end
end

--- The generated reference of docs/api.md (between its BEGIN/END markers): one table row
-- per public entry with its signature and summary.
function doc.markdown()
  local out = {"## Reference", "",
    "Generated by `tools/gen_api_doc.lua` from the help that `help(x)` prints (lua/cnnlab/doc.lua "
    .. "and the `---` comments of the Lua modules); do not edit by hand.", ""}
  local section
  local function group_of(name)
    return name:match("^(lab%.[%w_]+)%.") or name:match("^(%u%w*):") or "lab"
  end
  local entries = doc.walk()
  table.sort(entries, function(a, b)
    local ga, gb = group_of(a.name), group_of(b.name)
    if ga ~= gb then return ga < gb end
    return a.name < b.name
  end)
  for _, e in ipairs(entries) do
    if e.name:match("^lab%.doc%.%u") then goto continue end
    local group = group_of(e.name)
    if group ~= section then
      section = group
      out[#out + 1] = ""
      out[#out + 1] = "### " .. (group:find(":") and group or ("`" .. group .. "`"))
      out[#out + 1] = ""
      out[#out + 1] = "| entry | summary |"
      out[#out + 1] = "| --- | --- |"
    end
    local d = doc.describe(e.value, e.name)
    local sig = d and d.signature or e.name
    out[#out + 1] = ("| `%s` | %s |"):format(sig:gsub("|", "\\|"),
      ((d and d.summary or "(no help)"):gsub("|", "\\|")))
    ::continue::
  end
  return table.concat(out, "\n") .. "\n"
end

doc.BEGIN = "<!-- BEGIN reference: generated by tools/gen_api_doc.lua -->"
doc.END = "<!-- END reference -->"

return doc
