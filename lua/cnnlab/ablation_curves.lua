--- cnnlab.ablation_curves — what Task 6 measures with cnnlab.ablation's hooks: silencing
-- channels one by one until a decision changes, how many that takes over many digits,
-- accuracy curves against the number of channels zeroed in a given order, and the fast
-- evaluator they run on.
--
--   curves.probe_set(val, grey, opts) → the validation digits repainted with colours drawn
--       independently of the label (the hard set's rule, colour stream opts.stream), so that
--       a channel's colour- and class-selectivity can be told apart; grey = the grey digits
--       behind val (val.index into them); opts = {seed =, beta =, stream =}
--   curves.x_grid(c, steps) → channel counts 0..3, then every c // steps, and c
--   curves.first(list, k) → the first k entries
--   curves.until_changed(model, x, layer, order[, max_steps, on_step]) → step at which the
--       answer of the one digit x changes as order's channels are zeroed one by one (nil: it
--       never does within max_steps), and the last step's {pred, probs}; on_step(k, pred,
--       probs) after each step
--   curves.flips(model, set, preds, stats, layers, n) → per layer {counts, never,
--       top1_own_colour, top3_own_colour, chance} over the first n digits read right: how many
--       top-attributed channels go before the answer changes, and whether the top channels
--       prefer the digit's own colour (stats from ablation.selectivity); and the digits used
--   curves.flip_summary(pl, used) → {min, q1, median, q3, max, within3, never,
--       top1_own_colour, top3_own_colour, any_own_colour}
--   curves.mean_attribution(model, images, first, count, layers, batch) → per layer the mean
--       over the images [first, first + count) of ablation.attribution's scores (a tensor C)
--   curves.accuracy_curve(ev_easy, ev_hard, hard, order, xs) → {easy, hard,
--       hard_conflicting, hard_follows_colour}: percentages at each channel count of xs
--   curves.layer_curves(model, easy, hard, layer, orders, o) → {x, orders = {id → points}}:
--       curves.accuracy_curve of every order ({id =, order =, random =}) at x_grid(C,
--       o.steps) on the easy and the hard set, plus "random", the mean of the random orders;
--       checks once that the cached evaluation agrees with a full forward under the hook
--       (o = {steps, batch, progress = fn(name, points, seconds)}); returns also the channel
--       count checked
--   curves.verdict(lc, n_hard, key) → numbers (baseline, best point of the colour order,
--       random orders there and overall, standard error, conflicting digits and colour
--       following before and there) and the sentence the script prints
--   curves.record_layers(model, lists...) → the layers named in the lists, each once, in
--       order of first mention, each checked against the model (an error names what exists)
--   curves.selectivity_summary(s) → {color, class, color_more, dead}: one layer's mean colour-
--       and class-selectivity over its channels, how many channels are more colour- than
--       class-selective, and how many never fire (s: a layer of ablation.selectivity)
--   curves.demo_digit(labels, preds, label, index, n) → the position of the demonstration's
--       digit: index when ≥ 0 (checked against n), else the first position whose label and
--       prediction are both label (labels, preds: int64 tensors); errors say what to change
--   curves.flip_rows(per_layer, used, stats, layers, label_of) → the lines of the flip table
--       (a header, then one row per layer of curves.flip_summary) and per layer label its
--       summary row (per_layer, used from curves.flips)
--   curves.curve_rows(lc) → the lines of a table of the curves: one per order (colour,
--       class, attribution, random) and set, the accuracy at each channel count of lc.x
--   curves.selectivity_chart(stats, names, label_of) → SVG: each layer's colour- and
--       class-selectivity indices sorted, most selective first, side by side
--   curves.chart(lc, key, c, repeats) → SVG: easy accuracy, hard accuracy and how often hard
--       answers follow the colour against channels zeroed, one line per order, side by side
--   curves.evaluator(model, set, layer[, {batch = 500, n = all}]) → ev, for many ablations
--       of one layer on one set: ev:logits(channels) → n×K, ev:predict(channels) → int64
--       predictions, ev:accuracy(channels) → percent and the predictions. The activations up
--       to the layer (and through the channel-wise modules after it — ReLU, MaxPool2d,
--       Identity, Dropout in evaluation mode, which commute with zeroing a channel) are
--       computed once; each call applies the mask and runs the rest. ev.cached tells whether
--       that shortcut applies (a Sequential with the layer as a direct child); otherwise every
--       call is a full forward with ablation.ablate.
local core = require "cnnlab.core"
local ablation = require "cnnlab.ablation"
local metrics = require "cnnlab.metrics"
local svg = require "cnnlab.svg"

