--- cnnlab.evidence — Task 4's measures of the colour shortcut beyond accuracy: how much colour
-- the grey images still carry (readers of colour and of grey brightness, the colour
-- information in grey brightness, CNNs trained on grey images alone), whether a hard digit's
-- colour has its label colour's grey brightness, and where the trained models look (Grad-CAM
-- and saliency stroke shares, the chromatic share of the input gradient).
--
--   local same, other = evidence.brightness_split(sets.hard, preds)
--   local E = evidence.readers(sets)
--   local shares, drawn = evidence.stroke_shares({{label = "erm", path = p}}, sets, 2000)
--   evidence.gradcam_figure(out_dir, sets, shares, drawn)
local lab = require "cnnlab"
local util = require "cnnlab.util"
local study = require "cnnlab.study"
local runs = require "cnnlab.runs"

local evidence = {}

--- Mean of P[k] per palette colour (index 0..9): the brightness of a grey digit painted k
-- (SPEC §2).
evidence.BRIGHT = {}
for k = 1, 10 do
  local p = lab.cmnist_palette[k]
  evidence.BRIGHT[k - 1] = (p[1] + p[2] + p[3]) / 3
end
local BRIGHT = evidence.BRIGHT

-- Per digit: 0 aligned, 1 conflicting with the same grey brightness as its label's colour,
-- 2 conflicting with another brightness. Kept in the set: it is asked for every method.
local function brightness_kind(set)
  if set._bkind then return set._bkind end
  local ys, cs = set.labels:totable(), set.colors:totable()
  local kind = {}
  for i = 1, #ys do
    if ys[i] == cs[i] then kind[i] = 0
    elseif math.abs(BRIGHT[ys[i]] - BRIGHT[cs[i]]) < 1e-9 then kind[i] = 1
    else kind[i] = 2 end
  end
  set._bkind = kind
  return kind
end

--- Accuracy (%) of preds on a set's colour-conflicting digits, split by whether the digit's
-- colour has the same grey brightness as its label's colour (a brightness reader cannot tell
-- those apart): same, other (nil when there is none), and the two counts.
function evidence.brightness_split(set, preds)
  local kind, ys, ps = brightness_kind(set), set.labels:totable(), preds:totable()
  local right, total = {[1] = 0, [2] = 0}, {[1] = 0, [2] = 0}
  for i = 1, #ys do
    local k = kind[i]
    if k > 0 then
      total[k] = total[k] + 1
      if ps[i] == ys[i] then right[k] = right[k] + 1 end
    end
  end
  local function pct(a, b) return b > 0 and 100 * a / b or nil end
  return pct(right[1], total[1]), pct(right[2], total[2]), total[1], total[2]
end

