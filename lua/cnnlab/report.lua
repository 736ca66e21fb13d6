--- cnnlab.report — one self-contained HTML page with the whole study.
--
--   report.write{runs = "runs", manifest = {...}, quick = false} → path of report.html
--   report.check(html_path[, opts]) → result of the page in headless Chromium (below)
--   report.screenshot(html_path, png[, opts]) → height of a full-page screenshot
--
-- The page opens with the findings (the shortcut, the fix, the numbers beside the seed
-- study's, each naming the file and key it comes from, and a figure of them), then one
-- section per task in the study's order: a few sentences, the key numbers, the line that says
-- which command wrote them, every figure once in the order of report.CAPTIONS with a caption
-- sentence (click for full size), and the task's files. Run folders besides the tasks (other
-- data sets, runs/benchmarks/*) get a section each. Pictures are referenced relative to the
-- runs folder, so the page works from disk with no server and no script.
local util = require "cnnlab.util"
local core = require "cnnlab.core"
local svg = require "cnnlab.svg"

local report = {}

local function esc(s)
  return (tostring(s):gsub("[<>&\"]", {["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;",
    ['"'] = "&quot;"}))
end

local function read_metrics(dir)
  local path = dir .. "/metrics.json"
  if not util.exists(path) then return nil end
  local ok, m = pcall(util.json_decode, util.read_file(path))
  return ok and type(m) == "table" and m or nil
end

local function fmt(v, unit)
  if v == nil then return "—" end
  if type(v) ~= "number" then return esc(v) end
  if v ~= v then return "—" end
  if unit == "%" then return ("%.2f%%"):format(v) end
  if unit == "s" then return ("%.0f s"):format(v) end
  if v == math.floor(v) and math.abs(v) < 1e15 then
    -- whole numbers (JSON gives them as floats) with thousands separators: 48,000
    local digits = ("%d"):format(math.tointeger(v))
    return (digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^(%-?),", "%1"))
  end
  return ("%.4g"):format(v)
end

-- Rows: {label, our value (number or string), unit, seed's figure (string or nil)}.
local function number_table(rows)
  local out = {'<table class="nums"><thead><tr><th scope="col">measure</th><th scope="col">cnnlab</th>'
    .. '<th scope="col">seed study</th></tr></thead><tbody>'}
  for _, r in ipairs(rows) do
    out[#out + 1] = ("<tr><td>%s</td><td>%s</td><td>%s</td></tr>"):format(esc(r[1]),
      fmt(r[2], r[3]), r[4] and esc(r[4]) or "")
  end
  out[#out + 1] = "</tbody></table>"
  return table.concat(out, "\n")
end

-- A table whose rows stack into label: value blocks on a narrow screen (each cell carries its
-- column's name). head: column names; rows: lists of cells, already HTML.
local function wide_table(head, rows)
  local out = {'<table class="nums wide"><thead><tr>'}
  for _, h in ipairs(head) do out[#out + 1] = ('<th scope="col">%s</th>'):format(h) end
  out[#out + 1] = "</tr></thead><tbody>"
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(r) do
      cells[i] = ('<td data-label="%s">%s</td>'):format(esc((head[i] or ""):gsub("<[^>]*>", "")), c)
    end
    out[#out + 1] = "<tr>" .. table.concat(cells) .. "</tr>"
  end
  out[#out + 1] = "</tbody></table>"
  return table.concat(out, "\n")
end

local function is_dir(path) return core.listdir(path) ~= nil end

-- The files (not folders) of a run folder, in name order.
local function files_of(dir)
  local list = {}
  for _, name in ipairs(core.listdir(dir) or {}) do
    if not name:match("^%.") and not name:match("%.tmp") and not is_dir(dir .. "/" .. name) then
      list[#list + 1] = name
    end
  end
  return list
end

-- Natural size of a picture: an SVG's width/height attributes, a PNG's IHDR.
local function picture_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local head = f:read(800) or ""
  f:close()
  if path:match("%.png$") then
    if #head < 24 or head:sub(2, 4) ~= "PNG" then return nil end
    return string.unpack(">I4I4", head, 17)
  end
  local tag = head:match("<svg[^>]*>") or ""
  local w, h = tag:match('%swidth="([%d.]+)'), tag:match('%sheight="([%d.]+)')
  if not (w and h) then
    local vw, vh = tag:match('viewBox="[%d.%-]+[%s,]+[%d.%-]+[%s,]+([%d.]+)[%s,]+([%d.]+)"')
    w, h = vw, vh
  end
  return tonumber(w), tonumber(h)
end

-- The chart title of an SVG (its first bold text), for figures no caption names.
local function svg_title(path)
  local ok, text = pcall(util.read_file, path)
  if not ok then return nil end
  local t = text:match('<text[^>]-font%-weight="bold"[^>]*>([^<]+)</text>')
  return t and (t:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"'):gsub("&apos;", "'")
    :gsub("&amp;", "&"))
end

-- ------------------------------------------------------------------ captions

--- Every figure of every task, in the order the story shows them, with a caption sentence:
-- what the figure shows and what to notice. report.CAPTIONS[task] is a list of
-- {file, caption}: file is a name or a Lua pattern (starting with ^); caption is a string, a
-- function(metrics, file, capture) returning one, or false for a picture that another figure
-- embeds (it is listed among the files, not shown). A PNG with an SVG of the same name beside
-- it is such a picture too. A figure found in a task folder and named here by nothing is shown
-- last with a visible "no caption" note, and the browser test fails on it.
report.CAPTIONS = {
  task0 = {
    {"palette.png", "The ten class colours, class 0 on the left: in the easy set a digit of "
      .. "class k always wears colour k."},
    {"easy_grid.png", "Ten easy (training) digits per class, one row per class from 0 at the "
      .. "top: every row wears one colour, so colour alone tells the label."},
    {"hard_grid.png", "Ten hard digits per class, one row per class: the colours are drawn at "
      .. "random, so every row mixes them and colour says nothing about the digit."},
    {"colors_train.svg", "Colour against label in the training set: every count sits on the "
      .. "diagonal, so a colour reader is right on every training digit."},
    {"colors_val.svg", "The same for the validation set: the diagonal again, so easy "
      .. "validation accuracy cannot tell a colour reader from a shape reader."},
    {"colors_hard.svg", "Colour against label in the hard set: the counts spread evenly, and "
      .. "only the diagonal — about one digit in ten — wears its own class colour."},
  },
  task1 = {
    {"curve.svg", function(m)
      local s = "Accuracy and loss per epoch on the easy set: validation accuracy reaches its "
        .. "ceiling at once, because colour is an easy feature to learn."
      if (m.epochs or 0) <= 1 then
        s = s .. " This run trained one epoch, so each series is one point, its value in the legend."
      end
      return s
    end},
    {"confusion.svg", "The hard set's confusion matrix, rows the true digit, columns the "
      .. "answer: every row is spread evenly, because the answer follows the random colour, "
      .. "not the digit."},
    {"example.png", function(m)
      if not m.example_label then return "A hard digit painted in another class's colour." end
      return ("Hard digit #%d: a %d painted in the colour of %d, read as %d with %.1f%% "
        .. "confidence — the network names the colour's class."):format(m.example_index,
        m.example_label, m.example_color, m.example_pred, m.example_confidence or 0)
    end},
  },
  task2 = {
    {"features.svg", "Every channel of conv1–conv3 for three inputs: A an easy digit, B the "
      .. "same digit in another colour, C another digit in B's colour. Notice that B's maps "
      .. "resemble C's (same colour), not A's (same shape) — the correlations at the bottom say "
      .. "how much."},
    {"color_response.svg", "Mean response of each conv1 channel to each palette colour, on "
      .. "blank inputs and on digits: the first layer's channels are colour detectors, tuned "
      .. "before any digit is present."},
    {"variance.svg", "Share of the activation variance explained by colour and by digit (η², "
      .. "hard set, where the two are independent), layer by layer: colour explains most of it "
      .. "everywhere, the digit almost nothing."},
    {"^features_.*%.png$", false},
    {"^input_.*%.png$", false},
  },
  task3 = {
    {"overlays_easy.svg", "Grad-CAM, Grad-CAM++ and input-gradient saliency for easy "
      .. "validation digits, the strokes outlined in cyan: the maps cover the digit and its "
      .. "tinted surroundings."},
    {"overlays_hard.svg", "The same maps for hard digits read as the class of their colour: "
      .. "they look like the easy ones — the network looks at the same place and reads the "
      .. "colour there."},
    {"share.svg", "Share of each map's mass on the strokes, beside a uniform map's share (the "
      .. "strokes' area): barely above it, and the same for right and misread digits — this "
      .. "measure cannot tell colour from shape on this data."},
  },
  task4 = {
    {"comparison.svg", "Hard-set accuracy of every debias method (blue), on the hard digits "
      .. "whose colour is not their own (orange), beside the seed study's published figures "
      .. "(grey): a method level with erm still reads colour."},
    {"evidence.svg", "How much colour a grey image still carries: readers that see only grey "
      .. "brightness predict the label far above chance, the leak that keeps the seed's grey "
      .. "consistency from working here."},
    {"sweep.svg", "Hard digits whose colour differs from their label, as ρ falls below 1: the "
      .. "bias-unaware methods (LfF, JTT) need some bias-conflicting training digits to find."},
    {"gradcam.svg", "Grad-CAM of the trained methods on the same hard digits: where each "
      .. "model looks (on this data colour sits on the strokes, so the maps alike do not mean "
      .. "the models read alike)."},
  },
  task5 = {
    {"grid.svg", "Validation and hard-set 7s before and after the attack at the seed's ε, each "
      .. "with its perturbation (grey: no change), and the validation 7s again at a larger ε: "
      .. "compare the answers under the rows — the hard 7s that fall are those already painted "
      .. "close to yellow."},
    {"curve.svg", "Share of 7s turned into 3s read with ≥ 90% confidence as ε grows, for the "
      .. "Task 1 network and a debiased one, the seed's budget dashed: the curves rise only once ε "
      .. "is large enough to change the colour or the shape."},
    {"matrix.svg", "Attack success for every source → target pair at ε: success comes where "
      .. "the two classes' colours are close, not where their shapes are."},
  },
  task6 = {
    {"selectivity.svg", "Colour and digit selectivity of every channel: nearly every channel "
      .. "is far more selective for colour than for digit."},
    {"demo.svg", "One easy digit: the probability of its class as its most attributed "
      .. "channels are zeroed one by one — how few channels it takes to change the answer."},
    {"^curves_(.-)%.svg$", function(_, _, layer)
      return ("Easy and hard accuracy as %s's channels are zeroed by colour selectivity, by "
        .. "digit selectivity, by attribution and at random: hard accuracy does not climb "
        .. "above the random orders' spread, so no small set of colour channels holds the "
        .. "shortcut."):format(layer)
    end},
  },
}

-- The caption entry of a file: caption (string, or false) and whether an entry named it, and
-- the entry's position (for the order).
local function caption_of(task, name, m, names)
  local list = report.CAPTIONS[task] or {}
  for i, e in ipairs(list) do
    local key, cap = e[1], e[2]
    local capture
    if key:sub(1, 1) == "^" then capture = name:match(key) elseif key == name then capture = name end
    if capture then
      if type(cap) == "function" then
        local ok, s = pcall(cap, m or {}, name, capture)
        cap = ok and s or nil
      end
      return cap, i
    end
  end
  -- a PNG drawn into an SVG of the same name
  if name:match("%.png$") and names[(name:gsub("%.png$", ".svg"))] then return false, 0 end
  return nil, #list + 1
end

-- Every figure of a run folder once: {name, caption or nil, width, height}, in story order.
local function figures_of(task, dir, m)
  local files, names = files_of(dir), {}
  for _, n in ipairs(files) do names[n] = true end
  local list = {}
  for k, name in ipairs(files) do
    if name:match("%.png$") or name:match("%.svg$") then
      local cap, order = caption_of(task, name, m, names)
      if cap ~= false then
        local w, h = picture_size(dir .. "/" .. name)
        list[#list + 1] = {name = name, caption = cap, order = order, k = k, w = w, h = h}
      end
    end
  end
  table.sort(list, function(a, b)
    if a.order ~= b.order then return a.order < b.order end
    return a.k < b.k
  end)
  return list
end

-- The figures of a section as HTML. number: "1." gives Figure 1.1, 1.2, ...
local function figures_html(href_dir, figs, number)
  local out = {}
  for i, f in ipairs(figs) do
    local href = href_dir .. "/" .. f.name
    local w, h = f.w or 480, f.h or 360
    local caption = f.caption
    local missing = ""
    if not caption then
      caption = ("No caption yet: add one for %s to report.CAPTIONS."):format(f.name)
      missing = ' data-uncaptioned="1"'
    end
    out[#out + 1] = ('<figure class="fig%s" style="width:%dpx"%s><a href="%s" title="full size">'
      .. '<img src="%s" width="%d" height="%d" alt="%s"%s></a><figcaption><b>Figure %s%d.</b> '
      .. '%s <span class="file">%s</span></figcaption></figure>'):format(
      w > 560 and " wide" or "", math.max(w, 340), missing, esc(href), esc(href), w, h,
      esc(caption), f.name:match("%.png$") and ' class="px"' or "", number, i, esc(caption),
      esc(href))
  end
  if #out == 0 then return "" end
  return '<div class="figs">' .. table.concat(out, "\n") .. "</div>"
end

local function file_links(href_dir, dir)
  local out = {}
  for _, name in ipairs(files_of(dir)) do
    out[#out + 1] = ('<a href="%s/%s">%s</a>'):format(esc(href_dir), esc(name), esc(name))
  end
  if #out == 0 then return "" end
  return ('<details class="files"><summary>All %d files of %s/</summary>%s</details>'):format(#out,
    esc(href_dir), table.concat(out, " · "))
end

-- ------------------------------------------------------------------ per task

local sections = {}
report.sections = sections

sections[#sections + 1] = {task = "task0", script = "scripts/task0_data.lua",
  title = "Task 0 — the data",
  narrative = [[Real MNIST digits, painted. In the <b>easy</b> set (training and validation)
  every digit wears its class colour — a 0 is red, a 1 green, and so on — so colour alone
  predicts the label. In the <b>hard</b> set (the MNIST test digits) colours are drawn at random,
  independent of the digit. Everything is a pure function of the seed, ρ and β (SPEC §2).]],
  rows = function(m)
    return {{"training digits", m.n_train or m.train_n}, {"validation digits", m.n_val or m.val_n},
      {"hard digits", m.n_hard or m.hard_n},
      {"easy set painted in its class colour", m.train_aligned_pct, "%", "100% (ρ = 1)"},
      {"hard set painted in its class colour", m.hard_aligned_pct, "%", "≈ 10% by design"}}
  end}

sections[#sections + 1] = {task = "task1", script = "scripts/task1_train.lua",
  title = "Task 1 — the network learns colour",
  narrative = [[The seed's 3-layer CNN trained on the easy set is nearly perfect on easy
  digits and collapses on the hard set: it answers with the class whose colour the digit wears.
  The confusion matrix of the hard set is spread evenly across columns — the predictions follow
  the colours, which are random, not the digits.]],
  rows = function(m)
    return {{"train accuracy (easy)", m.train_acc, "%", "≈ 96%"},
      {"validation accuracy (easy)", m.val_acc, "%", "≈ 96%"},
      {"hard accuracy", m.hard_acc, "%", "15–20%"},
      {"hard, colour ≠ label", m.hard_conflicting_acc, "%"},
      {"hard predictions equal to the colour's class", m.hard_follows_colour, "%"},
      {"epochs", m.epochs}, {"training time", m.seconds, "s"},
      m.example_label and {("example.png: hard digit #%d, a %d painted in the colour of %d"):format(
        m.example_index, m.example_label, m.example_color), ("read as %d (%.1f%%)"):format(
        m.example_pred, m.example_confidence)} or nil}
  end}

sections[#sections + 1] = {task = "task2", script = "scripts/task2_features.lua",
  title = "Task 2 — what each layer sees",
  narrative = [[Forward hooks capture every channel of conv1–conv3 for a few inputs: an easy
  digit, the same digit in another colour, and a hard digit wearing another class's colour.
  The first layer's channels separate the palette colours; the share of activation variance
  explained by colour versus by digit class says which one the layers encode.]],
  rows = function(m)
    local rows = {}
    for _, layer in ipairs({"relu1", "relu2", "relu3", "fc"}) do
      local c, d = m["eta2_unit_color_" .. layer], m["eta2_unit_digit_" .. layer]
      if c and d then
        rows[#rows + 1] = {("%s: share of a unit's variance explained by colour / by digit (η², hard set)")
          :format(layer), ("%.2f / %.3f"):format(c, d)}
      end
    end
    return rows
  end}

sections[#sections + 1] = {task = "task3", script = "scripts/task3_gradcam.lua",
  title = "Task 3 — where the network looks (Grad-CAM)",
  narrative = [[Grad-CAM weighs the last convolutional layer's channels by the gradient of the
  chosen class's score and shows where the evidence lies. For a colour reader, the evidence is
  wherever the colour is — strokes and tinted background alike — so the share of the map on the
  digit's strokes is a measure of shape reading.]],
  rows = function(m)
    local rows = {}
    local function add(label, key, seed)
      if m[key] then rows[#rows + 1] = {label, m[key], "%", seed} end
    end
    add("hard digits: share of the Grad-CAM map (relu3) on the strokes", "gradcam_share_hard")
    add("hard digits: share of the Grad-CAM map (relu2) on the strokes", "gradcam_relu2_share_hard")
    add("hard digits: share of Grad-CAM++ on the strokes", "gradcampp_share_hard")
    add("hard digits: share of the saliency map on the strokes", "saliency_share_hard")
    add("the strokes' share of the image (a uniform map's share)", "hard_stroke_area")
    add("easy digits: share of the Grad-CAM map (relu3) on the strokes", "gradcam_share_easy")
    if m.hard_n and m.hard_n_follows_colour then
      rows[#rows + 1] = {"hard digits read as their colour's class", 100 * m.hard_n_follows_colour / m.hard_n, "%"}
    end
    return rows
  end}

sections[#sections + 1] = {task = "task4", script = "scripts/task4_debias.lua",
  title = "Task 4 — debiasing",
  narrative = [[Each method is one Lua file in lua/cnnlab/debias/, picked at run time with
  --method. The seed's two fixes — a grey/colour consistency penalty and dropout — are
  implemented as described and measured on the data of SPEC §2; stronger methods follow.]],
  -- One row per method (ours: mean ± sd over the seeds run), the seed's figures beside ours,
  -- then the evidence of why the seed's figures do not carry over to SPEC §2's data.
  html = function(m)
    local order = {"erm", "dropout", "grey_consistency", "grey_invariant", "colour_augment",
      "lff", "jtt", "group_dro"}
    local seen = {}
    for _, name in ipairs(order) do seen[name] = true end
    for k in pairs(m) do -- methods given as files appear too
      local name = k:match("^(.-)_hard_acc_mean$")
      if name and not seen[name] and name ~= "best" and not name:find("^sweep_")
        and not name:find("^gradcam_") and not name:find("^evidence") then
        order[#order + 1] = name
        seen[name] = true
      end
    end
    local seed = {grey_consistency = "83.64", dropout = "86.60"}
    local function cell(name, field)
      local v, sd = m[name .. "_" .. field .. "_mean"], m[name .. "_" .. field .. "_sd"]
      if v == nil then return "—" end
      if sd and m.seeds and m.seeds > 1 then return ("%.2f ± %.2f"):format(v, sd) end
      return ("%.2f"):format(v)
    end
    local head = {("method (%d seed%s)"):format(m.seeds or 1, (m.seeds or 1) > 1 and "s" or ""),
      "train %", "validation %", "hard %", "hard, colour ≠ label %", "epochs", "seconds",
      "seed study, hard %"}
    local rows = {}
    for _, name in ipairs(order) do
      if m[name .. "_hard_acc_mean"] then
        local best = name == m.best_method and " <b>(best)</b>" or ""
        rows[#rows + 1] = {esc(name) .. best, cell(name, "train_acc"), cell(name, "val_acc"),
          cell(name, "hard_acc"), cell(name, "hard_conflicting_acc"),
          fmt(m[name .. "_epochs_mean"]), fmt(m[name .. "_seconds_mean"], "s"), seed[name] or ""}
      end
    end
    local out = {wide_table(head, rows)}
    local ev = {}
    local function add(label, key)
      if m[key] then ev[#ev + 1] = {label, m[key], "%"} end
    end
    add("a colour-only reader: validation", "evidence_colour_reader_val_acc")
    add("a colour-only reader: hard", "evidence_colour_reader_hard_acc")
    add("a grey-brightness-only reader: validation", "evidence_brightness_reader_val_acc")
    add("a CNN trained on raw grey images: hard (grey)", "evidence_grey_only_hard_grey_acc")
    add("… on hard digits whose colour has another grey level", "evidence_grey_only_hard_grey_conflicting_other_brightness_acc")
    add("a CNN trained on brightness-normalised grey: hard (grey)", "evidence_grey_only_normalised_hard_grey_acc")
    for _, name in ipairs(order) do
      local g, c = m["gradcam_" .. name .. "_gradcam_stroke_share"], m["input_gradient_" .. name .. "_chromatic_share"]
      if g then ev[#ev + 1] = {name .. ": share of the Grad-CAM map on the strokes (Task 3's measure)", g, "%"} end
      if c then ev[#ev + 1] = {name .. ": chromatic share of the input gradient (shape reader 0%, random 67%)", c, "%"} end
    end
    if #ev > 0 then
      out[#out + 1] = "<p>Why the seed's grey consistency does not carry over: SPEC §2's grey "
        .. "image of a digit painted P[k] is mean(P[k])·s, so its brightness still tells the colour. "
        .. "And where the models look: on this data colour sits on the strokes, so the share of a "
        .. "map on the strokes cannot tell colour from shape; the direction of the input gradient "
        .. "(along grey, or across colours) can.</p>"
      out[#out + 1] = number_table(ev)
    end
    return table.concat(out, "\n")
  end,
  rows = function() return {} end}

sections[#sections + 1] = {task = "task5", script = "scripts/task5_attack.lua",
  title = "Task 5 — a 7 read as a 3",
  narrative = [[A targeted attack (projected gradient steps on the input, the same autograd that
  trains the network) may change every pixel of a 7 by at most ε so that the network answers 3
  with at least 90% confidence. The seed expected this at ε = 0.05. Against the colour reader it
  fails there: the network answers with the colour, and turning an orange 7 into 3's yellow
  needs +0.5 in the green channel on the strokes, ten times the budget. The success curve shows
  the ε at which the attack takes over; the hard set's 7s that already wear a colour close to
  yellow fall at once.]],
  captions = {
    ["min_eps_cdf.svg"] = "Smallest L∞ ε per digit that makes each model answer the target with p ≥ 0.9 (bisection with APGD): empirical CDF per model, 7 → 3 solid, all pairs dashed",
    ["grid_median.png"] = "7s attacked at each model's median minimal ε: original, adversarial, perturbation",
    ["grid_median.svg"] = "7s attacked at each model's median minimal ε, captioned with p(3) and L∞",
  },
  rows = function(m)
    local rows = {{("validation 7s turned into 3s (≥ 90%%) at ε = %g"):format(m.eps or 0.05),
      m.val_success_rate or m.success_rate, "%", "expected ≥ 99% at ε = 0.05"},
      {"hard-set 7s turned into 3s at the same ε", m.hard_success_rate, "%"},
      {"largest L∞ change used (must be ≤ ε)", m.val_max_linf, nil, "≤ 0.05"}}
    for i = 1, m.n_models or 0 do -- the minimal ε of every measured model
      local key = (m["model_" .. i .. "_name"] or ""):gsub("[^%w]", "_")
      if m[key .. "_min_eps_median"] then
        rows[#rows + 1] = {("%s: median smallest ε turning a 7 into a confident 3"):format(
          m["model_" .. i .. "_name"]), m[key .. "_min_eps_median"], nil, "−1: > 0.3"}
      end
    end
    -- the smallest ε of the curve at which 90% / 99% of the 7s fall
    for _, want in ipairs({90, 99}) do
      local i = 0
      while m["curve_eps_" .. i] ~= nil do
        if (m["curve_baseline_" .. i] or 0) >= want then
          rows[#rows + 1] = {("smallest ε of the curve turning ≥ %d%% of validation 7s into 3s"):format(want),
            m["curve_eps_" .. i]}
          break
        end
        i = i + 1
      end
    end
    return rows
  end}

sections[#sections + 1] = {task = "task6", script = "scripts/task6_ablation.lua",
  title = "Task 6 — the neurons that carry the decision",
  narrative = [[Forward hooks record how every channel responds to each colour and each digit,
  rank the channels, and silence them. Zeroing the channels that carry the decision changes the
  answer; the ablation curves show which kind of channel the accuracy rests on.]],
  rows = function(m)
    local rows = {}
    for _, layer in ipairs({"conv1", "conv2", "conv3"}) do
      local c, d = m[layer .. "_mean_color_selectivity"], m[layer .. "_mean_class_selectivity"]
      if c and d then
        rows[#rows + 1] = {("%s: mean selectivity for colour / for digit (0–1)"):format(layer),
          ("%.2f / %.2f"):format(c, d)}
      end
      local n = m[layer .. "_color_more_selective_count"]
      if n then rows[#rows + 1] = {layer .. ": channels more colour- than digit-selective", n} end
      local base, best = m[layer .. "_hard_baseline"], m[layer .. "_hard_best_color_order"]
      if base and best then
        rows[#rows + 1] = {("%s: hard accuracy, nothing zeroed → best after zeroing the most "
          .. "colour-selective channels (%d)"):format(layer, m[layer .. "_hard_best_color_order_k"] or 0),
          ("%.2f%% → %.2f%% (random channels at that count: %.2f%%)"):format(base, best,
            m[layer .. "_hard_random_at_best_k"] or 0 / 0)}
      end
    end
    if m.flip_conv3_median then
      rows[#rows + 1] = {"conv3: channels zeroed (by attribution) before an easy digit's answer changes, median",
        m.flip_conv3_median}
    end
    return rows
  end}

-- ------------------------------------------------------------------ findings

local function pct(v) return v and ("%.2f%%"):format(v) or nil end

-- The findings at the top: what was found, in sentences with the numbers beside the seed
-- study's; the key numbers with the file and key each comes from; a figure of the hard
-- accuracies (written to <runs>/findings.svg). metrics[task] is the task's metrics.json.
local function findings(runs, metrics)
  local m0, m1, m4, m5, m6 = metrics.task0, metrics.task1, metrics.task4, metrics.task5, metrics.task6
  local items, rows = {}, {}
  local function src(task, key)
    return ('<a href="%s/metrics.json">%s/metrics.json</a> <code>%s</code>'):format(task, task, esc(key))
  end
  local function row(label, v, seed, task, key, unit)
    if v ~= nil then rows[#rows + 1] = {esc(label), fmt(v, unit or "%"), seed and esc(seed) or "", src(task, key)} end
  end
  if m1 and m1.hard_acc then
    local reads_colour = (m1.hard_follows_colour or 0) > 50
    items[#items + 1] = ("<b>%s</b> Trained on the easy set, where every digit wears its class "
      .. "colour, the seed CNN scores %s on easy validation digits and %s on the hard set, where "
      .. "colours are random (the seed study: ≈ 96%% and 15–20%%). It answers %s of the hard digits "
      .. "with the class of their colour and gets %s of those whose colour is not their own."):format(
      reads_colour and "The network reads colour, not shape." or "The network on the hard set.",
      fmt(m1.val_acc, "%"), fmt(m1.hard_acc, "%"), fmt(m1.hard_follows_colour, "%"),
      fmt(m1.hard_conflicting_acc, "%"))
    row("Task 1: validation accuracy (easy)", m1.val_acc, "≈ 96%", "task1", "val_acc")
    row("Task 1: hard accuracy", m1.hard_acc, "15–20%", "task1", "hard_acc")
    row("Task 1: hard digits whose colour is not their own", m1.hard_conflicting_acc, nil, "task1",
      "hard_conflicting_acc")
    row("Task 1: hard answers equal to the colour's class", m1.hard_follows_colour, nil, "task1",
      "hard_follows_colour")
  end
  if m0 and m0.hard_aligned_pct then
    row("Task 0: hard digits that happen to wear their own colour", m0.hard_aligned_pct,
      "≈ 10% by design", "task0", "hard_aligned_pct")
  end
  local best = m4 and m4.best_method
  if best and m4[best .. "_hard_acc_mean"] then
    local fixed = m4[best .. "_hard_acc_mean"] > 50
    local s = ("<b>%s</b> Learning from the easy set alone, <code>%s</code> reaches %s hard "
      .. "accuracy (erm, the plain network: %s)."):format(fixed and "The fix." or "No fix yet.", esc(best),
      fmt(m4[best .. "_hard_acc_mean"], "%"), fmt(m4.erm_hard_acc_mean, "%"))
    if m4.grey_consistency_hard_acc_mean or m4.dropout_hard_acc_mean then
      s = s .. (" The seed study's two fixes give %s (grey consistency) and %s (dropout) here, "
        .. "against its 83.64%% and 86.60%%."):format(fmt(m4.grey_consistency_hard_acc_mean, "%"),
        fmt(m4.dropout_hard_acc_mean, "%"))
    end
    items[#items + 1] = s
    row(("Task 4: hard accuracy of %s (best)"):format(best), m4[best .. "_hard_acc_mean"], nil,
      "task4", best .. "_hard_acc_mean")
    row("Task 4: hard accuracy of grey_consistency", m4.grey_consistency_hard_acc_mean, "83.64%",
      "task4", "grey_consistency_hard_acc_mean")
    row("Task 4: hard accuracy of dropout", m4.dropout_hard_acc_mean, "86.60%", "task4",
      "dropout_hard_acc_mean")
  end
  if m5 and (m5.val_success_rate or m5.success_rate) then
    local key = m5.val_success_rate and "val_success_rate" or "success_rate"
    local resists = m5[key] < 50
    items[#items + 1] = ("<b>%s</b> A targeted attack within ε = %g turns %s of the "
      .. "validation 7s into 3s read with ≥ 90%% confidence (the seed study expected it to "
      .. "succeed)%s"):format(resists and "The attack fails at the seed's budget." or "The attack.",
      m5.eps or 0.05, fmt(m5[key], "%"), resists and ": the network reads colour, and turning "
      .. "an orange 7 into a yellow 3 takes a larger change." or ".")
    row(("Task 5: validation 7s turned into 3s at ε = %g"):format(m5.eps or 0.05), m5[key],
      "≥ 90% confidence expected", "task5", key)
  end
  if m6 and m6.conv1_hard_baseline and m6.conv1_hard_best_color_order then
    local gain = m6.conv1_hard_best_color_order - m6.conv1_hard_baseline
    items[#items + 1] = ("<b>The neurons.</b> Zeroing conv1's most colour-selective channels "
      .. "moves hard accuracy from %s to at best %s (random channels at that count: %s)%s")
      :format(fmt(m6.conv1_hard_baseline, "%"), fmt(m6.conv1_hard_best_color_order, "%"),
      fmt(m6.conv1_hard_random_at_best_k, "%"), gain < 5 and ": colour is not held by a few "
      .. "channels that could be cut out." or ".")
    row("Task 6: hard accuracy after zeroing conv1's most colour-selective channels (best)",
      m6.conv1_hard_best_color_order, nil, "task6", "conv1_hard_best_color_order")
  end
  if #items == 0 then
    return '<p class="missing">No findings yet: the tasks have not run (make demo).</p>'
  end
  local out = {'<ul class="findings">'}
  for _, s in ipairs(items) do out[#out + 1] = "<li>" .. s .. "</li>" end
  out[#out + 1] = "</ul>"
  -- the figure: hard accuracy of the Task 1 network and of every Task 4 method, seed's beside
  local labels, ours, seeds, errs = {}, {}, {}, {}
  if m1 and m1.hard_acc then
    labels[1], ours[1], seeds[1], errs[1] = "Task 1 network", m1.hard_acc, 17.5, 2.5
  end
  local seed4 = {grey_consistency = 83.64, dropout = 86.60}
  for _, name in ipairs({"erm", "dropout", "grey_consistency", "grey_invariant", "colour_augment",
    "lff", "jtt", "group_dro"}) do
    local v = m4 and m4[name .. "_hard_acc_mean"]
    if v then
      local i = #labels + 1
      labels[i], ours[i], seeds[i], errs[i] = name, v, seed4[name] or 0 / 0, 0
    end
  end
  if #labels > 0 then
    local lw = 0
    for _, l in ipairs(labels) do lw = math.max(lw, svg.text_width(l)) end
    local chart = svg.bars{labels = labels, width = #labels * math.max(60, lw + 12), ymin = 0,
      ymax = 100, title = "Hard-set accuracy: the colour reader and the fixes",
      ylabel = "hard accuracy (%)", xlabel = "model (Task 1) and debias methods (Task 4)",
      series = {{name = "cnnlab", values = ours}, {name = "seed study", values = seeds,
        errors = errs, color = "#bbbbbb"}}}
    svg.save(runs .. "/findings.svg", chart)
    local w, h = picture_size(runs .. "/findings.svg")
    out[#out + 1] = figures_html(".", {{name = "findings.svg", w = w, h = h, caption =
      "Hard-set accuracy (colours random) of the Task 1 network and of every Task 4 method, "
      .. "beside the seed study's figures where it gives one (its 15–20% for the plain network "
      .. "as a range): a colour reader scores the share of hard digits that happen to wear "
      .. "their own colour, about 10%, so a blue bar near the Task 1 network's is a method that "
      .. "still reads colour."}}, "F")
  end
  out[#out + 1] = "<h3>Key numbers</h3>"
  out[#out + 1] = wide_table({"measure", "cnnlab", "seed study", "from (file, key)"}, rows)
  return table.concat(out, "\n")
end

-- ------------------------------------------------------------------ other runs

-- Run folders besides the seven tasks: <runs>/<name>/ or <runs>/<name>/<sub>/ with a
-- metrics.json (other data sets, runs/benchmarks/*). The quick run's folder is not one.
local function extra_runs(runs)
  local found = {}
  for _, name in ipairs(core.listdir(runs) or {}) do
    local path = runs .. "/" .. name
    if is_dir(path) and not name:match("^task%d+$") and name ~= "quick" and not name:match("^%.") then
      if util.exists(path .. "/metrics.json") then found[#found + 1] = name end
      for _, sub in ipairs(core.listdir(path) or {}) do
        if util.exists(path .. "/" .. sub .. "/metrics.json") then found[#found + 1] = name .. "/" .. sub end
      end
    end
  end
  return found
end

local function scalar_rows(m)
  local keys = {}
  for k, v in pairs(m) do
    local t = type(v)
    if t == "number" or t == "string" or t == "boolean" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local rows = {}
  for _, k in ipairs(keys) do rows[#rows + 1] = {esc(k), fmt(m[k])} end
  return rows
end

local function extra_section(runs, name, number)
  local dir = runs .. "/" .. name
  local m = read_metrics(dir) or {}
  local html = {('<section id="run-%s"><h2>%s</h2>'):format(esc(name:gsub("[^%w]", "-")), esc(name))}
  html[#html + 1] = ("<p>Outputs of a run besides the seven tasks, in %s/.</p>"):format(esc(name))
  local rows = scalar_rows(m)
  if #rows > 0 then
    local shown = {}
    for i = 1, math.min(#rows, 24) do shown[i] = rows[i] end
    html[#html + 1] = wide_table({"key", "value"}, shown)
    if #rows > 24 then
      local rest = {}
      for i = 25, #rows do rest[#rest + 1] = rows[i] end
      html[#html + 1] = ("<details><summary>%d more values</summary>%s</details>"):format(#rest,
        wide_table({"key", "value"}, rest))
    end
  end
  html[#html + 1] = ('<p class="src">Numbers from <a href="%s/metrics.json">%s/metrics.json</a>.</p>')
    :format(esc(name), esc(name))
  local figs = figures_of(name, dir, m)
  for _, f in ipairs(figs) do
    if not f.caption and f.name:match("%.svg$") then
      local t = svg_title(dir .. "/" .. f.name)
      if t then f.caption = ("%s, as this run drew it."):format(t) end
    end
  end
  html[#html + 1] = figures_html(name, figs, number)
  html[#html + 1] = file_links(name, dir)
  html[#html + 1] = "</section>"
  return table.concat(html, "\n")
end

-- ------------------------------------------------------------------ the page

local STYLE = [[
*{box-sizing:border-box}
body{font-family:Helvetica,Arial,sans-serif;max-width:1280px;margin:0 auto;padding:0 16px 3em;
 color:#222;line-height:1.5;overflow-wrap:break-word}
p,ul{max-width:52em}
h1{font-size:1.9em;line-height:1.2;margin:.8em 0 .2em}
h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2.2em}
.sub{color:#666}
ul.findings li{margin:.5em 0}
table.nums{border-collapse:collapse;margin:1em 0;max-width:100%}
table.nums td,table.nums th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}
table.nums code{overflow-wrap:anywhere}
table.nums th{background:#f6f6f6;text-align:left}
table.nums td{text-align:right;font-variant-numeric:tabular-nums}
table.nums td:first-child,table.nums td:last-child:nth-child(4){text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:1.5em 2em;align-items:flex-start;margin:1.2em 0}
figure.fig{margin:0;max-width:100%}
figure.fig img{display:block;max-width:100%;height:auto;border:1px solid #ddd}
img.px{image-rendering:pixelated}
figcaption{font-size:.9em;color:#333;margin-top:.4em;max-width:52em}
figcaption .file{color:#888;font-size:.9em;overflow-wrap:anywhere}
code{font-size:.9em;background:#f3f3f3;padding:0 .2em;overflow-wrap:anywhere}
.src{font-size:.85em;color:#555}
details{font-size:.85em;color:#555;overflow-wrap:anywhere;margin:.5em 0}
.missing{color:#a33} .quick{background:#fff4d6;padding:.5em 1em;border:1px solid #e6c65c}
nav{display:flex;flex-wrap:wrap;gap:.2em 1.2em}
@media (max-width:720px){
 table.wide,table.wide tbody,table.wide tr,table.wide td{display:block;width:100%}
 table.wide thead{display:none}
 table.wide tr{border:1px solid #ccc;margin-bottom:.8em}
 table.wide td{display:flow-root;border:0;border-bottom:1px solid #eee;text-align:right}
 table.wide td:last-child{border-bottom:0}
 table.wide td::before{content:attr(data-label);float:left;color:#666;text-align:left;
  padding-right:1em}
 table.wide td:last-child:nth-child(4){text-align:right}
}
]]

function report.write(opts)
  local runs = opts.runs or "runs"
  local manifest = opts.manifest or {steps = {}}
  local metrics = {}
  for _, s in ipairs(report.sections) do metrics[s.task] = read_metrics(runs .. "/" .. s.task) end
  local extras = extra_runs(runs)
  local html = {"<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>cnnlab — how a CNN cheats on Colored MNIST</title>",
    "<style>" .. STYLE .. "</style></head><body>",
    "<h1>How a CNN cheats on Colored MNIST, and how to stop it</h1>",
    ('<p class="sub">cnnlab %s · generated %s · %d threads, %s GEMM · the study told in '
      .. "docs/study.md</p>"):format(esc(require("cnnlab").version), os.date("%Y-%m-%d %H:%M"),
      core.get_threads(), core.gemm_backend())}
  if opts.quick then
    html[#html + 1] = '<p class="quick">Quick run: every task on a small subset (one training '
      .. "epoch), for a first look; its numbers are not the study's. Run <code>make demo</code> "
      .. "for the full study.</p>"
  end
  local nav = {'<nav><a href="#findings">findings</a>'}
  for _, s in ipairs(report.sections) do
    nav[#nav + 1] = ('<a href="#%s">%s</a>'):format(s.task, esc(s.title:match("^(Task %d+)") or s.task))
  end
  for _, name in ipairs(extras) do
    nav[#nav + 1] = ('<a href="#run-%s">%s</a>'):format(esc(name:gsub("[^%w]", "-")), esc(name))
  end
  nav[#nav + 1] = "</nav>"
  html[#html + 1] = table.concat(nav, "")
  html[#html + 1] = '<section id="findings"><h2>Findings</h2>'
  local ok_f, f = pcall(findings, runs, metrics)
  html[#html + 1] = ok_f and f or ('<p class="missing">%s</p>'):format(esc(f))
  html[#html + 1] = "</section>"
  for n, s in ipairs(report.sections) do
    local dir = runs .. "/" .. s.task
    html[#html + 1] = ('<section id="%s"><h2>%s</h2>'):format(s.task, esc(s.title))
    html[#html + 1] = "<p>" .. s.narrative .. "</p>"
    local m = metrics[s.task]
    if not m then
      html[#html + 1] = ('<p class="missing">Not run yet: no %s/metrics.json (<code>./cnnlab %s</code>).</p>')
        :format(esc(s.task), esc(s.script))
    else
      local ok, rows = pcall(s.rows, m)
      if ok and #rows > 0 then html[#html + 1] = number_table(rows) end
      if s.html then
        local ok_html, extra = pcall(s.html, m)
        html[#html + 1] = ok_html and extra or ('<p class="missing">%s</p>'):format(esc(extra))
      end
      local step = manifest.steps and manifest.steps[s.task]
      local cmd = step and step.command or ("./cnnlab " .. s.script)
      local when = step and step.finished and (" on %s in %.0f s"):format(step.finished,
        step.seconds or 0) or ""
      local log = util.exists(dir .. "/log.txt")
        and ('; its output: <a href="%s/log.txt">%s/log.txt</a>'):format(s.task, s.task) or ""
      html[#html + 1] = ('<p class="src">Numbers from <a href="%s/metrics.json">%s/metrics.json</a>, '
        .. "written by <code>%s</code>%s%s.</p>"):format(s.task, s.task, esc(cmd), when, log)
      html[#html + 1] = figures_html(s.task, figures_of(s.task, dir, m), (n - 1) .. ".")
      html[#html + 1] = file_links(s.task, dir)
    end
    html[#html + 1] = "</section>"
  end
  for i, name in ipairs(extras) do
    local ok, s = pcall(extra_section, runs, name, ("R%d."):format(i))
    html[#html + 1] = ok and s or ('<p class="missing">%s: %s</p>'):format(esc(name), esc(s))
  end
  html[#html + 1] = "</body></html>\n"
  local path = runs .. "/report.html"
  util.write_file(path, table.concat(html, "\n"))
  return path
end

-- ------------------------------------------------------------------ the browser

local function find_browser()
  for _, name in ipairs({"chromium", "chromium-browser", "google-chrome"}) do
    local p = io.popen("command -v " .. name .. " 2>/dev/null")
    local found = p:read("l")
    p:close()
    if found and found ~= "" then return found end
  end
  return nil, "chromium is not installed (apt-get install chromium)"
end
report.browser = find_browser

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local p = io.popen("pwd")
  local cwd = p:read("l")
  p:close()
  return cwd .. "/" .. path
end

-- Runs headless Chromium with the given flags on a file: URL; returns its standard output.
local function chromium(flags, path)
  local browser, why = find_browser()
  if not browser then return nil, why end
  local profile = os.tmpname()
  os.remove(profile)
  -- The flags keep a headless Chromium from reaching for the network on a closed machine.
  local cmd = ("%s --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
    .. "--disable-background-networking --disable-component-update --disable-sync "
    .. "--hide-scrollbars --user-data-dir=%s %s %s 2>/dev/null"):format(util.shell_quote(browser),
    util.shell_quote(profile), flags, util.shell_quote("file://" .. absolute(path)))
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  os.execute("rm -rf " .. util.shell_quote(profile))
  return out
end

-- The page that loads the report in frames of the given widths and every SVG it shows on its
-- own, measures them, and writes what it found as JSON into <pre id="result">.
local HARNESS = [[<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<pre id="result">pending</pre>
<script>
var REPORT = %s, WIDTHS = %s, HEIGHT = %d, SECTIONS = %s;
var result = {pages: {}, svgs: {}, problems: []};
function describe(el) {
  var s = el.tagName.toLowerCase();
  if (el.id) s += '#' + el.id;
  if (el.className && typeof el.className === 'string') s += '.' + el.className.split(' ').join('.');
  var t = (el.textContent || el.getAttribute('src') || '').replace(/\s+/g, ' ').trim();
  return s + ' "' + t.slice(0, 50) + '"';
}
function checkPage(win, width) {
  var d = win.document, root = d.documentElement, vw = root.clientWidth;
  var page = {viewport: vw, height: root.scrollHeight, scroll_width: root.scrollWidth,
    images: 0, figures: 0, overflow: [], overflow_count: 0};
  var add = function (what) { result.problems.push(width + ' px: ' + what); };
  var els = d.body.getElementsByTagName('*');
  for (var i = 0; i < els.length; i++) {
    var r = els[i].getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > vw + 1 || r.left < -1) {
      page.overflow_count++;
      if (page.overflow.length < 8) {
        page.overflow.push(describe(els[i]) + ' spans ' + Math.round(r.left) + '..' + Math.round(r.right));
        add('wider than the ' + vw + ' px viewport: ' + describe(els[i]) + ' spans ' +
          Math.round(r.left) + '..' + Math.round(r.right));
      }
    }
  }
  if (root.scrollWidth > vw + 1) add('the page scrolls sideways (' + root.scrollWidth + ' px wide)');
  for (var i = 0; i < d.images.length; i++) {
    var img = d.images[i];
    page.images++;
    if (!img.complete || img.naturalWidth === 0) add('picture did not load: ' + img.getAttribute('src'));
  }
  var figs = d.getElementsByTagName('figure');
  for (var i = 0; i < figs.length; i++) {
    page.figures++;
    var fc = figs[i].getElementsByTagName('figcaption')[0];
    var src = (figs[i].querySelector('img') || {getAttribute: function () { return '?'; }}).getAttribute('src');
    var text = '';
    if (fc) {
      var c = fc.cloneNode(true), spans = c.querySelectorAll('.file, b');
      for (var k = 0; k < spans.length; k++) spans[k].remove();
      text = c.textContent.replace(/\s+/g, ' ').trim();
    }
    if (figs[i].hasAttribute('data-uncaptioned') || text.split(' ').length < 6 || !/[.!?]$/.test(text))
      add('figure without a caption sentence: ' + src + (text ? ' ("' + text.slice(0, 60) + '")' : ''));
  }
  for (var i = 0; i < SECTIONS.length; i++)
    if (!d.getElementById(SECTIONS[i])) add('section "' + SECTIONS[i] + '" is missing');
  result.pages[width] = page;
  var svgs = [];
  for (var i = 0; i < d.images.length; i++)
    if (/\.svg$/i.test(d.images[i].src) && svgs.indexOf(d.images[i].src) < 0) svgs.push(d.images[i].src);
  return svgs;
}
function checkSvg(frame, url) {
  var name = url.replace(/^.*\/([^\/]+\/[^\/]+)$/, '$1');
  var d = frame.contentDocument, root = d && d.documentElement;
  if (!root || root.tagName.toLowerCase() !== 'svg') { result.problems.push(name + ': did not load as SVG'); return; }
  var vb = root.viewBox && root.viewBox.baseVal, rr = root.getBoundingClientRect();
  var bx = vb && vb.width ? vb : {x: 0, y: 0, width: rr.width, height: rr.height};
  var sx = rr.width / bx.width, sy = rr.height / bx.height, out = 0, texts = d.getElementsByTagName('text');
  for (var i = 0; i < texts.length; i++) {
    if (!texts[i].textContent.trim()) continue;
    var b = texts[i].getBoundingClientRect();
    var x0 = (b.left - rr.left) / sx, x1 = (b.right - rr.left) / sx;
    var y0 = (b.top - rr.top) / sy, y1 = (b.bottom - rr.top) / sy;
    if (x0 < -1 || y0 < -1 || x1 > bx.width + 1 || y1 > bx.height + 1) {
      out++;
      if (out <= 5) result.problems.push(name + ': text "' + texts[i].textContent.slice(0, 50) +
        '" extends outside the ' + Math.round(bx.width) + '×' + Math.round(bx.height) +
        ' picture (' + Math.round(x0) + ',' + Math.round(y0) + '..' + Math.round(x1) + ',' + Math.round(y1) + ')');
    }
  }
  result.svgs[name] = {texts: texts.length, outside: out};
}
function load(src, width, height, then) {
  var f = document.createElement('iframe');
  f.style.border = '0'; f.width = width; f.height = height;
  f.onload = function () { try { then(f); } catch (e) { result.problems.push(src + ': ' + e); } next(); };
  f.src = src;
  document.body.appendChild(f);
}
var queue = [], svgList = [];
function next() {
  var job = queue.shift();
  if (job) { job(); return; }
  document.getElementById('result').textContent = JSON.stringify(result);
}
WIDTHS.forEach(function (w, i) {
  queue.push(function () {
    load(REPORT, w, HEIGHT, function (f) {
      var list = checkPage(f.contentWindow, w);
      if (i === 0) list.forEach(function (u) {
        queue.push(function () { load(u, 3000, 3000, function (g) { checkSvg(g, u); g.remove(); }); });
      });
      f.remove();
    });
  });
});
next();
</script></body></html>
]]

--- Loads the report in headless Chromium at each width (default 1280 and 390 px) and every
-- SVG it shows on its own. Returns {problems = {...}, pages = {[width] = {height =, images =,
-- figures =, ...}}, svgs = {...}}, or nil and a reason (no Chromium, or the page did not
-- finish). Problems: an element wider than the viewport, a picture that did not load, a figure
-- without a caption sentence, a missing section (opts.sections: ids), SVG text outside its
-- picture.
function report.check(html_path, opts)
  opts = opts or {}
  local widths = opts.widths or {1280, 390}
  local sections = opts.sections or {"findings"}
  if not opts.sections then
    for _, s in ipairs(report.sections) do sections[#sections + 1] = s.task end
  end
  local dir = os.tmpname()
  os.remove(dir)
  util.mkdir_p(dir)
  local harness = dir .. "/harness.html"
  util.write_file(harness, HARNESS:format(util.json_encode("file://" .. absolute(html_path)),
    util.json_encode(widths), opts.height or 800, util.json_encode(sections)))
  local out, why = chromium(("--allow-file-access-from-files --virtual-time-budget=%d --dump-dom")
    :format(opts.budget or 60000), harness)
  os.execute("rm -rf " .. util.shell_quote(dir))
  if not out then return nil, why end
  local json = out:match('<pre id="result">(.-)</pre>')
  if not json or json == "pending" then
    return nil, "the check page did not finish in headless Chromium"
  end
  json = json:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"'):gsub("&amp;", "&")
  local ok, result = pcall(util.json_decode, json)
  if not ok then return nil, "unreadable result from the check page: " .. tostring(result) end
  result.problems = result.problems or {}
  return result
end

--- Writes a screenshot of the whole page, `width` wide (default 1280) — its height measured
-- first (opts.height to give it), or a fixed opts.height for the top of the page only.
-- Returns the height, or nil and a reason.
function report.screenshot(html_path, png, opts)
  opts = opts or {}
  local width = opts.width or 1280
  local height = opts.height
  if not height then
    local r, why = report.check(html_path, {widths = {width}, sections = {}})
    if not r then return nil, why end
    local page = r.pages[tostring(width)] or r.pages[width]
    height = page and page.height
    if not height then return nil, "could not measure the page" end
  end
  height = math.min(math.ceil(height), opts.max_height or 40000)
  local out, why = chromium(("--allow-file-access-from-files --virtual-time-budget=10000 "
    .. "--window-size=%d,%d --screenshot=%s"):format(width, height, util.shell_quote(absolute(png))),
    html_path)
  if not out then return nil, why end
  if not util.exists(png) then return nil, "Chromium wrote no screenshot" end
  return height
end

--- The DOM of an HTML file after headless Chromium loaded it (and a screenshot of the whole
-- page when opts.screenshot is a path); nil and a reason without Chromium.
function report.render(html_path, opts)
  opts = opts or {}
  local dom, why = chromium("--virtual-time-budget=10000 --dump-dom", html_path)
  if not dom then return nil, why end
  if opts.screenshot then
    report.screenshot(html_path, opts.screenshot, {width = opts.width, height = opts.height})
  end
  return dom
end

return report
