-- cnnlab.gradcam: Grad-CAM, Grad-CAM++ and saliency on a network small enough to work out
-- on paper; non-negative maps; batched and one-by-one results agree; the stroke-share
-- measure; and the examples Task 3 picks to show (the drawing is tests/figure_spec.lua).
local lab = require "cnnlab"
local nn = lab.nn
local gradcam = lab.gradcam

local function max_abs_diff(a, b) return (a - b):abs():max():item() end
local function close(a, b, tol) return math.abs(a - b) <= (tol or 1e-5) end

--[==[ The hand-built network, on one 1×2×2 input x = [[1, 2], [4, 0]]:
  conv (1×1): channel 0 = x, channel 1 = 3 − x; relu:  A0 = [[1, 2], [4, 0]], A1 = [[2, 1], [0, 3]]
  fc on flatten(A) = (A0 row-major, A1 row-major), no bias:
    class 0: A0 · [4, 0, 0, 0] + A1 · [0, −1, −1, −2]   = 4 − 1 − 0 − 6 = −3
    class 1: A1 · [1, 1, 1, 1]                           = 6   (the top logit)
    class 2: A0 · [−1, −1, −1, −1]                       = −7
  The logits are linear in A, so ∂y_c/∂A_kij is fc's weight, and α_k its mean over positions:
    class 1: α = (0, 1)  → map = ReLU(A1)           = [[2, 1], [0, 3]]
    class 0: α = (1, −1) → map = ReLU(A0 − A1)      = ReLU([[−1, 1], [4, −3]]) = [[0, 1], [4, 0]]
    class 2: α = (−1, 0) → map = ReLU(−A0)          = zeros (all negative)
  Grad-CAM++ for class 1: g = 1 on channel 1, 0 on channel 0; ΣA1 = 6, so
    a = 1 / (2 + 6) = 1/8 everywhere, w1 = 4 · 1/8 = 0.5, w0 = 0 → map = 0.5 · A1
  Saliency for class 1: y1 = Σ ReLU(3 − x): |∂y1/∂x| = 1 where x < 3, 0 where x = 4.
]==]
local function paper_net()
  local net = nn.Sequential()
  net:add(nn.Conv2d(1, 2, 1), "conv")
  net:add(nn.ReLU(), "relu")
  net:add(nn.Flatten(), "flatten")
  net:add(nn.Linear(8, 3), "fc")
  net:load_state_dict({
    ["conv.weight"] = lab.tensor({{{{1}}}, {{{-1}}}}), ["conv.bias"] = lab.tensor({0, 3}),
    ["fc.weight"] = lab.tensor({{4, 0, 0, 0, 0, -1, -1, -2}, {0, 0, 0, 0, 1, 1, 1, 1},
      {-1, -1, -1, -1, 0, 0, 0, 0}}),
    ["fc.bias"] = lab.zeros(3)})
  return net
end
local X = lab.tensor({{{{1, 2}, {4, 0}}}})

describe("Grad-CAM on a network worked out on paper", function()
  it("explains the top logit with α = mean gradient and ReLU(Σ α_k A_k)", function()
    local r = gradcam.compute(paper_net(), X, {layer = "relu"})
    assert.same({-3, 6, -7}, r.logits:totable()[1])
    assert.same({1}, r.target:totable())
    assert.same({{0, 1}}, r.weights:totable())
    assert.same({{{2, 1}, {0, 3}}}, r.maps:totable())
    assert.same({1, 2, 2}, r.upsampled.shape)
  end)

  it("follows the chosen class, and an all-negative map becomes zeros", function()
    local net = paper_net()
    local r0 = gradcam.compute(net, X, {layer = "relu", target = 0})
    assert.same({{1, -1}}, r0.weights:totable())
    assert.same({{{0, 1}, {4, 0}}}, r0.maps:totable())
    local r2 = gradcam.compute(net, X, {layer = "relu", target = lab.tensor({2}, {dtype = "int64"})})
    assert.same({{{0, 0}, {0, 0}}}, r2.maps:totable())
  end)

  it("computes Grad-CAM++ and saliency as on paper", function()
    local net = paper_net()
    local pp = gradcam.gradcam_pp(net, X, {layer = "relu"})
    assert.is_true(close(pp.weights:get(0, 0), 0))
    assert.is_true(close(pp.weights:get(0, 1), 0.5))
    assert.is_true(max_abs_diff(pp.maps, lab.tensor({{{1, 0.5}, {0, 1.5}}})) < 1e-6)
    local s = gradcam.saliency(net, X)
    assert.same({{{1, 1}, {0, 1}}}, s.maps:totable())
  end)

  it("upsamples bilinearly (align_corners = false)", function()
    -- 2 → 4 along a row [a, b]: [a, 0.75a + 0.25b, 0.25a + 0.75b, b]
    local r = gradcam.compute(paper_net(), X, {layer = "relu", size = {4, 4}})
    local row0 = r.upsampled:select(0, 0):select(0, 0):totable()
    local want = {2, 1.75, 1.25, 1}
    for i = 1, 4 do assert.is_true(close(row0[i], want[i]), "column " .. i) end
    local row3 = r.upsampled:select(0, 0):select(0, 3):totable()
    want = {0, 0.75, 2.25, 3}
    for i = 1, 4 do assert.is_true(close(row3[i], want[i]), "column " .. i) end
  end)
end)

