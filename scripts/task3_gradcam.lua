-- Task 3: where does the network look when it decides? Attribution maps through hooks.
--
-- For every digit of the easy validation set and of the hard set, each attribution method of
-- lua/cnnlab/attributions/ (Grad-CAM, Grad-CAM++, input-gradient saliency; --methods picks
-- names or files) explains the model's answer (its top logit). Grad-CAM works at conv3's
-- rectified feature maps (layer relu3, 6×6): the gradient of that logit reaches relu3 through
-- a backward hook, its spatial mean per channel weights the channels, and ReLU(Σ_k α_k A_k) is
-- the map, upsampled bilinearly to 28×28. Grad-CAM at relu2 (13×13) and pool3 (2×2) shows how
-- the answer depends on the layer.
--
-- Pictures alone can be read into; the measure is the share of each map's mass that lies on
-- the digit's strokes (grey MNIST pixel > --threshold · 255) rather than on the background,
-- averaged over the easy and the hard set, and over correct and misread digits. A uniform map
-- would score the strokes' area share: that baseline is reported beside it. Colour sits on the
-- strokes too, so a map on the strokes shows where the network reads, not whether it reads
-- shape or colour there (docs/interpretability.md).
--
--   ./cnnlab scripts/task3_gradcam.lua [--model runs/task1/model.safetensors --layer relu3
--       --methods all --threshold 0.5 --n 0 --examples 10 --seed 1 --quick --out runs/task3]
-- Writes into --out: metrics.json, overlays_easy.svg / overlays_hard.svg (captioned, with
-- colour scales; each embeds its PNG), overlays_easy.png / overlays_hard.png (the bare
-- panels), share.svg (the measure as bars) and gradcam.safetensors (the examples' input
-- bytes, targets, raw maps at the layer's resolution and upsampled maps).
local lab = require "cnnlab"
local util, study, gradcam, metrics, svg = lab.util, lab.study, lab.gradcam, lab.metrics, lab.svg
local figure = require "cnnlab.figure"

local spec = {
  name = "task3_gradcam", script = "scripts/task3_gradcam.lua",
  description = "Grad-CAM, Grad-CAM++ and saliency of a trained seed CNN on easy and hard "
    .. "digits; overlays and the share of map mass on the digit strokes.",
  options = study.options({"model",
    {"methods", "all", "attribution methods: comma list of names of lua/cnnlab/attributions/ or .lua paths (all: every shipped one)"},
    {"layer", "auto", "layer whose activations the layer methods explain (auto: the model's own, relu3 for the seed network)"},
    {"compare", "auto", "further layers for Grad-CAM in metrics (comma list, or none; auto: relu2,pool3 for the seed network, the model's other feature layers otherwise)"},
    {"threshold", 0.5, "stroke pixels: grey MNIST value > threshold (of 255)"},
    {"n", 0, "digits per set for the measure (0: the whole set)"},
    {"examples", 10, "overlay examples per figure"},
    {"batch", 250, "digits per forward/backward pass"},
    {"out", "runs/task3"},
  }),
}
local opts = util.parse_args(arg, spec)
local t0 = lab.now()
local SCALE = 4

local function pct(v) return 100 * v end

-- The attribution methods and the comparison layers, checked against the model.
local function setup(model)
  -- the layers come from the model (cnnlab.models): a network without feature maps (an MLP)
  -- has nothing for the layer methods to explain
  if opts.layer == "auto" then
    opts.layer = lab.models.gradcam_layer(model)
    if not opts.layer then error(lab.models.no_feature_maps(model, "task3 (Grad-CAM)"), 0) end
  end
  if opts.compare == "auto" then
    local a = rawget(model, "arch")
    if not a or a.is_default then
      opts.compare = "relu2,pool3"
    else
      local others = {}
      for _, l in ipairs(a.feature_layers) do if l ~= opts.layer then others[#others + 1] = l end end
      opts.compare = #others > 0 and table.concat(others, ",") or "none"
    end
  end
  local names = opts.methods == "all" and lab.attributions.available()
    or study.list(opts.methods, "methods")
  local methods = {}
  for i, name in ipairs(names) do methods[i] = lab.attributions.load(name) end
  local compare = {}
  for _, name in ipairs(opts.compare ~= "none" and study.split(opts.compare) or {}) do
    if name ~= opts.layer then compare[#compare + 1] = name end
  end
  for i, name in ipairs({opts.layer, table.unpack(compare)}) do
    local found, msg = lab.hooks.find(model, name, i == 1 and "--layer" or "--compare")
    if not found then error(msg, 0) end
  end
  return methods, compare
end

-- The measure: shares per map and set into m, and the table on the terminal.
local function measure(R, keys, m)
  print(("\nShare of map mass on the digit strokes (grey > %g), mean over digits, %%:"):format(
    opts.threshold))
  print(("  %-18s %8s %8s %10s %10s %12s"):format("map", "easy", "hard", "hard ok",
    "hard wrong", "hard=colour"))
  for _, kind in ipairs({"easy", "hard"}) do
    for k, v in pairs(gradcam.set_measures(R[kind])) do m[kind .. "_" .. k] = v end
  end
  m.hard_n_follows_colour = R.hard.follows:sum():item()
  m.hard_stroke_area_misread = pct(metrics.masked_mean(R.hard.area, R.hard.wrong))
  for _, key in ipairs(keys) do
    for _, kind in ipairs({"easy", "hard"}) do
      local r, p = R[kind], key .. "_share_" .. kind
      local all, _, zeros = gradcam.mean_share(r.share[key])
      m[p], m[("%s_zero_maps_%s"):format(key, kind)] = pct(all), zeros
      m[p .. "_correct"] = pct(gradcam.mean_share(r.share[key], r.correct))
      m[p .. "_misread"] = pct(gradcam.mean_share(r.share[key], r.wrong))
    end
    m[key .. "_share_hard_follows_colour"] = pct(gradcam.mean_share(R.hard.share[key], R.hard.follows))
    print(("  %-18s %8.1f %8.1f %10.1f %10.1f %12.1f"):format(key, m[key .. "_share_easy"],
      m[key .. "_share_hard"], m[key .. "_share_hard_correct"], m[key .. "_share_hard_misread"],
      m[key .. "_share_hard_follows_colour"]))
  end
  print(("  %-18s %8.1f %8.1f   (a uniform map's share: the strokes' area)"):format(
    "stroke area", m.easy_stroke_area, m.hard_stroke_area))
  if m.easy_share_ceiling then
    print(("  %-18s %8.1f %8.1f   (a %s map weighting each cell by the stroke mass under it)")
      :format("stroke detector", m.easy_share_stroke_detector, m.hard_share_stroke_detector,
        m.raw_map_size))
    print(("  %-18s %8.1f %8.1f   (no %s map can score more: its best single cell)"):format(
      "ceiling", m.easy_share_ceiling, m.hard_share_ceiling, m.raw_map_size))
  end
  print(("\nEasy accuracy %.1f%%, hard %.1f%%; %d of %d hard digits are read as their colour's "
    .. "class."):format(m.easy_acc, m.hard_acc, m.hard_n_follows_colour, R.hard.set.n))
  if (m.easy_gradcam_unreached_area or 0) > 0 then
    print(("%.1f%% (easy) and %.1f%% (hard) of the raw %s maps' mass sits on the %.0f%% of "
      .. "positions no gradient reaches\n(outside every window of the next pooling; "
      .. "docs/interpretability.md)."):format(m.easy_gradcam_unreached_mass,
      m.hard_gradcam_unreached_mass, opts.layer, m.easy_gradcam_unreached_area))
  end
end

-- The text beside each example of a figure.
local function row_texts(r, pos, methods)
  local names = lab.data.PALETTE_NAMES
  local y, c, p = r.set.labels:get(pos), r.set.colors:get(pos), r.pred:get(pos)
  local shares = {}
  for i, meth in ipairs(methods) do
    shares[i] = ("%s %.0f%%"):format(meth.short, pct(r.share[meth.name]:get(pos)))
  end
  local rest = table.concat(shares, ", ", 3)
  return {{18, ("true %d, painted %s%s"):format(y, names[c + 1], c == y and ""
      or (" = colour of %d"):format(c)), 'font-size="13"'},
    {38, ("predicted %d with %.1f%%"):format(p, 100 * r.conf:get(pos)), ('font-size="13" '
      .. 'font-weight="bold" fill="%s"'):format(p == y and "#1a7f37" or "#c62828")},
    {58, "stroke share: " .. table.concat(shares, ", ", 1, math.min(2, #shares))
      .. (#shares > 2 and "," or ";"), 'font-size="11" fill="#444"'},
    {73, (rest ~= "" and rest .. "; " or "") .. ("strokes cover %.0f%%"):format(
      pct(r.area:get(pos))), 'font-size="11" fill="#444"'},
    {88, ("digit #%d of its MNIST file"):format(r.set.index:get(pos)), 'font-size="10" fill="#777"'}}
end

-- overlays_<kind>.{png,svg} and the examples' tensors.
local function draw_overlays(R, methods, m)
  local picks = {}
  for _, kind in ipairs({"easy", "hard"}) do
    local r = R[kind]
    local list_ = gradcam.pick_examples(r.set.labels:totable(), r.set.colors:totable(),
      r.pred:totable(), kind, opts.examples)
    picks[kind] = {list = list_, idx = lab.tensor(list_, {dtype = "int64"})}
  end
  local scales = gradcam.colour_scales(R, picks, methods) -- raw values: one scale per method
  local titles = {easy = "Easy set (validation): correctly read digits, one per class",
    hard = "Hard set: digits misread as the class their colour belongs to"}
  local saved, files = {}, {}
  for si, kind in ipairs({"easy", "hard"}) do
    local r, pk = R[kind], picks[kind]
    if #pk.list == 0 then
      util.progress("no %s examples to show (none qualifies)", kind)
    else
      local columns, headings, bars = {}, {"input"}, {}
      for _, meth in ipairs(methods) do
        columns[#columns + 1] = {maps = r.res[meth.name].maps:index_select(0, pk.idx),
          vmax = scales[meth.name], smooth = meth.smooth}
        headings[#headings + 1] = meth.heading:format(opts.layer)
        bars[#bars + 1] = {meth.label, scales[meth.name], meth.clip_quantile ~= nil}
      end
      local png = ("%s/overlays_%s.png"):format(opts.out, kind)
      local img = figure.heat_panels{images = r.set.images:index_select(0, pk.idx):float() / 255,
        mask = r.mask:index_select(0, pk.idx), columns = columns, scale = SCALE}
      lab.write_png(png, img)
      local texts, swatches = {}, {}
      for i, pos in ipairs(pk.list) do
        texts[i], swatches[i] = row_texts(r, pos, methods), lab.data.PALETTE[r.set.colors:get(pos) + 1]
      end
      svg.save(("%s/overlays_%s.svg"):format(opts.out, kind), figure.panel_page{png = png,
        rows = #pk.list, width = img:size(2), height = img:size(1), left = 290, top = 84,
        row_height = 28 * SCALE, headings = headings, row_texts = texts, swatches = swatches,
        colorbars = bars, lines = {{titles[kind], 'font-size="16" font-weight="bold"'},
          {"Heat: the map on one colour scale per column (raw values, the same scale in the easy "
            .. "and the hard figure, not rescaled per digit).", 'font-size="11" fill="#444"'},
          {("Cyan outline: the digit's strokes (grey MNIST pixel > %g·255); the stroke share is "
            .. "the part of a map's mass inside it."):format(opts.threshold), 'font-size="11" fill="#444"'}}})
      files[#files + 1] = ("overlays_%s.{svg,png}"):format(kind)
      local function add(key, t) saved[key] = saved[key] or {} table.insert(saved[key], t:index_select(0, pk.idx)) end
      for key, t in pairs({images = r.set.images, labels = r.set.labels, colors = r.set.colors,
        index = r.set.index, targets = r.pred, confidences = r.conf, stroke_mask = r.mask}) do add(key, t) end
      for _, meth in ipairs(methods) do
        local res = r.res[meth.name]
        add(meth.saved.raw, res.maps)
        if meth.saved.upsampled then add(meth.saved.upsampled, res.upsampled) end
      end
      saved.set = saved.set or {}
      table.insert(saved.set, lab.full({#pk.list}, si - 1, {dtype = "int64"}))
      m[kind .. "_examples"] = #pk.list
    end
  end
  if saved.images then
    local tensors = {}
    for k, parts in pairs(saved) do tensors[k] = lab.cat(parts, 0):contiguous() end
    lab.save_safetensors(opts.out .. "/gradcam.safetensors", tensors, {
      format = "cnnlab gradcam", layer = opts.layer, model = opts.model,
      set = "0 = easy (validation), 1 = hard", targets = "top logit (the prediction)",
      maps = "raw Grad-CAM at the layer's resolution", stroke_threshold = opts.threshold,
      images = "uint8 bytes as stored, N×3×28×28"})
    files[#files + 1] = "gradcam.safetensors"
  end
  return files
end

-- share.svg: the measure as bars.
local function draw_shares(keys, labels, m)
  local series = {{name = "easy, right", values = {}}, {name = "hard, right", values = {}},
    {name = "hard, = colour", values = {}}, {name = "uniform map", values = {}}}
  for i, key in ipairs(keys) do
    series[1].values[i] = m[key .. "_share_easy_correct"]
    series[2].values[i] = m[key .. "_share_hard_correct"]
    series[3].values[i] = m[key .. "_share_hard_follows_colour"]
    series[4].values[i] = m.hard_stroke_area
  end
  svg.save(opts.out .. "/share.svg", svg.bars{
    title = "Share of the map's mass on the digit strokes (uniform map: the strokes' area)",
    labels = labels, series = series, xlabel = "\"= colour\": hard digits read as the class "
      .. "their colour belongs to", ylabel = "% of map mass on strokes", ymin = 0, ymax = 100,
    width = 150 * #labels, fmt = "%.0f"})
end

study.main("task3_gradcam", function()
  local model = study.load_model(opts.model)
  local methods, compare = setup(model)
  util.progress("model %s; building Colored MNIST (seed %d, rho %g, beta %g%s)", opts.model,
    opts.seed, opts.rho, opts.beta, opts.quick and ", quick subset" or "")
  local sets = study.load_data(opts)
  local easy = gradcam.first_digits(sets.val, study.grey_digits, opts.n, "easy")
  local hard = gradcam.first_digits(sets.hard, study.grey_digits, opts.n, "hard")
  util.progress("easy (validation) %d digits, hard %d digits; %d threads", easy.n, hard.n,
    lab.get_threads())
  local o = {layer = opts.layer, compare = compare, threshold = opts.threshold,
    batch = opts.batch, progress = util.progress}
  local R = {easy = gradcam.analyse(model, easy, methods, o), hard = gradcam.analyse(model, hard, methods, o)}
  local m = {layer = opts.layer, compare = table.concat(compare, ","), stroke_threshold = opts.threshold, seed = opts.seed,
    rho = opts.rho, beta = opts.beta, quick = opts.quick, data = opts.data, model = opts.model,
    threads = lab.get_threads()}
  if R.easy.main then
    m.raw_map_size = ("%d×%d"):format(R.easy.main.maps:size(1), R.easy.main.maps:size(2))
  end
  local keys, labels = {}, {}
  for _, meth in ipairs(methods) do
    keys[#keys + 1] = meth.name
    labels[#labels + 1] = meth.layered and (meth.label .. " " .. opts.layer) or meth.label
  end
  for _, l in ipairs(compare) do keys[#keys + 1], labels[#labels + 1] = "gradcam_" .. l, "Grad-CAM " .. l end
  measure(R, keys, m)
  util.mkdir_p(opts.out)
  local files = draw_overlays(R, methods, m)
  draw_shares(keys, labels, m)
  files[#files + 1] = "share.svg"
  m.total_seconds = lab.now() - t0
  for k, v in pairs(m) do -- an undefined mean (e.g. no misread easy digit) is left out
    if v ~= v then m[k] = nil end
  end
  study.write_metrics(opts.out, m)
  util.progress("wrote %s/{metrics.json, %s}", opts.out, table.concat(files, ", "))
end)
