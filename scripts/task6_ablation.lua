-- Task 6: neuron ablation — find the channels that carry the decision, zero them, measure.
--
-- The seed CNN of Task 1 reads colour, not shape. If so, a few colour-driven channels should
-- carry its decisions: silencing them should change the answer. The layers come from the
-- model (cnnlab.models: relu1–relu3 of the seed network, keyed conv1–conv3 in the metrics and
-- file names; relu1–relu4 of simple_convnet, keyed conv1–conv4). This script
--   1. records how every channel of its feature layers (conv1–conv3 after ReLU in the seed
--      network) responds to a probe set — the
--      validation digits repainted in random colours, so that colour and digit are independent
--      — and gives each channel a colour-selectivity and a class-selectivity index
--      (Morcos et al. 2018: (μ_max − μ_−max)/(μ_max + μ_−max) over the 10 colour- or
--      digit-conditional mean activations; 0 = indifferent, 1 = fires for one group only);
--   2. takes one easy digit, ranks the channels of each of --demo_layers by their attribution
--      to its prediction (activation × gradient of the predicted logit, summed over space) and
--      zeroes them one by one until the answer changes — and, over --flip_n easy digits, how
--      many channels that takes;
--   3. draws ablation curves: accuracy on the easy (validation) and hard sets against the number
--      of channels zeroed in each of --layers, ordered by colour-selectivity, by
--      class-selectivity, by mean attribution to the easy-set decisions, and at random;
--   4. answers the question beyond the seed: does zeroing the most colour-selective channels
--      raise hard accuracy?
--
--   ./cnnlab scripts/task6_ablation.lua [--model runs/task1/model.safetensors --out runs/task6
--       --layers auto --demo_layers auto --demo_label 3 --n_easy 2000
--       --n_hard 2000 --random_repeats 3 --quick --data generated]
-- --layers auto is the model's first and last feature layers (relu1,relu3 for the seed
-- network), --demo_layers auto all of them (relu1,relu2,relu3); a model without feature maps
-- (lff_mlp) needs both named (e.g. --layers relu1,relu3 --demo_layers relu1,relu2,relu3: its
-- hidden layers' units count as channels).
-- Writes into --out: metrics.json, demo.svg, demo.png, curves_<conv>.svg, selectivity.svg.
local lab = require "cnnlab"
local util = lab.util
local study = lab.study
local svg = lab.svg
local A = lab.ablation
local C = require "cnnlab.ablation_curves"

local spec = {
  name = "task6_ablation", script = "scripts/task6_ablation.lua",
  description = "Rank, silence and measure the channels of a trained network (the seed CNN or any --arch) that carry its decisions.",
  options = study.options({"model", {"out", "runs/task6"},
    {"layers", "auto", "comma-separated layers for the ablation curves (auto: the model's first and last feature layers, relu1,relu3 for the seed network)"},
    {"demo_layers", "auto", "layers whose channels are zeroed one by one for the easy digit (auto: the model's feature layers, relu1,relu2,relu3 for the seed network)"},
    {"demo_label", 3, "digit of the easy example (the first validation digit of it the model gets right)"},
    {"demo_index", -1, "position in the validation set of the easy example (overrides --demo_label)"},
    {"demo_steps", 0, "most channels zeroed one by one in the demonstration (0: until the answer changes)"},
    {"n_easy", 2000, "validation (easy) digits the curves are measured on (0: all)"},
    {"n_hard", 2000, "hard digits the curves are measured on (0: all)"},
    {"n_probe", 0, "validation digits repainted at random to measure selectivity (0: all)"},
    {"flip_n", 200, "easy digits for the how-many-channels-until-the-answer-changes statistic (0: skip)"},
    {"n_attr", 1000, "easy digits (the last of the validation set) for the attribution order"},
    {"steps", 16, "points per curve besides 0..3 (every C/steps channels)"},
    {"random_repeats", 3, "random orders averaged for the random curve"},
    {"batch", 500, "batch size for evaluation"},
  }),
}
local opts = util.parse_args(arg, spec)
local t0 = lab.now()
local PROBE_STREAM = 61 -- colour stream of the probe set (SPEC §2 streams 1–4 are taken)
local NAMES = lab.data.PALETTE_NAMES

-- A layer's key in the metrics and file names: the convolution it follows ("conv1" for
-- relu1), or its own name (cnnlab.models.layer_labels, set once the model is loaded).
local LABELS = {}
local function conv_name(layer) return LABELS[layer] or layer end

