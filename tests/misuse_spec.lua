-- Misuse of the Lua API, module by module (docs/reliability.md): each case is a call a user
-- could get wrong and the fragment its error message must contain — the function, the
-- argument or tensor, what was expected and what came. None may crash; none may leave grad
-- mode off. tests/tensor_spec.lua and tests/nn_spec.lua hold the core's first ~100 cases; these
-- extend the table to the modules, optimizers, files, data and debias methods.
local lab = require "cnnlab"
local nn, optim, data, util, debias = lab.nn, lab.optim, lab.data, lab.util, lab.debias

local tmp = os.tmpname()
os.remove(tmp)
util.mkdir_p(tmp)
teardown(function() os.execute("rm -rf " .. util.shell_quote(tmp)) end)
local function path(name) return tmp .. "/" .. name end
local function write(name, bytes)
  local f = assert(io.open(path(name), "wb"))
  f:write(bytes)
  f:close()
  return path(name)
end

local function i64(t) return lab.tensor(t, {dtype = "int64"}) end
local function u8(...) return lab.zeros({...}, {dtype = "uint8"}) end
local function leaf(...) return lab.zeros({...}, {requires_grad = true}) end
local function freed(t) t:free() return t end
local function linear_sd(w, b) return {weight = w or lab.zeros(2, 3), bias = b or lab.zeros(2)} end
local function opt_args(extra) return util.parse_args(extra, {name = "t", options = {
  {"epochs", 5, ""}, {"lr", 1e-3, ""}, {"quick", false, ""}}}, {exit = false}) end