local curves = {}

local I = ablation.internal
local check_model, check_set, check_count, module_of = I.check_model, I.check_set,
  I.check_count, I.module_of
local check_opts, inputs, guarded = I.check_opts, I.inputs, I.guarded
local check_channels, channel_mask = I.check_channels, I.channel_mask

-- model(x) without recording a graph.
local function run(model, x) return core.no_grad(function() return model(x) end) end

function curves.probe_set(val, grey_source, o)
  local grey = grey_source:index_select(0, val.index)
  local colors = core.assign_colors(val.labels, nil, "hard", o.seed, o.stream)
  local images = core.colorize(grey, colors, o.beta, o.seed, o.stream)
  return {name = "probe", images = images, labels = val.labels, colors = colors,
    index = val.index, n = val.n}
end

function curves.x_grid(c, steps)
  local step = math.max(1, c // steps)
  local seen, xs = {}, {}
  local function add(k) if k <= c and not seen[k] then seen[k] = true xs[#xs + 1] = k end end
  for k = 0, 3 do add(k) end
  for k = step, c, step do add(k) end
  add(c)
  table.sort(xs)
  return xs
end

function curves.first(list, k)
  local t = {}
  for i = 1, k do t[i] = list[i] end
  return t
end

function curves.until_changed(model, x, layer, order, max_steps, on_step)
  local pred0 = run(model, x):softmax(1):select(0, 0):argmax(0):item()
  local last
  for k = 1, max_steps or #order do
    local logits = ablation.with_ablation(model, {[layer] = curves.first(order, k)}, function()
      return run(model, x)
    end)
    local probs = logits:softmax(1):select(0, 0)
    local pred = probs:argmax(0):item()
    last = {pred = pred, probs = probs}
    if on_step then on_step(k, pred, probs) end
    if pred ~= pred0 then return k, last end
  end
  return nil, last
end

function curves.flips(model, set, preds, stats, layers, n)
  local per_layer = {}
  for _, layer in ipairs(layers) do
    local share, st = {}, stats.layers[layer]
    for g = 0, 9 do
      local count = 0
      for c = 1, st.channels do if st.color_preferred[c] == g then count = count + 1 end end
      share[g] = count / st.channels
    end
    per_layer[layer] = {counts = {}, never = 0, top1_own_colour = 0, top3_own_colour = 0,
      share = share, chance = 0}
  end
  local used = 0
  for i = 0, n - 1 do
    local y = set.labels:get(i)
    if preds:get(i) == y then
      used = used + 1
      local xi = set.images:narrow(0, i, 1):float() / 255
      local own = set.colors:get(i)
      local r = ablation.attribution(model, xi, {layers = layers})
      for _, layer in ipairs(layers) do
        local order = ablation.rank(r.scores[layer]:select(0, 0))
        local pl, st = per_layer[layer], stats.layers[layer]
        pl.chance = pl.chance + pl.share[own]
        if st.color_preferred[order[1] + 1] == own then pl.top1_own_colour = pl.top1_own_colour + 1 end
        for j = 1, math.min(3, #order) do
          if st.color_preferred[order[j] + 1] == own then pl.top3_own_colour = pl.top3_own_colour + 1 end
        end
        local flipped
        for k = 1, #order do
          local logits = ablation.with_ablation(model, {[layer] = curves.first(order, k)}, function()
            return run(model, xi)
          end)
          if logits:argmax(1):get(0) ~= y then flipped = k break end
        end
        if flipped then pl.counts[#pl.counts + 1] = flipped else pl.never = pl.never + 1 end
      end
    end
  end
  return per_layer, used
end

function curves.flip_summary(pl, used)
  table.sort(pl.counts)
  local within3 = 0
  for _, k in ipairs(pl.counts) do if k <= 3 then within3 = within3 + 1 end end
  return {min = pl.counts[1] or 0 / 0, q1 = metrics.quantile(pl.counts, 0.25),
    median = metrics.quantile(pl.counts, 0.5), q3 = metrics.quantile(pl.counts, 0.75),
    max = pl.counts[#pl.counts] or 0 / 0, within3 = 100 * within3 / math.max(used, 1),
    never = pl.never, top1_own_colour = 100 * pl.top1_own_colour / math.max(used, 1),
    top3_own_colour = 100 * pl.top3_own_colour / math.max(3 * used, 1),
    any_own_colour = 100 * pl.chance / math.max(used, 1)}
end

function curves.mean_attribution(model, images, first, count, layers, batch)
  local sum = {}
  for start = first, first + count - 1, batch do
    local n = math.min(batch, first + count - start)
    local r = ablation.attribution(model, images:narrow(0, start, n):float() / 255,
      {layers = layers})
    for _, name in ipairs(layers) do
      local s = r.scores[name]:sum(0)
      sum[name] = sum[name] and sum[name] + s or s
    end
  end
  local mean = {}
  for name, s in pairs(sum) do mean[name] = (s / count):totable() end
  return mean
end

function curves.accuracy_curve(ev_easy, ev_hard, hard, order, xs)
  local pts = {easy = {}, hard = {}, hard_conflicting = {}, hard_follows_colour = {}}
  local n_conf = hard.conflicting:sum():item()
  for i, k in ipairs(xs) do
    local chans = curves.first(order, k)
    pts.easy[i] = ev_easy:accuracy(chans)
    local acc, preds = ev_hard:accuracy(chans)
    pts.hard[i] = acc
    local right = preds:eq(hard.labels)
    pts.hard_conflicting[i] = n_conf > 0
      and 100 * (right:float() * hard.conflicting:float()):sum():item() / n_conf or 0 / 0
    pts.hard_follows_colour[i] = 100 * preds:eq(hard.colors):sum():item() / hard.n
  end
  return pts
end

function curves.layer_curves(model, easy, hard, layer, orders, o)
  local c = #orders[1].order
  local xs = curves.x_grid(c, o.steps)
  local ev_easy = curves.evaluator(model, easy, layer, {batch = o.batch})
  local ev_hard = curves.evaluator(model, hard, layer, {batch = o.batch})
  local lc, n_random = {x = xs, orders = {}}, 0
  for _, ord in ipairs(orders) do
    local t_start = core.now()
    lc.orders[ord.id] = curves.accuracy_curve(ev_easy, ev_hard, hard, ord.order, xs)
    if ord.random then n_random = n_random + 1 end
    if o.progress then o.progress(ord.name or ord.id, #xs, core.now() - t_start) end
  end
  -- the random curve: mean over the repeats (each repeat kept too)
  local mean_pts = {easy = {}, hard = {}, hard_conflicting = {}, hard_follows_colour = {}}
  for kind in pairs(mean_pts) do
    for i = 1, #xs do
      local sum = 0
      for r = 1, n_random do sum = sum + lc.orders["random" .. r][kind][i] end
      mean_pts[kind][i] = sum / n_random
    end
  end
  lc.orders.random = mean_pts
  -- check once that the cached shortcut is the hook: the full forward with the ablation hook
  -- at the first order's middle point gives the same predictions
  local k = xs[(#xs + 1) // 2]
  local chans = curves.first(orders[1].order, k)
  local via_hook = ablation.with_ablation(model, {[layer] = chans}, function()
    return require("cnnlab.train").predict(model, hard, {batch = o.batch})
  end)
  local same = via_hook:eq(ev_hard:predict(chans)):sum():item()
  if same ~= hard.n then
    error(("%s: the cached evaluation and the hook disagree on %d of %d digits"):format(layer,
      hard.n - same, hard.n), 0)
  end
  return lc, k
end

function curves.verdict(lc, n_hard, key)
  local col = lc.orders.color
  local base = col.hard[1]
  local best, best_k, best_i = -1, 0, 1
  for i, k in ipairs(lc.x) do
    if col.hard[i] > best then best, best_k, best_i = col.hard[i], k, i end
  end
  local rnd_lo, rnd_hi = math.huge, -math.huge
  for r = 1, math.huge do
    local pts = lc.orders["random" .. r]
    if not pts then break end
    for _, v in ipairs(pts.hard) do rnd_lo, rnd_hi = math.min(rnd_lo, v), math.max(rnd_hi, v) end
  end
  local v = {hard_baseline = base, hard_best_color_order = best, hard_best_color_order_k = best_k,
    hard_random_at_best_k = lc.orders.random.hard[best_i], hard_gain_color_order = best - base,
    hard_standard_error = 100 * math.sqrt((base / 100) * (1 - base / 100) / n_hard),
    hard_random_min = rnd_lo, hard_random_max = rnd_hi}
  local text = ("%s: hard accuracy %.2f%% with nothing zeroed (standard error %.2f points on %d "
    .. "digits); the best point of the colour-selective order is %.2f%% (%+.2f points) at %d "
    .. "channels zeroed, where random orders give %.2f%% (random orders span %.2f–%.2f%% over "
    .. "all points). There, conflicting digits %.2f%% → %.2f%%, answers following the colour "
    .. "%.2f%% → %.2f%%, easy accuracy %.2f%% → %.2f%%."):format(key, base,
    v.hard_standard_error, n_hard, best, best - base, best_k, v.hard_random_at_best_k, rnd_lo,
    rnd_hi, col.hard_conflicting[1], col.hard_conflicting[best_i], col.hard_follows_colour[1],
    col.hard_follows_colour[best_i], col.easy[1], col.easy[best_i])
  return v, text
end

function curves.record_layers(model, ...)
  local record, seen = {}, {}
  for _, list in ipairs({...}) do
    for _, name in ipairs(list) do
      if not seen[name] then seen[name], record[#record + 1] = true, name end
    end
  end
  for _, name in ipairs(record) do
    local found, msg = require("cnnlab.hooks").find(model, name, "--layers")
    if not found then error(msg, 0) end
  end
  return record
end

function curves.selectivity_summary(s)
  local mc, mk, more, dead = 0, 0, 0, 0
  for c = 1, s.channels do
    mc, mk = mc + s.color_selectivity[c], mk + s.class_selectivity[c]
    if s.color_selectivity[c] > s.class_selectivity[c] then more = more + 1 end
    if s.mean[c] == 0 then dead = dead + 1 end
  end
  return {color = mc / s.channels, class = mk / s.channels, color_more = more, dead = dead}
end

function curves.demo_digit(labels, preds, label, index, n)
  if index < 0 then
    for i = 0, labels:size(0) - 1 do
      if labels:get(i) == label and preds:get(i) == label then return i end
    end
    error(("no validation digit %d among the first %d is classified correctly; choose "
      .. "another --demo_label or --demo_index"):format(label, labels:size(0)), 0)
  elseif index >= n then
    error(("--demo_index %d is beyond the validation set (%d digits)"):format(index, n), 0)
  end
  return index
end

function curves.flip_rows(per_layer, used, stats, layers, label_of)
  local lines = {("  %-6s %8s %5s %6s %7s %6s %5s %8s %6s %15s %15s %15s"):format("layer",
    "channels", "min", "q1", "median", "q3", "max", "≤ 3", "never", "top-1 own col.",
    "top-3 own col.", "any channel")}
  local summaries = {}
  -- a count, or "—" when no digit gave one (none was read right: min and max are NaN)
  local function count(v) return v == v and ("%d"):format(v) or "—" end
  for _, layer in ipairs(layers) do
    local key, row = label_of(layer), curves.flip_summary(per_layer[layer], used)
    lines[#lines + 1] = ("  %-6s %8d %5s %6.1f %7.1f %6.1f %5s %7.1f%% %6d %14.1f%% %14.1f%% "
      .. "%14.1f%%"):format(key, stats.layers[layer].channels, count(row.min), row.q1,
      row.median, row.q3, count(row.max), row.within3, row.never, row.top1_own_colour,
      row.top3_own_colour, row.any_own_colour)
    summaries[key] = row
  end
  return lines, summaries
end

function curves.curve_rows(lc)
  local header = {("    %-26s"):format("order / set")}
  for _, k in ipairs(lc.x) do header[#header + 1] = ("%6d"):format(k) end
  local rows = {table.concat(header)}
  for _, id in ipairs({"color", "class", "attribution", "random"}) do
    for _, kind in ipairs(lc.orders[id] and {"easy", "hard"} or {}) do
      local row = {("    %-26s"):format(id .. " / " .. kind)}
      for i = 1, #lc.x do row[#row + 1] = ("%6.1f"):format(lc.orders[id][kind][i]) end
      rows[#rows + 1] = table.concat(row)
    end
  end
  return rows
end

-- ------------------------------------------------------------------ pictures

function curves.selectivity_chart(stats, names, label_of)
  local panels = {}
  for _, kind in ipairs({{"color", "Colour"}, {"class", "Class (digit)"}}) do
    local series = {}
    for li, name in ipairs(names) do
      local st = stats.layers[name]
      local v, xs = {}, {}
      for c = 1, st.channels do
        v[c] = st[kind[1] .. "_selectivity"][c]
        xs[c] = st.channels > 1 and (c - 1) / (st.channels - 1) or 0
      end
      table.sort(v, function(a, b) return a > b end)
      series[#series + 1] = {name = ("%s (%d)"):format(label_of(name), st.channels), x = xs,
        y = v, color = svg.palette[(li - 1) % #svg.palette + 1]}
    end
    panels[#panels + 1] = svg.lines{title = ("%s selectivity of each channel"):format(kind[2]),
      xlabel = "channels, most selective first (fraction of layer)",
      ylabel = "selectivity index", ymin = 0, ymax = 1, xmin = 0, xmax = 1, width = 360,
      series = series}
  end
  return svg.side_by_side(panels)
end

function curves.chart(lc, key, c, repeats)
  local panels = {}
  local shown = {{"color", "colour-selective"}, {"class", "class-selective"},
    {"attribution", "most attributed"}, {"random", ("random (mean of %d)"):format(repeats)}}
  for _, panel in ipairs({{"easy", "easy set (validation): accuracy", "accuracy (%)"},
      {"hard", "hard set (random colours): accuracy", "accuracy (%)"},
      {"hard_follows_colour", "hard set: answer = colour's class", "predictions (%)"}}) do
    local series = {}
    for oi, o in ipairs(shown) do
      local pts = lc.orders[o[1]]
      if pts then
        series[#series + 1] = {name = o[2], x = lc.x, y = pts[panel[1]],
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
  return svg.side_by_side(panels)
end

-- ------------------------------------------------------------------ fast evaluation

-- Modules that act on each channel alone and map a zero channel to zero: zeroing a channel
-- before them is the same as zeroing it after them.
local CHANNEL_WISE = {ReLU = true, MaxPool2d = true, Identity = true}

local Evaluator = {}
Evaluator.__index = Evaluator

function curves.evaluator(model, set, layer, opts)
  local fn = "ablation.evaluator"
  check_model(fn, model)
  local n_all = check_set(fn, set)
  module_of(fn, model, layer)
  opts = check_opts(fn, opts, {batch = true, n = true})
  local batch = check_count(fn, "batch", opts.batch, 500)
  local n = math.min(check_count(fn, "n", opts.n, n_all), n_all)
  local ev = setmetatable({model = model, set = set, layer = layer, batch = batch, n = n,
    labels = set.labels:narrow(0, 0, n), cached = false}, Evaluator)
  local children = rawget(model, "_children")
  local pos
  for i, c in ipairs(children or {}) do
    if c.name == layer then pos = i end
  end
  if not pos then return ev end
  -- extend past channel-wise modules (Dropout counts when the model is evaluated)
  while children[pos + 1] do
    local kind = getmetatable(children[pos + 1].module).__name
    if CHANNEL_WISE[kind] or kind == "Dropout" then pos = pos + 1 else break end
  end
  ev.cached, ev.head, ev.tail, ev.cache = true, pos, {}, {}
  for i = pos + 1, #children do ev.tail[#ev.tail + 1] = children[i].module end
  guarded(model, false, {}, function()
    for start = 0, n - 1, batch do
      local count = math.min(batch, n - start)
      local h = inputs(set.images, start, count)
      for i = 1, pos do h = children[i].module(h) end
      ev.cache[#ev.cache + 1] = h
    end
  end)
  return ev
end

--- Logits (n×K) with `channels` of the layer zeroed.
function Evaluator:logits(channels)
  local fn = "evaluator:logits"
  channels = check_channels(fn, self.layer, channels or {})
  local model = self.model
  local out = {}
  if not self.cached then
    local handle = ablation.ablate(model, self.layer, channels)
    guarded(model, false, {handle}, function()
      for start = 0, self.n - 1, self.batch do
        local count = math.min(self.batch, self.n - start)
        out[#out + 1] = model(inputs(self.set.images, start, count))
      end
    end)
    return core.cat(out, 0)
  end
  guarded(model, false, {}, function()
    local mask
    for _, h in ipairs(self.cache) do
      if #channels > 0 then
        mask = mask or channel_mask("ablation.ablate", self.layer, channels, h)
        h = h * mask
      end
      for _, m in ipairs(self.tail) do h = m(h) end
      out[#out + 1] = h
    end
  end)
  return core.cat(out, 0)
end

--- Predictions (int64, n) with `channels` of the layer zeroed.
function Evaluator:predict(channels)
  return self:logits(channels):argmax(1)
end

--- Accuracy in percent with `channels` of the layer zeroed (and the predictions).
function Evaluator:accuracy(channels)
  local preds = self:predict(channels)
  return 100 * preds:eq(self.labels):sum():item() / self.n, preds
end

return curves
