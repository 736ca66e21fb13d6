--- cnnlab.report.findings — the findings that open the report: the sentences, the key numbers
-- with the file and key each comes from, and the figure of the hard accuracies.
local svg = require "cnnlab.svg"
local H = require "cnnlab.report.html"
local F = require "cnnlab.report.figures"
local esc, fmt, wide_table, picture_size = H.esc, H.fmt, H.wide_table, H.picture_size
local figures_html = F.figures_html

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
  local k6 = m6 and H.layers_of(m6, "layer_keys", true)[1] -- conv1: the first layer
  if m6 and m6[k6 .. "_hard_baseline"] and m6[k6 .. "_hard_best_color_order"] then
    local base, best = m6[k6 .. "_hard_baseline"], m6[k6 .. "_hard_best_color_order"]
    local gain = best - base
    items[#items + 1] = ("<b>The neurons.</b> Zeroing %s's most colour-selective channels "
      .. "moves hard accuracy from %s to at best %s (random channels at that count: %s)%s")
      :format(k6, fmt(base, "%"), fmt(best, "%"),
      fmt(m6[k6 .. "_hard_random_at_best_k"], "%"), gain < 5 and ": colour is not held by a few "
      .. "channels that could be cut out." or ".")
    row(("Task 6: hard accuracy after zeroing %s's most colour-selective channels (best)"):format(k6),
      best, nil, "task6", k6 .. "_hard_best_color_order")
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

return findings
