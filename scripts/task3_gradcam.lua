-- Task 3: where does the network look when it decides? Grad-CAM through hooks.
--
-- For every digit of the easy validation set and of the hard set, Grad-CAM explains the
-- model's answer (its top logit) at conv3's rectified feature maps (layer relu3, 6×6): the
-- gradient of that logit reaches relu3 through a backward hook, its spatial mean per channel
-- weights the channels, and ReLU(Σ_k α_k A_k) is the map, upsampled bilinearly to 28×28.
-- Grad-CAM++ and plain input-gradient saliency come along for comparison, and Grad-CAM at
-- relu2 (13×13) and pool3 (2×2) shows how the answer depends on the layer.
--
-- Pictures alone can be read into; the measure is the share of each map's mass that lies on
-- the digit's strokes (grey MNIST pixel > --threshold · 255) rather than on the background,
-- averaged over the easy and the hard set, and over correct and misread digits. A uniform map
-- would score the strokes' area share: that baseline is reported beside it. Note what the
-- measure cannot say: colour sits on the strokes too, so a map on the strokes shows where the
-- network reads, not whether it reads shape or colour there (docs/interpretability.md).
--
--   ./cnnlab scripts/task3_gradcam.lua [--model runs/task1/model.safetensors --layer relu3
--       --threshold 0.5 --n 0 --examples 10 --seed 1 --quick --out runs/task3]
-- Writes into --out: metrics.json, overlays_easy.svg / overlays_hard.svg (captioned, with
-- colour scales; each embeds its PNG), overlays_easy.png / overlays_hard.png (the bare
-- panels), share.svg (the measure as bars) and gradcam.safetensors (the examples' input
-- bytes, targets, raw maps at the layer's resolution and upsampled maps).
local lab = require "cnnlab"
local util = lab.util
local study = lab.study
local gradcam = lab.gradcam
local figure = require "cnnlab.figure"
local svg = lab.svg

local spec = {
  name = "task3_gradcam", script = "scripts/task3_gradcam.lua",
  description = "Grad-CAM, Grad-CAM++ and saliency of a trained seed CNN on easy and hard "
    .. "digits; overlays and the share of map mass on the digit strokes.",
  options = study.options({
    {"model", "runs/task1/model.safetensors", "trained seed network (Task 1)"},
    {"layer", "relu3", "layer whose activations Grad-CAM explains"},
    {"compare", "relu2,pool3", "further layers for Grad-CAM in metrics (comma list, or none)"},
    {"threshold", 0.5, "stroke pixels: grey MNIST value > threshold (of 255)"},
    {"n", 0, "digits per set for the measure (0: the whole set)"},
    {"examples", 10, "overlay examples per figure"},
    {"batch", 250, "digits per forward/backward pass"},
    {"out", "runs/task3", "output folder"},
  }),
}
local opts = util.parse_args(arg, spec)
local t0 = lab.now()

local CYAN = {0.0, 0.9, 1.0}
local SCALE = 4

local function pct(v) return 100 * v end

-- The first n samples of a set, with the grey digits behind them.
local function take(set, grey_source, n)
  n = (n > 0 and n < set.n) and n or set.n
  local s = {name = set.name, n = n}
  for _, k in ipairs({"images", "labels", "colors", "index", "conflicting"}) do
    s[k] = set[k]:narrow(0, 0, n)
  end
  s.grey = grey_source:index_select(0, s.index)
  return s
end

-- Every map of the study for one set: Grad-CAM (+ ++) at the main layer and the comparison
-- layers, saliency, stroke masks and shares.
local function analyse(model, set, layers)
  local r = {set = set}
  util.progress("%s: Grad-CAM and Grad-CAM++ at %s on %d digits", set.name, opts.layer, set.n)
  r.cam = gradcam.compute(model, set.images, {layer = opts.layer, plusplus = true,
    batch = opts.batch})
  r.pred = r.cam.target
  r.conf = r.cam.probs:gather(1, r.pred:unsqueeze(1)):squeeze(1)
  r.mask = gradcam.stroke_mask(set.grey, opts.threshold)
  r.area = r.mask:reshape(set.n, -1):mean(1)
  r.share = {gradcam = gradcam.mass_share(r.cam.upsampled, r.mask),
    gradcampp = gradcam.mass_share(r.cam.upsampled_pp, r.mask)}
  -- what any map at this layer's resolution could score (docs/interpretability.md)
  r.ceiling = gradcam.share_ceiling(r.mask, r.cam.maps:size(1), r.cam.maps:size(2))
  util.progress("%s: input-gradient saliency", set.name)
  r.sal = gradcam.saliency(model, set.images, {batch = opts.batch})
  r.share.saliency = gradcam.mass_share(r.sal.maps, r.mask)
  for _, layer in ipairs(layers) do
    util.progress("%s: Grad-CAM at %s", set.name, layer)
    local c = gradcam.compute(model, set.images, {layer = layer, batch = opts.batch})
    r.share["gradcam_" .. layer] = gradcam.mass_share(c.upsampled, r.mask)
    r["raw_shape_" .. layer] = c.maps.shape
  end
  r.correct = r.pred:eq(set.labels)
  r.wrong = r.pred:ne(set.labels)
  r.follows = r.pred:eq(set.colors):mul(set.conflicting) -- misread as the colour's class
  return r
end

local function mean_of(t, select)
  local v = t:float()
  if select then
    local s = select:float()
    local k = s:sum():item()
    return k > 0 and (v * s):sum():item() / k or 0 / 0
  end
  return v:mean():item()
end

-- Picks example rows: easy → the first correct digit of each class; hard → digits misread as
-- their colour's class, the seed's "red 1 read as 0" first, then one per predicted class.
local function pick_examples(r, kind, count)
  local labels, colors, preds = r.set.labels:totable(), r.set.colors:totable(), r.pred:totable()
  local picked, used = {}, {}
  local function add(i, key)
    if #picked < count and not used[key] then
      used[key] = true
      picked[#picked + 1] = i
    end
  end
  if kind == "easy" then
    for round = 1, 2 do
      for i = 1, #labels do
        if preds[i] == labels[i] then add(i - 1, round == 1 and labels[i] or i) end
      end
    end
  else
    for i = 1, #labels do
      if labels[i] == 1 and colors[i] == 0 and preds[i] == 0 then add(i - 1, 0) break end
    end
    for round = 1, 2 do
      for i = 1, #labels do
        if colors[i] ~= labels[i] and preds[i] == colors[i] then
          add(i - 1, round == 1 and preds[i] or ("r" .. i))
        end
      end
    end
    if #picked == 0 then -- a model that does not follow colour: show misread digits
      for i = 1, #labels do
        if preds[i] ~= labels[i] then add(i - 1, "w" .. i) end
      end
    end
  end
  return picked
end

-- Rows of r at positions (a Lua list) as an int64 index.
local function rows(list) return lab.tensor(list, {dtype = "int64"}) end

-- The panel image of examples: per row, input | Grad-CAM | Grad-CAM++ | saliency, each with
-- the strokes' contour in cyan on the heat panels. scales = {gradcam =, gradcampp =,
-- saliency =} are the values shown as the top of the colour scale.
local function panels(r, idx, scales)
  local n = idx:numel()
  local x = r.set.images:index_select(0, idx):float() / 255
  local big = 28 * SCALE
  local input = figure.upscale(x, SCALE)
  local mask = figure.upscale(r.mask:index_select(0, idx):unsqueeze(1), SCALE):squeeze(1)
  local edge = figure.contour(mask)
  local function heat(raw_maps, vmax, smooth)
    local m
    if smooth then
      m = lab.upsample_bilinear(raw_maps:unsqueeze(1), big, big):squeeze(1)
    else
      m = figure.upscale(raw_maps:unsqueeze(1), SCALE):squeeze(1)
    end
    return figure.paint(figure.colormap(figure.normalize(m, vmax)), edge, CYAN)
  end
  local cam = heat(r.cam.maps:index_select(0, idx), scales.gradcam, true)
  local pp = heat(r.cam.maps_pp:index_select(0, idx), scales.gradcampp, true)
  local sal = heat(r.sal.maps:index_select(0, idx), scales.saliency, false)
  -- interleave: row i = input_i, cam_i, pp_i, sal_i
  local tiles = lab.cat({input:unsqueeze(1), cam:unsqueeze(1), pp:unsqueeze(1),
    sal:unsqueeze(1)}, 1):reshape(n * 4, 3, big, big)
  return lab.image_grid(tiles, {ncol = 4, pad = 6, pad_value = 1})
end

local PAD = 6

-- The captioned SVG page around a panel PNG.
local function overlay_svg(png_path, r, idx_list, title, scales, layer_label)
  local big = 28 * SCALE
  local names = lab.data.PALETTE_NAMES
  local left, top = 290, 84
  local n = #idx_list
  local gw = 4 * (big + PAD) + PAD
  local gh = n * (big + PAD) + PAD
  local parts = {}
  parts[#parts + 1] = figure.text(12, 24, title, 'font-size="16" font-weight="bold"')
  parts[#parts + 1] = figure.text(12, 44, "Heat: the map on one colour scale per column (raw "
    .. "values, the same scale in the easy and the hard figure, not rescaled per digit).",
    'font-size="11" fill="#444"')
  parts[#parts + 1] = figure.text(12, 59, ("Cyan outline: the digit's strokes (grey MNIST "
    .. "pixel > %g·255); the stroke share is the part of a map's mass inside it."):format(
    opts.threshold), 'font-size="11" fill="#444"')
  local heads = {"input", "Grad-CAM (" .. layer_label .. ")", "Grad-CAM++", "saliency |∂y/∂x|"}
  for j, h in ipairs(heads) do
    parts[#parts + 1] = figure.text(left + PAD + (j - 1) * (big + PAD) + big / 2, top - 8, h,
      'text-anchor="middle" font-size="12" font-weight="bold"')
  end
  parts[#parts + 1] = figure.image(left, top, gw, gh, figure.png_uri(png_path))
  local labels, colors = r.set.labels, r.set.colors
  for i, pos in ipairs(idx_list) do
    local y0 = top + PAD + (i - 1) * (big + PAD)
    local y, c = labels:get(pos), colors:get(pos)
    local p, conf = r.pred:get(pos), r.conf:get(pos)
    parts[#parts + 1] = figure.swatch(12, y0 + 6, 14, lab.data.PALETTE[c + 1])
    parts[#parts + 1] = figure.text(32, y0 + 18, ("true %d, painted %s%s"):format(y, names[c + 1],
      c == y and "" or (" = colour of %d"):format(c)), 'font-size="13"')
    parts[#parts + 1] = figure.text(32, y0 + 38, ("predicted %d with %.1f%%"):format(p,
      100 * conf), ('font-size="13" font-weight="bold" fill="%s"'):format(
      p == y and "#1a7f37" or "#c62828"))
    parts[#parts + 1] = figure.text(32, y0 + 58, ("stroke share: CAM %.0f%%, ++ %.0f%%,"):format(
      pct(r.share.gradcam:get(pos)), pct(r.share.gradcampp:get(pos))), 'font-size="11" fill="#444"')
    parts[#parts + 1] = figure.text(32, y0 + 73, ("saliency %.0f%%; strokes cover %.0f%%"):format(
      pct(r.share.saliency:get(pos)), pct(r.area:get(pos))), 'font-size="11" fill="#444"')
    parts[#parts + 1] = figure.text(32, y0 + 88, ("digit #%d of its MNIST file"):format(
      r.set.index:get(pos)), 'font-size="10" fill="#777"')
  end
  -- colour scales, one per heat column
  local bx = left + gw + 30
  local bars = {{"Grad-CAM", scales.gradcam}, {"Grad-CAM++", scales.gradcampp},
    {"saliency", scales.saliency, scales.saliency_clipped}}
  local bh = math.min(220, (gh - 40) / 3)
  for k, b in ipairs(bars) do
    local by = top + (k - 1) * (bh + 40) + 20
    parts[#parts + 1] = figure.text(bx - 10, by - 8, b[1], 'font-size="11" font-weight="bold"')
    parts[#parts + 1] = figure.colorbar{x = bx, y = by, h = bh, vmin = 0, vmax = b[2],
      top_label = b[3] and ("≥ %.3g"):format(b[2]) or nil}
  end
  return figure.doc(bx + 90, top + gh + 20, parts)
end

local ok, err = pcall(function()
  local model = study.load_model(opts.model)
  local compare = {}
  if opts.compare ~= "" and opts.compare ~= "none" then
    for _, name in ipairs(study.split(opts.compare)) do
      if name ~= opts.layer then compare[#compare + 1] = name end
    end
  end
  for i, name in ipairs({opts.layer, table.unpack(compare)}) do
    local found, msg = lab.hooks.find(model, name, i == 1 and "--layer" or "--compare")
    if not found then error(msg, 0) end
  end
  util.progress("model %s; building Colored MNIST (seed %d, rho %g, beta %g%s)", opts.model,
    opts.seed, opts.rho, opts.beta, opts.quick and ", quick subset" or "")
  local sets = study.load_data(opts)
  local easy = take(sets.val, sets.source.train.images, opts.n)
  easy.name = "easy"
  local hard = take(sets.hard, sets.source.test.images, opts.n)
  hard.name = "hard"
  util.progress("easy (validation) %d digits, hard %d digits; %d threads", easy.n, hard.n,
    lab.get_threads())

  local R = {easy = analyse(model, easy, compare), hard = analyse(model, hard, compare)}
  local raw_shape = R.easy.cam.maps.shape

  -- ------------------------------------------------------------ the measure
  local m = {
    layer = opts.layer, raw_map_size = ("%d×%d"):format(raw_shape[2], raw_shape[3]),
    stroke_threshold = opts.threshold, seed = opts.seed, rho = opts.rho, beta = opts.beta,
    quick = opts.quick, data = opts.data, model = opts.model, threads = lab.get_threads(),
  }
  local methods = {"gradcam", "gradcampp", "saliency"}
  for _, l in ipairs(compare) do methods[#methods + 1] = "gradcam_" .. l end
  print()
  print(("Share of map mass on the digit strokes (grey > %g), mean over digits, %%:"):format(
    opts.threshold))
  print(("  %-18s %8s %8s %10s %10s %12s"):format("map", "easy", "hard", "hard ok",
    "hard wrong", "hard=colour"))
  for _, kind in ipairs({"easy", "hard"}) do
    local r = R[kind]
    m[kind .. "_n"] = r.set.n
    m[kind .. "_n_correct"] = r.correct:sum():item()
    m[kind .. "_acc"] = 100 * m[kind .. "_n_correct"] / r.set.n
    m[kind .. "_n_misread"] = r.wrong:sum():item()
    m[kind .. "_stroke_area"] = pct(mean_of(r.area))
    -- mass of the raw maps at positions the gradient never reaches (outside every window of
    -- the next pooling): Grad-CAM still weighs their activations in
    local unreached = 1 - r.cam.reached:float()
    local raw = r.cam.maps
    m[kind .. "_gradcam_unreached_mass"] = pct((raw * unreached):sum():item()
      / math.max(raw:sum():item(), 1e-30))
    m[kind .. "_gradcam_unreached_area"] = pct(unreached:mean():item())
    if kind == "hard" then
      m.hard_n_follows_colour = r.follows:sum():item()
      m.hard_stroke_area_misread = pct(mean_of(r.area, r.wrong))
    end
  end
  for _, method in ipairs(methods) do
    local cells = {}
    for _, kind in ipairs({"easy", "hard"}) do
      local r = R[kind]
      local s = r.share[method]
      local all, _, zeros = gradcam.mean_share(s)
      m[("%s_share_%s"):format(method, kind)] = pct(all)
      m[("%s_zero_maps_%s"):format(method, kind)] = zeros
      local ok_, _ = gradcam.mean_share(s, r.correct)
      local wrong = gradcam.mean_share(s, r.wrong)
      m[("%s_share_%s_correct"):format(method, kind)] = pct(ok_)
      m[("%s_share_%s_misread"):format(method, kind)] = pct(wrong)
      if kind == "hard" then
        m[("%s_share_hard_follows_colour"):format(method)] = pct(gradcam.mean_share(s, r.follows))
        cells = {m[method .. "_share_easy"], pct(all), pct(ok_), pct(wrong),
          m[method .. "_share_hard_follows_colour"]}
      end
    end
    print(("  %-18s %8.1f %8.1f %10.1f %10.1f %12.1f"):format(method, table.unpack(cells)))
  end
  print(("  %-18s %8.1f %8.1f   (a uniform map's share: the strokes' area)"):format(
    "stroke area", m.easy_stroke_area, m.hard_stroke_area))
  for _, kind in ipairs({"easy", "hard"}) do
    local c = R[kind].ceiling
    m[kind .. "_share_ceiling"] = pct(c.best:mean():item())
    m[kind .. "_share_stroke_detector"] = pct(c.density:mean():item())
  end
  print(("  %-18s %8.1f %8.1f   (a %s map weighting each cell by the stroke mass under it)")
    :format("stroke detector", m.easy_share_stroke_detector, m.hard_share_stroke_detector,
      m.raw_map_size))
  print(("  %-18s %8.1f %8.1f   (no %s map can score more: its best single cell)"):format(
    "ceiling", m.easy_share_ceiling, m.hard_share_ceiling, m.raw_map_size))
  print(("\nEasy accuracy %.1f%%, hard %.1f%%; %d of %d hard digits are read as their colour's "
    .. "class."):format(m.easy_acc, m.hard_acc, m.hard_n_follows_colour, hard.n))
  if m.easy_gradcam_unreached_area > 0 then
    print(("%.1f%% (easy) and %.1f%% (hard) of the raw %s maps' mass sits on the %.0f%% of "
      .. "positions no gradient reaches\n(outside every window of the next pooling; "
      .. "docs/interpretability.md)."):format(m.easy_gradcam_unreached_mass,
      m.hard_gradcam_unreached_mass, opts.layer, m.easy_gradcam_unreached_area))
  end

  -- ------------------------------------------------------------ pictures
  util.mkdir_p(opts.out)
  local picks = {easy = pick_examples(R.easy, "easy", opts.examples),
    hard = pick_examples(R.hard, "hard", opts.examples)}
  -- one colour scale per method, shared by both figures (raw values are comparable)
  local scales = {gradcam = 0, gradcampp = 0}
  local sal_values = {}
  for _, kind in ipairs({"easy", "hard"}) do
    if #picks[kind] > 0 then
      local idx = rows(picks[kind])
      scales.gradcam = math.max(scales.gradcam, R[kind].cam.maps:index_select(0, idx):max():item())
      scales.gradcampp = math.max(scales.gradcampp,
        R[kind].cam.maps_pp:index_select(0, idx):max():item())
      sal_values[#sal_values + 1] = R[kind].sal.maps:index_select(0, idx)
    end
  end
  if #sal_values > 0 then
    -- saliency is spiky: its scale tops out at the 99th percentile, brighter pixels clip
    scales.saliency = figure.quantile(lab.cat(sal_values, 0), 0.99)
    scales.saliency_clipped = true
  end
  for k, v in pairs(scales) do
    if type(v) == "number" and v <= 0 then scales[k] = 1 end
  end
  local titles = {
    easy = "Easy set (validation): correctly read digits, one per class",
    hard = "Hard set: digits misread as the class their colour belongs to",
  }
  local files = {}
  local ex_parts = {images = {}, labels = {}, colors = {}, index = {}, set = {}, targets = {},
    confidences = {}, maps = {}, maps_upsampled = {}, maps_pp = {}, maps_pp_upsampled = {},
    saliency = {}, stroke_mask = {}}
  for si, kind in ipairs({"easy", "hard"}) do
    local r = R[kind]
    if #picks[kind] == 0 then
      util.progress("no %s examples to show (none qualifies)", kind)
    else
      local idx = rows(picks[kind])
      local png = ("%s/overlays_%s.png"):format(opts.out, kind)
      lab.write_png(png, panels(r, idx, scales))
      local page = overlay_svg(png, r, picks[kind], titles[kind], scales, opts.layer)
      svg.save(("%s/overlays_%s.svg"):format(opts.out, kind), page)
      files[#files + 1] = ("overlays_%s.{svg,png}"):format(kind)
      local function add(key, t) table.insert(ex_parts[key], t:index_select(0, idx)) end
      add("images", r.set.images); add("labels", r.set.labels); add("colors", r.set.colors)
      add("index", r.set.index); add("targets", r.pred); add("confidences", r.conf)
      add("maps", r.cam.maps); add("maps_upsampled", r.cam.upsampled)
      add("maps_pp", r.cam.maps_pp); add("maps_pp_upsampled", r.cam.upsampled_pp)
      add("saliency", r.sal.maps); add("stroke_mask", r.mask)
      table.insert(ex_parts.set, lab.full({idx:numel()}, si - 1, {dtype = "int64"}))
      m[kind .. "_examples"] = #picks[kind]
    end
  end
  if #ex_parts.images > 0 then
    local tensors = {}
    for k, list in pairs(ex_parts) do tensors[k] = lab.cat(list, 0):contiguous() end
    lab.save_safetensors(opts.out .. "/gradcam.safetensors", tensors, {
      format = "cnnlab gradcam", layer = opts.layer, model = opts.model,
      set = "0 = easy (validation), 1 = hard", targets = "top logit (the prediction)",
      maps = "raw Grad-CAM at the layer's resolution", stroke_threshold = opts.threshold,
      images = "uint8 bytes as stored, N×3×28×28"})
    files[#files + 1] = "gradcam.safetensors"
  end

  -- the measure as bars
  local bar_methods = {"gradcam", "gradcampp", "saliency"}
  for _, l in ipairs(compare) do bar_methods[#bar_methods + 1] = "gradcam_" .. l end
  local labels, series = {}, {
    {name = "easy, right", values = {}}, {name = "hard, right", values = {}},
    {name = "hard, = colour", values = {}}, {name = "uniform map", values = {}}}
  local pretty = {gradcam = "Grad-CAM " .. opts.layer, gradcampp = "Grad-CAM++ " .. opts.layer,
    saliency = "saliency"}
  for i, method in ipairs(bar_methods) do
    labels[i] = pretty[method] or method:gsub("^gradcam_", "Grad-CAM ")
    series[1].values[i] = m[method .. "_share_easy_correct"]
    series[2].values[i] = m[method .. "_share_hard_correct"]
    series[3].values[i] = m[method .. "_share_hard_follows_colour"]
    series[4].values[i] = m.hard_stroke_area
  end
  svg.save(opts.out .. "/share.svg", svg.bars{
    title = "Share of the map's mass on the digit strokes (uniform map: the strokes' area)",
    labels = labels, series = series, xlabel = "\"= colour\": hard digits read as the class "
      .. "their colour belongs to",
    ylabel = "% of map mass on strokes", ymin = 0, ymax = 100, width = 150 * #labels,
    fmt = "%.0f"})
  files[#files + 1] = "share.svg"

  m.total_seconds = lab.now() - t0
  -- an undefined mean (no digit in the group, e.g. misread easy digits) is left out
  for k, v in pairs(m) do
    if v ~= v then m[k] = nil end
  end
  study.write_metrics(opts.out, m)
  util.progress("wrote %s/{metrics.json, %s}", opts.out, table.concat(files, ", "))
end)
if not ok then
  io.stderr:write("task3_gradcam: ", tostring(err), "\n")
  os.exit(1)
end
