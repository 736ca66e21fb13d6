-- The API explains itself and checks its input early: help for every public entry, errors
-- that name the argument and point at the caller's line, and Lua-level input checks on data,
-- checkpoints, output folders and plug-in names.
local lab = require "cnnlab"
local nn = lab.nn
local util = lab.util

local BIN = os.getenv("CNNLAB_BIN") or "./cnnlab"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  util.mkdir_p(d)
  return d
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- Runs the interpreter on shell-quoted args; returns {code, out, err}.
local function run(args, input)
  local out, err = os.tmpname(), os.tmpname()
  local cmd = ("%s %s >%s 2>%s"):format(BIN, args, out, err)
  if input then cmd = ("printf '%%s' %s | %s"):format(util.shell_quote(input), cmd)
  else cmd = cmd .. " </dev/null" end
  local _, _, code = os.execute(cmd)
  local r = {code = code, out = slurp(out), err = slurp(err)}
  os.remove(out)
  os.remove(err)
  return r
end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

local function tiny_net()
  local net = nn.Sequential()
  net:add(nn.Conv2d(3, 4, 3), "conv1"):add(nn.ReLU(), "relu1"):add(nn.Flatten(), "flat")
  return net
end

describe("get_module", function()
  it("names the missing layer and lists the valid ones", function()
    local net = tiny_net()
    assert.equal(net.relu1, net:get_module("relu1"))
    local e = err_of(net.get_module, net, "relu9")
    assert.truthy(e:find("relu9", 1, true), e)
    assert.truthy(e:find("conv1, relu1, flat", 1, true), e)
    assert.is_nil(net:find_module("relu9"))
  end)
end)

describe("script usage", function()
  it("shows the dash spelling and each default once", function()
    local study = require "cnnlab.study"
    local _, text = util.parse_args({"--help"}, {name = "t",
      options = study.options({"method_opt", "out"})}, {exit = false})
    assert.truthy(text:find("--method-opt", 1, true), text)
    assert.falsy(text:find("--method_opt", 1, true), text)
    assert.truthy(text:find("--data-dir", 1, true), text)
    assert.falsy(text:find("(default )", 1, true), text)
    for line in text:gmatch("[^\n]+") do
      local _, count = line:gsub("%(default ", "")
      assert.is_true(count <= 1, line)
    end
    -- both spellings parse
    local o = util.parse_args({"--method-opt", "a=1", "--method_opt", "b=2", "--data-dir", "x"},
      {name = "t", options = study.options({"method_opt"})}, {exit = false})
    assert.same({"a=1", "b=2"}, o.method_opt)
    assert.equal("x", o.data_dir)
  end)
end)

describe("plug-in names", function()
  it("become safe file names (no way out of --out)", function()
    assert.equal(".._.._x", util.safe_name("../../x"))
    assert.falsy(util.safe_name("../../x"):find("/", 1, true))
    assert.is_true(util.safe_name("..") ~= "..")
    assert.equal("erm", util.safe_name("erm"))
    local d = tmpdir()
    local file = write(d .. "/evil.lua", [[return {name = "../../x", loss = function() end}]])
    local m = lab.debias.load(file)
    assert.falsy(m.name:find("/", 1, true), m.name)
    local reg = require("cnnlab.plugins").folder{kind = "thing", dir = d}
    local t = reg.load(file)
    assert.falsy(t.name:find("/", 1, true), t.name)
  end)
end)

-- A generated source whose training part is cut to n images.
local function source_of(n)
  local s = lab.data.generated{n = 50, n_test = 20, seed = 1}
  s.train.images = s.train.images:narrow(0, 0, n)
  s.train.labels = s.train.labels:narrow(0, 0, n)
  return s
end

