-- Adversarial attacks (the engine lua/cnnlab/attack.lua; the attacks, one file each, in
-- lua/cnnlab/attacks/) and what Task 5 measures with them (lua/cnnlab/adversarial.lua): a
-- hand-made one-pixel model whose answer is worked out on paper (exact step counts, early
-- stop, failure when the budget is too small), a small CNN trained here on generated Colored
-- digits (success, ε-ball and [0,1] checked element by element, ε = 0 changes nothing), and
-- the argument errors.
local lab = require "cnnlab"
local nn = lab.nn
local attack = lab.attack

-- The one-pixel model (tests/helpers.lua): p(3) = σ(40(v − 0.5)), so p(3) ≥ 0.9 ⟺ v ≥ 0.55493;
-- a targeted step, and an untargeted one against label 7, moves v up by exactly α.
local pixel_model = require("tests.helpers").pixel_model

local function pixels(list)
  return lab.tensor(list):reshape(#list, 1, 1, 1)
end

local function column(t)
  return t:contiguous():reshape(-1):totable()
end

-- Every element of adv within eps of x (compared in double) and inside [0,1].
local function assert_in_ball(x, adv, eps)
  local a, b = column(x), column(adv)
  assert.equal(#a, #b)
  local worst, outside = 0, 0
  for i = 1, #a do
    local d = math.abs(b[i] - a[i])
    if d > worst then worst = d end
    if d > eps or b[i] < 0 or b[i] > 1 then outside = outside + 1 end
  end
  assert.equal(0, outside)
  return worst
end

describe("the one-pixel model (answers worked out on paper)", function()
  local model = pixel_model()

  it("stops each sample as soon as p(3) ≥ 0.9, with the exact step count", function()
    -- α = 0.01: from 0.5, v reaches 0.56 ≥ 0.55493 after 6 steps; from 0.52 after 4; 0.7 is
    -- already a confident 3 (0 steps, unchanged); from 0.3 the ball ends at 0.4 (fails).
    local x = pixels({0.5, 0.52, 0.7, 0.3})
    local r = attack.pgd(model, x, {target = 3, eps = 0.1, step_size = 0.01, steps = 50,
      confidence = 0.9})
    assert.same({1, 1, 1, 0}, column(r.success))
    assert.same({6, 4, 0, 50}, column(r.steps))
    local v = column(r.adversarial)
    assert.near(0.56, v[1], 1e-5)
    assert.near(0.56, v[2], 1e-5)
    assert.equal(column(x)[3], v[3])
    assert.near(0.4, v[4], 2e-6)
    local conf = column(r.confidence)
    -- stopped at the first confident step: p(3) just above 0.9, not pushed on to 1
    assert.near(1 / (1 + math.exp(-40 * 0.06)), conf[1], 1e-4)
    assert.is_true(conf[1] >= 0.9 and conf[1] < 0.92)
    assert.near(1 / (1 + math.exp(-40 * 0.2)), conf[3], 1e-4)
    assert.same({3, 3, 3, 7}, column(r.pred))
    assert.equal(75, r.success_rate)
    assert.near((6 + 4 + 0 + 50) / 4, r.mean_steps, 1e-12)
    assert_in_ball(x, r.adversarial, 0.1)
    assert.near(0.06, column(r.linf)[1], 1e-5)
    assert.near(0.06, column(r.l2)[1], 1e-5)
  end)

  it("fails when the budget cannot reach the confidence, staying on the ball's edge", function()
    -- ε = 0.04: v ≤ 0.54, p(3) ≤ σ(1.6) = 0.832 < 0.9
    local x = pixels({0.5})
    local r = attack.pgd(model, x, {target = 3, eps = 0.04, step_size = 0.01, steps = 20})
    assert.same({0}, column(r.success))
    assert.same({20}, column(r.steps))
    assert.near(1 / (1 + math.exp(-40 * 0.04)), column(r.confidence)[1], 1e-4)
    local worst = assert_in_ball(x, r.adversarial, 0.04)
    assert.is_true(worst > 0.0399)
  end)

  it("runs on without early stop, and records the settings", function()
    local r = attack.pgd(pixel_model(), pixels({0.5}), {target = 3, eps = 0.1,
      step_size = 0.01, steps = 8, early_stop = false})
    assert.same({8}, column(r.steps))
    assert.near(0.58, column(r.adversarial)[1], 1e-5)
    local s = r.settings
    assert.equal("pgd", s.attack)
    assert.is_true(s.targeted)
    assert.equal(-1, s.sign)
    assert.equal(0.01, s.step_size)
    assert.equal(8, s.steps)
    assert.is_false(s.random_start)
    assert.equal(0.9, s.confidence)
  end)

  it("the margin loss takes the same steps here (∂/∂v of max_{j≠3} z_j − z_3 is −40)", function()
    local r = attack.pgd(model, pixels({0.5, 0.52, 0.3}), {target = 3, eps = 0.1,
      step_size = 0.01, steps = 50, loss = "margin"})
    assert.same({6, 4, 50}, column(r.steps))
    assert.same({1, 1, 0}, column(r.success))
    assert.equal("margin", r.settings.loss)
  end)

  it("FGSM takes one step of size ε", function()
    local r = attack.fgsm(model, pixels({0.5, 0.5}), {target = 3, eps = 0.06})
    assert.same({1, 1}, column(r.success))
    assert.same({1, 1}, column(r.steps))
    assert.near(0.56, column(r.adversarial)[1], 2e-6)
    assert.equal("fgsm", r.settings.attack)
    local weak = attack.fgsm(model, pixels({0.5}), {target = 3, eps = 0.05})
    assert.same({0}, column(weak.success)) -- σ(40·0.05) = 0.88 < 0.9
  end)

  it("untargeted: ascends the true label's loss and stops at the first wrong answer", function()
    -- label 7; the answer flips to 3 once z3 > 0, i.e. v > 0.5: from 0.45 with α = 0.02 that
    -- is after 3 steps (0.51)
    local r = attack.pgd(model, pixels({0.45}), {labels = 7, eps = 0.1, step_size = 0.02,
      steps = 10})
    assert.same({1}, column(r.success))
    assert.same({3}, column(r.steps))
    assert.same({3}, column(r.pred))
    assert.equal(1, r.settings.sign)
    assert.is_false(r.settings.targeted)
  end)

  it("a random start is drawn from the given generator and stays in the ball", function()
    local x = pixels({0.5, 0.5, 0.5, 0.5, 0.02, 0.98})
    local opts = {labels = 7, eps = 0.05, steps = 1, early_stop = false, step_size = 1e-9,
      random_start = true}
    opts.generator = lab.Generator(5)
    local a = attack.pgd(model, x, opts)
    opts.generator = lab.Generator(5)
    local b = attack.pgd(model, x, opts)
    assert.same(column(a.adversarial), column(b.adversarial))
    assert_in_ball(x, a.adversarial, 0.05)
    assert.is_true(a.settings.random_start)
    local moved = 0
    for i, v in ipairs(column(a.adversarial)) do
      if v ~= column(x)[i] then moved = moved + 1 end
    end
    assert.is_true(moved >= 5)
  end)

  it("restores the model's mode and parameter flags", function()
    local m = pixel_model()
    m:train()
    attack.pgd(m, pixels({0.5}), {target = 3, eps = 0.1, step_size = 0.01})
    assert.is_true(m.training)
    for _, p in ipairs(m:parameters()) do
      assert.is_true(p.requires_grad)
      assert.is_nil(p.grad)
    end
  end)
end)

describe("what Task 5 measures (cnnlab.adversarial)", function()
  local adv = require "cnnlab.adversarial"

  it("finds a label's positions, at most limit of them", function()
    local set = {labels = lab.tensor({7, 3, 7, 7}, {dtype = "int64"})}
    local pos, n = adv.positions_of(set, 7)
    assert.same({0, 2, 3}, pos:totable())
    assert.equal(3, n)
    assert.same({0, 2}, adv.positions_of(set, 7, 2):totable())
    assert.equal(0, select(2, adv.positions_of(set, 5)))
  end)

  it("measures success against ε with any registered attack", function()
    local x = pixels({0.5, 0.5})
    local ys = adv.curve("pgd", pixel_model(), x, {0.04, 0.1}, function(e)
      return {target = 3, eps = e, step_size = 0.01, steps = 50}
    end)
    assert.same({0, 100}, ys) -- ε = 0.04 cannot reach p(3) ≥ 0.9 (v ≥ 0.555); 0.1 can
  end)

  it("summarises a run and lays out the picture's rows", function()
    local x = pixels({0.5, 0.3}):expand(2, 3, 28, 28):contiguous()
    local r = attack.pgd(function(t) return pixel_model()(t:narrow(1, 0, 1):narrow(2, 0, 1)
      :narrow(3, 0, 1)) end, x, {target = 3, eps = 0.1, step_size = 0.01, steps = 50})
    local run = {x = x, r = r, n = 2, seconds = 1, check = attack.verify(x, r.adversarial, 0.1),
      clean_pred = lab.tensor({7, 7}, {dtype = "int64"}), clean_conf = lab.tensor({0.5, 1})}
    local s = adv.summary(run, 7)
    assert.equal(50, s.success_rate)
    assert.equal(100, s.clean_acc)
    assert.equal(0.75, s.clean_mean_confidence)
    assert.equal(6, s.mean_steps_success)
    local images, captions, rows = adv.grid({{label = "validation", k = 2, x = x, r = r,
      eps = 0.1, originals = true, clean_pred = run.clean_pred, clean_conf = run.clean_conf}}, 3, 3)
    assert.same({9, 3, 28, 28}, images.shape) -- 3 rows of 3 columns, the last one padding
    assert.same({"validation", "original"}, rows[1])
    assert.same({"validation", "δ (×5)"}, rows[3])
    assert.equal("says 7 · 50%", captions[1][1])
  end)
end)

-- A linear model on a 4×4 one-channel image: z3 = w·x, z7 = 2, every other class −100. For a
-- targeted 7 → 3 with p(3) ≥ 0.9 the margin w·x − 2 must reach ln 9. Under an L∞ budget ε the
-- best change raises each pixel i (w_i > 0) or lowers it (w_i < 0) by min(ε, room_i), room_i
-- the distance to 1 (or to 0): the gain Σ|w_i|·min(ε, room_i) is increasing in ε and the
-- smallest ε reaching ln 9 is found by bisection on paper's formula (closed form per piece).
-- Under L2 with every pixel at 0.5 and a small ε the best change is ε·w/‖w‖₂: ε* = need/‖w‖₂.
local function linear_model(w)
  local d = w:numel()
  local m3 = lab.tensor({0, 0, 0, 1, 0, 0, 0, 0, 0, 0}):reshape(1, 10)
  local m7 = lab.tensor({0, 0, 0, 0, 0, 0, 0, 1, 0, 0}):reshape(1, 10)
  return function(x)
    local n = x:size(0)
    local z3 = x:flatten(1):matmul(w:reshape(d, 1))
    return lab.full({n, 10}, -100.0) * (1 - m3 - m7) + z3 * m3 + lab.full({n, 1}, 2.0) * m7
  end
end

local function linear_eps_star(w, xi)
  local wl, xl = column(w), column(xi)
  local margin = -2
  for j = 1, #wl do margin = margin + wl[j] * xl[j] end
  local need = math.log(9) - margin
  if need <= 0 then return 0 end
  local function gain(e)
    local g = 0
    for j = 1, #wl do
      local room = wl[j] > 0 and 1 - xl[j] or xl[j]
      g = g + math.abs(wl[j]) * math.min(e, room)
    end
    return g
  end
  if gain(1) < need then return math.huge end
  local a, b = 0, 1
  for _ = 1, 60 do
    local m = (a + b) / 2
    if gain(m) >= need then b = m else a = m end
  end
  return b
end

describe("APGD (Croce & Hein 2020)", function()
  local apgd = lab.attacks.load("apgd")
  local adv = require "cnnlab.adversarial"
  local g = lab.Generator(3)
  local w = lab.randn({16}, {generator = g}) * 3
  local model = linear_model(w)
  local x = lab.rand({6, 1, 4, 4}, {generator = g})

  it("has the paper's checkpoints for 100 iterations", function()
    local ws, ps = apgd.checkpoints(100)
    assert.same({0, 22, 41, 57, 70, 80, 87, 93, 99}, ws)
    local want = {0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99}
    for i, p in ipairs(want) do assert.is_true(math.abs(ps[i] - p) < 1e-9) end
    assert.same({0, 5, 9, 12, 14, 16, 18, 19, 20}, (apgd.checkpoints(20)))
    assert.equal("apgd", lab.attacks.load("apgd").name)
  end)

  it("succeeds just above the smallest ε on paper and never below it (L∞, CE and DLR)", function()
    for i = 0, 5 do
      local xi = x:narrow(0, i, 1)
      local star = linear_eps_star(w, xi)
      assert.is_true(star > 0 and star < 0.3, "a sample needs 0 < ε* < 0.3, got " .. star)
      for _, loss in ipairs({"ce", "dlr"}) do
        local above = attack.apgd(model, xi, {target = 3, eps = star * 1.002 + 1e-5,
          loss = loss, steps = 20})
        assert.equal(1, above.n_success, ("sample %d %s: ε* = %g"):format(i, loss, star))
        local below = attack.apgd(model, xi, {target = 3, eps = star * 0.998, loss = loss,
          steps = 20, restarts = 2})
        assert.equal(0, below.n_success)
        assert.is_true(below.confidence:get(0) < 0.9)
      end
    end
  end)

  it("bisection finds the smallest ε to the tolerance, never below it", function()
    local r = adv.minimal_eps(model, x, {target = 3, confidence = 0.9, steps = 20, tol = 1e-3})
    for i, e in ipairs(column(r.eps)) do
      local star = linear_eps_star(w, x:narrow(0, i - 1, 1))
      assert.is_true(e >= star and e <= star + 1e-3, ("sample %d: %g vs ε* %g"):format(i, e, star))
    end
    assert.equal(9, r.iterations) -- ⌈log2(0.3 / 0.001)⌉
    -- every reported success confirmed by a separate forward pass, inside its own ε and [0,1]
    local c = adv.confirm(model, x, r.adversarial, r.eps, 3, 0.9)
    for i = 1, 6 do
      assert.is_true(c.confirmed[i] and c.within[i])
      assert.is_true(c.norm[i] <= column(r.eps)[i])
    end
    local d = adv.distribution(column(r.eps))
    assert.equal(6, d.n)
    assert.is_true(d.q1 <= d.median and d.median <= d.q3)
  end)

  it("L2: ε* = need / ‖w‖₂ from the middle grey", function()
    local xm = lab.full({1, 1, 4, 4}, 0.5)
    local wl = column(w)
    local l2, margin = 0, -2
    for j = 1, #wl do l2, margin = l2 + wl[j] ^ 2, margin + 0.5 * wl[j] end
    local star = (math.log(9) - margin) / math.sqrt(l2)
    assert.is_true(star > 0 and star < 0.5)
    local above = attack.apgd(model, xm, {target = 3, eps = star * 1.002, norm = "l2", steps = 20})
    assert.equal(1, above.n_success)
    assert.is_true(above.l2:get(0) <= star * 1.002)
    local below = attack.apgd(model, xm, {target = 3, eps = star * 0.998, norm = "l2", steps = 20})
    assert.equal(0, below.n_success)
  end)

  it("rounding to bytes and the confirmation see what the model sees", function()
    local q = adv.quantise(lab.tensor({0, 124.4 / 255, 124.6 / 255, 1}))
    local levels = {}
    for i, v in ipairs(column(q)) do levels[i] = math.floor(v * 255 + 0.5) end
    assert.same({0, 124, 125, 255}, levels)
    local xm = lab.full({1, 1, 4, 4}, 0.5)
    local c = adv.confirm(model, xm, xm, 0, 3, 0.9)
    assert.is_false(c.confirmed[1]) -- the original answers 7
    assert.is_true(c.within[1])
  end)
end)

describe("a small CNN trained on generated Colored digits", function()
  local model, x, y, sevens

  setup(function()
    local sets = lab.study.load_data({seed = 3, rho = 1, beta = 0.25, data = "generated",
      generated_n = 1000, quick = false})
    model = nn.Sequential {
      nn.Conv2d(3, 8, 3, {padding = 1, generator = lab.Generator(1)}), nn.ReLU(),
      nn.MaxPool2d(4), nn.Flatten(), nn.Linear(8 * 7 * 7, 10, {generator = lab.Generator(2)})}
    local opt = lab.optim.Adam(model:parameters(), {lr = 3e-3})
    local g = lab.Generator(4)
    for _ = 1, 3 do
      for xb, yb in lab.data.batches(sets.train, 64, {generator = g}) do
        opt:zero_grad()
        lab.cross_entropy(model(xb), yb):backward()
        opt:step()
      end
    end
    model:eval()
    local pos = {}
    for i, label in ipairs(sets.val.labels:totable()) do
      if label == 7 and #pos < 24 then pos[#pos + 1] = i - 1 end
    end
    local b = lab.train.batch_of(sets.val, lab.tensor(pos, {dtype = "int64"}))
    sevens = b.x
    local all = lab.train.batch_of(sets.val, lab.arange(0, 40))
    x, y = all.x, all.y
  end)

  it("learned something (the attack is not trivial)", function()
    assert.is_true(lab.accuracy(model(x), y) >= 0.9)
  end)

  it("turns every 7 into a confident 3 with a generous budget, inside the ball and [0,1]",
    function()
      local eps = 0.3
      local r = attack.pgd(model, sevens, {target = 3, eps = eps, confidence = 0.9,
        steps = 30, step_size = 0.05})
      assert.equal(100, r.success_rate)
      assert_in_ball(sevens, r.adversarial, eps)
      assert.is_true(attack.verify(sevens, r.adversarial, eps).ok)
      local p = lab.no_grad(function() return model(r.adversarial):softmax(1) end)
      for i, conf in ipairs(column(p:select(1, 3))) do
        assert.is_true(conf >= 0.9, ("sample %d: p(3) = %g"):format(i, conf))
      end
      -- early stop: nobody used the whole budget
      for _, s in ipairs(column(r.steps)) do assert.is_true(s < 30) end
    end)

  it("never leaves the ball or [0,1] on any setting, random start included", function()
    for _, eps in ipairs({0.01, 0.05, 0.2}) do
      local r = attack.pgd(model, x, {labels = y, eps = eps, steps = 5, step_size = eps,
        random_start = true, generator = lab.Generator(9), early_stop = false})
      assert_in_ball(x, r.adversarial, eps)
      assert.is_true(r.max_linf <= eps)
      local t = attack.pgd(model, x, {target = 3, eps = eps, steps = 5, batch = 7})
      assert_in_ball(x, t.adversarial, eps)
    end
  end)

  it("APGD is at least as strong as PGD with the same passes, inside the ball and [0,1]",
    function()
      for _, eps in ipairs({0.05, 0.1, 0.2}) do
        local p = attack.pgd(model, sevens, {target = 3, eps = eps, steps = 20})
        local a = attack.apgd(model, sevens, {target = 3, eps = eps, steps = 20})
        assert.is_true(a.n_success >= p.n_success, ("ε %g: APGD %d < PGD %d"):format(eps,
          a.n_success, p.n_success))
        assert.is_true(a.passes.forward <= 21 * sevens:size(0))
        assert.is_true(a.passes.backward <= 20 * sevens:size(0))
        assert_in_ball(sevens, a.adversarial, eps)
        local c = require("cnnlab.adversarial").confirm(model, sevens, a.adversarial, eps, 3, 0.9)
        for i, ok in ipairs(column(a.success)) do
          assert.equal(ok == 1, c.confirmed[i])
          assert.is_true(c.within[i])
        end
      end
      local u = attack.apgd(model, x, {labels = y, eps = 0.05, steps = 10, restarts = 2,
        generator = lab.Generator(2)})
      assert_in_ball(x, u.adversarial, 0.05)
    end)

  it("changes nothing with ε = 0 (untargeted, with and without random start)", function()
    for _, rs in ipairs({false, true}) do
      local r = attack.pgd(model, x, {labels = y, eps = 0, steps = 5, step_size = 0.1,
        random_start = rs, generator = lab.Generator(1)})
      assert.same(column(x), column(r.adversarial))
      assert.equal(0, r.max_linf)
      local f = attack.fgsm(model, x, {labels = y, eps = 0})
      assert.same(column(x), column(f.adversarial))
    end
  end)
end)

describe("argument errors", function()
  local model = pixel_model()
  local x = pixels({0.5, 0.6})

  local function fails_with(pattern, fn)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find(pattern, 1, true), tostring(err))
  end

  it("rejects ε < 0", function()
    fails_with("attack.pgd: eps must be a number ≥ 0, got -0.1", function()
      attack.pgd(model, x, {target = 3, eps = -0.1})
    end)
    fails_with("attack.fgsm: eps must be a number ≥ 0", function()
      attack.fgsm(model, x, {target = 3, eps = -1})
    end)
  end)

  it("rejects a target outside 0–9", function()
    fails_with("attack.pgd: target must be a class in 0..9, got 10", function()
      attack.pgd(model, x, {target = 10})
    end)
    fails_with("attack.pgd: target must be a class in 0..9, got -1", function()
      attack.pgd(model, x, {target = -1})
    end)
    fails_with("attack.pgd: target must be classes in 0..9, got values from 3 to 12", function()
      attack.pgd(model, x, {target = lab.tensor({3, 12}, {dtype = "int64"})})
    end)
  end)

  it("rejects a batch of the wrong shape", function()
    fails_with("attack.pgd: x must be a batch N×C×H×W with N ≥ 1, got 3×28×28", function()
      attack.pgd(model, lab.zeros(3, 28, 28), {target = 3})
    end)
    fails_with("attack.pgd: target must hold one class per sample (2), got shape 3", function()
      attack.pgd(model, x, {target = lab.tensor({3, 3, 3}, {dtype = "int64"})})
    end)
    fails_with("attack.pgd: x must lie in [0,1], got values from 0 to 2", function()
      attack.pgd(model, lab.tensor({0, 2}):reshape(2, 1, 1, 1), {target = 3})
    end)
  end)

  it("rejects other mistakes with the argument named", function()
    fails_with("give exactly one of target (targeted attack) or labels", function()
      attack.pgd(model, x, {eps = 0.1})
    end)
    fails_with("steps must be an integer ≥ 1, got 0", function()
      attack.pgd(model, x, {target = 3, steps = 0})
    end)
    fails_with("confidence must be a probability in [0, 1], got 1.5", function()
      attack.pgd(model, x, {target = 3, confidence = 1.5})
    end)
    fails_with("random_start needs generator = lab.Generator(seed)", function()
      attack.pgd(model, x, {target = 3, random_start = true})
    end)
    fails_with("unknown option 'epsilon'", function()
      attack.pgd(model, x, {target = 3, epsilon = 0.1})
    end)
    fails_with("model must be a module", function()
      attack.pgd(nil, x, {target = 3})
    end)
  end)
end)

describe("Task 5's measurement on a small run (scripts/task5_attack.lua)", function()
  local BIN = os.getenv("CNNLAB_BIN") or "./cnnlab"
  local heavy = require("tests.helpers").heavy("a whole Task 5 run")

  heavy("every saved success is real: a separate pass confirms it, inside ε and [0,1]", function()
    local dir = os.tmpname()
    os.remove(dir)
    lab.util.mkdir_p(dir)
    -- a seed network trained for one epoch on generated Colored digits (the script's data)
    local sets = lab.study.load_data({seed = 1, rho = 1, beta = 0.25, data = "generated",
      generated_n = 3000, quick = true})
    local net = lab.models.seed_cnn{generator = lab.Generator(5)}
    local opt = lab.optim.Adam(net:parameters(), {lr = 3e-3})
    for xb, yb in lab.data.batches(sets.train, 64, {generator = lab.Generator(4)}) do
      opt:zero_grad()
      lab.cross_entropy(net(xb), yb):backward()
      opt:step()
    end
    net:eval()
    lab.save_safetensors(dir .. "/model.safetensors", net:state_dict())
    local eps = 0.2
    local ok = os.execute(("%s scripts/task5_attack.lua --data generated --quick --threads 1 "
      .. "--model %s/model.safetensors --eps %g --no-matrix --no-curve --grid-eps 0 --min-n 6 "
      .. "--min-steps 10 --pair-n 0 --compare-n 3 --compare-eps 0.1 --steps 10 --out %s/t5 "
      .. ">%s/log.txt 2>&1"):format(BIN, dir, eps, dir, dir))
    assert.is_true(ok, lab.util.read_file(dir .. "/log.txt"))
    local t, meta = lab.load_safetensors(dir .. "/t5/adversarial.safetensors")
    for _, key in ipairs({"originals", "adversarial", "targets", "labels", "success", "min_eps",
      "confirmed", "confirmed_bytes", "min_eps_adversarial"}) do
      assert.is_not_nil(t[key], key)
    end
    assert.equal("apgd", meta.attack)
    assert.is_not_nil(meta.min_eps_method)
    local x, a, succ = t.originals, t.adversarial, column(t.success)
    local p = lab.no_grad(function() return net(a):softmax(1) end)
    local pmax, pred = p:max(1)
    local p3, pr = column(p:select(1, 3)), column(pred)
    local n_success = 0
    for i, s in ipairs(succ) do
      if s == 1 then
        n_success = n_success + 1
        assert.equal(3, pr[i])
        assert.is_true(p3[i] >= 0.9)
      end
    end
    assert.is_true(n_success > 0, "the run must find successes to check")
    assert_in_ball(x, a, eps)
    -- the minimal-ε images: within each sample's own ε and confirmed
    local me, ma = column(t.min_eps), t.min_eps_adversarial
    local q = lab.no_grad(function() return net(ma):softmax(1) end)
    local q3 = column(q:select(1, 3))
    for i = 1, ma:size(0) do
      if me[i] < math.huge then
        assert.is_true(q3[i] >= 0.9)
        assert_in_ball(x:narrow(0, i - 1, 1), ma:narrow(0, i - 1, 1), me[i])
      end
    end
    local table_txt = lab.util.read_file(dir .. "/t5/table.txt")
    assert.truthy(table_txt:find("baseline", 1, true))
    assert.truthy(table_txt:find("APGD-100", 1, true))
    assert.is_true(lab.util.exists(dir .. "/t5/min_eps_cdf.svg"))
    assert.is_true(lab.util.exists(dir .. "/t5/grid_median.png"))
    os.execute("rm -rf " .. dir)
  end)
end)

describe("Task 5's steps (cnnlab.robustness)", function()
  local robustness = lab.robustness
  local helpers = require "tests.helpers"
  local function opts_of(extra)
    local o = {confidence = 0.9, batch = 64, loss = "ce", restarts = 1, random_start = false,
      attack_seed = 1, source = 7, target = 3, eps = 0.05, step_size = 0.01, matrix_steps = 50,
      min_hi = 0.3}
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  it("builds the attack's options from the task's", function()
    local o = robustness.attack_options(opts_of(), {name = "pgd"}, 3, 0.1, 0, 0)
    assert.equal(3, o.target)
    assert.equal(0.1, o.eps)
    assert.equal(0.9, o.confidence)
    assert.equal(64, o.batch)
    assert.equal("ce", o.loss)
    assert.is_nil(o.steps) -- 0: the attack's own
    assert.is_nil(o.step_size)
    assert.is_nil(o.generator)
    o = robustness.attack_options(opts_of({restarts = 3}), {name = "apgd"}, 3, 0.1, 20, 0.01)
    assert.equal(20, o.steps)
    assert.equal(0.01, o.step_size)
    assert.equal(3, o.restarts)
    assert.is_not_nil(o.generator)
    assert.is_nil(robustness.attack_options(opts_of({restarts = 3}), {name = "pgd"}, 3, 0.1).restarts)
    o = robustness.attack_options(opts_of({random_start = true}), {name = "pgd"}, 3, 0.1)
    assert.is_true(o.random_start)
    assert.is_not_nil(o.generator)
  end)

  it("lists the models: --model and Task 4's beside it, or --models with unique names", function()
    local dir = helpers.tmpdir()
    local state = lab.models.seed_cnn{generator = lab.Generator(1)}:state_dict()
    for _, sub in ipairs({"task1", "task4/grey_invariant", "a/net", "b/net"}) do
      lab.util.mkdir_p(dir .. "/" .. sub)
      lab.save_safetensors(dir .. "/" .. sub .. "/model.safetensors", state)
    end
    local base = {}
    local list = robustness.model_list(opts_of({models = "", compare_dir = "", compare_model = "",
      compare_name = "", model = dir .. "/task1/model.safetensors"}), base)
    assert.equal(2, #list)
    assert.same({"baseline", "grey_invariant"}, {list[1].name, list[2].name})
    assert.equal(base, list[1].model)
    assert.is_not_nil(list[2].model)
    assert.equal(dir .. "/task4/grey_invariant/model.safetensors", list[2].path)
    local paths = {dir .. "/task1/model.safetensors", dir .. "/a/net/model.safetensors",
      dir .. "/b/net/model.safetensors", dir .. "/a/net/model.safetensors"}
    list = robustness.model_list(opts_of({models = table.concat(paths, ","), model = paths[1],
      compare_dir = "", compare_model = "", compare_name = ""}), base)
    assert.same({"baseline", "net", "net_3"}, {list[1].name, list[2].name, list[3].name})
    assert.equal("net_3", list[3].key)
    assert.equal(base, list[1].model)
    os.execute("rm -rf " .. dir)
  end)

  it("confirms successes with a separate pass and rejects one it does not see", function()
    local model, x = helpers.pixel_model(), pixels({0.5, 0.5})
    local a = pixels({0.6, 0.5})
    local c = robustness.confirmed_counts(opts_of(), model, x,
      lab.tensor({1, 0}, {dtype = "uint8"}), a, 0.15, 3, "test")
    assert.same({1, 1, 1}, {c.confirmed, c.bytes, c.bytes_within})
    assert.is_true(c.detail.confirmed[1])
    assert.is_false(c.detail.confirmed[2])
    local ok, err = pcall(robustness.confirmed_counts, opts_of(), model, x,
      lab.tensor({1, 1}, {dtype = "uint8"}), a, 0.15, 3, "test")
    assert.is_false(ok)
    assert.truthy(err:find("test: sample 2 counted as a success", 1, true))
  end)

  it("measures the success matrix and the ε curve into metrics and figures", function()
    local dir = helpers.tmpdir()
    local labels = {}
    for i = 1, 20 do labels[i] = (i - 1) % 10 end
    local set = {images = lab.full({20, 1, 1, 1}, 128, {dtype = "uint8"}),
      labels = lab.tensor(labels, {dtype = "int64"})}
    local atk, model, m = lab.attacks.load("pgd"), helpers.pixel_model(), {}
    local o = opts_of({eps = 0.1, matrix_per_digit = 2, out = dir, curve_n = 2, model = "m",
      compare_model = "", compare_dir = "", compare_name = ""})
    robustness.success_matrix(o, atk, model, {val = set}, m)
    assert.equal(2, m.matrix_n_7)
    assert.equal(100, m.matrix_7_3) -- 128/255 + 0.053 reaches p(3) ≥ 0.9
    assert.equal(0, m.matrix_7_5) -- z5 = −100 whatever the pixel
    assert.is_true(lab.util.exists(dir .. "/matrix.svg"))
    robustness.success_curve(o, atk, model, {val = set}, {0.04, 0.1}, m)
    assert.same({0, 100}, {m.curve_baseline_0, m.curve_baseline_1})
    assert.same({0.04, 0.1}, {m.curve_eps_0, m.curve_eps_1})
    assert.equal(2, m.curve_n)
    assert.is_true(lab.util.exists(dir .. "/curve.svg"))
    os.execute("rm -rf " .. dir)
  end)
end)