describe("Grad-CAM on the seed network", function()
  local net, x
  setup(function()
    net = lab.models.seed_cnn{generator = lab.Generator(11)}
    net:eval()
    x = lab.rand({6, 3, 28, 28}, {generator = lab.Generator(12)})
  end)

  it("gives non-negative maps at the layer's resolution and at the input's", function()
    local r = gradcam.compute(net, x, {plusplus = true})
    assert.equal("relu3", r.layer)
    assert.same({6, 6, 6}, r.maps.shape)          -- conv3's maps before pooling: 6×6
    assert.same({6, 28, 28}, r.upsampled.shape)
    for _, key in ipairs({"maps", "upsampled", "maps_pp", "upsampled_pp"}) do
      assert.is_true(r[key]:min():item() >= 0, key)
    end
    assert.is_true(r.maps:max():item() > 0)
    -- pool3 (3×3, stride 2) on 6×6 reads rows and columns 0..4 only
    local reached = r.reached:totable()
    for i = 1, 6 do
      for j = 1, 6 do assert.equal((i < 6 and j < 6) and 1 or 0, reached[i][j]) end
    end
    local r2 = gradcam.compute(net, x, {layer = "relu2"})
    assert.same({6, 13, 13}, r2.maps.shape)
    local r3 = gradcam.compute(net, x, {layer = "pool3"})
    assert.same({6, 2, 2}, r3.maps.shape)
    assert.is_true(gradcam.saliency(net, x).maps:min():item() >= 0)
  end)

  it("gives the same maps batched and one by one", function()
    local whole = gradcam.compute(net, x, {plusplus = true})
    local sal = gradcam.saliency(net, x)
    local pieces = gradcam.compute(net, x, {plusplus = true, batch = 4})
    assert.is_true(max_abs_diff(whole.maps, pieces.maps) < 1e-5)
    for i = 0, 5 do
      local one = x:narrow(0, i, 1)
      local r = gradcam.compute(net, one, {plusplus = true})
      assert.equal(whole.target:get(i), r.target:get(0))
      assert.is_true(max_abs_diff(whole.maps:narrow(0, i, 1), r.maps) < 1e-5)
      assert.is_true(max_abs_diff(whole.upsampled:narrow(0, i, 1), r.upsampled) < 1e-5)
      assert.is_true(max_abs_diff(whole.maps_pp:narrow(0, i, 1), r.maps_pp) < 1e-4)
      local s = gradcam.saliency(net, one)
      assert.is_true(max_abs_diff(sal.maps:narrow(0, i, 1), s.maps) < 1e-5)
    end
  end)

  it("reads uint8 bytes as byte / 255", function()
    local bytes = (x * 255):byte()
    local a = gradcam.compute(net, bytes)
    local b = gradcam.compute(net, bytes:float() / 255)
    assert.equal(0, max_abs_diff(a.maps, b.maps))
  end)

  it("names the function and the argument in its errors", function()
    local ok, err = pcall(gradcam.compute, net, x, {layer = "conv9"})
    assert.truthy(err:find("gradcam.compute: the model has no layer 'conv9'", 1, true))
    ok, err = pcall(gradcam.compute, net, lab.rand(3, 28, 28))
    assert.truthy(err:find("gradcam.compute: x must be N×C×H×W, got 3×28×28", 1, true))
    ok, err = pcall(gradcam.compute, net, x, {layer = "fc"})
    assert.truthy(err:find("Grad-CAM needs N×K×h×w feature maps", 1, true))
    ok, err = pcall(gradcam.compute, net, x, {target = lab.zeros(6)})
    assert.truthy(err:find("target must be nil (top logit), an integer class or an int64 "
      .. "vector of 6 classes, got float32 6", 1, true))
    ok, err = pcall(gradcam.compute, net, x, {size = {0, 5}})
    assert.truthy(err:find("size must be {H, W} with positive integers", 1, true))
    ok, err = pcall(gradcam.saliency, "net", x)
    assert.truthy(err:find("gradcam.saliency: model must be a cnnlab.nn module", 1, true))
  end)
end)

