-- Neuron ablation (cnnlab.ablation): a hand-built network whose answer is carried by one
-- channel (worked out on paper below), selectivity indices computed by hand, ablation by hook
-- checked against weight surgery, and the model left exactly as it was once the hooks go.
local lab = require "cnnlab"
local nn = lab.nn
local A = lab.ablation

--- model(x) without recording a graph.
local function run(model, x) return lab.no_grad(function() return model(x) end) end

local function max_abs_diff(a, b) return (a - b):abs():max():item() end

local function forward_hooks(model)
  local n = 0
  for _, e in ipairs(model:named_modules()) do n = n + #e[2]._forward_hooks end
  return n
end

-- The hand-built network: conv1 (1×1, no bias) copies the input's colour planes into three
-- channels — channel 0 = green, channel 1 = blue, channel 2 = red — then relu1, flatten and
-- fc (48 → 2). fc gives class 1 the sum of channel 2 (the red plane) minus 8, class 0 a tenth
-- of the sum of channel 0 (the green plane).
-- On a 4×4 image with red = 1, green = 0.25, blue = 0 everywhere:
--   logit 1 = 16·1 − 8 = 8,  logit 0 = 0.1·16·0.25 = 0.4        → class 1
--   attribution to class 1 (Σ activation × ∂logit1/∂activation):
--     channel 2: 16 · 1 · 1 = 16;  channel 0: 16 · 0.25 · 0 = 0;  channel 1: 0 · 0 = 0
--   attribution to class 0: channel 0: 16 · 0.25 · 0.1 = 0.4; the others 0
--   channel 2 zeroed: logit 1 = −8 < logit 0 = 0.4                 → class 0
local function carrier_net()
  local net = nn.Sequential()
  net:add(nn.Conv2d(3, 3, 1, {bias = false}), "conv1")
  net:add(nn.ReLU(), "relu1")
  net:add(nn.Flatten(), "flatten")
  net:add(nn.Linear(48, 2), "fc")
  local w = {{{{0}}, {{1}}, {{0}}}, {{{0}}, {{0}}, {{1}}}, {{{1}}, {{0}}, {{0}}}}
  local fc = {}
  for k = 1, 2 do
    fc[k] = {}
    for j = 1, 48 do fc[k][j] = 0 end
  end
  for j = 1, 16 do fc[1][j] = 0.1 end        -- class 0 ← channel 0 (green)
  for j = 33, 48 do fc[2][j] = 1 end         -- class 1 ← channel 2 (red)
  net:load_state_dict({["conv1.weight"] = lab.tensor(w), ["fc.weight"] = lab.tensor(fc),
    ["fc.bias"] = lab.tensor({0, -8})})
  net:eval()
  return net
end

local function red_image()
  local x = lab.zeros(1, 3, 4, 4)
  x:narrow(1, 0, 1):fill_(1)
  x:narrow(1, 1, 1):fill_(0.25)
  return x
end

