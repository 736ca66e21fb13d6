-- Task 2: what does each layer respond to? Feature maps through forward hooks.
--
-- Forward hooks on the model's feature layers — relu1, relu2 and relu3 for the seed network
-- (conv1, conv2, conv3 after their ReLU); cnnlab.models.feature_layers for any other, e.g.
-- relu1–relu4 of simple_convnet — capture every channel's map for three inputs chosen to
-- separate colour from shape:
--   A  an easy digit in its own class colour (by default a green 1),
--   B  the very same grey digit painted in another class's colour (red, the colour of 0),
--   C  a hard-set digit of another class painted in that same colour (a red digit ≠ 0, 1),
-- so A and B share the shape, B and C share the colour. If the network reads colour, B's
-- maps resemble C's more than A's, and more so the deeper the layer.
--
-- Two measures go with the pictures:
--   * a colour-response table: the mean activation of each channel of the first feature layer
--     (conv1 after ReLU in the seed network) to
--     each palette colour, on blank inputs (background noise only, no digit) and on real
--     digits painted in that colour — the first layer's colour detectors, made visible;
--   * per layer, the share of the activation variance explained by colour and by digit
--     class: η² of a one-way ANOVA over the hard set (where colour and digit are
--     independent), η² = Σ_g n_g (m_g − m)² / Σ_i (f_i − m)², for each channel's spatial
--     mean (averaged over the channels that vary, and pooled: Σ_k SSB_k / Σ_k SST_k) and for
--     each unit (one channel at one position: spatial means are colour averages even at the
--     input, units keep where the strokes are). The input's RGB channels are the reference
--     row, the logits the last.
--
--   ./cnnlab scripts/task2_features.lua [--model runs/task1/model.safetensors --digit 1
--       --color 0 --n 0 --seed 1 --quick --out runs/task2]
-- Writes into --out: metrics.json, features.svg (the three inputs' maps, labelled; embeds
-- the PNGs), features_A_easy.png / features_B_recoloured.png / features_C_hard.png (the bare
-- grids: relu1, relu2, relu3 from top to bottom), color_response.svg, variance.svg and
-- features.safetensors (the three inputs' bytes, their activations and the colour-response
-- table). A model without convolutional feature maps (lff_mlp) is an error naming the
-- networks to train instead.
local lab = require "cnnlab"
local util, study, hooks, metrics, svg = lab.util, lab.study, lab.hooks, lab.metrics, lab.svg
local figure, features = require "cnnlab.figure", require "cnnlab.features"

local spec = {
  name = "task2_features", script = "scripts/task2_features.lua",
  description = "Feature maps of a trained CNN (the seed network or any convolutional --arch) "
    .. "through forward hooks, the first layer's colour-response table, and the activation "
    .. "variance explained by colour vs digit.",
  options = study.options({"model",
    {"digit", 1, "digit class of inputs A and B"},
    {"color", 0, "colour index painted on inputs B and C (a class other than --digit)"},
    {"n", 0, "hard-set digits for the variance measure (0: the whole set)"},
    {"response_n", 200, "digits (and blanks) per colour for the colour-response table"},
    {"batch", 250, "digits per forward pass"},
    {"out", "runs/task2"},
  }),
}
local opts = util.parse_args(arg, spec)
local t0 = lab.now()

-- The layers come from the model (study_layers, once it is loaded): the feature layers, their
-- labels ("conv1" for relu1 of the seed network) and titles ("conv1 after ReLU (relu1)"); "fc"
-- stands for the model's output (the logits) and "input" for the images, as in
-- hooks.variance_explained.
local LAYERS, LABEL, LAYER_TITLE
local function study_layers(model)
  LAYERS = lab.models.require_feature_layers(model, "task2 (feature maps)", false)
  LABEL, LAYER_TITLE = lab.models.layer_labels(model, LAYERS)
  LAYER_TITLE.fc, LAYER_TITLE.input = "logits (fc)", "input (RGB)"