describe("the stroke-share measure", function()
  it("is the share of map mass on the mask, NaN for an empty map", function()
    local maps = lab.tensor({{{1, 3}, {0, 0}}, {{0, 0}, {0, 0}}, {{2, 2}, {2, 2}}})
    local mask = lab.tensor({{{1, 0}, {0, 0}}, {{1, 0}, {0, 0}}, {{1, 1}, {0, 0}}})
    local s = gradcam.mass_share(maps, mask)
    assert.is_true(close(s:get(0), 0.25))
    assert.is_true(s:get(1) ~= s:get(1))
    assert.is_true(close(s:get(2), 0.5))
    local mean, n, zeros = gradcam.mean_share(s)
    assert.is_true(close(mean, 0.375))
    assert.equal(2, n)
    assert.equal(1, zeros)
    mean, n = gradcam.mean_share(s, lab.tensor({0, 1, 1}):byte())
    assert.is_true(close(mean, 0.5))
    assert.equal(1, n)
  end)

  it("has a ceiling at a layer's resolution, worked out by hand", function()
    -- strokes: the top-left 2×2 of a 4×4 digit
    local mask = lab.zeros(1, 4, 4)
    mask:narrow(1, 0, 2):narrow(2, 0, 2):fill_(1)
    local one = gradcam.share_ceiling(mask, 1, 1) -- a 1×1 map upsamples to a constant
    assert.is_true(close(one.best:get(0), 0.25) and close(one.density:get(0), 0.25))
    -- 2 → 4 bilinear (align_corners = false): cell 0 weighs rows/columns 1, .75, .25, 0; each
    -- cell's kernel has mass 4; stroke mass under the cells (1.75²; 1.75·.25 twice; .25²)
    local two = gradcam.share_ceiling(mask, 2, 2)
    assert.is_true(close(two.best:get(0), 3.0625 / 4))
    assert.is_true(close(two.density:get(0), (3.0625 ^ 2 + 2 * 0.4375 ^ 2 + 0.0625 ^ 2) / 16))
    local ok, err = pcall(gradcam.share_ceiling, mask, 0, 2)
    assert.is_false(ok)
    assert.truthy(err:find("argument #2 (the map's height) must be a positive integer, got 0", 1,
      true))
    ok, err = pcall(gradcam.share_ceiling, lab.zeros(4, 4), 2, 2)
    assert.truthy(err:find("mask must be N×H×W", 1, true))
  end)

  it("takes strokes where grey > threshold · 255", function()
    local grey = lab.tensor({{{127, 128}, {0, 255}}}):byte()
    assert.same({{{0, 1}, {0, 1}}}, gradcam.stroke_mask(grey):totable())
    assert.same({{{1, 1}, {0, 1}}}, gradcam.stroke_mask(grey, 0.2):totable())
    local ok, err = pcall(gradcam.mass_share, lab.zeros(1, 6, 6), lab.zeros(1, 28, 28))
    assert.truthy(err:find("maps and mask must both be N×H×W, got 1×6×6 and 1×28×28", 1, true))
  end)
end)

describe("the examples Task 3 shows", function()
  it("picks one correct digit per class on the easy set, colour-followers on the hard set", function()
    local labels, colors = {1, 1, 2, 3, 1}, {1, 1, 2, 3, 1}
    assert.same({0, 2, 3}, gradcam.pick_examples(labels, colors, {1, 1, 2, 3, 0}, "easy", 3))
    -- hard: the red 1 read as 0 first (position 3), then one per predicted class
    local hl, hc, hp = {2, 5, 4, 1, 6}, {3, 3, 4, 0, 7}, {3, 3, 4, 0, 7}
    assert.same({3, 0, 4}, gradcam.pick_examples(hl, hc, hp, "hard", 3))
    -- none follows its colour: the misread ones
    assert.same({1}, gradcam.pick_examples({2, 5}, {3, 3}, {2, 6}, "hard", 4))
  end)
end)