describe("input checks", function()
  it("refuse a data set of 0 or 1 training images before training, naming the counts", function()
    for _, n in ipairs({0, 1}) do
      local e = err_of(lab.data.colored_mnist, {seed = 1, source = source_of(n)})
      assert.truthy(e:find(("%d training image"):format(n), 1, true), e)
    end
    local sets = lab.data.colored_mnist{seed = 1, source = source_of(30)}
    local empty = {n = 0, images = sets.train.images:narrow(0, 0, 0),
      labels = sets.train.labels:narrow(0, 0, 0)}
    local e = err_of(lab.train.fit, {method = lab.debias.load("erm"), data = {train = empty},
      epochs = 1, progress = false})
    assert.truthy(e:find("training set has 0 images", 1, true), e)
  end)

  it("refuse MNIST IDX images that are not 28×28, at load", function()
    local d = tmpdir()
    local img = lab.zeros({4, 32, 32}, {dtype = "uint8"})
    local lab4 = lab.zeros({4}, {dtype = "uint8"})
    for _, p in ipairs({"train", "t10k"}) do
      lab.write_idx(d .. "/" .. p .. "-images-idx3-ubyte", img, {gzip = false})
      lab.write_idx(d .. "/" .. p .. "-labels-idx1-ubyte", lab4, {gzip = false})
    end
    local e = err_of(lab.data.mnist, d)
    assert.truthy(e:find("28×28", 1, true) and e:find("32×32", 1, true), e)
  end)

  it("validate a checkpoint's epoch (missing, not a number, out of range)", function()
    local pos = lab.train.checkpoint_position
    assert.same({epoch = 2, step_in_epoch = 0},
      pos("c", {epoch = "2", step_in_epoch = "0", steps = "10"}, 3, 5))
    for _, bad in ipairs({{}, {epoch = "x"}, {epoch = "-1"}, {epoch = "1e9"}, {epoch = "1.5"}}) do
      bad.step_in_epoch, bad.steps = "0", "0"
      local e = err_of(pos, "ck.safetensors", bad, 3, 5)
      assert.truthy(e:find("ck.safetensors", 1, true) and e:find("'epoch'", 1, true), e)
    end
  end)
end)

