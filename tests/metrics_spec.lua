-- The statistics of cnnlab.metrics, each on numbers worked out by hand: the streaming one-way
-- ANOVA (η²) Task 2 reports, Pearson's correlation, quantiles between ranks, masked means.
local lab = require "cnnlab"
local metrics = lab.metrics

local function near(a, b, tol) return math.abs(a - b) <= (tol or 1e-9) end

describe("metrics.anova", function()
  it("computes η² as worked out by hand, batch by batch", function()
    -- column 1: groups {1, 3} and {5, 7}: means 2 and 6, grand mean 4,
    --   SS_between = 2·4 + 2·4 = 16, SS_total = 9 + 1 + 1 + 9 = 20, η² = 0.8
    -- column 2 is constant: left out; column 3 varies only within groups: η² = 0
    local a = metrics.anova(2)
    local g0 = lab.tensor({0, 0}, {dtype = "int64"})
    local g1 = lab.tensor({1, 1}, {dtype = "int64"})
    a:add(lab.tensor({{1, 5, 1}, {3, 5, -1}}), {g = g0, other = g0})
    a:add(lab.tensor({{5, 5, 1}, {7, 5, -1}}), {g = g1, other = g0})
    local r = a:result()
    assert.is_true(math.abs(r.g.per[1] - 0.8) < 1e-6)
    assert.is_true(r.g.per[2] ~= r.g.per[2]) -- NaN: constant
    assert.is_true(math.abs(r.g.per[3]) < 1e-6)
    assert.is_true(math.abs(r.g.mean - 0.4) < 1e-6)
    assert.is_true(math.abs(r.g.pooled - 16 / 24) < 1e-6)
    assert.equal(1, r.constant)
    -- one group for everything explains nothing
    assert.is_true(math.abs(r.other.mean) < 1e-6)
  end)

  it("checks its inputs", function()
    local a = metrics.anova(3)
    local ok, err = pcall(a.add, a, lab.zeros(2, 2, 2), {})
    assert.truthy(err:find("metrics.anova add: F must be N×U, got 2×2×2", 1, true))
    ok, err = pcall(a.add, a, lab.zeros(2, 2), {g = lab.zeros(2)})
    assert.truthy(err:find("grouping 'g' must be an int64 vector of 2 groups", 1, true))
    ok, err = pcall(metrics.anova, 0)
    assert.truthy(err:find("metrics.anova: groups must be a positive integer", 1, true))
  end)
end)

describe("metrics.correlation", function()
  it("is ±1 on lines, 0 on an orthogonal pattern, NaN on a constant", function()
    assert.is_true(near(1, metrics.correlation({1, 2, 3}, {2, 4, 6})))
    assert.is_true(near(-1, metrics.correlation({1, 2, 3}, {3, 2, 1})))
    assert.is_true(near(0, metrics.correlation({1, 2, 3, 4}, {1, -1, -1, 1})))
    local r = metrics.correlation({1, 2}, {5, 5})
    assert.is_true(r ~= r)
    -- by hand: a = (1, 2, 4), b = (2, 2, 5): deviations (−4/3, −1/3, 5/3), (−1, −1, 2);
    -- Σab = 4/3 + 1/3 + 10/3 = 5, Σa² = 42/9, Σb² = 6 → r = 5 / √28
    assert.is_true(near(5 / math.sqrt(28), metrics.correlation({1, 2, 4}, {2, 2, 5})))
    local ok, err = pcall(metrics.correlation, {1, 2}, {1})
    assert.truthy(err:find("metrics.correlation: a and b must be lists of the same length, got 2 and 1", 1, true))
  end)
end)