--- Predictions (int64) of model on a set's images passed through transform(x) (float
-- N×3×H×W → same), in evaluation mode.
function evidence.predict(model, set, transform)
  return study.frozen(model, function()
    local preds = {}
    for start = 0, set.n - 1, 1000 do
      local count = math.min(1000, set.n - start)
      local x = set.images:narrow(0, start, count):float() / 255
      preds[#preds + 1] = model(transform(x)):argmax(1)
    end
    return lab.cat(preds, 0)
  end)
end

--- Brightness of each grey image: its largest pixel (uint8 grey, SPEC §2's rounding).
function evidence.grey_peaks(set)
  local out = {}
  for start = 0, set.n - 1, 2000 do
    local count = math.min(2000, set.n - start)
    local g = lab.to_grey(set.images:narrow(0, start, count))  -- uint8
    local peak = g:float():reshape(count, -1):max(1)
    for _, v in ipairs(peak:totable()) do out[#out + 1] = math.floor(v + 0.5) end
  end
  return out
end
local grey_peaks = evidence.grey_peaks

--- What a reader of colour alone and a reader of grey brightness alone score, and how many
-- bits about the colour the grey brightness of the hard set keeps. Returns flat numbers.
function evidence.readers(sets)
  local E = {}
  -- 1. A colour-only reader: answers the class whose colour the digit wears.
  E.colour_reader_val_acc = 100 * lab.data.aligned_fraction(sets.val)
  E.colour_reader_hard_acc = 100 * lab.data.aligned_fraction(sets.hard)
  -- 2. A brightness-only reader of the grey images: the label most often seen in training at
  -- each grey peak value (0..255); ties and unseen values → the overall majority.
  util.progress("evidence: brightness reader on the grey images")
  local tr_peak, tr_y = grey_peaks(sets.train), sets.train.labels:totable()
  local counts = {}
  for i, b in ipairs(tr_peak) do
    counts[b] = counts[b] or {}
    counts[b][tr_y[i]] = (counts[b][tr_y[i]] or 0) + 1
  end
  local best = {}
  for b, row in pairs(counts) do
    local arg, top = nil, -1
    for y = 0, 9 do if (row[y] or 0) > top then arg, top = y, row[y] or 0 end end
    best[b] = arg
  end
  local function reader_acc(set, target)
    local peaks, ys = grey_peaks(set), target:totable()
    local right = 0
    for i, b in ipairs(peaks) do if best[b] == ys[i] then right = right + 1 end end
    return 100 * right / #ys, peaks
  end
  local hard_peaks
  E.brightness_reader_val_acc = reader_acc(sets.val, sets.val.labels)
  E.brightness_reader_hard_acc, hard_peaks = reader_acc(sets.hard, sets.hard.labels)
  E.brightness_reader_hard_colour_acc = reader_acc(sets.hard, sets.hard.colors)
  -- Information about the colour left in the grey brightness of the hard set (bits, plug-in).
  local joint, pb, pk, n = {}, {}, {}, #hard_peaks
  local hc = sets.hard.colors:totable()
  for i, b in ipairs(hard_peaks) do
    local key = b * 16 + hc[i]
    joint[key] = (joint[key] or 0) + 1
    pb[b] = (pb[b] or 0) + 1
    pk[hc[i]] = (pk[hc[i]] or 0) + 1
  end
  local mi, hk = 0, 0
  for key, c in pairs(joint) do
    local b, k = key // 16, key % 16
    mi = mi + c / n * math.log(c * n / (pb[b] * pk[k]), 2)
  end
  for _, c in pairs(pk) do hk = hk - c / n * math.log(c / n, 2) end
  E.grey_brightness_colour_bits = mi
  E.colour_entropy_bits = hk
  local levels = {}
  for b in pairs(pb) do levels[#levels + 1] = b end
  E.grey_brightness_levels_hard = #levels
  return E
end

--- CNNs that see only grey images (grey_consistency with the colour terms switched off), raw
-- and with each image divided by its brightest pixel, trained with the script's options
-- (opts: batch, lr, optimizer, evidence_epochs, out, reuse, progress, rho, beta, data, quick,
-- generated_n) at seed; their runs are cached in <out>/evidence/<variant>/result.json.
-- Returns flat numbers (variant_key) and the runs by variant.
function evidence.grey_only(sets, opts, seed)
  local E = {}
  local gc = lab.debias.load("grey_consistency")
  local trained = {}
  for _, variant in ipairs({{label = "grey_only", normalize = "none"},
      {label = "grey_only_normalised", normalize = "max"}}) do
    local entry = {label = variant.label, name = "grey_consistency",
      options = {colour_weight = 0, lambda = 0, normalize = variant.normalize}}
    local dir = ("%s/evidence/%s"):format(opts.out, variant.label)
    local method = lab.debias.load(entry.name, entry.options)
    local settings = {method = method.name, options = method.options, epochs = opts.evidence_epochs,
      batch = opts.batch, lr = opts.lr, optimizer = opts.optimizer, seed = seed, rho = opts.rho,
      beta = opts.beta, data = opts.data, quick = opts.quick,
      generated_n = opts.data == "generated" and opts.generated_n or nil}
    local r, reused = runs.cached(dir .. "/result.json", settings, function()
      util.progress("evidence: training %s (%d epochs, grey images only)", variant.label,
        opts.evidence_epochs)
      local fit = lab.train.fit(study.fit_options(opts, method, sets,
        {epochs = opts.evidence_epochs, seed = seed, out = dir}))
      if fit.interrupted then os.exit(130) end
      local function transform(x) return gc.grey(x, variant.normalize) end
      local preds = evidence.predict(fit.model, sets.hard, transform)
      local vpreds = evidence.predict(fit.model, sets.val, transform)
      local correct = preds:eq(sets.hard.labels)
      local conf = sets.hard.conflicting
      local same, other = evidence.brightness_split(sets.hard, preds)
      return {
        val_grey_acc = 100 * vpreds:eq(sets.val.labels):sum():item() / sets.val.n,
        hard_grey_acc = 100 * correct:sum():item() / sets.hard.n,
        hard_grey_conflicting_acc = 100 * (correct:long() * conf:long()):sum():item() / conf:sum():item(),
        hard_grey_aligned_acc = 100 * (correct:long() * (1 - conf:long())):sum():item()
          / (sets.hard.n - conf:sum():item()),
        hard_grey_conflicting_same_brightness_acc = same,
        hard_grey_conflicting_other_brightness_acc = other, seconds = fit.seconds}
    end, {reuse = opts.reuse})
    if reused then util.progress("evidence: %s reused from %s/result.json", variant.label, dir) end
    trained[variant.label] = r
    for k, v in pairs(r) do
      if type(v) == "number" then E[variant.label .. "_" .. k] = v end
    end
  end
  return E, trained
end


--- Task 3's stroke measure for trained models ({label, path} each; a missing file is
-- skipped) on the first n_max hard digits: the share of the map's mass on the strokes for
-- Grad-CAM at relu3 (the study's map) and relu2, and saliency; and the chromatic share of
-- the input gradient. Returns the measures by label and what gradcam_figure draws.
function evidence.stroke_shares(models, sets, n_max)
  local gradcam = require "cnnlab.gradcam"
  local n = math.min(n_max, sets.hard.n)
  local x = sets.hard.images:narrow(0, 0, n):float() / 255
  -- the grey digits behind the hard set (its index points into the source's test digits)
  local grey = study.grey_digits(sets.hard, n)
  local mask = gradcam.stroke_mask(grey)
  local out, pictures = {}, {}
  for _, m in ipairs(models) do
    local label, path = m.label, m.path
    if util.exists(path) then
      local model = study.load_model(path)
      local o = {stroke_area = 100 * mask:mean():item()}
      local conf = sets.hard.conflicting:narrow(0, 0, n)
      -- Task 3's measure: share of the map's mass on the strokes, for Grad-CAM at relu3 (the
      -- study's map), Grad-CAM at relu2 (13×13) and input-gradient saliency (pixel level).
      local maps = {}
      local res = gradcam.compute(model, x, {layer = gradcam.default_layer(model)})
      maps.gradcam = res.upsampled
      if lab.hooks.find(model, "relu2", "evidence") then -- the seed network's 13×13 layer
        maps.gradcam_relu2 = gradcam.compute(model, x, {layer = "relu2"}).upsampled
      end
      if gradcam.saliency then maps.saliency = gradcam.saliency(model, x).maps end
      for kind, m in pairs(maps) do
        local shares = gradcam.mass_share(m, mask)
        o[kind] = 100 * gradcam.mean_share(shares)
        o[kind .. "_conflicting"] = 100 * gradcam.mean_share(shares, conf)
      end
      -- On this data colour sits on the strokes, so "where" cannot tell colour from shape;
      -- "in which direction" can. The input gradient g (3 channels per pixel) splits into its
      -- luminance part, along (1,1,1) — what a change of grey level does — and the chromatic
      -- rest. A reader of grey shape has a purely luminance gradient (chromatic share 0); a
      -- gradient in random directions has 2/3 of its energy chromatic.
      local first = lab.hooks.layer_names(model)[1]
      local chroma, lum_total = 0.0, 0
      for start = 0, n - 1, 250 do
        local count = math.min(250, n - start)
        local r = lab.hooks.gradient(model, first, x:narrow(0, start, count), {input_grad = true})
        local g = r.input_grad
        local total = (g * g):sum(3):sum(2):sum(1)                        -- N
        local lum = g:mean(1):square():sum(2):sum(1) * 3                   -- N
        local share = (total - lum) / total:clamp(1e-30, math.huge)
        chroma = chroma + share:sum():item()
        lum_total = lum_total + count
      end
      o.chromatic = 100 * chroma / lum_total
      out[label] = o
      pictures[#pictures + 1] = {label = label, maps = res.upsampled, target = res.target}
      util.progress("Grad-CAM (%s, %d hard digits): share of the map on the strokes: Grad-CAM "
        .. "relu3 %.1f%%, relu2 %s, saliency %s; strokes cover %.1f%% of the pixels; "
        .. "chromatic share of the input gradient %.1f%%", label, n, o.gradcam,
        o.gradcam_relu2 and ("%.1f%%"):format(o.gradcam_relu2) or "-",
        o.saliency and ("%.1f%%"):format(o.saliency) or "-", o.stroke_area, o.chromatic)
    end
  end
  return out, {pictures = pictures, x = x, mask = mask, n = n}
end

--- gradcam.png and gradcam.svg in dir: 8 colour-conflicting hard digits, then each model's
-- Grad-CAM map over them. Returns false when there was no model to draw.
function evidence.gradcam_figure(dir, sets, out, drawn)
  -- A picture: 8 colour-conflicting hard digits, then each model's map over them.
  local figure = require "cnnlab.figure"
  local pictures, x, mask, n = drawn.pictures, drawn.x, drawn.mask, drawn.n
  if #pictures > 0 then
    local picks, conf = {}, sets.hard.conflicting:totable()
    for i = 1, n do
      if conf[i] == 1 then picks[#picks + 1] = i - 1 end
      if #picks == 8 then break end
    end
    local idx = lab.tensor(picks, {dtype = "int64"})
    local rows = {x:index_select(0, idx)}
    local under = lab.to_grey(rows[1]) -- maps drawn over the grey digit, so the heat stays legible
    for _, p in ipairs(pictures) do
      local maps = figure.per_map(p.maps:index_select(0, idx))
      local heat = figure.colormap(maps)
      rows[#rows + 1] = heat * 0.75 + under * 0.25
    end
    local grid = lab.image_grid(lab.cat(rows, 0), {ncol = #picks, scale = 4, pad = 2, pad_value = 1})
    lab.write_png(dir .. "/gradcam.png", grid)
    local parts, W, H = {}, grid.shape[3], grid.shape[2]
    local left = 150
    parts[#parts + 1] = figure.text(left, 20, "Grad-CAM (relu3, predicted class) on colour-conflicting hard digits",
      'font-size="14" font-weight="bold"')
    parts[#parts + 1] = figure.image(left, 30, W, H, figure.png_uri(dir .. "/gradcam.png"))
    local row_h = H / (#pictures + 1)
    local col_w = W / #picks
    parts[#parts + 1] = figure.text(left - 8, 30 + row_h / 2 + 4, "hard digit", 'text-anchor="end"')
    parts[#parts + 1] = figure.text(left - 8, 30 + row_h / 2 + 18, "(label, colour's class)",
      'text-anchor="end" font-size="10"')
    local ys, cs = sets.hard.labels:totable(), sets.hard.colors:totable()
    for j, i0 in ipairs(picks) do
      parts[#parts + 1] = figure.text(left + (j - 1) * col_w + 5, 30 + row_h - 6,
        ("%d, %d"):format(ys[i0 + 1], cs[i0 + 1]), 'font-size="11" fill="white"')
    end
    for i, p in ipairs(pictures) do
      local t = p.target:index_select(0, idx):totable()
      for j, i0 in ipairs(picks) do
        local right = t[j] == ys[i0 + 1]
        parts[#parts + 1] = figure.text(left + (j - 1) * col_w + 5, 30 + row_h * (i + 1) - 6,
          ("reads %d"):format(t[j]), ('font-size="11" fill="%s"'):format(right and "#7CFC00" or "#FF6060"))
      end
    end
    for i, p in ipairs(pictures) do
      local o = out[p.label]
      parts[#parts + 1] = figure.text(left - 8, 30 + row_h * (i + 0.5), p.label, 'text-anchor="end"')
      parts[#parts + 1] = figure.text(left - 8, 30 + row_h * (i + 0.5) + 14,
        ("%.0f%% on strokes"):format(o.gradcam), 'text-anchor="end" font-size="11"')
    end
    parts[#parts + 1] = figure.text(left, H + 48, ("Each map scaled to its own range, over the grey digit. "
      .. "Share of the raw map's mass on the strokes over %d hard digits (a uniform map: %.0f%%)."):format(n,
      100 * mask:mean():item()), 'font-size="11"')
    util.write_file(dir .. "/gradcam.svg", figure.doc(left + W + 20, H + 60, parts))
  end
  return #pictures > 0
end


--- The evidence as text lines (readers, bits, grey-only CNNs at `epochs` epochs).
function evidence.describe(E, trained, seed, rho, epochs)
  local el = {
    ("Why grey is not colour-free here (seed %d, rho %s):"):format(seed, study.format_rho(rho)),
    ("  colour-only reader (answer = colour's class):    validation %6.2f%%  hard %6.2f%%")
      :format(E.colour_reader_val_acc, E.colour_reader_hard_acc),
    ("  brightness-only reader of the grey images:       validation %6.2f%%  hard %6.2f%%"
      .. "  (recovers the hard digit's colour %.2f%%)"):format(E.brightness_reader_val_acc,
      E.brightness_reader_hard_acc, E.brightness_reader_hard_colour_acc),
    ("  colour information left in grey brightness:       %.2f of %.2f bits (%d grey peak values)")
      :format(E.grey_brightness_colour_bits, E.colour_entropy_bits, E.grey_brightness_levels_hard),
  }
  for _, label in ipairs({"grey_only", "grey_only_normalised"}) do
    local r = trained[label]
    el[#el + 1] = ("  %-22s (%d ep.) grey validation %6.2f%%  grey hard %6.2f%%  "
      .. "colour≠label %6.2f%% (same brightness %6.2f%%, other %6.2f%%)"):format(label,
      epochs, r.val_grey_acc, r.hard_grey_acc, r.hard_grey_conflicting_acc,
      r.hard_grey_conflicting_same_brightness_acc or 0 / 0,
      r.hard_grey_conflicting_other_brightness_acc or 0 / 0)
  end
  return el
end

--- evidence.svg: validation and hard accuracy of the readers and the grey-only CNNs.
function evidence.chart(path, E, trained)
  local svg = require "cnnlab.svg"
  local g, gn = trained.grey_only, trained.grey_only_normalised
  svg.save(path, svg.bars{
    labels = {"colour reader", "brightness reader", "grey-only CNN", "grey-only CNN, normalised"},
    series = {{name = "validation", values = {E.colour_reader_val_acc,
        E.brightness_reader_val_acc, g.val_grey_acc, gn.val_grey_acc}},
      {name = "hard", values = {E.colour_reader_hard_acc, E.brightness_reader_hard_acc,
        g.hard_grey_acc, gn.hard_grey_acc}},
      {name = "same brightness", values = {0 / 0, 0 / 0,
        g.hard_grey_conflicting_same_brightness_acc, gn.hard_grey_conflicting_same_brightness_acc}},
      {name = "other brightness", values = {0 / 0, 0 / 0,
        g.hard_grey_conflicting_other_brightness_acc, gn.hard_grey_conflicting_other_brightness_acc}}},
    title = "How much colour a grey image still carries (readers see grey brightness only)",
    xlabel = "same / other brightness: hard digits whose colour ≠ label, its grey level = / ≠ the label colour's",
    ylabel = "accuracy (%)", ymin = 0, ymax = 100, width = 640})
end

--- Adds a model's stroke measures to flat metrics M (gradcam_<label>_<kind>_stroke_share,
-- input_gradient_<label>_chromatic_share, gradcam_stroke_area) and returns the line that
-- states them for n hard digits.
function evidence.stroke_metrics(label, g, n, M)
  for k, v in pairs(g) do
    if k == "stroke_area" then M.gradcam_stroke_area = v
    elseif k == "chromatic" then M[("input_gradient_%s_chromatic_share"):format(label)] = v
    else M[("gradcam_%s_%s_stroke_share"):format(label, k)] = v end
  end
  return ("Stroke share of the map (%d hard digits; uniform map %.1f%%), %s: Grad-CAM relu3 %.1f%%"
    .. " (colour≠label %.1f%%), Grad-CAM relu2 %s, saliency %s; chromatic share of the"
    .. " input gradient %.1f%% (grey-shape reader 0%%, random 66.7%%)"):format(n, g.stroke_area,
    label, g.gradcam, g.gradcam_conflicting,
    g.gradcam_relu2 and ("%.1f%%"):format(g.gradcam_relu2) or "-",
    g.saliency and ("%.1f%%"):format(g.saliency) or "-", g.chromatic)
end

return evidence