describe("attribution and ranking on a network where one channel carries the answer", function()
  it("scores the carrier channel as worked out on paper and ranks it first", function()
    local net, x = carrier_net(), red_image()
    local logits = net(x)
    assert.near(0.4, logits:get(0, 0), 1e-5)
    assert.near(8, logits:get(0, 1), 1e-5)
    local r = A.attribution(net, x, {layers = {"relu1"}})
    assert.equal(1, r.preds:get(0))
    local s = r.scores.relu1
    assert.same({1, 3}, s.shape)
    assert.near(0, s:get(0, 0), 1e-5)
    assert.near(0, s:get(0, 1), 1e-5)
    assert.near(16, s:get(0, 2), 1e-4)
    assert.same({2, 0, 1}, A.rank(s:select(0, 0)))
    -- the other class's logit is carried by the green channel
    local r0 = A.attribution(net, x, {layers = {"relu1"}, target = 0})
    assert.near(0.4, r0.scores.relu1:get(0, 0), 1e-5)
    assert.near(0, r0.scores.relu1:get(0, 2), 1e-5)
    -- the parameters' gradients are left as they were, and they still require grad
    for _, p in ipairs(net:parameters()) do
      assert.is_nil(p.grad)
      assert.is_true(p.requires_grad)
    end
    net(x):sum():backward()
    local g = net.fc.weight.grad:clone()
    A.attribution(net, x, {layers = {"relu1"}})
    assert.equal(0, max_abs_diff(g, net.fc.weight.grad))
  end)

  it("zeroing the top-ranked channel changes the answer; zeroing the others does not", function()
    local net, x = carrier_net(), red_image()
    local top = A.rank(A.attribution(net, x, {layers = {"relu1"}}).scores.relu1:select(0, 0))[1]
    local logits = A.with_ablation(net, {relu1 = {top}}, function() return net(x) end)
    assert.near(0.4, logits:get(0, 0), 1e-5)
    assert.near(-8, logits:get(0, 1), 1e-5)
    assert.equal(0, logits:argmax(1):get(0))
    local others = A.with_ablation(net, {relu1 = {0, 1}}, function() return net(x) end)
    assert.equal(1, others:argmax(1):get(0))
    assert.near(8, others:get(0, 1), 1e-5)
  end)

  it("ranks by value, ties in channel order, NaN last; ascending on request", function()
    assert.same({1, 3, 0, 2}, A.rank({0.5, 2, -1, 2}))
    assert.same({2, 0, 1, 3}, A.rank({0.5, 2, -1, 2}, {ascending = true}))
    assert.same({1, 0}, A.rank({0 / 0, 1}))
  end)
end)

describe("ablation by forward hook", function()
  local function seed_model(seed)
    return lab.models.seed_cnn({generator = lab.Generator(seed)}):eval()
  end

  it("equals weight surgery: zeroing relu3 channels = zeroing their conv3 filters", function()
    local net, surgery = seed_model(3), seed_model(3)
    local x = lab.rand({4, 3, 28, 28}, {generator = lab.Generator(4)})
    lab.no_grad(function()
      for _, c in ipairs({5, 17, 100}) do
        surgery.conv3.weight:select(0, c):zero_()
        surgery.conv3.bias:narrow(0, c, 1):zero_()
      end
    end)
    local want = run(surgery, x)
    local got = lab.no_grad(function()
      return A.with_ablation(net, {relu3 = {5, 17, 100}}, function() return net(x) end)
    end)
    assert.is_true(max_abs_diff(want, got) < 1e-5)
    assert.is_true(max_abs_diff(want, run(net, x)) > 1e-4)
  end)

  it("leaves the model unchanged once the hook is removed", function()
    local net = seed_model(5)
    local x = lab.rand({3, 3, 28, 28}, {generator = lab.Generator(6)})
    local before = run(net, x)
    local weights = {}
    for name, t in pairs(net:state_dict()) do weights[name] = t:clone() end
    local h = A.ablate(net, {relu1 = {0, 1, 2, 3}, relu2 = {7}})
    local during = run(net, x)
    assert.is_true(max_abs_diff(before, during) > 1e-4)
    assert.equal(2, forward_hooks(net))
    h.remove()
    h.remove() -- a second remove does nothing
    assert.equal(0, forward_hooks(net))
    assert.equal(0, max_abs_diff(before, run(net, x)))
    for name, t in pairs(net:state_dict()) do assert.equal(0, max_abs_diff(weights[name], t)) end
    -- also when the function run under the ablation fails
    assert.has_error(function()
      A.with_ablation(net, {relu3 = {1}}, function() error("boom") end)
    end)
    assert.equal(0, forward_hooks(net))
    assert.equal(0, max_abs_diff(before, run(net, x)))
  end)

  it("the evaluator's shortcut gives the predictions of a full forward with the hook", function()
    local source = lab.data.generated{n = 150, seed = 2}
    local sets = lab.data.colored_mnist{seed = 2, source = source}
    local net = seed_model(7)
    for _, layer in ipairs({"relu1", "relu3"}) do
      local ev = A.evaluator(net, sets.hard, layer, {batch = 16})
      assert.is_true(ev.cached)
      local channels = layer == "relu1" and {0, 3, 9, 31} or {1, 2, 64, 127}
      local fast = ev:logits(channels)
      local slow = A.with_ablation(net, {[layer] = channels}, function()
        return run(net, sets.hard.images:float() / 255)
      end)
      local plain = run(net, sets.hard.images:float() / 255)
      assert.same({sets.hard.n, 10}, fast.shape)
      assert.is_true(max_abs_diff(fast, slow) < 1e-5)
      assert.is_true(max_abs_diff(slow, plain) > 1e-4) -- the ablation does change the logits
      assert.is_true(max_abs_diff(ev:logits({}), plain) < 1e-5)
      assert.equal(sets.hard.n, ev:predict(channels):eq(slow:argmax(1)):sum():item())
    end
  end)

  it("checks its arguments", function()
    local net = seed_model(1)
    local x = lab.rand({1, 3, 28, 28})
    assert.has_error(function() A.ablate(net, "conv9", {1}) end,
      nil) -- message checked below
    local ok, err = pcall(A.ablate, net, "conv9", {1})
    assert.is_false(ok)
    assert.matches("ablation.ablate: layer 'conv9' is not a module of the model (known: conv1",
      err, 1, true)
    ok, err = pcall(A.ablate, net, "relu1", {1.5})
    assert.matches("entry 1 must be a channel position ≥ 0, got 1.5", err, 1, true)
    ok, err = pcall(A.ablate, net, "relu1", 3)
    assert.matches("channels of 'relu1' must be a list", err, 1, true)
    ok, err = pcall(function()
      return A.with_ablation(net, {relu1 = {32}}, function() return net(x) end)
    end)
    assert.is_false(ok)
    assert.matches("ablation.ablate: layer 'relu1' has 32 channels (0..31), cannot zero channel 32",
      err, 1, true)
    assert.equal(0, forward_hooks(net))
    ok, err = pcall(A.record, net, {images = lab.zeros(2, 3, 28, 28)})
    assert.matches("ablation.record: set (argument #2) must be a table with images and labels",
      err, 1, true)
    ok, err = pcall(A.attribution, net, lab.zeros(3, 28, 28))
    assert.matches("ablation.attribution: x (argument #2) must be a float tensor N×C×H×W, got 3×28×28",
      err, 1, true)
    ok, err = pcall(A.attribution, net, x, {target = 10})
    assert.matches("target must be a class in 0..9, got 10", err, 1, true)
  end)
end)

