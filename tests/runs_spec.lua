-- Repeated method runs (cnnlab.runs) and Task 4's evidence measures (cnnlab.evidence):
-- selecting methods, seeds, result.json caching, mean ± sd, tables, one cached method run,
-- and the brightness split of colour-conflicting digits.
local lab = require "cnnlab"
local runs = require "cnnlab.runs"
local evidence = require "cnnlab.evidence"
local util = lab.util

local tmpdir = require("tests.helpers").tmpdir

describe("runs.seeds", function()
  it("counts up from the first seed and refuses a count below 1", function()
    assert.same({4, 5, 6}, runs.seeds(4, 3))
    assert.has_error(function() runs.seeds(1, 0) end,
      "runs.seeds: count must be an integer of at least 1, got 0")
  end)
end)

describe("runs.method_entries", function()
  it("selects methods and hands each its own and the shared options", function()
    local e = runs.method_entries("erm, lff", {"lff.q=0.5", "q=0.9"}, {})
    assert.equal(2, #e)
    assert.same({label = "erm", name = "erm", options = {}}, e[1])
    assert.equal("lff", e[2].label)
    assert.equal("0.9", e[2].options.q) -- the later key=value applies to every method with q
    assert.equal(3, #runs.method_entries("all", {}, {"erm", "dropout", "jtt"}))
  end)
  it("stops at a method listed twice, a bad option or one naming no selected method", function()
    assert.has_error(function() runs.method_entries("erm,erm", {}, {}) end,
      "--methods: erm is listed twice")
    assert.has_error(function() runs.method_entries("erm", {"bad"}, {}) end,
      "--method-opt expects NAME.key=value or key=value, got 'bad'")
    assert.has_error(function() runs.method_entries("erm", {"lff.q=1"}, {}) end,
      "--method-opt lff.q=1: no selected method is called lff (selected: erm)")
    assert.has_error(function() runs.method_entries(" ", {}, {}, "sweep_methods") end,
      "--sweep_methods: a comma list of at least one value expected, got ' '")
  end)
end)

describe("runs.cached", function()
  it("computes once, then reuses while the settings match (integers or floats alike)", function()
    local d = tmpdir()
    local path = d .. "/a/result.json"
    local calls = 0
    local function compute() calls = calls + 1 return {hard_acc = 50 + calls} end
    local r1, reused1 = runs.cached(path, {epochs = 5}, compute, {reuse = true})
    assert.same({false, 51, 1}, {reused1, r1.hard_acc, calls})
    local r2, reused2 = runs.cached(path, {epochs = 5.0}, compute, {reuse = true})
    assert.same({true, 51}, {reused2, r2.hard_acc})
    local r3, reused3 = runs.cached(path, {epochs = 6}, compute, {reuse = true})
    assert.same({false, 52}, {reused3, r3.hard_acc})
    local _, reused4 = runs.cached(path, {epochs = 6}, compute, {reuse = false})
    assert.is_false(reused4)
    assert.equal(3, calls)
    assert.same({epochs = 6}, util.json_decode(util.read_file(path)).settings)
    os.execute("rm -rf " .. util.shell_quote(d))
  end)
end)

describe("runs.aggregate and its presentation", function()
  local agg = runs.aggregate({{hard_acc = 40, seconds = 2}, {hard_acc = 60}}, {"hard_acc",
    "seconds", "val_acc"})
  it("gives mean, sd, n and values per field", function()
    assert.equal(50, agg.hard_acc.mean)
    assert.equal(2, agg.hard_acc.n)
    assert.near(lab.metrics.mean_sd({40, 60}) and select(2, lab.metrics.mean_sd({40, 60})),
      agg.hard_acc.sd, 1e-12)
    assert.same({2}, agg.seconds.values)
    assert.is_nil(agg.val_acc)
  end)
  it("formats mean ± sd and flattens with the seeds' names", function()
    assert.equal(("50.00 ± %.2f"):format(agg.hard_acc.sd), runs.pm(agg.hard_acc))
    assert.equal("2", runs.pm(agg.seconds, 0))
    assert.equal("-", runs.pm(nil))
    local M = runs.flatten("erm_", {hard_acc = agg.hard_acc}, {3, 4}, {})
    assert.same({"erm_hard_acc_mean", "erm_hard_acc_sd", "erm_hard_acc_seed3", "erm_hard_acc_seed4"},
      (function()
        local t = {}
        for k in pairs(M) do t[#t + 1] = k end
        table.sort(t)
        return t
      end)())
    assert.equal(60, M.erm_hard_acc_seed4)
  end)
  it("pads by characters, not bytes", function()
    assert.equal("a±  ", runs.lpad("a±", 4))
    assert.equal("  ≠b", runs.rpad("≠b", 4))
    assert.equal("m     1   22", runs.row({"m", "1", "22"}, {2, 4}))
  end)
end)

describe("runs.sweep_table", function()
  it("lists rho descending and charts 100·(1 − rho) in the order of rho ascending", function()
    local results = {["erm@1"] = {{hard_conflicting_acc = 10}}, ["erm@0.99"] = {{hard_conflicting_acc = 30}}}
    local M = {}
    local lines, series = runs.sweep_table({"erm"}, {0.99, 1}, results, {1}, M)
    assert.truthy(lines[2]:find("rho 1.0 +rho 0.99"))
    assert.truthy(lines[3]:find("^erm +10.00 +30.00$"))
    assert.near(1, series[1].x[1], 1e-9)
    assert.near(0, series[1].x[2], 1e-12)
    assert.same({30, 10}, series[1].y)
    assert.equal(30, M.sweep_rho0_99_erm_hard_conflicting_acc_mean)
    assert.equal("rho1_0", runs.rho_key(1))
  end)
end)

describe("runs.log", function()
  it("keeps what it said and appends it to a file", function()
    local d = tmpdir()
    local log = runs.log()
    local print_ = print
    _G.print = function() end
    log.say("a %d", 1)
    log.say("b")
    _G.print = print_
    assert.is_true(log.append_to(d .. "/log.txt", "\n"))
    assert.is_true(log.append_to(d .. "/log.txt", "\n"))
    assert.equal("a 1\nb\na 1\nb\n", util.read_file(d .. "/log.txt"))
    os.execute("rm -rf " .. util.shell_quote(d))
  end)
end)

describe("runs.run", function()
  it("trains a method once and reads it back from result.json after", function()
    local d = tmpdir()
    local opts = {seed = 2, rho = 1.0, beta = 0.25, data = "generated", data_dir = "",
      quick = false, threads = 0, generated_n = 200, epochs = 1, batch = 64, lr = 1e-3,
      optimizer = "adam", reuse = true, resume = false, progress = false}
    local data = lab.study.data_cache(opts)
    local entry = runs.method_entries("erm", {}, {})[1]
    local r = runs.run(entry, 2, 1.0, d .. "/erm", opts, data)
    assert.equal(1, data.loads)
    assert.equal(1, r.epochs)
    assert.is_true(r.hard_acc >= 0 and r.hard_acc <= 100)
    assert.truthy(r.hard_conflicting_same_brightness_acc or r.n_hard_conflicting_same_brightness == 0)
    assert.is_true(util.exists(d .. "/erm/model.safetensors"))
    data:clear()
    local again = runs.run(entry, 2, 1.0, d .. "/erm", opts, data)
    assert.equal(1, data.loads) -- reused: no data set built again
    assert.equal(r.hard_acc, again.hard_acc)
    os.execute("rm -rf " .. util.shell_quote(d))
  end)
end)

describe("evidence", function()
  local source = lab.data.generated{n = 300, n_test = 200, seed = 4}
  local sets = lab.data.colored_mnist{seed = 4, rho = 1, source = source}
  it("splits conflicting digits by whether their colour has the label colour's brightness", function()
    local hard = sets.hard
    local same, other, n_same, n_other = evidence.brightness_split(hard, hard.labels)
    -- predicting the label is right on every conflicting digit of either kind
    assert.equal(hard.conflicting:sum():item(), n_same + n_other)
    if n_same > 0 then assert.equal(100, same) end
    assert.equal(100, other)
    local _, by_colour = evidence.brightness_split(hard, hard.colors)
    assert.equal(0, by_colour) -- a conflicting digit's colour is never its label
  end)
  it("a colour reader is perfect on the easy set and at chance level on the hard set", function()
    local E = evidence.readers(sets)
    assert.equal(100, E.colour_reader_val_acc)
    assert.is_true(E.colour_reader_hard_acc < 30)
    assert.is_true(E.grey_brightness_colour_bits <= E.colour_entropy_bits + 1e-9)
  end)
end)