describe("metrics.quantile and metrics.masked_mean", function()
  it("interpolate between ranks and average what is selected", function()
    local s = {1, 2, 4, 8}
    assert.equal(1, metrics.quantile(s, 0))
    assert.equal(8, metrics.quantile(s, 1))
    assert.equal(3, metrics.quantile(s, 0.5))       -- halfway between 2 and 4
    assert.equal(1.75, metrics.quantile(s, 0.25))   -- position 1.75: 1 + 0.75·(2 − 1)
    local e = metrics.quantile({}, 0.5)
    assert.is_true(e ~= e)
    local t = lab.tensor({1, 2, 3, 6})
    assert.equal(3, metrics.masked_mean(t))
    assert.equal(4, metrics.masked_mean(t, lab.tensor({0, 1, 0, 1}):byte()))
    local none = metrics.masked_mean(t, lab.zeros(4))
    assert.is_true(none ~= none)
  end)
end)

describe("metrics.mean_sd", function()
  it("gives the mean and the sample standard deviation", function()
    local m, sd = metrics.mean_sd({2, 4, 4, 4, 5, 5, 7, 9})
    assert.equal(5, m)
    assert.is_true(near(math.sqrt(32 / 7), sd))
    assert.same({0, 0}, {metrics.mean_sd({})})
  end)
end)

describe("metrics.preferences", function()
  it("gives each unit's preferred group and its selectivity, nothing for a dead unit", function()
    -- unit 1: best group 2 (4), others 1 and 1 → (4 − 1) / (4 + 1) = 0.6
    -- unit 2: equal means: the first group, selectivity 0; unit 3: dead
    local pref, sel = metrics.preferences({{1, 4, 1}, {2, 2, 2}, {0, 0, 0}})
    assert.same({2, 1}, {pref[1], pref[2]})
    assert.is_nil(pref[3])
    assert.is_true(math.abs(sel[1] - 0.6) < 1e-12)
    assert.equal(0, sel[2])
    assert.is_nil(sel[3])
  end)
end)

describe("metrics.preference_order and metrics.preference_summary", function()
  it("orders units by preferred group, dead last, then by peak; summarises them", function()
    local means = {{0, 3, 1}, {5, 1, 1}, {0, 0, 0}, {0, 6, 1}, {2, 1, 1}}
    local pref, sel = metrics.preferences(means)
    -- groups: unit 1 → 2, 2 → 1, 3 dead, 4 → 2, 5 → 1; by peak within a group: 2 (5) before 5
    -- (2), 4 (6) before 1 (3)
    assert.same({2, 5, 4, 1, 3}, metrics.preference_order(pref, means))
    local blank_pref = metrics.preferences({{0, 0, 0}, {1, 0, 0}, {1, 0, 0}, {0, 0, 0}, {0, 0, 2}})
    local s = metrics.preference_summary(pref, sel, blank_pref, 5)
    assert.equal(2, s.preferred)       -- groups 1 and 2
    assert.equal(2, s.preferred_blank) -- groups 1 and 3
    assert.equal(1, s.dead)
    assert.is_true(near(s.selectivity, (sel[1] + sel[2] + sel[4] + sel[5]) / 4, 1e-12))
    local none = metrics.preference_summary({}, {}, {}, 2)
    assert.equal(2, none.dead)
    assert.is_true(none.selectivity ~= none.selectivity) -- NaN: no unit lives
  end)
end)

describe("metrics.mean_sd_table", function()
  it("prints mean ± sd per method and rho, n=1 and missing values marked", function()
    local lines = metrics.mean_sd_table({
      {method = "erm", rho = 1, n = 3, hard_acc_mean = 41.234, hard_acc_sd = 3.1, hard_acc_n = 3},
      {method = "lff", rho = 0.99, n = 1, hard_acc_mean = 50, hard_acc_sd = 0, hard_acc_n = 1}},
      {{"hard_acc", "hard"}, {"val_acc", "validation"}})
    assert.equal(3, #lines)
    assert.equal(("%-22s %6s %5s %16s %16s"):format("method", "rho", "n", "hard", "validation"), lines[1])
    assert.equal(("%-22s %6s %5d %16s %16s"):format("erm", "1", 3, "41.23 ± 3.10", "—"), lines[2])
    assert.equal(("%-22s %6s %5d %16s %16s"):format("lff", "0.99", 1, "50.00 (n=1)", "—"), lines[3])
  end)
end)
