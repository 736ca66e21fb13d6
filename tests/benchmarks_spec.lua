-- Benchmark tables (lua/cnnlab/benchmarks/, scripts/benchmarks.lua): the registry and the
-- tables' published figures with their sources, the cell measures on hand-built cases, the
-- quick mode of both tables on real MNIST (keys, ranges, the colour shortcut measured), and a
-- single cell merging into an existing metrics.json without wiping the other cells.
-- The quick runs take ~30 s on 2 cores (most of it building the two data sets); under the
-- sanitizers they are pending (make test runs them).
local lab = require "cnnlab"
local util = lab.util
local benchmarks = require "cnnlab.benchmarks"
local helpers = require "tests.helpers"

local BIN = os.getenv("CNNLAB_BIN") or "./cnnlab"
local have_mnist = util.exists("data/mnist/train-images-idx3-ubyte")
  and util.exists("data/mnist/t10k-labels-idx1-ubyte")

local function i64(t) return lab.tensor(t, {dtype = "int64"}) end

describe("benchmark tables", function()
  it("ships lff_colored_mnist and biased_mnist with the protocols of PROTOCOLS §1 and §2", function()
    assert.same({"biased_mnist", "lff_colored_mnist"}, benchmarks.available())
    local t = benchmarks.load("lff_colored_mnist")
    assert.equal("lff_mlp", t.arch)
    assert.same({1e-3, 256, 100, "adam"}, {t.lr, t.batch, t.epochs, t.optimizer})
    assert.equal(4, t.dataset_options.severity)
    assert.same({0.5, 1, 2, 5}, t.param.values)
    assert.equal("conflicting", t.param.option)
    assert.equal(3, #t.seeds)
    assert.equal("erm", t.methods[1])
    assert.equal("lff", t.methods[2])
    assert.is_true(t.method_options.jtt.upsample)
    for _, name in ipairs(t.methods) do lab.debias.load(name, t.method_options[name]) end
    local b = benchmarks.load("biased_mnist")
    assert.equal("seed_cnn", b.arch)
    assert.same({0.99, 0.995, 0.997, 0.999}, b.param.values)
    assert.equal(80, b.epochs)
  end)

  it("names a source (paper, table, column) for every published figure, nil where none was read", function()
    for _, name in ipairs(benchmarks.available()) do
      local t = benchmarks.load(name)
      assert.is_true(#t.published > 0, name)
      for _, f in ipairs(t.published) do
        assert.truthy(f.source:find("20%d%d"), f.source) -- the paper's year
        assert.truthy(f.source:find("Table") or f.source:find("table"), f.source)
        if f.unbiased == nil and f.conflicting == nil then
          assert.truthy(f.note and f.note:find("not found", 1, true), name .. ": a nil figure says why")
        end
      end
    end
    -- the Vanilla row of both tables covers every value of the table's parameter
    for _, name in ipairs(benchmarks.available()) do
      local t = benchmarks.load(name)
      for _, v in ipairs(t.param.values) do assert.is_table(benchmarks.published(t, "erm", v)) end
    end
  end)

  it("keys cells so that no key starts another's", function()
    local t = benchmarks.load("lff_colored_mnist")
    assert.equal("erm_share0p5", benchmarks.cell_key(t, "erm", 0.5))
    assert.equal("group_dro_share5", benchmarks.cell_key(t, "group_dro", 5))
    local m = {}
    benchmarks.put_cell(m, t, "erm", 1, {{seed = 1, unbiased = 50, conflicting = 40, seconds = 3}})
    benchmarks.put_cell(m, t, "erm", 1.5, {{seed = 1, unbiased = 60, conflicting = 55, seconds = 3}})
    benchmarks.put_cell(m, t, "erm", 1, {{seed = 2, unbiased = 52, conflicting = 42, seconds = 4},
      {seed = 3, unbiased = 54, conflicting = 44, seconds = 5}})
    assert.equal(60, m.erm_share1p5_unbiased_mean) -- survived the rewrite of erm_share1
    assert.equal(53, m.erm_share1_unbiased_mean)
    assert.near(math.sqrt(2), m.erm_share1_unbiased_sd, 1e-12)
    assert.is_nil(m.erm_share1_unbiased_seed1)
    assert.equal("2,3", m.erm_share1_seeds)
  end)
end)

describe("metrics.cell_accuracies", function()
  it("averages the accuracy of each (label, bias) cell, aligned and conflicting apart", function()
    -- cells (0,0): 2 of 2 right; (1,1): 0 of 1; (1,0): 1 of 3; (0,2): 1 of 1
    local labels = i64({0, 0, 1, 1, 1, 1, 0})
    local bias = i64({0, 0, 1, 0, 0, 0, 2})
    local preds = i64({0, 0, 0, 1, 0, 0, 0})
    local r = lab.metrics.cell_accuracies(preds, labels, bias)
    assert.equal(4, r.cells)
    assert.near(100 * (1 + 0 + 1 / 3 + 1) / 4, r.unbiased, 1e-9)
    assert.near(50, r.aligned, 1e-9)
    assert.near(100 * (1 / 3 + 1) / 2, r.conflicting, 1e-9)
    assert.near(50, r.conflicting_samples, 1e-9) -- 2 of the 4 conflicting samples
    local ok, err = pcall(lab.metrics.cell_accuracies, preds, labels, i64({0, 1}))
    assert.is_false(ok)
    assert.truthy(tostring(err):find("one length", 1, true))
  end)
end)

describe("scripts/benchmarks.lua", function()
  local heavy = helpers.heavy("training on MNIST")
  local dir = helpers.tmpdir()
  local function run(args)
    local log = dir .. "/log.txt"
    local ok = os.execute(("%s scripts/benchmarks.lua --out %s/b --progress=false --threads 2 %s >%s 2>&1")
      :format(BIN, dir, args, log))
    return ok, util.read_file(log)
  end
  local function metrics(name) return util.json_decode(util.read_file(dir .. "/b/" .. name .. "/metrics.json")) end

  heavy("runs the quick mode of both tables, measures the colour shortcut and merges a cell", function()
    if not have_mnist then pending("real MNIST not in data/mnist (run 'make data')") return end
    local ok, log = run("--quick")
    assert.is_true(ok, log)
    -- LfF's Colored MNIST at 1%: erm learns the colour (aligned cells ~100%) and still reads
    -- some shape (unbiased well above the 10% of chance); the conflicting cells lag behind
    local m = metrics("lff_colored_mnist")
    for _, cell in ipairs({"erm_share1", "lff_share1"}) do
      for _, f in ipairs({"unbiased", "conflicting", "aligned", "conflicting_samples", "seconds"}) do
        local v = m[cell .. "_" .. f .. "_mean"]
        assert.is_number(v, cell .. "_" .. f)
        if f ~= "seconds" then assert.is_true(v >= 0 and v <= 100, cell .. "_" .. f) end
      end
      assert.is_number(m[cell .. "_unbiased_seed1"])
      assert.is_number(m[cell .. "_seconds_seed1"])
    end
    assert.is_true(m.erm_share1_unbiased_mean > 25, log)
    assert.is_true(m.erm_share1_aligned_mean > 90, log)
    assert.is_true(m.erm_share1_conflicting_mean < m.erm_share1_aligned_mean - 20, log)
    assert.equal("lff_mlp", m.protocol_arch)
    assert.equal("lff_colored_mnist", m.protocol_dataset)
    assert.equal(256, m.protocol_batch)
    assert.is_true(m.protocol_quick)
    assert.truthy(m.erm_share1_published_source:find("Nam et al. 2020", 1, true))
    assert.truthy(util.read_file(dir .. "/b/lff_colored_mnist/chart.svg"):find("<svg", 1, true))
    assert.truthy(log:find("Vanilla (erm)", 1, true))
    -- Biased MNIST at rho 0.99, one epoch of the seed network: it reads the background colour
    local b = metrics("biased_mnist")
    assert.is_true(b.erm_rho0p99_aligned_mean > 90, log)
    assert.is_true(b.erm_rho0p99_conflicting_mean < 50, log)
    assert.is_true(b.erm_rho0p99_unbiased_mean >= 0 and b.erm_rho0p99_unbiased_mean <= 100)
    assert.truthy(b.erm_rho0p99_published_source:find("Bahng et al. 2020", 1, true))

    -- one more cell alone: the existing cells stay, the quick erm run is reused (same protocol)
    local before = m.erm_share1_unbiased_mean
    ok, log = run("--quick --table lff_colored_mnist --methods erm --shares 5 --seeds 1")
    assert.is_true(ok, log)
    local m2 = metrics("lff_colored_mnist")
    assert.is_number(m2.erm_share5_unbiased_mean)
    assert.equal(before, m2.erm_share1_unbiased_mean)
    assert.is_number(m2.lff_share1_conflicting_mean)
    ok, log = run("--quick --table lff_colored_mnist --methods erm --shares 1")
    assert.is_true(ok, log)
    assert.truthy(log:find("reused", 1, true), log)
    assert.equal(before, metrics("lff_colored_mnist").erm_share1_unbiased_mean)
  end)

  it("stops before training when a table, method or value is wrong", function()
    local ok, log = run("--table nosuch --data generated")
    assert.is_falsy(ok)
    assert.truthy(log:find("unknown benchmark 'nosuch'", 1, true), log)
    ok, log = run("--table lff_colored_mnist --methods erm,nosuch --data generated")
    assert.is_falsy(ok)
    assert.truthy(log:find("nosuch", 1, true), log)
    ok, log = run("--table lff_colored_mnist --shares one --data generated")
    assert.is_falsy(ok)
    assert.truthy(log:find("--shares", 1, true), log)
  end)
end)
