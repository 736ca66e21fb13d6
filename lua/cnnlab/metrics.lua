--- cnnlab.metrics — what a trained model gets right, broken down the ways the study needs.
--
--   metrics.evaluate(model, set[, {batch = 128}]) → {
--     acc,                         percent correct
--     aligned_acc, conflicting_acc percent on samples whose colour is (not) their label's
--     n_aligned, n_conflicting
--     by_label[k + 1], by_color[k + 1]   percent per digit and per colour index (nil if none)
--     confusion[true + 1][pred + 1]      counts (rows: true class, columns: predicted)
--     preds, confidences                 int64 N and float32 N tensors
--   }
--   metrics.confusion_table(confusion) → text table for the terminal
--   metrics.confusion_svg(confusion, title) → annotated heat map (cnnlab.svg)
local core = require "cnnlab.core"
local train = require "cnnlab.train"
local svg = require "cnnlab.svg"

local metrics = {}

local function percent(num, den) return den > 0 and 100 * num / den or nil end

function metrics.evaluate(model, set, opts)
  local preds, confs = train.predict(model, set, opts)
  local labels = set.labels
  local n = labels:numel()
  local correct = preds:eq(labels)
  local result = {n = n, preds = preds, confidences = confs,
    acc = percent(correct:sum():item(), n)}
  local confusion, label_total, label_right = {}, {}, {}
  for k = 1, 10 do
    confusion[k] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
    label_total[k], label_right[k] = 0, 0
  end
  local color_total, color_right = {}, {}
  for k = 1, 10 do color_total[k], color_right[k] = 0, 0 end
  local aligned_total, aligned_right, conflict_total, conflict_right = 0, 0, 0, 0
  local p_tab, y_tab = preds:totable(), labels:totable()
  local c_tab = set.colors and set.colors:totable()
  for i = 1, n do
    local y, p = y_tab[i] + 1, p_tab[i] + 1
    confusion[y][p] = confusion[y][p] + 1
    label_total[y] = label_total[y] + 1
    local right = y == p and 1 or 0
    label_right[y] = label_right[y] + right
    if c_tab then
      local c = c_tab[i] + 1
      color_total[c] = color_total[c] + 1
      color_right[c] = color_right[c] + right
      if c == y then
        aligned_total, aligned_right = aligned_total + 1, aligned_right + right
      else
        conflict_total, conflict_right = conflict_total + 1, conflict_right + right
      end
    end
  end
  result.confusion = confusion
  result.by_label, result.by_color = {}, {}
  for k = 1, 10 do
    result.by_label[k] = percent(label_right[k], label_total[k])
    result.by_color[k] = c_tab and percent(color_right[k], color_total[k]) or nil
  end
  if c_tab then
    result.aligned_acc = percent(aligned_right, aligned_total)
    result.conflicting_acc = percent(conflict_right, conflict_total)
    result.n_aligned, result.n_conflicting = aligned_total, conflict_total
  end
  return result
end

--- The confusion matrix as a terminal table, rows = true digit, columns = prediction.
function metrics.confusion_table(confusion)
  local lines = {"true\\pred" .. string.rep(" ", 1)}
  local header = {("%9s"):format("true\\pred")}
  for k = 0, 9 do header[#header + 1] = ("%6d"):format(k) end
  header[#header + 1] = "   total"
  lines = {table.concat(header)}
  for r = 1, 10 do
    local row, total = {("%9d"):format(r - 1)}, 0
    for c = 1, 10 do
      row[#row + 1] = ("%6d"):format(confusion[r][c])
      total = total + confusion[r][c]
    end
    row[#row + 1] = ("%8d"):format(total)
    lines[#lines + 1] = table.concat(row)
  end
  return table.concat(lines, "\n")
end

function metrics.confusion_svg(confusion, title)
  local labels = {}
  for k = 0, 9 do labels[#labels + 1] = tostring(k) end
  return svg.heatmap{values = confusion, row_labels = labels, col_labels = labels,
    title = title or "Confusion matrix", xlabel = "predicted digit", ylabel = "true digit",
    fmt = "%d"}
end

--- Mean and sample standard deviation of a list of numbers.
function metrics.mean_sd(xs)
  local n, sum = #xs, 0
  for _, x in ipairs(xs) do sum = sum + x end
  local mean = n > 0 and sum / n or 0
  local ss = 0
  for _, x in ipairs(xs) do ss = ss + (x - mean) ^ 2 end
  return mean, n > 1 and math.sqrt(ss / (n - 1)) or 0
end

return metrics