-- {module, call, fragment}
local cases = {
  -- tensors (beyond tensor_spec.lua)
  {"tensor", function() lab.randperm(-1) end, "randperm: n must be in 0..2^32-1, got -1"},
  {"tensor", function() lab.arange(0, 1e15) end, "tensor of more than 2^40 elements refused"},
  {"tensor", function() lab.zeros(0, 2^32, 2^32) end, "tensor of more than 2^40 elements refused"},
  {"tensor", function() lab.zeros(2, 3):reshape({2, "x"}) end,
    "reshape: shape entry 2 must be an integer, got string"},
  {"tensor", function() lab.cat({lab.zeros(2), lab.zeros(2)}, 3) end,
    "cat: dimension 3 out of range for a tensor with 1 dimensions"},
  {"tensor", function() lab.zeros(2, 3):unsqueeze(5) end, "unsqueeze: position 5 out of range 0..2"},
  {"tensor", function() lab.zeros(2, 3):squeeze(4) end, "squeeze: dimension 4 out of range"},
  {"tensor", function() lab.zeros(2, 3):flatten(7) end, "flatten: dimension 7 out of range"},
  {"tensor", function() lab.zeros(2, 3):select(1, -4) end,
    "select: index -4 out of range for dimension 1 of size 3"},
  {"tensor", function() lab.zeros(2, 3):narrow(0, -1, 1) end, "are outside dimension 0 of size 2"},
  {"tensor", function() lab.zeros(2, 3):copy_(lab.zeros(4)) end,
    "copy_: shapes 2×3 and 4 cannot be broadcast"},
  {"tensor", function() lab.zeros(2, 3):gather(1, u8(2, 3):long() + 5) end,
    "gather: index 5 is out of range for dimension 1 of size 3"},
  {"tensor", function() lab.zeros(2, 3):index_select(1, u8(2, 2):long()) end,
    "index_select: index must be 1-D, got 2 dimensions"},
  {"tensor", function() lab.zeros(2, 3):argmax(2) end, "argmax: dimension 2 out of range"},
  {"tensor", function() lab.zeros(2):get(0.5) end, "argument 1 is 0.5"},
  {"tensor", function() lab.zeros(2):set(5, 1) end,
    "set: index 5 out of range for dimension 0 of size 2"},
  {"tensor", function() lab.zeros(2):expand(3, 3) end, "expand: cannot expand 2 to 3×3"},
  {"tensor", function() lab.zeros(3, 3):matmul(lab.zeros(3)) end,
    "matmul: expected M×K and K×N matrices, got 3×3 and 3"},
  {"tensor", function() lab.zeros(2):permute({0, 5}) end, "permute: 1 dimensions expected, got 2"},
  {"tensor", function() return freed(lab.zeros(2)) + 1 end, "tensor has been freed"},
  {"tensor", function() lab.Generator(1):set_state(("z"):rep(32)) end, "32 hex digits"},
  {"tensor", function() lab.Generator(1):integer(0) end, "bound must be in 1..2^32-1"},
  {"tensor", function() lab.set_threads(5000) end, "thread count must be in 0..1024"},
  {"tensor", function() lab.no_grad(5) end, "function or callable (a module) expected, got number"},
  -- autograd and hooks
  {"autograd", function()
    local x = lab.ones(2, {requires_grad = true})
    x:register_hook(function() return "no" end);
    (x * 2):sum():backward()
  end, "backward: a tensor hook must return nil or a tensor, got string"},
  {"autograd", function()
    local x = lab.ones(2, {requires_grad = true})
    x:register_hook(function() error("hook says no", 0) end);
    (x * 2):sum():backward()
  end, "hook says no"},
  {"autograd", function()
    local x = lab.ones(2, {requires_grad = true})
    x:register_hook(function(g) (g * 1):sum():backward() end);
    (x * 2):sum():backward()
  end, "backward: cannot start a backward pass from inside a hook"},
  {"autograd", function()
    local y = (lab.ones(2, {requires_grad = true}) * 2):sum()
    y:backward()
    y:backward()
  end, "its buffers were freed by the first backward — pass retain_graph = true"},
  -- functional nn ops (beyond nn_spec.lua)
  {"nn ops", function() lab.conv2d(lab.zeros(1, 3, 8, 8), lab.zeros(4, 3, 3, 3), nil, 1, 1.5) end,
    "conv2d: padding must be a non-negative integer, got 1.5"},
  {"nn ops", function() lab.max_pool2d(lab.zeros(1, 1, 4, 4), 2, 0.5) end,
    "max_pool2d: stride must be a positive integer, got 0.5"},
  {"nn ops", function() lab.linear(lab.zeros(2, 3), lab.zeros(4, 3), lab.zeros(5)) end,
    "linear: bias must be 1-D of size O = 4 (the weight's O), got 5"},
  {"nn ops", function() lab.upsample_bilinear(lab.zeros(2, 3), 4, 4) end,
    "upsample_bilinear: input must be N×C×H×W"},
  {"nn ops", function() lab.mse_loss(lab.zeros(2), i64({0, 0})) end,
    "mse_loss: target must be a float32 tensor, got int64"},
  {"nn ops", function() lab.cross_entropy(lab.zeros(2, 3, 4), i64({0, 0})) end,
    "cross_entropy: logits must be N×K with K >= 1 classes, got 2×3×4"},
  {"nn ops", function() lab.cross_entropy(lab.zeros(2, 3), i64({0, 1}), {weight = "w"}) end,
    "cross_entropy: option weight must be a tensor, got the string \"w\""},
  {"nn ops", function() lab.dropout(lab.zeros(2), -0.1) end, "dropout: p must be in [0, 1), got -0.1"},
  {"nn ops", function() lab.sgd_step(lab.zeros(2), lab.zeros(2), nil, "x") end,
    "sgd_step: lr must be a number, got the string \"x\""},
  {"nn ops", function()
    lab.adam_step(lab.zeros(2), lab.zeros(2), lab.zeros(2), lab.zeros(2), 1, 0.1, 0.9, 1.5)
  end, "adam_step: beta2 must be in [0, 1), got 1.5"},
  -- modules
  {"modules", function() nn.Conv2d(0, 4, 3) end, "Conv2d: in_channels must be a positive integer, got 0"},
  {"modules", function() nn.Conv2d(3, 4, 2.5) end, "Conv2d: kernel must be a positive integer, got 2.5"},
  {"modules", function() nn.Conv2d(3, 4, 3, {padding = -1}) end,
    "Conv2d: padding must be a non-negative integer, got -1"},
  {"modules", function() nn.Conv2d(3, 4, 3, {stride = 0}) end,
    "Conv2d: stride must be a positive integer, got 0"},
  {"modules", function() nn.Conv2d(3, 4, 3, {pad = 1}) end,
    "Conv2d: unknown option 'pad' (known: bias, generator, padding, stride)"},
  {"modules", function() nn.Conv2d(3, 4, 3, "x") end, "Conv2d: options table expected, got string"},
  {"modules", function() nn.Linear(-1, 2) end, "Linear: in_features must be a positive integer, got -1"},
  {"modules", function() nn.Linear(2, 2, {biass = false}) end, "Linear: unknown option 'biass'"},
  {"modules", function() nn.MaxPool2d(2, 0) end, "MaxPool2d: stride must be a positive integer, got 0"},
  {"modules", function() nn.Dropout(1) end, "Dropout: p must be in [0, 1), got 1"},
  {"modules", function() nn.Dropout(0.5, {gen = 1}) end, "Dropout: unknown option 'gen'"},
  {"modules", function() nn.Linear(3, 2)(lab.zeros(2, 4)) end,
    "linear: input must be N×I with I = 3 (the weight's I), got 2×4"},
  {"modules", function() nn.Sequential{nn.Linear(3, 2), nn.Linear(3, 2)}(lab.zeros(1, 3)) end,
    "Sequential: child 2 (2 = Linear(3 → 2)) failed: linear: input must be N×I with I = 3"},
  {"modules", function() lab.models.seed_cnn()(lab.zeros(1, 3, 32, 32)) end,
    "Sequential: child 11 (fc = Linear(512 → 10)) failed: linear: input must be N×I with I = 512 (the weight's I), got 1×1152"},
  {"modules", function() lab.models.seed_cnn()(lab.zeros(1, 1, 28, 28)) end,
    "child 1 (conv1 = Conv2d(3 → 32, 3×3, stride 1, padding 1)) failed: conv2d: input must be N×C×H×W with C = 3"},
  {"modules", function() nn.Sequential{nn.Linear(3, 2), 5} end,
    "add_module: '2' is not a module (got number)"},
  {"modules", function() nn.Sequential():add(nn.ReLU(), "a"):add(nn.ReLU(), "a") end,
    "add_module: a child named 'a' exists already"},
  {"modules", function() nn.Module()(lab.zeros(1)) end, "Module: forward is not defined"},
  {"modules", function() nn.ReLU():register_forward_hook(5) end,
    "register_forward_hook: function expected, got number"},
  {"modules", function() nn.ReLU():register_backward_hook("f") end,
    "register_backward_hook: function expected, got string"},
  -- state dicts
  {"state_dict", function() nn.Linear(3, 2):load_state_dict({weight = lab.zeros(2, 3)}) end,
    "load_state_dict: missing tensor(s): bias"},
  {"state_dict", function()
    local sd = linear_sd()
    sd.extra = lab.zeros(1)
    nn.Linear(3, 2):load_state_dict(sd)
  end, "load_state_dict: unexpected tensor(s): extra"},
  {"state_dict", function() nn.Linear(3, 2):load_state_dict(linear_sd(lab.zeros(3, 2))) end,
    "load_state_dict: 'weight' has shape 3×2 in the file but 2×3 in the model"},
  {"state_dict", function() nn.Linear(3, 2):load_state_dict(linear_sd("w")) end,
    "load_state_dict: 'weight' is a string, not a tensor"},
  {"state_dict", function() nn.Linear(3, 2):load_state_dict(linear_sd(nil, freed(lab.zeros(2)))) end,
    "load_state_dict: 'bias' has been freed"},
  {"state_dict", function() nn.Linear(3, 2):load_state_dict(nil) end,
    "load_state_dict: a table name → tensor expected, got nil"},
  -- optimizers
  {"optim", function() optim.SGD({}, {lr = 0.1}) end, "SGD: a non-empty list of parameter tensors expected"},
  {"optim", function() optim.SGD({lab.zeros(2)}, {lr = 0.1}) end, "SGD: parameter 1 does not require grad"},
  {"optim", function() optim.SGD({5}, {lr = 0.1}) end, "SGD: parameter 1 is a number, not a tensor"},
  {"optim", function() optim.SGD({leaf(2)}, {lr = -1}) end, "SGD: lr must be positive, got -1"},
  {"optim", function() optim.SGD({leaf(2)}, {lr = "big"}) end,
    "SGD: option 'lr' must be a number, got string"},
  {"optim", function() optim.SGD({leaf(2)}, {momentun = 0.9}) end,
    "SGD: unknown option 'momentun' (known: lr, momentum, nesterov, weight_decay)"},
  {"optim", function() optim.Adam({leaf(2)}, {beta1 = 1}) end, "Adam: beta1 must be in [0, 1), got 1"},
  {"optim", function() optim.Adam({leaf(2)}, 0.1) end, "Adam: options table expected"},
  {"optim", function()
    local p = leaf(2)
    optim.Adam({p}):load_state_dict(optim.SGD({p}, {lr = 0.1, momentum = 0.9}):state_dict())
  end, "load_state_dict: state of a SGD optimizer given to Adam"},
  {"optim", function()
    optim.Adam({leaf(2)}):load_state_dict({["m.1"] = lab.zeros(2)}, {step = 1, kind = "Adam"})
  end, "load_state_dict: optimizer buffer v.1 missing"},
  {"optim", function()
    optim.Adam({leaf(2)}):load_state_dict({["m.1"] = lab.zeros(3), ["v.1"] = lab.zeros(2)})
  end, "copy_: shapes 2 and 3 cannot be broadcast"},
  -- files: IDX, PNG, safetensors
  {"io", function() lab.read_idx(path("nope")) end, "idx: " .. path("nope") .. ": cannot open"},
  {"io", function() lab.read_idx(tmp) end, "idx: " .. tmp .. ": not a regular file"},
  {"io", function() lab.write_idx(path("x.idx"), i64({2 ^ 40})) end,
    "int64 value 1099511627776 at position 0 does not fit IDX's int32"},
  {"io", function() lab.write_idx("/nonexistent/x.idx", lab.zeros(2)) end,
    "idx: /nonexistent/x.idx: cannot create a file there"},
  {"io", function() lab.write_png(path("x.png"), lab.zeros(2, 3, 4)) end,
    "expected an image H×W, 1×H×W or 3×H×W, got 2×3×4"},
  {"io", function() lab.write_png(path("x.png"), lab.zeros({3, 4}, {dtype = "int64"})) end,
    "expected a uint8 or float32 image, got int64"},
  {"io", function() lab.write_png(path("x.png"), lab.zeros(0, 4)) end,
    "image of size 0×4 cannot be a PNG"},
  {"io", function() lab.write_png(path("x.png"), freed(lab.zeros(2, 2))) end, "tensor has been freed"},
  {"io", function() lab.read_png(write("bad.png", "\137PNG\r\n\26\nxxxx")) end,
    "bad.png: truncated: the file ends before its IEND chunk"},
  {"io", function() lab.read_png(write("notpng.png", "hello")) end, "not a PNG file (bad signature)"},
  {"io", function() lab.save_safetensors(path("x.st"), {a = lab.zeros(1)}, {k = true}) end,
    "save_safetensors: metadata 'k' must be a string or a number, got boolean"},
  {"io", function() lab.save_safetensors(path("x.st"), {[""] = lab.zeros(1)}) end,
    "tensor 0 has an empty name"},
  {"io", function() lab.save_safetensors(path("x.st"), {w = freed(lab.zeros(1))}) end,
    "save_safetensors: tensor 'w' has been freed"},
  {"io", function() lab.load_safetensors(write("short.st", "abc")) end,
    "short.st: truncated: 3 bytes, too short for the 8-byte header length"},
  {"io", function() lab.safetensors_info(path("nope.st")) end, "nope.st: cannot open"},
  {"io", function() lab.image_grid(lab.zeros(2, 3, 4, 4), {ncol = 1.5}) end,
    "image_grid: option 'ncol' must be an integer in 1..1048576, got 1.5"},
  {"io", function() lab.image_grid(lab.zeros(0, 3, 4, 4)) end, "image_grid: no images (N = 0)"},
  -- Colored MNIST builders and data
  {"data", function() lab.assign_colors(lab.zeros(2), 1, "easy", 0, "train") end,
    "assign_colors: labels must be a 1-D int64 or uint8 tensor of classes 0..9, got float32 2"},
  {"data", function() lab.colorize(u8(2, 4, 4), i64({1, 2}), 0.1, "s", "train") end,
    "colorize: seed (argument #4) must be an integer"},
  {"data", function() lab.colorize(u8(2, 4, 4), i64({1, 12}), 0.1, 0, "train") end,
    "colorize: colors[1] = 12 is not a class in 0..9"},
  {"data", function() lab.split_indices(10, 1.5) end, "split_indices: seed (argument #2) must be an integer"},
  {"data", function() lab.to_grey(u8(2, 1, 4, 4)) end, "to_grey: expected float32 or uint8 images"},
  {"data", function() data.batches({n = 4, labels = lab.zeros(4), images = lab.zeros(4, 2)}, 0) end,
    "data.batches: batch_size must be a positive integer, got 0"},
  {"data", function() data.colored_mnist{seed = 1.5, source = {}} end,
    "data.colored_mnist: seed must be an integer"},
  {"data", function() data.colored_mnist{rho = 2, source = {}} end,
    "data.colored_mnist: rho must be a number in [0, 1], got 2"},
  {"data", function() data.colored_mnist{colour = 1} end, "data.colored_mnist: unknown option 'colour'"},
  {"data", function() data.mnist(path("empty-mnist")) end,
    "is missing in " .. path("empty-mnist")},
  {"data", function() data.generated{n = -1} end, "synth_digits: n (argument #1) must be an integer"},
  {"data", function() data.export({}, path("e.st")) end, "data.export: the set has no tensor 'images'"},
  {"data", function()
    lab.save_safetensors(path("partial.st"), {images = lab.zeros(1)})
    data.load_export(path("partial.st"))
  end, "data.load_export: " .. path("partial.st") .. " has no tensor 'labels'"},
  -- debias methods
  {"debias", function() debias.load("nonexistent_method") end,
    "debias: unknown method 'nonexistent_method' (available: "},
  {"debias", function() debias.load("") end, "debias: a method name or file path is required"},
  {"debias", function() debias.load("init") end, "debias: unknown method 'init'"},
  {"debias", function() debias.load(write("nonlua.lua", "return 42")) end,
    "nonlua.lua does not return a method table with a loss(ctx, batch) function"},
  {"debias", function() debias.load(write("syntax.lua", "return {")) end,
    "debias: cannot load method file " .. path("syntax.lua")},
  {"debias", function() debias.load(path("missing.lua")) end,
    "debias: cannot load method file " .. path("missing.lua")},
  {"debias", function() debias.load("erm", {dropuot = 0.1}) end,
    "debias: method erm has no option 'dropuot' (options: dropout)"},
  {"debias", function() debias.load("erm", {dropout = "lots"}) end,
    "method erm: option 'dropout' must be a number, got 'lots'"},
  {"debias", function() debias.parse_options({"dropout"}) end, "--method-opt expects key=value, got 'dropout'"},
  -- scripts' shared helpers
  {"util", function() opt_args({"--epochs", "x"}) end, "--epochs expects an integer, got 'x'"},
  {"util", function() opt_args({"--nope"}) end, "t: unknown option --nope"},
  {"util", function() opt_args({"--epochs"}) end, "--epochs needs a value"},
  {"util", function() opt_args({"--lr", "fast"}) end, "--lr expects a number, got 'fast'"},
  {"util", function() opt_args({"--quick=maybe"}) end, "--quick takes no value or true/false, got 'maybe'"},
  {"util", function() opt_args({"stray"}) end, "t: unexpected argument 'stray'"},
  {"util", function() util.json_encode({f = print}) end, "json_encode: cannot encode a function"},
  {"util", function() local t = {} t.t = t util.json_encode(t) end, "json_encode: cycle in table"},
  {"util", function() util.read_file(path("nope")) end, "read_file: " .. path("nope")},
  {"util", function() util.write_file("/nonexistent/dir/x", "a") end,
    "write_file: cannot create /nonexistent/dir/x"},
  {"train", function() lab.train.fit{} end, "train.fit: method required"},
}

describe("misuse", function()
  it("has at least 80 cases of its own, across every module", function()
    local modules = {}
    for _, c in ipairs(cases) do modules[c[1]] = true end
    for _, m in ipairs({"tensor", "autograd", "nn ops", "modules", "state_dict", "optim", "io",
                        "data", "debias", "util"}) do
      assert.is_true(modules[m], "no case for " .. m)
    end
    assert.is_true(#cases >= 80, #cases .. " cases")
    print(("\n# misuse_spec.lua: %d cases"):format(#cases))
  end)

  for i, case in ipairs(cases) do
    it(("%d. %s: %s"):format(i, case[1], case[3]), function()
      local ok, err = pcall(case[2])
      assert.is_false(ok, "expected an error")
      assert.truthy(tostring(err):find(case[3], 1, true),
        ("message %q lacks %q"):format(tostring(err), case[3]))
      assert.is_true(lab.is_grad_enabled(), "grad mode left off")
    end)
  end
end)