describe("Task 3's steps on a set (first_digits, analyse, set_measures, colour_scales)", function()
  local g = lab.Generator(11)
  local grey = (lab.rand({6, 28, 28}, {generator = g}) * 255):byte()
  local set = {n = 6, images = (lab.rand({6, 3, 28, 28}, {generator = g}) * 255):byte(),
    labels = lab.tensor({0, 1, 2, 3, 4, 5}, {dtype = "int64"}),
    colors = lab.tensor({0, 1, 5, 3, 4, 2}, {dtype = "int64"}),
    index = lab.tensor({5, 4, 3, 2, 1, 0}, {dtype = "int64"}),
    conflicting = lab.tensor({0, 0, 1, 0, 0, 1}, {dtype = "int64"})}
  local net = lab.models.seed_cnn{generator = lab.Generator(12)}
  local methods = {lab.attributions.load("gradcam"), lab.attributions.load("saliency")}

  it("takes the first n digits and the grey ones behind them", function()
    local s = gradcam.first_digits(set, grey, 4, "easy")
    assert.equal(4, s.n)
    assert.equal("easy", s.name)
    assert.same({0, 1, 2, 3}, s.labels:totable())
    assert.equal(0, max_abs_diff(s.grey:float(), grey:index_select(0, s.index):float()))
    assert.equal(6, gradcam.first_digits(set, grey, 0, "all").n)
    assert.equal(6, gradcam.first_digits(set, grey, 99, "all").n)
  end)

  it("computes every map, its stroke share and what the model said", function()
    local s = gradcam.first_digits(set, grey, 0, "hard")
    local said = {}
    local r = gradcam.analyse(net, s, methods, {layer = "relu3", compare = {"relu2"},
      threshold = 0.5, batch = 4, progress = function(fmt, ...) said[#said + 1] = fmt:format(...) end})
    local cam = gradcam.compute(net, s.images, {layer = "relu3"})
    local mask = gradcam.stroke_mask(s.grey, 0.5)
    assert.equal(0, max_abs_diff(r.mask, mask))
    assert.is_true(max_abs_diff(r.res.gradcam.maps, cam.maps) < 1e-6)
    assert.same(cam.target:totable(), r.pred:totable())
    assert.equal(r.res.gradcam, r.main)
    local share = gradcam.mass_share(cam.upsampled, mask):totable()
    for i, v in ipairs(r.share.gradcam:totable()) do
      assert.is_true(v ~= v and share[i] ~= share[i] or math.abs(v - share[i]) < 1e-6)
    end
    assert.equal(6, r.share.gradcam_relu2:size(0))
    assert.equal(6, r.share.saliency:size(0))
    assert.same(r.pred:eq(s.labels):totable(), r.correct:totable())
    local follows = r.pred:eq(s.colors):mul(s.conflicting):totable()
    assert.same(follows, r.follows:totable())
    assert.equal("hard: Grad-CAM at relu3 on 6 digits", said[1])
    assert.equal("hard: Grad-CAM at relu2", said[#said])

    local v = gradcam.set_measures(r)
    assert.equal(6, v.n)
    assert.equal(r.correct:sum():item(), v.n_correct)
    assert.equal(6 - v.n_correct, v.n_misread)
    assert.is_true(close(100 * v.n_correct / 6, v.acc, 1e-12))
    assert.is_true(close(100 * r.area:mean():item(), v.stroke_area, 1e-4))
    assert.is_true(close(100 * r.ceiling.best:mean():item(), v.share_ceiling, 1e-9))
    assert.is_true(v.gradcam_unreached_area > 0) -- relu3's last row and column (6×6 → pool)

    local picks = {easy = {list = {}}, hard = {list = {0, 2}, idx = lab.tensor({0, 2}, {dtype = "int64"})}}
    local scales = gradcam.colour_scales({hard = r}, picks, methods)
    local figure = require "cnnlab.figure"
    assert.equal(figure.scale_top({r.res.gradcam.maps:index_select(0, picks.hard.idx)}), scales.gradcam)
    assert.equal(figure.scale_top({r.res.saliency.maps:index_select(0, picks.hard.idx)}, 0.99),
      scales.saliency)
  end)
end)