describe("error locations", function()
  it("point at the user's line, not the library's", function()
    local d = tmpdir()
    local script = write(d .. "/user_script.lua", table.concat({
      'local lab = require "cnnlab"',
      'local net = lab.nn.Sequential():add(lab.nn.Linear(4, 3), "fc")',
      'local ok, e = pcall(net, lab.zeros({2, 5}))',
      'print(e)',
      'ok, e = pcall(lab.nn.Linear, 0, 3)',
      'print(e)',
      'ok, e = pcall(lab.train.fit, {data = {}})',
      'print(e)',
      'local m = lab.nn.Linear(4, 3)',
      'ok, e = pcall(m, lab.zeros({2, 5}))',
      'print(e)',
      'ok, e = pcall(lab.attack.pgd, m, lab.zeros({2, 1, 2, 2}), {eps = 0.1})',
      'print(e)',
      'ok, e = pcall(lab.report.write, 5)',
      'print(e)',
    }, "\n"))
    local r = run(util.shell_quote(script))
    assert.equal(0, r.code, r.err)
    local lines = {}
    for l in r.out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    for i, want in ipairs({3, 5, 7, 10, 12, 14}) do
      local prefix = ("%s:%d: "):format(script, want)
      assert.equal(prefix, (lines[i] or ""):sub(1, #prefix), lines[i])
      assert.falsy(lines[i]:find("lua/cnnlab/", 1, true), lines[i])
    end
    assert.truthy(lines[1]:find("linear: input must be", 1, true), lines[1])
    assert.truthy(lines[5]:find("attack.pgd: give exactly one of target", 1, true), lines[5])
    assert.truthy(lines[6]:find("report.write: options must be a table", 1, true), lines[6])
  end)

  it("a wrong plug-in on the command line names the option, not a library line", function()
    for _, case in ipairs({
      {"scripts/task1_train.lua --method nosuch", "task1_train: --method nosuch: debias: unknown method 'nosuch' (available: "},
      {"scripts/task1_train.lua --method lff --method-opt nope=1", "task1_train: --method lff: debias: method lff has no option 'nope'"},
      {"scripts/task1_train.lua --dataset nosuch", "task1_train: --dataset nosuch: dataset: unknown dataset 'nosuch' (available: "},
      {"scripts/task1_train.lua --arch nosuch", "task1_train: --arch nosuch: model: unknown model 'nosuch' (available: "},
      {"scripts/task4_debias.lua --methods erm,nosuch", "task4_debias: --methods nosuch: debias: unknown method 'nosuch'"},
    }) do
      local r = run(case[1] .. " --out " .. tmpdir() .. "/out")
      assert.equal(1, r.code, case[1])
      assert.equal(case[2], r.err:sub(1, #case[2]), case[1] .. " said: " .. r.err)
      assert.falsy(r.err:find("%.lua:%d+:"), r.err)
    end
  end)
end)

describe("models and outputs", function()
  local study = require "cnnlab.study"

  it("--quick uses the quick demo's model; a missing model lists the ones under runs/", function()
    local spec = {name = "t", options = study.options({"model"})}
    local d = tmpdir()
    local cwd = os.getenv("PWD")
    -- resolve is relative to the working folder: emulate it with study.quick_model directly
    assert.is_nil(study.quick_model({quick = false}))
    local o = util.parse_args({"--model", "x.safetensors", "--quick"}, spec, {exit = false})
    assert.equal("x.safetensors", o.model) -- an explicit --model stays
    local found = false
    for _, e in ipairs(spec.options) do if e[1] == "model" then found = e.resolve ~= nil end end
    assert.is_true(found)
    util.mkdir_p(d .. "/runs/quick/task1")
    local net = lab.models.seed_cnn({generator = lab.Generator(1)})
    lab.save_safetensors(d .. "/runs/quick/task1/model.safetensors", net:state_dict())
    assert.same({d .. "/runs/quick/task1/model.safetensors"}, study.find_models(d .. "/runs"))
    local e = err_of(study.load_model, d .. "/runs/task1/model.safetensors")
    assert.truthy(e:find("no trained model at", 1, true), e)
    assert.truthy(e:find("models under runs/", 1, true) or e:find("no model under runs/", 1, true), e)
    _ = cwd
    -- in a folder with a quick demo's model, --quick finds it; without --quick the default stays
    local bin = BIN:sub(1, 1) == "/" and BIN or (os.getenv("PWD") .. "/" .. BIN)
    local code = 'local st = require "cnnlab.study"; local o = require("cnnlab.util").parse_args(arg, '
      .. '{name = "t", options = st.options({"model"})}); print(o.model)'
    write(d .. "/s.lua", code)
    local p = io.popen(("cd %s && %s s.lua --quick && %s s.lua"):format(util.shell_quote(d), bin, bin))
    local out = p:read("a")
    p:close()
    assert.equal("runs/quick/task1/model.safetensors\nruns/task1/model.safetensors\n", out)
  end)

  it("loads the model inside a training checkpoint", function()
    local d = tmpdir()
    local net = lab.models.seed_cnn({generator = lab.Generator(2)})
    local t = {}
    for k, v in pairs(net:state_dict()) do t["model." .. k] = v end
    t["optim.step"] = lab.zeros({1})
    lab.save_safetensors(d .. "/checkpoint.safetensors", t, {epoch = "2"})
    local back = study.load_model(d .. "/checkpoint.safetensors")
    local x = lab.rand({2, 3, 28, 28}, {generator = lab.Generator(3)})
    assert.equal(0, (back(x) - net:eval()(x)):abs():max():item())
  end)

  it("describes a method with its options, and records them", function()
    local m = lab.debias.load("lff", {q = "0.5"})
    assert.equal("lff (ema=0.7, q=0.5)", lab.debias.describe(m))
    assert.same({ema = 0.7, q = 0.5}, lab.debias.options_of(m))
    assert.equal("erm (dropout=0)", lab.debias.describe(lab.debias.load("erm")))
  end)

  it("a run failing on its arguments leaves no output folder; a bad --out fails first", function()
    local d = tmpdir()
    local out = d .. "/new/out"
    local script = write(d .. "/run.lua", ([[
      package.path = %q .. ";" .. package.path
      local util, study = require "cnnlab.util", require "cnnlab.study"
      local opts = util.parse_args(arg, {name = "t", options = {{"out", "x", "out"}}})
      study.main("t", function()
        util.mkdir_p(opts.out)
        error("--thing: expected a number, got 'x'", 0)
      end)]]):format(package.path))
    local r = run(util.shell_quote(script) .. " --out " .. util.shell_quote(out))
    assert.equal(1, r.code)
    assert.truthy(r.err:find("expected a number", 1, true), r.err)
    assert.is_false(util.exists(out))
    assert.is_false(util.exists(d .. "/new"))
    -- an --out below a file cannot be written: said before any work
    write(d .. "/afile", "x")
    r = run(util.shell_quote(script) .. " --out " .. util.shell_quote(d .. "/afile/sub"))
    assert.equal(1, r.code)
    assert.truthy(r.err:find("cannot create the output folder", 1, true), r.err)
    assert.falsy(r.err:find("expected a number", 1, true), r.err)
    assert.same({}, util.missing_folders(d))
  end)

  it("sweeps the stale temporaries a killed run left", function()
    local d = tmpdir()
    local dead = write(d .. "/model.safetensors.tmp.999999999.1", "x")  -- no such pid
    local mine = write(d .. "/metrics.json.tmp." .. lab.getpid() .. ".1", "x")
    local old = write(d .. "/checkpoint.safetensors.tmp.AbC123", "x")
    local new = write(d .. "/hard.safetensors.tmp.XyZ789", "x")
    local keep = write(d .. "/model.safetensors", "x")
    os.execute("touch -d '2 hours ago' " .. util.shell_quote(old))
    local removed = util.sweep_temporaries(d)
    table.sort(removed)
    assert.same({"checkpoint.safetensors.tmp.AbC123", "model.safetensors.tmp.999999999.1"}, removed)
    assert.is_true(util.exists(mine) and util.exists(new) and util.exists(keep))
    assert.is_false(util.exists(dead) or util.exists(old))
  end)
end)

describe("the study's seed", function()
  it("is one default for every task, Task 0 included", function()
    local seed = require("cnnlab.defaults").study.seed
    for _, script in ipairs({"task0_data", "task1_train", "task4_debias"}) do
      local r = run("scripts/" .. script .. ".lua --help")
      assert.equal(0, r.code, r.err)
      local line = r.out:match("\n%s*(%-%-seed[^\n]*)")
      assert.truthy(line, r.out)
      assert.truthy(line:find("(default " .. seed .. ")", 1, true), script .. ": " .. line)
    end
  end)
end)

describe("help", function()
  local doc = require "cnnlab.doc"

  it("has a signature and a summary for every public entry, internals hidden", function()
    -- every entry doc.walk() lists, in every namespace it covers: lab, lab.<each of
    -- doc.MODULES> and the methods of Tensor, Generator, Module and Optimizer
    local missing, n, groups = {}, 0, {}
    for _, e in ipairs(doc.walk()) do
      assert.falsy(e.name:match("[.:]_"), e.name)
      n = n + 1
      groups[e.name:match("^(lab%.[%w_]+)%.") or e.name:match("^(%u%w*):") or e.name] = true
      local d = doc.describe(e.value, e.name)
      if not (d and d.signature ~= "" and d.summary ~= "") then missing[#missing + 1] = e.name end
    end
    assert.is_true(n > 400, "entries walked: " .. n)
    for _, g in ipairs({"Tensor", "Generator", "Module", "Optimizer"}) do
      assert.is_true(groups[g], g .. " is not walked")
    end
    for _, mod in ipairs(doc.MODULES) do
      assert.is_true(groups["lab." .. mod], "lab." .. mod .. " is not walked")
    end
    assert.same({}, missing)
  end)

  it("docs/api.md's reference is the generated one", function()
    local r = run("tools/gen_api_doc.lua --check")
    assert.equal(0, r.code, r.err)
  end)

  it("help(x) in the REPL prints signatures and summaries, not addresses", function()
    local r = run("", "help(lab.zeros)\nhelp(lab.nn)\nhelp(lab)\n")
    assert.equal(0, r.code, r.err)
    assert.truthy(r.out:find("lab.zeros(shape…", 1, true), r.out)
    assert.truthy(r.out:find("A tensor of zeros", 1, true), r.out)
    assert.truthy(r.out:find("Linear%s+A fully connected layer"), r.out)
    assert.falsy(r.out:find("0x%x%x%x%x"), r.out)
    assert.falsy(r.out:find("_fail_alloc_after", 1, true), r.out)
  end)
end)

describe("README", function()
  it("shows the REPL session the REPL prints", function()
    local text = slurp("README.md")
    local block = text:match("## A first session: the REPL\n\n```\n(.-)```")
    assert.truthy(block, "no REPL block in README.md")
    local input, want = {}, {}
    for line in block:gmatch("([^\n]*)\n") do
      if line:sub(1, 2) == "> " then input[#input + 1] = line:sub(3)
      elseif not line:find("^%$ ") and not line:find("^cnnlab %d") then want[#want + 1] = line end
    end
    local p = io.popen(("printf '%%s' %s | %s 2>&1"):format(
      util.shell_quote(table.concat(input, "\n") .. "\n"), BIN))
    local all = p:read("a")
    p:close()
    local got, in_traceback = {}, false
    for line in all:gmatch("([^\n]*)\n") do
      if line == "stack traceback:" then in_traceback = true
      elseif in_traceback and line:find("^%s") then -- the traceback's frames
      else in_traceback = false; got[#got + 1] = line end
    end
    assert.same(want, got)
  end)
end)

describe("lab.show", function()
  it("draws a 2×2 image with 24-bit half blocks", function()
    local img = lab.tensor({{{255, 0}, {0, 255}}, {{0, 255}, {0, 0}}, {{0, 0}, {255, 0}}},
      {dtype = "uint8"})
    local text = lab.show(img, {terminal = true, out = {write = function() end, flush = function() end}})
    assert.equal("\27[38;2;255;0;0m\27[48;2;0;0;255m▀\27[38;2;0;255;0m\27[48;2;255;0;0m▀\27[0m\n", text)
  end)

  it("draws a map through a colour map with a scale bar of min and max", function()
    local text = lab.show(lab.tensor({{0, 1}, {2, 4}}), {terminal = true,
      out = {write = function() end, flush = function() end}})
    assert.truthy(text:find("\27[38;2;68;1;84m", 1, true), text)  -- min: the map's first colour
    assert.truthy(text:find("\27[48;2;253;231;37m", 1, true), text) -- max: its last
    assert.truthy(text:find("\n0 ", 1, true) and text:find(" 4\n", 1, true), text)
  end)

  it("writes a readable PNG with {file =}, and outside a terminal", function()
    local d = tmpdir()
    local path = lab.show(lab.rand({2, 1, 4, 4}), {file = d .. "/grid.png"})
    assert.equal(d .. "/grid.png", path)
    assert.equal(3, lab.read_png(path):dim())
    path = lab.show(lab.rand({5, 7}), {file = d .. "/map.png"})
    assert.same({3, 5, 7}, lab.read_png(path).shape)
    local r = run("-e " .. util.shell_quote("lab.show(lab.rand(3, 6, 6))"))
    assert.equal(0, r.code, r.err)
    local png = r.out:match("wrote (%S+%.png)")
    assert.truthy(png, r.out)
    assert.same({3, 6, 6}, lab.read_png(png).shape)
    os.remove(png)
    local e = err_of(lab.show, lab.rand(2, 5, 5))
    assert.truthy(e:find("1 or 3 channels", 1, true), e)
  end)
end)
