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
--
-- Statistics:
--   metrics.mean_sd(xs) → mean, sample standard deviation of a list
--   metrics.masked_mean(t[, select]) → mean of a tensor's values (where select ~= 0; NaN when
--       nothing is selected)
--   metrics.correlation(a, b) → Pearson's r of two lists (NaN when either is constant)
--   metrics.quantile(sorted, q) → the q-quantile of a sorted list, linear between ranks
--       (NaN for an empty list)
--   metrics.preferences(means) → pref, selectivity: means[c][g] the mean response of unit c to
--       group g (K groups, values ≥ 0 as after a ReLU); pref[c] the group it answers most (the
--       first of equals; nil when no mean is > 0: a dead unit), selectivity[c] =
--       (best − mean of the others) / (best + mean of the others) in [0, 1] (nil when dead)
--   metrics.mean_sd_table(rows, keys) → lines: a table of mean ± sd over seeds, one line per
--       row ({method, rho, n, <key>_mean, <key>_sd, <key>_n}), one column per {key, title} of
--       keys: "—" without a mean, "x.xx (n=1)" for one seed
--   metrics.preference_order(pref, means) → the units 1..#means by preferred group (dead
--       units last), then by their highest mean response, highest first
--   metrics.preference_summary(pref, selectivity, pref_blank, n) → {preferred, preferred_blank,
--       dead, selectivity}: over n units (from metrics.preferences, on digits and on blanks),
--       how many distinct groups are preferred on each, how many units are dead, and the mean
--       selectivity of the live ones (NaN when none lives)
--   metrics.anova(groups) → acc          streaming one-way ANOVA on groupings:
--       acc:add(F, {color = g1, digit = g2}) with F N×U (one row per input, one column per
--       unit or channel) and each g an int64 N of groups 0..groups−1, batch after batch;
--       acc:result() → {color = {per =, mean =, pooled =}, ..., constant =, size =, n =}:
--       per column η² = SS_between / SS_total = Σ_g n_g (m_g − m)² / Σ_i (f_i − m)², its mean
--       over the columns that vary, and pooled Σ SS_between / Σ SS_total; constant columns
--       (a dead ReLU, a position no input reaches) are left out and counted.
local core = require "cnnlab.core"
local train = require "cnnlab.train"
local svg = require "cnnlab.svg"

local metrics = {}

local function shape_string(t) return table.concat(t.shape, "×") end

local function percent(num, den) return den > 0 and 100 * num / den or nil end

--- metrics.evaluate(model, set[, {batch = 128}]) → results: Evaluates a model on a set: accuracy
-- overall, on colour-aligned and on conflicting samples, per digit and per colour, the
-- confusion matrix, and each sample's prediction and confidence (see the header).
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