-- --layers and --demo_layers: "auto" resolves to the model's own feature layers; a model
-- without any needs them named.
local function layer_lists(model)
  local lists = {}
  for _, o in ipairs({{"layers", true}, {"demo_layers", false}}) do
    local text = opts[o[1]]
    if text == "auto" then
      local f = lab.models.require_feature_layers(model, "task6 (channel ablation) with --"
        .. o[1] .. " auto", "or pass --layers and --demo_layers with layers of the model")
      lists[o[1]] = o[2] and (#f > 1 and {f[1], f[#f]} or {f[1]}) or f
    else
      lists[o[1]] = study.list(text, o[1])
    end
  end
  return lists.layers, lists.demo_layers
end
local function pick(set, n) return n > 0 and study.subset(set, n) or set end

-- 1. Selectivity of every recorded channel on the probe set; selectivity.svg.
local function selectivity(model, probe, record, m)
  local stats = A.selectivity(A.record(model, probe, {layers = record, batch = opts.batch}))
  print("\nSelectivity on the probe set (mean over channels; index in [0, 1]):")
  print(("  %-8s %8s %14s %14s %22s"):format("layer", "channels", "colour sel.", "class sel.",
    "colour > class (count)"))
  for _, name in ipairs(record) do
    local s, key = stats.layers[name], conv_name(name)
    local v = C.selectivity_summary(s)
    print(("  %-8s %8d %14.3f %14.3f %15d of %d%s"):format(key, s.channels, v.color, v.class,
      v.color_more, s.channels, v.dead > 0 and (" (%d dead)"):format(v.dead) or ""))
    m[key .. "_mean_color_selectivity"], m[key .. "_mean_class_selectivity"] = v.color, v.class
    m[key .. "_color_more_selective_count"], m[key .. "_dead_channels"] = v.color_more, v.dead
    for field, values in pairs({color_selectivity = s.color_selectivity, class_selectivity =
      s.class_selectivity, preferred_color = s.color_preferred, preferred_class = s.class_preferred,
      mean_activation = s.mean}) do study.flatten(key .. "_" .. field, values, m) end
  end
  util.mkdir_p(opts.out)
  svg.save(opts.out .. "/selectivity.svg", C.selectivity_chart(stats, record, conv_name))
  return stats
end

-- 2. Top-attributed channels of one easy digit zeroed one by one; demo.svg and demo.png.
local function demonstration(model, val, index, stats, demo_layers, m)
  local x = val.images:narrow(0, index, 1):float() / 255
  local label, colour = val.labels:get(index), val.colors:get(index)
  local probs0 = lab.no_grad(function() return model(x) end):softmax(1):select(0, 0)
  local pred0 = probs0:argmax(0):item()
  print(("\nEasy digit: validation #%d (MNIST training digit %d), a %d painted %s; the model "
    .. "says %d with %.1f%% confidence."):format(index, val.index:get(index), label,
    NAMES[colour + 1], pred0, 100 * probs0:get(pred0)))
  m.demo_index, m.demo_mnist_index, m.demo_label, m.demo_color = index, val.index:get(index), label, colour
  m.demo_pred, m.demo_confidence = pred0, 100 * probs0:get(pred0)
  local series, xmax = {}, 1
  for li, layer in ipairs(demo_layers) do
    local key, s = conv_name(layer), stats.layers[layer]
    local scores = A.attribution(model, x, {layers = {layer}}).scores[layer]:select(0, 0)
    local order = A.rank(scores)
    local max_steps = opts.demo_steps > 0 and math.min(opts.demo_steps, #order) or #order
    print(("\n%s: its channels ranked by attribution (activation × ∂logit%d/∂activation, summed "
      .. "over space), zeroed one by one until the answer changes:"):format(key, pred0))
    print(("  %5s %8s %12s %22s %11s %5s %11s %9s"):format("step", "channel", "attribution",
      "colour sel. (pref.)", "class sel.", "pred", "confidence", ("P(%d)"):format(pred0)))
    print(("  %5d %8s %12s %22s %11s %5d %10.1f%% %8.1f%%"):format(0, "—", "", "", "", pred0,
      100 * probs0:get(pred0), 100 * probs0:get(pred0)))
    local xs, ys, last = {0}, {100 * probs0:get(pred0)}, nil
    local changed_at = C.until_changed(model, x, layer, order, max_steps, function(k, pred, p)
      local c = order[k]
      last = {channel = c, attribution = scores:get(c), pred = pred, confidence = 100 * p:get(pred),
        p_first = 100 * p:get(pred0), color_selectivity = s.color_selectivity[c + 1],
        preferred_color = s.color_preferred[c + 1], class_selectivity = s.class_selectivity[c + 1]}
      for name, v in pairs(last) do m[("demo_%s_step%d_%s"):format(key, k, name)] = v end
      xs[#xs + 1], ys[#ys + 1] = k, last.p_first
      print(("  %5d %8d %12.3f %11.2f %-10s %11.2f %5d %10.1f%% %8.1f%%"):format(k, c,
        last.attribution, last.color_selectivity, "(" .. NAMES[last.preferred_color + 1] .. ")",
        last.class_selectivity, pred, last.confidence, last.p_first))
    end)
    if lab.no_grad(function() return model(x) end):argmax(1):get(0) ~= pred0 then
      error("the model did not come back after the ablation hooks were removed", 0)
    end
    if changed_at then
      print(("%s: the answer changes from %d to %d (%.1f%% confidence) after zeroing %d of %d "
        .. "channels."):format(key, pred0, last.pred, last.confidence, changed_at, s.channels))
    else
      print(("%s: the answer is still %d after zeroing %d of %d channels."):format(key, pred0,
        max_steps, s.channels))
    end
    xmax = math.max(xmax, changed_at or max_steps)
    m[("demo_%s_changed_after"):format(key)] = changed_at or -1
    m[("demo_%s_final_pred"):format(key)], m[("demo_%s_channels"):format(key)] = last.pred, s.channels
    study.flatten(("demo_%s_top_channels"):format(key), C.first(order, math.min(10, #order)), m)
    series[#series + 1] = {name = changed_at and ("%s → %d after %d"):format(key, last.pred,
      changed_at) or ("%s: still %d"):format(key, pred0), x = xs, y = ys,
      color = svg.palette[(li - 1) % #svg.palette + 1]}
  end
  lab.write_png(opts.out .. "/demo.png", lab.image_grid(val.images:narrow(0, index, 1),
    {ncol = 1, scale = 6, pad = 0}))
  svg.save(opts.out .. "/demo.svg", svg.lines{
    title = ("A %s %d: P(%d) as top channels are zeroed"):format(NAMES[colour + 1], label, pred0),
    xlabel = "channels zeroed, highest attribution first (legend: the new answer)",
    ylabel = ("P(%d) (%%)"):format(pred0), ymin = 0, ymax = 100, xmin = 0, xmax = xmax,
    markers = true, width = 480, series = series})
end

-- 2b. Over many easy digits: channels zeroed before the answer changes, own-colour channels.
local function flip_statistic(model, easy, val_preds, stats, demo_layers, m)
  local n_flip = math.min(opts.flip_n, easy.n)
  if n_flip <= 0 then return end
  util.progress("zeroing top channels of each of the first %d easy digits until the answer "
    .. "changes", n_flip)
  local per_layer, used = C.flips(model, easy, val_preds, stats, demo_layers, n_flip)
  print(("\nOver the first %d easy digits (%d classified right): top-attributed channels "
    .. "zeroed until the answer changes"):format(n_flip, used))
  local lines, rows = C.flip_rows(per_layer, used, stats, demo_layers, conv_name)
  print(table.concat(lines, "\n"))
  for key, row in pairs(rows) do
    for name, v in pairs(row) do m[("flip_%s_%s"):format(key, name)] = v end
  end
  m.flip_digits = used
  print("  (≤ 3: share of digits whose answer changes within 3 channels. top-k own col.: share "
    .. "of the top-k channels whose preferred colour on the probe set is the digit's colour; "
    .. "any channel: the same share for a channel of the layer drawn at random)")
end

-- 3. Accuracy against channels zeroed in each order, per layer of --layers; curves_<conv>.svg.
local function ablation_curves(model, sets, easy, hard, stats, layers, m)
  local n_attr = math.min(opts.n_attr, sets.val.n)
  local mean_attr = {}
  if n_attr > 0 then -- mean attribution to the easy-set decisions, from the validation set's end
    util.progress("attribution of %d easy digits (validation #%d–#%d)", n_attr,
      sets.val.n - n_attr, sets.val.n - 1)
    mean_attr = C.mean_attribution(model, sets.val.images, sets.val.n - n_attr, n_attr, layers, opts.batch)
    m.n_attr = n_attr
  end
  local all = {}
  for _, name in ipairs(layers) do
    local s, key = stats.layers[name], conv_name(name)
    local orders = {
      {id = "color", name = "colour-selective first", order = A.rank(s.color_selectivity)},
      {id = "class", name = "class-selective first", order = A.rank(s.class_selectivity)}}
    if mean_attr[name] then
      orders[#orders + 1] = {id = "attribution", name = "most attributed first", order = A.rank(mean_attr[name])}
      study.flatten(key .. "_mean_attribution", mean_attr[name], m)
    end
    for r = 1, opts.random_repeats do
      orders[#orders + 1] = {id = "random" .. r, random = true,
        order = lab.randperm(s.channels, {generator = lab.Generator(opts.seed, 600 + r)}):totable()}
    end
    util.progress("%s: caching activations of %d easy and %d hard digits", key, easy.n, hard.n)
    local lc, checked = C.layer_curves(model, easy, hard, name, orders, {steps = opts.steps,
      batch = opts.batch, progress = function(what, points, seconds)
        util.progress("%s, %s: %d points in %.1f s", key, what, points, seconds)
      end})
    m[key .. "_hook_check_channels"] = checked
    study.flatten(key .. "_curve_x", lc.x, m)
    for id, pts in pairs(lc.orders) do
      for kind, values in pairs(pts) do study.flatten(("%s_curve_%s_%s"):format(key, id, kind), values, m) end
    end
    for _, o in ipairs(orders) do
      if not o.random then study.flatten(("%s_order_%s"):format(key, o.id), o.order, m) end
    end
    svg.save(("%s/curves_%s.svg"):format(opts.out, key), C.chart(lc, key, s.channels,
      opts.random_repeats))
    all[name] = lc
  end
  return all
end

-- 4. Beyond the seed: does zeroing colour-selective channels raise hard accuracy?
local function verdicts(curves, layers, n_hard, m)
  print("\nAblation curves (accuracy in %; easy = validation, hard = random colours):")
  local lines = {}
  for _, name in ipairs(layers) do
    local key, lc = conv_name(name), curves[name]
    print(("  %s — channels zeroed:"):format(key))
    print(table.concat(C.curve_rows(lc), "\n"))
    local v, text = C.verdict(lc, n_hard, key)
    for k, x in pairs(v) do m[key .. "_" .. k] = x end
    lines[#lines + 1] = text
  end
  print("\nDoes zeroing the most colour-selective channels raise hard accuracy?")
  for _, v in ipairs(lines) do print("  " .. v) end
end

study.main("task6_ablation", function()
  if opts.demo_steps < 0 then error("--demo_steps must be 0 (until the answer changes) or more", 0) end
  if opts.random_repeats < 1 then error("--random_repeats must be at least 1", 0) end
  if opts.steps < 1 then error("--steps must be at least 1", 0) end
  util.progress("building Colored MNIST (seed %d, rho %g, beta %g%s)", opts.seed, opts.rho,
    opts.beta, opts.quick and ", quick subset" or "")
  local sets = study.load_data(opts)
  local model = study.load_model(opts.model)
  local layers, demo_layers = layer_lists(model)
  -- the feature layers (conv1–conv3 of the seed network), then any other
  local record = C.record_layers(model, lab.models.feature_layers(model), layers, demo_layers)
  LABELS = lab.models.layer_labels(model, record)
  local easy, hard = pick(sets.val, opts.n_easy), pick(sets.hard, opts.n_hard)
  local probe = C.probe_set(pick(sets.val, opts.n_probe), sets.source.train.images,
    {seed = opts.seed, beta = opts.beta, stream = PROBE_STREAM})
  util.progress("model %s; probe %d digits (validation digits in random colours); curves on "
    .. "%d easy (validation) and %d hard digits; %d threads", opts.model, probe.n, easy.n,
    hard.n, lab.get_threads())
  local m = {model = opts.model, seed = opts.seed, rho = opts.rho, beta = opts.beta,
    quick = opts.quick, data = opts.data, n_probe = probe.n, n_easy = easy.n, n_hard = hard.n,
    n_attr = 0, random_repeats = opts.random_repeats, threads = lab.get_threads(),
    layers = table.concat(layers, ","), demo_layers = table.concat(demo_layers, ",")}
  local keys = {}
  for i, name in ipairs(record) do keys[i] = conv_name(name) end
  m.layer_keys = table.concat(keys, ",") -- the recorded layers' keys, as the metrics name them
  local stats = selectivity(model, probe, record, m)
  local val_preds = lab.train.predict(model, easy, {batch = opts.batch})
  local index = C.demo_digit(easy.labels, val_preds, opts.demo_label, opts.demo_index, sets.val.n)
  demonstration(model, sets.val, index, stats, demo_layers, m)
  flip_statistic(model, easy, val_preds, stats, demo_layers, m)
  verdicts(ablation_curves(model, sets, easy, hard, stats, layers, m), layers, hard.n, m)
  m.total_seconds = lab.now() - t0
  study.write_metrics(opts.out, m)
  util.progress("wrote %s/{metrics.json, selectivity.svg, demo.svg, demo.png, curves_*.svg}", opts.out)
end)
