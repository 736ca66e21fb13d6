--- cnnlab.report.sections — one entry per task, in the study's order: its title, a few
-- sentences, the key numbers and any extra HTML. The list that lab.report.sections is.
local H = require "cnnlab.report.html"
local esc, fmt, number_table, wide_table = H.esc, H.fmt, H.number_table, H.wide_table
local layers_of = H.layers_of

local sections = {}

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
    local layers = layers_of(m, "feature_layers") -- the model's (relu1–relu3: the seed network)
    layers[#layers + 1] = "fc"
    for _, layer in ipairs(layers) do
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
    -- the layer Grad-CAM explained and the first layer it was compared with (relu3 and relu2
    -- for the seed network)
    local layer = m.layer or "relu3"
    local other = m.compare and m.compare:match("^[^,]+") or (m.compare == nil and "relu2")
    add(("hard digits: share of the Grad-CAM map (%s) on the strokes"):format(layer), "gradcam_share_hard")
    if other then
      add(("hard digits: share of the Grad-CAM map (%s) on the strokes"):format(other),
        "gradcam_" .. other .. "_share_hard")
    end
    add("hard digits: share of Grad-CAM++ on the strokes", "gradcampp_share_hard")
    add("hard digits: share of the saliency map on the strokes", "saliency_share_hard")
    add("the strokes' share of the image (a uniform map's share)", "hard_stroke_area")
    add(("easy digits: share of the Grad-CAM map (%s) on the strokes"):format(layer), "gradcam_share_easy")
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
  narrative = [[A targeted attack (APGD: projected gradient steps on the input with an adaptive
  step size, the same autograd that trains the network) may change every pixel of a 7 by at most ε so that the network answers 3
  with at least 90% confidence. The seed expected this at ε = 0.05. Against the colour reader it
  fails there: the network answers with the colour, and turning an orange 7 into 3's yellow
  needs +0.5 in the green channel on the strokes, ten times the budget. The success curve shows
  the ε at which the attack takes over; the hard set's 7s that already wear a colour close to
  yellow fall at once.]],
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
    local keys = layers_of(m, "layer_keys", true) -- conv1–conv3: the seed network
    for _, layer in ipairs(keys) do
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
    for i = #keys, 1, -1 do -- the deepest layer the flip statistic measured
      local median = m["flip_" .. keys[i] .. "_median"]
      if median then
        rows[#rows + 1] = {("%s: channels zeroed (by attribution) before an easy digit's answer "
          .. "changes, median"):format(keys[i]), median}
        break
      end
    end
    return rows
  end}

return sections