end
-- The feature layers and the output.
local function with_fc()
  local t = {table.unpack(LAYERS)}
  t[#t + 1] = "fc"
  return t
end
-- Grid layout of a layer's C maps of w pixels: 8 columns up to 32 channels, else 16, enlarged
-- by the largest whole factor that keeps the grid within about 450 px (the seed network's
-- layers: 8 × 2, 16 × 2, 16 × 4).
local GRID_WIDTH = 450
local function grid_of(c, w)
  local ncol = c <= 32 and 8 or 16
  return {ncol = ncol, scale = math.max(1, GRID_WIDTH // (ncol * w))}
end
-- "conv1, conv2 and conv3 after ReLU" when every layer follows a convolution through the same
-- modules, else the titles in full.
local function layers_phrase()
  local names, after = {}, nil
  for i, layer in ipairs(LAYERS) do
    local conv, rest = LAYER_TITLE[layer]:match("^(%S+) after (.-) %(")
    if not conv or (after and rest ~= after) then names = nil break end
    names[i], after = conv, rest
  end
  local list = names or LAYERS
  local text = #list > 1 and (table.concat(list, ", ", 1, #list - 1) .. " and " .. list[#list]) or list[1]
  return names and (text .. " after " .. after) or text
end
-- Streams for the colorize calls of this script (docs/data.md: a stream number is any set).
local STREAM_RECOLOUR, STREAM_BLANK, STREAM_DIGITS = 7200, 7300, 7400

local channel_means, describe_input = hooks.channel_means, features.describe

-- features_<input>.png, the channel-mean correlations and features.svg.
local function feature_maps(acts, logits, images, inputs, m)
  local pngs, boxes, pw, ph = {}, nil, 0, 0
  for i, s in ipairs(inputs) do
    local maps = {}
    local grid = {}
    for l, layer in ipairs(LAYERS) do
      maps[l] = acts[layer]:narrow(0, i - 1, 1):squeeze(0)
      grid[l] = grid_of(maps[l]:size(0), maps[l]:size(2))
    end
    local img
    img, boxes, pw, ph = figure.feature_grids(maps, grid)
    pngs[i] = ("%s/features_%s.png"):format(opts.out, s.key)
    lab.write_png(pngs[i], img)
  end
  local means = {fc = logits:totable()}
  for _, layer in ipairs(LAYERS) do means[layer] = channel_means(acts[layer]):totable() end
  for i, s in ipairs(inputs) do
    local p = s.key:sub(1, 1)
    m["input_" .. p .. "_label"], m["input_" .. p .. "_color"] = s.label, s.color
    m["input_" .. p .. "_pred"], m["input_" .. p .. "_confidence"] = s.pred, 100 * s.conf
    m["input_" .. p .. "_index"] = s.index
    for _, layer in ipairs(LAYERS) do
      local active = 0
      for _, x in ipairs(means[layer][i]) do if x > 0 then active = active + 1 end end
      m[("input_%s_%s_active_channels"):format(p, layer)] = active
    end
  end
  print("\nCorrelation of the channel-mean activations between the inputs:")
  print(("  %-8s %22s %22s"):format("layer", "A~B (same shape)", "B~C (same colour)"))
  for _, layer in ipairs(with_fc()) do
    local ab = metrics.correlation(means[layer][1], means[layer][2])
    local bc = metrics.correlation(means[layer][2], means[layer][3])
    m["corr_AB_" .. layer], m["corr_BC_" .. layer] = ab, bc
    print(("  %-8s %22.3f %22.3f"):format(layer, ab, bc))
  end
  -- features.svg: the three inputs side by side, layer labels, captions
  local thumb, left, top, colgap = 112, 24, 150, 40
  local parts = {
    svg.text(left, 26, "Every channel of " .. layers_phrase() .. ", each map scaled to "
      .. "its own range (dark: its minimum, yellow: its maximum)", 'font-size="15" font-weight="bold"'),
    svg.text(left, 46, "A and B share the shape, B and C share the colour: the deeper the layer, "
      .. "the more B's maps look like C's if the network reads colour. A map that is zero "
      .. "everywhere is black.", 'font-size="11" fill="#444"')}
  for i, s in ipairs(inputs) do
    local x0, tx = left + (i - 1) * (pw + colgap), left + (i - 1) * (pw + colgap) + thumb + 12
    local inpath = ("%s/input_%s.png"):format(opts.out, s.key)
    lab.write_png(inpath, lab.image_grid(images:narrow(0, i - 1, 1), {ncol = 1, pad = 0, scale = 4}))
    parts[#parts + 1] = svg.image(x0, 62, thumb, thumb, figure.png_uri(inpath))
    os.remove(inpath)
    parts[#parts + 1] = svg.text(tx, 80, s.what, 'font-size="13" font-weight="bold"')
    parts[#parts + 1] = svg.text(tx, 98, describe_input(s), 'font-size="12"')
    parts[#parts + 1] = svg.text(tx, 116, ("predicted %d with %.1f%%"):format(s.pred, 100 * s.conf),
      ('font-size="12" font-weight="bold" fill="%s"'):format(s.pred == s.label and "#1a7f37" or "#c62828"))
    parts[#parts + 1] = svg.text(tx, 134, ("MNIST %s digit #%d"):format(s.source, s.index),
      'font-size="10" fill="#777"')
    parts[#parts + 1] = svg.image(x0, top, pw, ph, figure.png_uri(pngs[i]))
    for l, layer in ipairs(LAYERS) do
      local a = acts[layer]
      parts[#parts + 1] = svg.text(x0 + boxes[l].x, top + boxes[l].y - 6, ("%s — %d channels, "
        .. "%d×%d, %d active"):format(LAYER_TITLE[layer], a:size(1), a:size(2), a:size(3),
        m[("input_%s_%s_active_channels"):format(s.key:sub(1, 1), layer)]),
        'font-size="11" font-weight="bold"')
    end
  end
  local cy = top + ph + 28
  parts[#parts + 1] = svg.text(left, cy, "Correlation of the channels' mean activations "
    .. "(Pearson) — A~B: same digit, other colour; B~C: same colour, other digit:",
    'font-size="12" font-weight="bold"')
  for i, layer in ipairs(with_fc()) do
    parts[#parts + 1] = svg.text(left + 20, cy + 8 + 17 * i, ("%-28s A~B %.2f    B~C %.2f")
      :format(LAYER_TITLE[layer], m["corr_AB_" .. layer], m["corr_BC_" .. layer]),
      'font-size="12" font-family="monospace" xml:space="preserve"')
  end
  svg.save(opts.out .. "/features.svg", svg.doc(left + 3 * pw + 2 * colgap + 24,
    cy + 90 + 17 * (#LAYERS - 3), parts))
end

-- The first feature layer's colour-response table, color_response.svg and its colour
-- preferences (conv1's in the seed network; the metrics' keys begin with its label).
local function colour_response(model, sets, m)
  util.progress("colour-response table: %d blanks and %d digits per colour", opts.response_n,
    opts.response_n)
  local val = sets.val
  local nr = math.min(opts.response_n, val.n)
  local r = hooks.colour_response(model, LAYERS[1], sets.source.train.images:index_select(0,
    val.index:narrow(0, 0, nr)), {beta = opts.beta, seed = opts.seed, batch = opts.batch,
    blank_stream = STREAM_BLANK, digit_stream = STREAM_DIGITS})
  local blank, digit, nch = r.blank, r.digit, #r.blank
  local pref, selectivity = metrics.preferences(digit)
  local pref_blank = metrics.preferences(blank)
  local order = metrics.preference_order(pref, digit)
  svg.save(opts.out .. "/color_response.svg", figure.response_table{blank = blank, digit = digit,
    order = order, pref = pref, palette = lab.data.PALETTE, n = opts.response_n})
  -- how colour-selective is the first layer? preferred colours and the mean selectivity index
  local sum = metrics.preference_summary(pref, selectivity, pref_blank, nch)
  local key = LABEL[LAYERS[1]]
  m[key .. "_colors_preferred_digit"], m[key .. "_colors_preferred_blank"] = sum.preferred, sum.preferred_blank
  m[key .. "_dead_channels"], m[key .. "_color_selectivity"] = sum.dead, sum.selectivity
  m.response_n = nr
  return r.blank_rows, r.digit_rows
end

-- η² of colour and of digit per layer over the hard set, and variance.svg.
local function variance_explained(model, hard, m)
  local n = (opts.n > 0 and opts.n < hard.n) and opts.n or hard.n
  util.progress("variance explained: %d hard digits (colour independent of digit)", n)
  local labels, colors = hard.labels:narrow(0, 0, n), hard.colors:narrow(0, 0, n)
  local VLAYERS = {"input", table.unpack(with_fc())}
  local res = hooks.variance_explained(model, VLAYERS, hard.images:narrow(0, 0, n),
    {color = colors, digit = labels}, {batch = opts.batch})
  print(("\nShare of activation variance explained (η², one-way ANOVA, %d hard digits), mean over "
    .. "channels (channel means) and over units (one value per channel and position):"):format(n))
  print(("  %-26s %9s %9s %9s %9s %10s %10s"):format("layer", "ch:colour", "ch:digit",
    "pooled:c", "pooled:d", "unit:colour", "unit:digit"))
  local series = {{name = "colour (ch.)", values = {}, color = "#1f77b4"},
    {name = "digit (ch.)", values = {}, color = "#ff7f0e"},
    {name = "colour (units)", values = {}, color = "#9ecae1"},
    {name = "digit (units)", values = {}, color = "#fdd0a2"}}
  for i, layer in ipairs(VLAYERS) do
    local ch, un = res[layer].channel, res[layer].unit
    local row = {ch.color.mean, ch.digit.mean, un.color.mean, un.digit.mean}
    for k = 1, 4 do series[k].values[i] = row[k] end
    m["eta2_color_" .. layer], m["eta2_digit_" .. layer] = ch.color.mean, ch.digit.mean
    m["eta2_pooled_color_" .. layer], m["eta2_pooled_digit_" .. layer] = ch.color.pooled, ch.digit.pooled
    m["eta2_unit_color_" .. layer], m["eta2_unit_digit_" .. layer] = un.color.mean, un.digit.mean
    m["constant_channels_" .. layer], m["constant_units_" .. layer] = ch.constant, un.constant
    m["units_" .. layer] = un.size
    print(("  %-26s %9.3f %9.3f %9.3f %9.3f %10.3f %10.3f"):format(LAYER_TITLE[layer],
      ch.color.mean, ch.digit.mean, ch.color.pooled, ch.digit.pooled, un.color.mean, un.digit.mean))
  end
  print("  (pooled: Σ SS_between / Σ SS_total over the channels; constant channels and units "
    .. "are left out)")
  m.eta2_n = n
  svg.save(opts.out .. "/variance.svg", svg.bars{
    title = "Activation variance explained by colour vs by digit (η², hard set)",
    labels = VLAYERS, series = series, ymin = 0, ymax = 1, fmt = "%.2f",
    ylabel = "η², mean over channels / units",
    xlabel = ("layer (%d hard digits; colour independent of digit)"):format(n),
    width = 620 + 100 * math.max(0, #LAYERS - 3)})
end

study.main("task2_features", function()
  local model = study.load_model(opts.model)
  study_layers(model)
  if math.type(opts.digit) ~= "integer" or opts.digit < 0 or opts.digit > 9
    or opts.color < 0 or opts.color > 9 or opts.color == opts.digit then
    error(("--digit and --color must be different classes in 0..9, got %d and %d"):format(
      opts.digit, opts.color), 0)
  end
  util.progress("model %s; building Colored MNIST (seed %d, rho %g, beta %g%s)", opts.model,
    opts.seed, opts.rho, opts.beta, opts.quick and ", quick subset" or "")
  local sets = study.load_data(opts)
  local images, inputs = features.choose_inputs(model, sets, {digit = opts.digit,
    color = opts.color, beta = opts.beta, seed = opts.seed, stream = STREAM_RECOLOUR})
  local acts, logits = hooks.capture(model, LAYERS, images:float() / 255)
  local conf, pred = logits:softmax(1):max(1)
  for i, s in ipairs(inputs) do
    s.pred, s.conf = pred:get(i - 1), conf:get(i - 1)
    util.progress("%s: %s → predicted %d (%.1f%%)", s.what, describe_input(s), s.pred, 100 * s.conf)
  end
  util.mkdir_p(opts.out)
  local m = {seed = opts.seed, rho = opts.rho, beta = opts.beta, quick = opts.quick,
    data = opts.data, model = opts.model, digit = opts.digit, color = opts.color,
    threads = lab.get_threads(), feature_layers = table.concat(LAYERS, ",")}
  local labels = {}
  for i, layer in ipairs(LAYERS) do labels[i] = LABEL[layer] end
  m.feature_labels = table.concat(labels, ",")
  feature_maps(acts, logits, images, inputs, m)
  local blank_resp, digit_resp = colour_response(model, sets, m)
  variance_explained(model, sets.hard, m)
  local tensors = {images = images, logits = logits,
    labels = lab.tensor({inputs[1].label, inputs[2].label, inputs[3].label}, {dtype = "int64"}),
    colors = lab.tensor({inputs[1].color, inputs[2].color, inputs[3].color}, {dtype = "int64"}),
    color_response_blank = lab.tensor(blank_resp), color_response_digit = lab.tensor(digit_resp)}
  for _, layer in ipairs(LAYERS) do tensors[layer] = acts[layer]:contiguous() end
  lab.save_safetensors(opts.out .. "/features.safetensors", tensors, {
    format = "cnnlab task2", inputs = "A easy digit, B same digit recoloured, C hard digit",
    color_response = ("[colour][channel] mean %s activation"):format(LAYERS[1])})
  m.total_seconds = lab.now() - t0
  for k, v in pairs(m) do -- an undefined value (a correlation with a constant vector) is left out
    if v ~= v then m[k] = nil end
  end
  study.write_metrics(opts.out, m)
  util.progress("wrote %s/{metrics.json, features.svg, features_*.png, color_response.svg, "
    .. "variance.svg, features.safetensors}", opts.out)
end)
