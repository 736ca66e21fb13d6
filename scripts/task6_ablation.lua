-- Task 6: neuron ablation — find the channels that carry the decision, zero them, measure.
--
-- The seed CNN of Task 1 reads colour, not shape. If so, a few colour-driven channels should
-- carry its decisions: silencing them should change the answer. This script
--   1. records how every channel of conv1–conv3 (after ReLU) responds to a probe set — the
--      validation digits repainted in random colours, so that colour and digit are independent
--      — and gives each channel a colour-selectivity and a class-selectivity index
--      (Morcos et al. 2018: (μ_max − μ_−max)/(μ_max + μ_−max) over the 10 colour- or
--      digit-conditional mean activations; 0 = indifferent, 1 = fires for one group only);
--   2. takes one easy digit, ranks the channels of each of --demo_layers by their attribution
--      to its prediction (activation × gradient of the predicted logit, summed over space) and
--      zeroes them one by one until the answer changes, printing the prediction and confidence
--      after each — and, over --flip_n easy digits, how many channels that takes;
--   3. draws ablation curves: accuracy on the easy (validation) and hard sets against the number
--      of channels zeroed in each of --layers, ordered by colour-selectivity, by
--      class-selectivity, by mean attribution to the easy-set decisions, and at random;
--   4. answers the question beyond the seed: does zeroing the most colour-selective channels
--      raise hard accuracy?
--
--   ./cnnlab scripts/task6_ablation.lua [--model runs/task1/model.safetensors --out runs/task6
--       --layers relu1,relu3 --demo_layers relu1,relu2,relu3 --demo_label 3 --n_easy 2000 --n_hard 2000
--       --random_repeats 3 --quick --data generated]
-- Writes into --out: metrics.json, demo.svg, demo.png, curves_<conv>.svg (curves_conv1.svg, ...),
-- selectivity.svg.
local lab = require "cnnlab"
local util = lab.util
local study = lab.study
local svg = lab.svg
local A = lab.ablation