describe("recording and selectivity", function()
  it("computes the Morcos et al. index as worked out by hand", function()
    local idx, g = A.selectivity_index({0, 4, 0, 0})
    assert.equal(1, idx)
    assert.equal(1, g)
    assert.equal(0, (A.selectivity_index({2, 2, 2})))
    assert.equal(0, (A.selectivity_index({0, 0, 0})))            -- a dead channel
    assert.near(0.5, (A.selectivity_index({3, 1, 1, 1, 1})), 1e-12) -- (3 − 1)/(3 + 1)
    assert.near(0.5, (A.selectivity_index({0 / 0, 3, 1})), 1e-12)   -- empty group skipped
    assert.has_error(function() A.selectivity_index({1}) end)
  end)

  it("records per-label and per-colour means matching a hand computation", function()
    -- identity 1×1 convolution: channel c is colour plane c. Four constant 2×2 images:
    --   #0 red 255 (label 0, colour 0)   #1 red 51 (label 0, colour 1)
    --   #2 green 255 (label 1, colour 1) #3 black (label 1, colour 0)
    local net = nn.Sequential()
    net:add(nn.Conv2d(3, 3, 1, {bias = false}), "conv1"):add(nn.ReLU(), "relu1")
    net:load_state_dict({["conv1.weight"] = lab.tensor(
      {{{{1}}, {{0}}, {{0}}}, {{{0}}, {{1}}, {{0}}}, {{{0}}, {{0}}, {{1}}}})})
    local images = lab.zeros({4, 3, 2, 2}, {dtype = "uint8"})
    images:select(0, 0):select(0, 0):fill_(255)
    images:select(0, 1):select(0, 0):fill_(51)
    images:select(0, 2):select(0, 1):fill_(255)
    local set = {images = images, labels = lab.tensor({0, 0, 1, 1}):long(),
      colors = lab.tensor({0, 1, 1, 0}):long(), n = 4}
    local st = A.selectivity(A.record(net, set, {layers = {"relu1"}, classes = 2, batch = 3}))
    local s = st.layers.relu1
    assert.equal(4, st.n)
    assert.equal(3, s.channels)
    assert.near(0.3, s.mean[1], 1e-6)   -- red: (1 + 0.2 + 0 + 0) / 4
    assert.near(0.25, s.mean[2], 1e-6)  -- green
    assert.near(0.6, s.by_label[1][1], 1e-6)
    assert.near(0.0, s.by_label[2][1], 1e-6)
    assert.near(0.5, s.by_color[1][1], 1e-6)
    assert.near(0.1, s.by_color[2][1], 1e-6)
    assert.near(0.5, s.by_label[2][2], 1e-6)
    assert.same({2, 2}, s.label_counts)
    assert.near(1.0, s.class_selectivity[1], 1e-6)           -- (0.6 − 0)/(0.6 + 0)
    assert.near(0.4 / 0.6, s.color_selectivity[1], 1e-6)     -- (0.5 − 0.1)/(0.5 + 0.1)
    assert.equal(0, s.class_preferred[1])
    assert.equal(1, s.class_preferred[2])
    assert.equal(0, s.class_selectivity[3])                  -- blue never fires: dead
  end)

  it("gives indices in [0, 1] and preferred groups in 0..9 for every channel of a seed CNN", function()
    local source = lab.data.generated{n = 200, seed = 3}
    local sets = lab.data.colored_mnist{seed = 3, source = source}
    local net = lab.models.seed_cnn({generator = lab.Generator(9)})
    local st = A.selectivity(A.record(net, sets.hard, {batch = 20}))
    assert.same({"relu1", "relu2", "relu3"}, st.names)
    local counts = {relu1 = 32, relu2 = 64, relu3 = 128}
    for _, name in ipairs(st.names) do
      local s = st.layers[name]
      assert.equal(counts[name], s.channels)
      for _, kind in ipairs({"class", "color"}) do
        local idx, pref = s[kind .. "_selectivity"], s[kind .. "_preferred"]
        assert.equal(s.channels, #idx)
        for c = 1, s.channels do
          assert.is_true(idx[c] >= 0 and idx[c] <= 1, name .. " " .. kind .. " index out of range")
          assert.is_true(pref[c] >= 0 and pref[c] <= 9)
        end
      end
      for c = 1, s.channels do assert.is_true(s.mean[c] >= 0) end
    end
    -- the model is left in training mode as it came, with no hooks
    assert.is_true(net.training)
    assert.equal(0, forward_hooks(net))
  end)
end)

describe("what Task 6 measures (cnnlab.ablation_curves)", function()
  local C = require "cnnlab.ablation_curves"

  it("puts curve points at 0..3, every C // steps channels and C", function()
    assert.same({0, 1, 2, 3, 4, 8, 12, 16}, C.x_grid(16, 4))
    assert.same({0, 1, 2, 3}, C.x_grid(3, 8))
    assert.same({0, 1, 2, 3, 4, 6, 7}, C.x_grid(7, 3)) -- step 7 // 3 = 2
    assert.same({5, 6}, C.first({5, 6, 7}, 2))
  end)

  it("summarises the flip counts with quantiles between ranks", function()
    local row = C.flip_summary({counts = {4, 1, 2, 3}, never = 1, top1_own_colour = 2,
      top3_own_colour = 3, chance = 1}, 4)
    assert.equal(1, row.min)
    assert.equal(4, row.max)
    assert.equal(2.5, row.median)
    assert.equal(1.75, row.q1)
    assert.equal(75, row.within3)     -- 1, 2, 3 of the 4 digits used
    assert.equal(50, row.top1_own_colour)
    assert.equal(25, row.top3_own_colour)
    assert.equal(25, row.any_own_colour)
  end)

  it("reads the verdict off the curves: best point of the colour order against random", function()
    local lc = {x = {0, 1, 2}, orders = {
      color = {hard = {20, 30, 25}, hard_conflicting = {10, 15, 12}, hard_follows_colour = {80, 60, 70},
        easy = {99, 90, 80}},
      random = {hard = {20, 21, 19}}, random1 = {hard = {20, 22, 18}}, random2 = {hard = {20, 20, 20}}}}
    local v, text = C.verdict(lc, 100, "conv1")
    assert.equal(30, v.hard_best_color_order)
    assert.equal(1, v.hard_best_color_order_k)
    assert.equal(10, v.hard_gain_color_order)
    assert.equal(21, v.hard_random_at_best_k)
    assert.equal(18, v.hard_random_min)
    assert.equal(22, v.hard_random_max)
    assert.is_true(math.abs(v.hard_standard_error - 4) < 1e-12) -- 100·√(0.2·0.8/100)
    assert.truthy(text:find("conv1: hard accuracy 20.00% with nothing zeroed", 1, true))
  end)

  it("records each named layer once, in order of first mention, and names unknown ones",
    function()
      local net = lab.models.seed_cnn{generator = lab.Generator(1)}
      assert.same({"relu1", "relu2", "relu3", "pool1"},
        C.record_layers(net, A.LAYERS, {"relu3", "pool1"}, {"relu1"}))
      local ok, err = pcall(C.record_layers, net, {"relu1"}, {"nope"})
      assert.is_false(ok)
      assert.truthy(err:find("nope", 1, true))
    end)

  it("summarises a layer's selectivity: means, colour > class count, dead channels", function()
    local v = C.selectivity_summary{channels = 4, color_selectivity = {0.8, 0.2, 0.5, 0},
      class_selectivity = {0.1, 0.4, 0.5, 0}, mean = {1, 2, 3, 0}}
    assert.equal(0.375, v.color)
    assert.equal(0.25, v.class)
    assert.equal(1, v.color_more) -- channel 3 ties: not more colour-selective
    assert.equal(1, v.dead)
  end)

  it("picks the demonstration digit: the first right label, or the index given", function()
    local labels = lab.tensor({3, 5, 3, 3}, {dtype = "int64"})
    local preds = lab.tensor({5, 5, 3, 3}, {dtype = "int64"})
    assert.equal(2, C.demo_digit(labels, preds, 3, -1, 10))
    assert.equal(7, C.demo_digit(labels, preds, 3, 7, 10))
    local ok, err = pcall(C.demo_digit, labels, preds, 4, -1, 10)
    assert.truthy(err:find("no validation digit 4 among the first 4", 1, true))
    ok, err = pcall(C.demo_digit, labels, preds, 3, 10, 10)
    assert.truthy(err:find("--demo_index 10 is beyond the validation set (10 digits)", 1, true))
  end)

  it("tabulates the curves (orders present only) and the flip rows", function()
    local lc = {x = {0, 2}, orders = {color = {easy = {99, 90}, hard = {20, 30.25}},
      random = {easy = {99, 98}, hard = {20, 19}}}}
    local rows = C.curve_rows(lc)
    assert.equal(5, #rows) -- header, colour easy/hard, random easy/hard
    assert.equal(("    %-26s%6d%6d"):format("order / set", 0, 2), rows[1])
    assert.equal(("    %-26s%6.1f%6.1f"):format("color / hard", 20, 30.25), rows[3])
    assert.truthy(rows[5]:find("random / hard", 1, true))
    local lines, sums = C.flip_rows({relu1 = {counts = {1, 2}, never = 0, top1_own_colour = 1,
      top3_own_colour = 2, chance = 0.5}}, 2, {layers = {relu1 = {channels = 8}}}, {"relu1"},
      function() return "conv1" end)
    assert.equal(2, #lines)
    assert.truthy(lines[2]:find("^  conv1 +8 +1 "))
    assert.equal(50, sums.conv1.top1_own_colour)
  end)
end)