--- metrics.cell_accuracies(preds, labels, bias) → r: The literature's measures over the
-- (label, bias) cells of a set (PROTOCOLS §1), in percent, as r = {unbiased, aligned,
-- conflicting, conflicting_samples, cells, n}: unbiased = the mean over the non-empty cells of
-- each cell's accuracy; aligned = that mean over the cells with bias = label; conflicting = over
-- the cells with bias ≠ label (LfF's "skewed" cells); conflicting_samples = the plain
-- accuracy on the samples with bias ≠ label. preds, labels and bias are int64 vectors of one
-- length; any number of classes and bias values. A measure without a cell is nil.
function metrics.cell_accuracies(preds, labels, bias)
  for name, t in pairs({preds = preds, labels = labels, bias = bias}) do
    if not core.is_tensor(t) or t:dim() ~= 1 then
      error(("metrics.cell_accuracies: %s must be a 1-D tensor (one value per sample), got %s")
        :format(name, core.is_tensor(t) and shape_string(t) or type(t)), 2)
    end
  end
  local n = labels:numel()
  if preds:numel() ~= n or bias:numel() ~= n then
    error(("metrics.cell_accuracies: preds, labels and bias must have one length, got %d, %d "
      .. "and %d"):format(preds:numel(), n, bias:numel()), 2)
  end
  local p, y, b = preds:totable(), labels:totable(), bias:totable()
  local total, right = {}, {}
  local c_total, c_right = 0, 0
  for i = 1, n do
    local key = y[i] .. ":" .. b[i]
    total[key] = (total[key] or 0) + 1
    local ok = p[i] == y[i] and 1 or 0
    right[key] = (right[key] or 0) + ok
    if y[i] ~= b[i] then c_total, c_right = c_total + 1, c_right + ok end
  end
  local sums = {all = {0, 0}, aligned = {0, 0}, conflicting = {0, 0}}
  for key, t in pairs(total) do
    local yy, bb = key:match("^(-?%d+):(-?%d+)$")
    local acc = right[key] / t
    local kind = yy == bb and "aligned" or "conflicting"
    for _, k in ipairs({"all", kind}) do sums[k][1], sums[k][2] = sums[k][1] + acc, sums[k][2] + 1 end
  end
  local function mean(k) return sums[k][2] > 0 and 100 * sums[k][1] / sums[k][2] or nil end
  return {unbiased = mean("all"), aligned = mean("aligned"), conflicting = mean("conflicting"),
    conflicting_samples = percent(c_right, c_total), cells = sums.all[2], n = n}
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

--- The 10×10 confusion matrix (rows = true digit) as an annotated SVG heat map
-- (title default "Confusion matrix").
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

--- metrics.masked_mean(t[, select]) → number: The mean of a tensor's values, over the positions
-- where select ~= 0 when select is given (NaN when nothing is selected).
function metrics.masked_mean(t, select)
  local v = t:float()
  if select then
    local s = select:float()
    local k = s:sum():item()
    return k > 0 and (v * s):sum():item() / k or 0 / 0
  end
  return v:mean():item()
end

--- Pearson's correlation r of two lists of numbers of the same length (NaN when either is
-- constant).
function metrics.correlation(a, b)
  if type(a) ~= "table" or type(b) ~= "table" or #a ~= #b then
    error(("metrics.correlation: a and b must be lists of the same length, got %s and %s")
      :format(type(a) == "table" and #a or type(a), type(b) == "table" and #b or type(b)), 2)
  end
  local n = #a
  local ma, mb = 0, 0
  for i = 1, n do ma, mb = ma + a[i], mb + b[i] end
  ma, mb = ma / n, mb / n
  local sab, saa, sbb = 0, 0, 0
  for i = 1, n do
    local da, db = a[i] - ma, b[i] - mb
    sab, saa, sbb = sab + da * db, saa + da * da, sbb + db * db
  end
  if saa == 0 or sbb == 0 then return 0 / 0 end
  return sab / math.sqrt(saa * sbb)
end

--- metrics.preferences(means) → pref, selectivity: For each unit c of means[c][g] (its mean
-- response to group g), the group it answers most (nil for a dead unit) and its selectivity
-- (best − mean of the others) / (best + mean of the others).
function metrics.preferences(means)
  local pref, sel = {}, {}
  for c, row in ipairs(means) do
    local k, best, g = #row, -1, nil
    for j = 1, k do
      if row[j] > best then best, g = row[j], j end
    end
    if best > 0 then
      local rest = 0
      for j = 1, k do
        if j ~= g then rest = rest + row[j] / (k - 1) end
      end
      pref[c], sel[c] = g, (best - rest) / (best + rest)
    end
  end
  return pref, sel
end

--- metrics.mean_sd_table(rows, keys) → lines: A text table of mean ± sd over seeds, one line per
-- row and one column per {key, title} of keys ("—" without a mean, "x.xx (n=1)" for one seed).
function metrics.mean_sd_table(rows, keys)
  local function cell(row, key)
    local mean = row[key .. "_mean"]
    if not mean then return ("%16s"):format("—") end
    if (row[key .. "_n"] or 0) < 2 then return ("%16s"):format(("%.2f (n=1)"):format(mean)) end
    return ("%16s"):format(("%.2f ± %.2f"):format(mean, row[key .. "_sd"]))
  end
  local header = {("%-22s %6s %5s"):format("method", "rho", "n")}
  for _, k in ipairs(keys) do header[#header + 1] = ("%16s"):format(k[2]) end
  local lines = {table.concat(header, " ")}
  for _, row in ipairs(rows) do
    local line = {("%-22s %6s %5d"):format(row.method, ("%g"):format(row.rho), row.n)}
    for _, k in ipairs(keys) do line[#line + 1] = cell(row, k[1]) end
    lines[#lines + 1] = table.concat(line, " ")
  end
  return lines
end

--- metrics.preference_order(pref, means) → units: The units 1..#means ordered by preferred group
-- (dead units last), then by their highest mean response, highest first.
function metrics.preference_order(pref, means)
  local order = {}
  for c = 1, #means do order[c] = c end
  local function peak(c) return math.max(table.unpack(means[c])) end
  table.sort(order, function(x, y)
    local px, py = pref[x] or 99, pref[y] or 99
    if px ~= py then return px < py end
    return peak(x) > peak(y)
  end)
  return order
end

--- metrics.preference_summary(pref, selectivity, pref_blank, n) → {preferred =, preferred_blank =, dead =, selectivity =}: Over
-- n units, how many distinct groups are preferred on digits and on blanks, how many units are
-- dead, and the mean selectivity of the live ones (NaN when none lives).
function metrics.preference_summary(pref, selectivity, pref_blank, n)
  local distinct, distinct_b, dead, sel_sum, sel_n = {}, {}, 0, 0, 0
  for c = 1, n do
    if pref[c] then
      distinct[pref[c]], sel_sum, sel_n = true, sel_sum + selectivity[c], sel_n + 1
    else
      dead = dead + 1
    end
    if pref_blank[c] then distinct_b[pref_blank[c]] = true end
  end
  local function count(t) local k = 0 for _ in pairs(t) do k = k + 1 end return k end
  return {preferred = count(distinct), preferred_blank = count(distinct_b), dead = dead,
    selectivity = sel_n > 0 and sel_sum / sel_n or 0 / 0}
end

--- metrics.quantile(sorted, q) → number: The q-quantile of a sorted list, linear between ranks
-- (NaN for an empty list).
function metrics.quantile(sorted, q)
  if #sorted == 0 then return 0 / 0 end
  local pos = 1 + q * (#sorted - 1)
  local lo = math.floor(pos)
  local hi = math.min(lo + 1, #sorted)
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo])
end

--- Streaming one-way ANOVA (see the header). Values are shifted by the first batch's column
-- means before summing, so that Σ(f − m)² = Σf'² − N·m'² does not cancel in float32.
function metrics.anova(groups)
  if math.type(groups) ~= "integer" or groups < 1 then
    error(("metrics.anova: groups must be a positive integer, got %s"):format(tostring(groups)), 2)
  end
  local self = {n = 0, stats = {}, groups = groups}
  local levels = core.arange(0, groups):reshape(1, groups)
  function self.add(acc, F, groupings)
    if not core.is_tensor(F) or F:dim() ~= 2 then
      error(("metrics.anova add: F must be N×U, got %s"):format(core.is_tensor(F)
        and shape_string(F) or type(F)), 2)
    end
    if type(groupings) ~= "table" then
      error("metrics.anova add: groupings must be a table name → int64 N groups", 2)
    end
    local count, u = F:size(0), F:size(1)
    if acc.size and u ~= acc.size then
      error(("metrics.anova add: F has %d columns, earlier batches had %d"):format(u, acc.size), 2)
    end
    local was = core.set_grad_enabled(false)
    F = F:float()
    if not acc.shift then
      acc.shift = F:mean(0):reshape(1, u)
      acc.s1, acc.s2 = core.zeros(u), core.zeros(u)
      acc.size = u
    end
    local Fs = F - acc.shift
    acc.n = acc.n + count
    acc.s1 = acc.s1 + Fs:sum(0)
    acc.s2 = acc.s2 + (Fs * Fs):sum(0)
    for name, g in pairs(groupings) do
      if not core.is_tensor(g) or g:numel() ~= count or g.dtype ~= "int64" then
        core.set_grad_enabled(was)
        error(("metrics.anova add: grouping '%s' must be an int64 vector of %d groups, got %s")
          :format(tostring(name), count, core.is_tensor(g) and (g.dtype .. " " ..
          shape_string(g)) or type(g)), 2)
      end
      local onehot = g:reshape(count, 1):eq(levels):float()
      local st = acc.stats[name] or {sums = core.zeros(groups, u), counts = core.zeros(groups)}
      st.sums = st.sums + onehot:transpose(0, 1):contiguous():matmul(Fs)
      st.counts = st.counts + onehot:sum(0)
      acc.stats[name] = st
    end
    core.set_grad_enabled(was)
  end
  function self.result(acc)
    if acc.n == 0 then error("metrics.anova result: no data added", 2) end
    local was = core.set_grad_enabled(false)
    local n, u = acc.n, acc.size
    local mean = acc.s1 / n
    local sst = (acc.s2 - mean * mean * n):totable()
    local s2 = acc.s2:totable()
    local out = {size = u, constant = 0, n = n}
    local live = {}
    for k = 1, u do
      -- variance under 1e-10 (or lost to rounding: under 1e-6 of Σf'²) is a constant column
      live[k] = sst[k] > 1e-10 * n and sst[k] > 1e-6 * s2[k]
      if not live[k] then out.constant = out.constant + 1 end
    end
    for name, st in pairs(acc.stats) do
      local counts = st.counts:reshape(groups, 1)
      local gm = st.sums / counts:clamp(1, math.huge)
      local ssb = ((gm - mean:reshape(1, u)) ^ 2 * counts):sum(0):totable()
      local per, sum, cnt, sb, sw = {}, 0, 0, 0, 0
      for k = 1, u do
        if live[k] then
          per[k] = math.min(1, ssb[k] / sst[k])
          sum, cnt, sb, sw = sum + per[k], cnt + 1, sb + ssb[k], sw + sst[k]
        else
          per[k] = 0 / 0
        end
      end
      out[name] = {per = per, mean = cnt > 0 and sum / cnt or 0 / 0,
        pooled = sw > 0 and sb / sw or 0 / 0}
    end
    core.set_grad_enabled(was)
    return out
  end
  return self
end

return metrics