local spec = {
  name = "task6_ablation", script = "scripts/task6_ablation.lua",
  description = "Rank, silence and measure the channels of the seed CNN that carry its decisions.",
  options = study.options({
    {"model", "runs/task1/model.safetensors", "trained seed CNN (Task 1)"},
    {"out", "runs/task6", "output folder"},
    {"layers", "relu1,relu3", "comma-separated layers for the ablation curves"},
    {"demo_layers", "relu1,relu2,relu3", "layers whose channels are zeroed one by one for the easy digit"},
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

--- model(x) without recording a graph.
local function run(model, x) return lab.no_grad(function() return model(x) end) end

local function conv_name(layer) return A.CONV[layer] or layer end

local function split_list(s)
  local t = {}
  for item in s:gmatch("[^,%s]+") do t[#t + 1] = item end
  return t
end

local function pick(set, n)
  if n <= 0 or n >= set.n then return set end
  local s = {name = set.name, n = n}
  for _, key in ipairs({"images", "labels", "colors", "index", "conflicting"}) do
    if set[key] then s[key] = set[key]:narrow(0, 0, n) end
  end
  return s
end

--- The validation digits repainted with colours drawn independently of the label (the hard
-- set's rule, its own colour stream): colour and digit are independent, so a channel's
-- colour- and class-selectivity can be told apart (on the easy set colour = label).
local function probe_set(sets, n)
  local source
  if opts.data == "generated" then
    source = lab.data.generated{n = opts.generated_n or 3000, seed = opts.seed}
  else
    source = lab.data.mnist(opts.data_dir ~= "" and opts.data_dir or nil)
  end
  local val = pick(sets.val, n)
  local grey = source.train.images:index_select(0, val.index)
  local colors = lab.assign_colors(val.labels, nil, "hard", opts.seed, PROBE_STREAM)
  local images = lab.colorize(grey, colors, opts.beta, opts.seed, PROBE_STREAM)
  return {name = "probe", images = images, labels = val.labels, colors = colors,
    index = val.index, n = val.n}
end

--- Positions 0..C−1 in a random order from a generator.
local function random_order(c, g)
  local t = lab.randperm(c, {generator = g}):totable()
  return t
end

local function first(list, k)
  local t = {}
  for i = 1, k do t[i] = list[i] end
  return t
end

local function grid(c)
  local step = math.max(1, c // opts.steps)
  local seen, xs = {}, {}
  local function add(k) if k <= c and not seen[k] then seen[k] = true xs[#xs + 1] = k end end
  for k = 0, 3 do add(k) end
  for k = step, c, step do add(k) end
  add(c)
  table.sort(xs)
  return xs
end

--- Two or more charts of cnnlab.svg side by side in one SVG document (nested <svg>).
local function side_by_side(docs)
  local x, h, parts = 0, 0, {}
  for _, d in ipairs(docs) do
    local w, hh = d:match('width="(%d+)" height="(%d+)"')
    w, hh = tonumber(w), tonumber(hh)
    parts[#parts + 1] = (d:gsub('^<svg xmlns="http://www.w3.org/2000/svg" ',
      ('<svg x="%d" y="0" '):format(x), 1))
    x, h = x + w, math.max(h, hh)
  end
  return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">\n'
    .. '<rect width="%d" height="%d" fill="white"/>\n%s</svg>\n'):format(x, h, x, h, x, h,
    table.concat(parts, "\n"))
end

local ok, err = pcall(function()
  if opts.demo_steps < 0 then error("--demo_steps must be 0 (until the answer changes) or more", 0) end
  if opts.random_repeats < 1 then error("--random_repeats must be at least 1", 0) end
  if opts.steps < 1 then error("--steps must be at least 1", 0) end
  util.progress("building Colored MNIST (seed %d, rho %g, beta %g%s)", opts.seed, opts.rho,
    opts.beta, opts.quick and ", quick subset" or "")
  local sets = study.load_data(opts)
  local model = study.load_model(opts.model)
  local layers = split_list(opts.layers)
  if #layers == 0 then error("--layers names no layer", 0) end
  local record_layers = {}
  for _, name in ipairs(A.LAYERS) do record_layers[#record_layers + 1] = name end
  for _, name in ipairs(layers) do
    local known = false
    for _, r in ipairs(record_layers) do known = known or r == name end
    if not known then record_layers[#record_layers + 1] = name end
  end
  local demo_layers = split_list(opts.demo_layers)
  if #demo_layers == 0 then error("--demo_layers names no layer", 0) end
  for _, name in ipairs(demo_layers) do
    local known = false
    for _, r in ipairs(record_layers) do known = known or r == name end
    if not known then record_layers[#record_layers + 1] = name end
  end
  for _, name in ipairs(record_layers) do
    if not model:get_module(name) then
      local known = {}
      for _, e in ipairs(model:named_modules()) do
        if e[1] ~= "" then known[#known + 1] = e[1] end
      end
      error(("layer '%s' is not a module of the model (known: %s)"):format(name,
        table.concat(known, ", ")), 0)
    end
  end

  local easy, hard = pick(sets.val, opts.n_easy), pick(sets.hard, opts.n_hard)
  local probe = probe_set(sets, opts.n_probe)
  util.progress("model %s; probe %d digits (validation digits in random colours); curves on "
    .. "%d easy (validation) and %d hard digits; %d threads", opts.model, probe.n, easy.n,
    hard.n, lab.get_threads())

  -- 1. Selectivity ---------------------------------------------------------------------
  local stats = A.selectivity(A.record(model, probe, {layers = record_layers,
    batch = opts.batch}))
  local m = {model = opts.model, seed = opts.seed, rho = opts.rho, beta = opts.beta,
    quick = opts.quick, data = opts.data, n_probe = probe.n, n_easy = easy.n, n_hard = hard.n,
    n_attr = 0, random_repeats = opts.random_repeats, threads = lab.get_threads(),
    layers = table.concat(layers, ","), demo_layers = table.concat(demo_layers, ",")}
  print("\nSelectivity on the probe set (mean over channels; index in [0, 1]):")
  print(("  %-8s %8s %14s %14s %22s"):format("layer", "channels", "colour sel.", "class sel.",
    "colour > class (count)"))
  for _, name in ipairs(record_layers) do
    local s = stats.layers[name]
    local mc, mk, more, dead = 0, 0, 0, 0
    for c = 1, s.channels do
      mc, mk = mc + s.color_selectivity[c], mk + s.class_selectivity[c]
      if s.color_selectivity[c] > s.class_selectivity[c] then more = more + 1 end
      if s.mean[c] == 0 then dead = dead + 1 end
    end
    mc, mk = mc / s.channels, mk / s.channels
    print(("  %-8s %8d %14.3f %14.3f %15d of %d%s"):format(conv_name(name), s.channels, mc, mk,
      more, s.channels, dead > 0 and (" (%d dead)"):format(dead) or ""))
    local key = conv_name(name)
    m[key .. "_mean_color_selectivity"], m[key .. "_mean_class_selectivity"] = mc, mk
    m[key .. "_color_more_selective_count"], m[key .. "_dead_channels"] = more, dead
    study.flatten(key .. "_color_selectivity", s.color_selectivity, m)
    study.flatten(key .. "_class_selectivity", s.class_selectivity, m)
    study.flatten(key .. "_preferred_color", s.color_preferred, m)
    study.flatten(key .. "_preferred_class", s.class_preferred, m)
    study.flatten(key .. "_mean_activation", s.mean, m)
  end
  do -- selectivity profiles: each layer's indices sorted; colour and class side by side
    local panels = {}
    for _, kind in ipairs({{"color", "Colour"}, {"class", "Class (digit)"}}) do
      local series = {}
      for li, name in ipairs(record_layers) do
        local st = stats.layers[name]
        local v, xs_ = {}, {}
        for c = 1, st.channels do
          v[c] = st[kind[1] .. "_selectivity"][c]
          xs_[c] = st.channels > 1 and (c - 1) / (st.channels - 1) or 0
        end
        table.sort(v, function(a, b) return a > b end)
        series[#series + 1] = {name = ("%s (%d)"):format(conv_name(name), st.channels), x = xs_,
          y = v, color = svg.palette[(li - 1) % #svg.palette + 1]}
      end
      panels[#panels + 1] = svg.lines{title = ("%s selectivity of each channel"):format(kind[2]),
        xlabel = "channels, most selective first (fraction of layer)",
        ylabel = "selectivity index", ymin = 0, ymax = 1, xmin = 0, xmax = 1, width = 360,
        series = series}
    end
    util.mkdir_p(opts.out)
    svg.save(opts.out .. "/selectivity.svg", side_by_side(panels))
  end

  -- 2. The demonstration on one easy digit ----------------------------------------------
  local index = opts.demo_index
  local val_preds = lab.train.predict(model, easy, {batch = opts.batch})
  if index < 0 then
    for i = 0, easy.n - 1 do
      if easy.labels:get(i) == opts.demo_label and val_preds:get(i) == opts.demo_label then
        index = i
        break
      end
    end
    if index < 0 then
      error(("no validation digit %d among the first %d is classified correctly; choose "
        .. "another --demo_label or --demo_index"):format(opts.demo_label, easy.n), 0)
    end
  elseif index >= sets.val.n then
    error(("--demo_index %d is beyond the validation set (%d digits)"):format(index,
      sets.val.n), 0)
  end
  local x = sets.val.images:narrow(0, index, 1):float() / 255
  local label, colour = sets.val.labels:get(index), sets.val.colors:get(index)
  local probs0 = run(model, x):softmax(1):select(0, 0)
  local pred0 = probs0:argmax(0):item()
  print(("\nEasy digit: validation #%d (MNIST training digit %d), a %d painted %s; the model "
    .. "says %d with %.1f%% confidence."):format(index, sets.val.index:get(index), label,
    NAMES[colour + 1], pred0, 100 * probs0:get(pred0)))
  m.demo_index, m.demo_mnist_index, m.demo_label, m.demo_color = index,
    sets.val.index:get(index), label, colour
  m.demo_pred, m.demo_confidence = pred0, 100 * probs0:get(pred0)
  local demo_series, demo_summary, demo_xmax = {}, {}, 1
  for li, layer in ipairs(demo_layers) do
    local key = conv_name(layer)
    local attr = A.attribution(model, x, {layers = {layer}})
    local scores = attr.scores[layer]:select(0, 0)
    local order = A.rank(scores)
    local s = stats.layers[layer]
    local max_steps = opts.demo_steps > 0 and math.min(opts.demo_steps, #order) or #order
    print(("\n%s: its channels ranked by attribution (activation × ∂logit%d/∂activation, summed "
      .. "over space), zeroed one by one until the answer changes:"):format(key, pred0))
    print(("  %5s %8s %12s %22s %11s %5s %11s %9s"):format("step", "channel", "attribution",
      "colour sel. (pref.)", "class sel.", "pred", "confidence", ("P(%d)"):format(pred0)))
    print(("  %5d %8s %12s %22s %11s %5d %10.1f%% %8.1f%%"):format(0, "—", "", "", "", pred0,
      100 * probs0:get(pred0), 100 * probs0:get(pred0)))
    local xs, ys, changed_at, last = {0}, {100 * probs0:get(pred0)}, nil, nil
    for k = 1, max_steps do
      local chans = first(order, k)
      local logits = A.with_ablation(model, {[layer] = chans}, function()
        return run(model, x)
      end)
      local p = logits:softmax(1):select(0, 0)
      local pred = p:argmax(0):item()
      local c = order[k]
      local row = {channel = c, attribution = scores:get(c), pred = pred,
        confidence = 100 * p:get(pred), p_first = 100 * p:get(pred0),
        color_selectivity = s.color_selectivity[c + 1],
        preferred_color = s.color_preferred[c + 1],
        class_selectivity = s.class_selectivity[c + 1]}
      for name, v in pairs(row) do m[("demo_%s_step%d_%s"):format(key, k, name)] = v end
      xs[#xs + 1], ys[#ys + 1] = k, row.p_first
      print(("  %5d %8d %12.3f %11.2f %-10s %11.2f %5d %10.1f%% %8.1f%%"):format(k, c,
        row.attribution, row.color_selectivity, "(" .. NAMES[row.preferred_color + 1] .. ")",
        row.class_selectivity, pred, row.confidence, row.p_first))
      last = row
      if pred ~= pred0 then changed_at = k break end
    end
    if run(model, x):argmax(1):get(0) ~= pred0 then
      error("the model did not come back after the ablation hooks were removed", 0)
    end
    local line
    if changed_at then
      line = ("%s: the answer changes from %d to %d (%.1f%% confidence) after zeroing %d of %d "
        .. "channels"):format(key, pred0, last.pred, last.confidence, changed_at, s.channels)
      demo_xmax = math.max(demo_xmax, changed_at)
    else
      line = ("%s: the answer is still %d after zeroing %d of %d channels"):format(key, pred0,
        max_steps, s.channels)
      demo_xmax = math.max(demo_xmax, max_steps)
    end
    print(line .. ".")
    demo_summary[#demo_summary + 1] = line
    m[("demo_%s_changed_after"):format(key)] = changed_at or -1
    m[("demo_%s_final_pred"):format(key)] = last.pred
    m[("demo_%s_channels"):format(key)] = s.channels
    study.flatten(("demo_%s_top_channels"):format(key), first(order, math.min(10, #order)), m)
    demo_series[#demo_series + 1] = {name = changed_at and ("%s → %d after %d"):format(key,
      last.pred, changed_at) or ("%s: still %d"):format(key, pred0),
      x = xs, y = ys, color = svg.palette[(li - 1) % #svg.palette + 1]}
  end
  lab.write_png(opts.out .. "/demo.png", lab.image_grid(sets.val.images:narrow(0, index, 1),
    {ncol = 1, scale = 6, pad = 0}))
  svg.save(opts.out .. "/demo.svg", svg.lines{
    title = ("A %s %d: P(%d) as top channels are zeroed"):format(NAMES[colour + 1], label, pred0),
    xlabel = "channels zeroed, highest attribution first (legend: the new answer)", ylabel = ("P(%d) (%%)"):format(pred0),
    ymin = 0, ymax = 100, xmin = 0, xmax = demo_xmax, markers = true, width = 480,
    series = demo_series})

  -- 2b. The same over many easy digits: how many top-attributed channels must go before the
  -- answer changes, and do the top channels prefer the digit's own colour?
  local n_flip = math.min(opts.flip_n, easy.n)
  if n_flip > 0 then
    util.progress("zeroing top channels of each of the first %d easy digits until the answer "
      .. "changes", n_flip)
    local per_layer = {}
    for _, layer in ipairs(demo_layers) do
      local share = {}
      local st = stats.layers[layer]
      for g = 0, 9 do
        local count = 0
        for c = 1, st.channels do if st.color_preferred[c] == g then count = count + 1 end end
        share[g] = count / st.channels
      end
      per_layer[layer] = {counts = {}, never = 0, top1_own_colour = 0, top3_own_colour = 0,
        share = share, chance = 0}
    end
    local used = 0
    for i = 0, n_flip - 1 do
      local y = easy.labels:get(i)
      if val_preds:get(i) == y then
        used = used + 1
        local xi = easy.images:narrow(0, i, 1):float() / 255
        local own = easy.colors:get(i)
        local r = A.attribution(model, xi, {layers = demo_layers})
        for _, layer in ipairs(demo_layers) do
          local order = A.rank(r.scores[layer]:select(0, 0))
          local pl, st = per_layer[layer], stats.layers[layer]
          pl.chance = pl.chance + pl.share[own]
          if st.color_preferred[order[1] + 1] == own then pl.top1_own_colour = pl.top1_own_colour + 1 end
          for j = 1, math.min(3, #order) do
            if st.color_preferred[order[j] + 1] == own then
              pl.top3_own_colour = pl.top3_own_colour + 1
            end
          end
          local flipped
          for k = 1, #order do
            local logits = A.with_ablation(model, {[layer] = first(order, k)}, function()
              return run(model, xi)
            end)
            if logits:argmax(1):get(0) ~= y then flipped = k break end
          end
          if flipped then pl.counts[#pl.counts + 1] = flipped else pl.never = pl.never + 1 end
        end
      end
    end
    print(("\nOver the first %d easy digits (%d classified right): top-attributed channels "
      .. "zeroed until the answer changes"):format(n_flip, used))
    print(("  %-6s %8s %5s %6s %7s %6s %5s %8s %6s %15s %15s %15s"):format("layer", "channels",
      "min", "q1", "median", "q3", "max", "≤ 3", "never", "top-1 own col.", "top-3 own col.",
      "any channel"))
    local function quantile(sorted, q)
      if #sorted == 0 then return 0 / 0 end
      local pos = 1 + q * (#sorted - 1)
      local lo = math.floor(pos)
      local hi = math.min(lo + 1, #sorted)
      return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo])
    end
    for _, layer in ipairs(demo_layers) do
      local pl, key = per_layer[layer], conv_name(layer)
      table.sort(pl.counts)
      local within3 = 0
      for _, k in ipairs(pl.counts) do if k <= 3 then within3 = within3 + 1 end end
      local row = {min = pl.counts[1] or 0 / 0, q1 = quantile(pl.counts, 0.25),
        median = quantile(pl.counts, 0.5), q3 = quantile(pl.counts, 0.75),
        max = pl.counts[#pl.counts] or 0 / 0, within3 = 100 * within3 / math.max(used, 1),
        never = pl.never, top1_own_colour = 100 * pl.top1_own_colour / math.max(used, 1),
        top3_own_colour = 100 * pl.top3_own_colour / math.max(3 * used, 1),
        any_own_colour = 100 * pl.chance / math.max(used, 1)}
      print(("  %-6s %8d %5d %6.1f %7.1f %6.1f %5d %7.1f%% %6d %14.1f%% %14.1f%% %14.1f%%"):format(
        key, stats.layers[layer].channels, row.min, row.q1, row.median, row.q3, row.max,
        row.within3, row.never, row.top1_own_colour, row.top3_own_colour, row.any_own_colour))
      for name, v in pairs(row) do m[("flip_%s_%s"):format(key, name)] = v end
    end
    m.flip_digits = used
    print("  (≤ 3: share of digits whose answer changes within 3 channels. top-k own col.: share "
      .. "of the top-k channels whose preferred colour on the probe set is the digit's colour; "
      .. "any channel: the same share for a channel of the layer drawn at random)")
  end

  -- 3. Ablation curves -------------------------------------------------------------------
  -- mean attribution to the easy-set decisions, on digits from the end of the validation set
  local n_attr = math.min(opts.n_attr, sets.val.n)
  local attr_sum = {}
  if n_attr > 0 then
    util.progress("attribution of %d easy digits (validation #%d–#%d)", n_attr,
      sets.val.n - n_attr, sets.val.n - 1)
    for start = sets.val.n - n_attr, sets.val.n - 1, opts.batch do
      local count = math.min(opts.batch, sets.val.n - start)
      local xb = sets.val.images:narrow(0, start, count):float() / 255
      local r = A.attribution(model, xb, {layers = layers})
      for _, name in ipairs(layers) do
        local s = r.scores[name]:sum(0)
        attr_sum[name] = attr_sum[name] and attr_sum[name] + s or s
      end
    end
    m.n_attr = n_attr
  end
  local curves = {}
  for _, name in ipairs(layers) do
    local s = stats.layers[name]
    local key = conv_name(name)
    local c = s.channels
    local orders = {
      {id = "color", name = "colour-selective first", order = A.rank(s.color_selectivity)},
      {id = "class", name = "class-selective first", order = A.rank(s.class_selectivity)},
    }
    if attr_sum[name] then
      local mean_attr = (attr_sum[name] / n_attr):totable()
      orders[#orders + 1] = {id = "attribution", name = "most attributed first",
        order = A.rank(mean_attr)}
      study.flatten(key .. "_mean_attribution", mean_attr, m)
    end
    for r = 1, opts.random_repeats do
      orders[#orders + 1] = {id = "random" .. r, random = true,
        order = random_order(c, lab.Generator(opts.seed, 600 + r))}
    end
    local xs = grid(c)
    util.progress("%s: caching activations of %d easy and %d hard digits", key, easy.n, hard.n)
    local ev_easy = A.evaluator(model, easy, name, {batch = opts.batch})
    local ev_hard = A.evaluator(model, hard, name, {batch = opts.batch})
    local hard_colors, hard_conf = hard.colors, hard.conflicting
    local n_conf = hard_conf:sum():item()
    local layer_curves = {x = xs, orders = {}}
    for _, o in ipairs(orders) do
      local pts = {easy = {}, hard = {}, hard_conflicting = {}, hard_follows_colour = {}}
      local t_start = lab.now()
      for i, k in ipairs(xs) do
        local chans = first(o.order, k)
        pts.easy[i] = ev_easy:accuracy(chans)
        local acc, preds = ev_hard:accuracy(chans)
        pts.hard[i] = acc
        local right = preds:eq(hard.labels)
        pts.hard_conflicting[i] = n_conf > 0
          and 100 * (right:float() * hard_conf:float()):sum():item() / n_conf or 0 / 0
        pts.hard_follows_colour[i] = 100 * preds:eq(hard_colors):sum():item() / hard.n
      end
      layer_curves.orders[o.id] = pts
      o.points = pts
      util.progress("%s, %s: %d points in %.1f s", key, o.name or o.id, #xs, lab.now() - t_start)
    end
    -- the random curve: mean over the repeats (each repeat kept in metrics.json)
    local mean_pts = {easy = {}, hard = {}, hard_conflicting = {}, hard_follows_colour = {}}
    for kind in pairs(mean_pts) do
      for i = 1, #xs do
        local sum = 0
        for r = 1, opts.random_repeats do sum = sum + layer_curves.orders["random" .. r][kind][i] end
        mean_pts[kind][i] = sum / opts.random_repeats
      end
    end
    layer_curves.orders.random = mean_pts
    -- check once that the cached shortcut is the hook: the full forward with the ablation
    -- hook at the colour order's middle point gives the same predictions
    do
      local k = xs[(#xs + 1) // 2]
      local chans = first(orders[1].order, k)
      local via_hook = A.with_ablation(model, {[name] = chans}, function()
        return lab.train.predict(model, hard, {batch = opts.batch})
      end)
      local same = via_hook:eq(ev_hard:predict(chans)):sum():item()
      if same ~= hard.n then
        error(("%s: the cached evaluation and the hook disagree on %d of %d digits"):format(key,
          hard.n - same, hard.n), 0)
      end
      m[key .. "_hook_check_channels"] = k
    end
    curves[name] = layer_curves
    -- metrics
    study.flatten(key .. "_curve_x", xs, m)
    for id, pts in pairs(layer_curves.orders) do
      for kind, values in pairs(pts) do
        study.flatten(("%s_curve_%s_%s"):format(key, id, kind), values, m)
      end
    end
    for _, o in ipairs(orders) do
      if not o.random then study.flatten(("%s_order_%s"):format(key, o.id), o.order, m) end
    end
    -- chart: easy accuracy, hard accuracy and how often hard predictions follow the colour,
    -- side by side, one colour per order
    local panels = {}
    local shown = {{"color", "colour-selective"}, {"class", "class-selective"},
      {"attribution", "most attributed"}, {"random", ("random (mean of %d)"):format(
        opts.random_repeats)}}
    for _, panel in ipairs({{"easy", "easy set (validation): accuracy", "accuracy (%)"},
        {"hard", "hard set (random colours): accuracy", "accuracy (%)"},
        {"hard_follows_colour", "hard set: answer = colour's class", "predictions (%)"}}) do
      local series = {}
      for oi, o in ipairs(shown) do
        local pts = layer_curves.orders[o[1]]
        if pts then
          series[#series + 1] = {name = o[2], x = xs, y = pts[panel[1]],
            color = svg.palette[oi], dashed = o[1] == "random"}
        end
      end
      if panel[1] ~= "easy" then
        series[#series + 1] = {name = "chance (10%)", x = {0, c}, y = {10, 10},
          color = "#999999", dashed = true}
      end
      panels[#panels + 1] = svg.lines{title = ("%s zeroed — %s"):format(key, panel[2]),
        xlabel = ("%s channels zeroed (of %d), in each order"):format(key, c),
        ylabel = panel[3], ymin = 0, ymax = 100, xmin = 0, xmax = c, width = 340,
        height = 260, markers = true, series = series}
    end
    svg.save(("%s/curves_%s.svg"):format(opts.out, key), side_by_side(panels))
  end

  -- 4. Beyond the seed: does zeroing colour-selective channels raise hard accuracy? -------
  print("\nAblation curves (accuracy in %; easy = validation, hard = random colours):")
  local verdicts = {}
  for _, name in ipairs(layers) do
    local key, lc = conv_name(name), curves[name]
    print(("  %s — channels zeroed:"):format(key))
    local header = {("    %-26s"):format("order / set")}
    for _, k in ipairs(lc.x) do header[#header + 1] = ("%6d"):format(k) end
    print(table.concat(header))
    for _, id in ipairs({"color", "class", "attribution", "random"}) do
      local pts = lc.orders[id]
      if pts then
        for _, kind in ipairs({"easy", "hard"}) do
          local row = {("    %-26s"):format(id .. " / " .. kind)}
          for i = 1, #lc.x do row[#row + 1] = ("%6.1f"):format(pts[kind][i]) end
          print(table.concat(row))
        end
      end
    end
    local base = lc.orders.color.hard[1]
    local best, best_k, best_i = -1, 0, 1
    for i, k in ipairs(lc.x) do
      if lc.orders.color.hard[i] > best then best, best_k, best_i = lc.orders.color.hard[i], k, i end
    end
    local rnd = lc.orders.random.hard[best_i]
    local conf0, conf_best = lc.orders.color.hard_conflicting[1],
      lc.orders.color.hard_conflicting[best_i]
    m[key .. "_hard_baseline"] = base
    m[key .. "_hard_best_color_order"], m[key .. "_hard_best_color_order_k"] = best, best_k
    m[key .. "_hard_random_at_best_k"] = rnd
    m[key .. "_hard_gain_color_order"] = best - base
    local se = 100 * math.sqrt((base / 100) * (1 - base / 100) / hard.n)
    local rnd_lo, rnd_hi = math.huge, -math.huge
    for r = 1, opts.random_repeats do
      for _, v in ipairs(lc.orders["random" .. r].hard) do
        rnd_lo, rnd_hi = math.min(rnd_lo, v), math.max(rnd_hi, v)
      end
    end
    local follow0, follow_best = lc.orders.color.hard_follows_colour[1],
      lc.orders.color.hard_follows_colour[best_i]
    m[key .. "_hard_standard_error"] = se
    m[key .. "_hard_random_min"], m[key .. "_hard_random_max"] = rnd_lo, rnd_hi
    local v = ("%s: hard accuracy %.2f%% with nothing zeroed (standard error %.2f points on %d "
      .. "digits); the best point of the colour-selective order is %.2f%% (%+.2f points) at %d "
      .. "channels zeroed, where random orders give %.2f%% (random orders span %.2f–%.2f%% over "
      .. "all points). There, conflicting digits %.2f%% → %.2f%%, answers following the colour "
      .. "%.2f%% → %.2f%%, easy accuracy %.2f%% → %.2f%%.")
      :format(key, base, se, hard.n, best, best - base, best_k, rnd, rnd_lo, rnd_hi, conf0,
        conf_best, follow0, follow_best, lc.orders.color.easy[1], lc.orders.color.easy[best_i])
    verdicts[#verdicts + 1] = v
  end
  print("\nDoes zeroing the most colour-selective channels raise hard accuracy?")
  for _, v in ipairs(verdicts) do print("  " .. v) end
  m.total_seconds = lab.now() - t0
  study.write_metrics(opts.out, m)
  util.progress("wrote %s/{metrics.json, selectivity.svg, demo.svg, demo.png, curves_*.svg}",
    opts.out)
end)
if not ok then
  io.stderr:write("task6_ablation: ", tostring(err), "\n")
  os.exit(1)
end
