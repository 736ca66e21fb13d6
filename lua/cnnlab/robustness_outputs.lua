--- cnnlab.robustness_outputs — what Task 5's per-model measurement (cnnlab.robustness) writes:
-- the grid at each model's median minimal ε, the CDF of the minimal ε, and table.txt.
local lab = require "cnnlab"
local util = require "cnnlab.util"
local svg = require "cnnlab.svg"
local adv = require "cnnlab.adversarial"

local outputs = {}

--- outputs.fmt_eps(opts, e) → text: a minimal ε as printed ("–" when unmeasured, "> hi" when
-- not reached within the bracket).
function outputs.fmt_eps(opts, e)
  return e == nil and "–" or (e == math.huge and ("> %g"):format(opts.min_hi) or ("%.3f"):format(e))
end
local fmt_eps = outputs.fmt_eps

--- outputs.draw_median_grid(opts, results): grid_median.png/svg, the picture at each model's median minimal ε: originals, adversarial, perturbation.
function outputs.draw_median_grid(opts, results)
  local ncol, blocks = opts.examples, {}
  local apgd = lab.attacks.load("apgd")
  for _, res in ipairs(results) do
    local run = res.run
    local k = math.min(ncol, run.n)
    local e = res.min.median
    if e == nil or e == math.huge then e = opts.min_hi end
    local x = run.x:narrow(0, 0, k)
    local r = apgd.run(res.model, x, {target = opts.target, eps = e,
      confidence = opts.confidence, steps = opts.min_steps, batch = opts.batch})
    blocks[#blocks + 1] = {label = ("%s, ε = %.3f"):format(res.name, e), k = k, x = x, r = r,
      eps = e, originals = true, clean_pred = run.clean_pred:narrow(0, 0, k),
      clean_conf = run.clean_conf:narrow(0, 0, k)}
  end
  adv.save_grid(opts.out .. "/grid_median", blocks, ncol, opts.target, 190, {
      {("%d → %d at each model's median minimal ε (APGD, %d iterations, success = p(%d) ≥ %g)")
        :format(opts.source, opts.target, opts.min_steps, opts.target, opts.confidence),
        'font-size="15" font-weight="bold"'},
      {("first %d validation %ds; captions: answer and p(%d), then L∞ of the change and steps; "
        .. "perturbation shown as 0.5 + δ·0.5/ε per channel"):format(ncol, opts.source,
        opts.target), 'fill="#444"'}})
end

--- outputs.draw_cdf(opts, results): min_eps_cdf.svg, the empirical CDF of the minimal ε per model.
function outputs.draw_cdf(opts, results)
  local series = {}
  for i, res in ipairs(results) do
    local xs, ys = adv.ecdf(res.min_eps, opts.min_hi)
    series[#series + 1] = {name = ("%s: %d→%d (%d)"):format(res.name, opts.source, opts.target,
      res.n_min), x = xs, y = ys, color = svg.palette[i]}
    if res.pairs_eps then
      local px, py = adv.ecdf(res.pairs_eps, opts.min_hi)
      series[#series + 1] = {name = ("%s: all pairs (%d each)"):format(res.name, opts.pair_n),
        x = px, y = py, color = svg.palette[i], dashed = true}
    end
  end
  for _, e in ipairs({0.05, 0.1}) do
    series[#series + 1] = {name = ("ε = %g"):format(e), x = {e, e}, y = {0, 100}, dashed = true,
      color = "#888888"}
  end
  svg.save(opts.out .. "/min_eps_cdf.svg", svg.lines{series = series, xmin = 0,
    xmax = opts.min_hi, ymin = 0, ymax = 100,
    title = ("Smallest L∞ ε turning a digit into a confident target (p ≥ %g), per model")
      :format(opts.confidence),
    xlabel = ("minimal ε (bisection with APGD, tolerance %g; > %g: not reached)"):format(
      opts.min_tol, opts.min_hi),
    ylabel = "share of digits reached (%)"})
end

--- outputs.write_tables(opts, atk, results): table.txt (also on stderr), the model table and
-- the APGD/PGD table.
function outputs.write_tables(opts, atk, results)
  local lines = {("Task 5 — %d → %d, success = answer %d with p ≥ %g; every success confirmed by a "
    .. "separate forward pass"):format(opts.source, opts.target, opts.target, opts.confidence), "",
    ("%-16s %8s %10s %10s %12s %10s | %10s %10s %10s"):format("model", "clean %",
      ("%d→%d@%g"):format(opts.source, opts.target, opts.eps), "8-bit", "median ε", "≤0.1 %",
      "pairs@" .. opts.eps, "pairs med", "pairs≤0.1")}
  for _, r in ipairs(results) do
    lines[#lines + 1] = ("%-16s %8.2f %9.1f%% %9.1f%% %12s %9.1f%% | %9s%% %10s %9s%%"):format(
      r.name, r.clean_acc, r.success, r.success_bytes, fmt_eps(opts, r.min.median), r.min.share_le_01,
      r.pairs and ("%.1f"):format(r.pairs.share_le_005) or "–",
      r.pairs and fmt_eps(opts, r.pairs.median) or "–",
      r.pairs and ("%.1f"):format(r.pairs.share_le_01) or "–")
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ("%d→%d at ε: %s validation %ds (%s). Minimal ε: first %d %ds, bisection "
    .. "in [0, %g] to %g with APGD (%d iterations, one restart). Pairs: first %d validation "
    .. "digits of each source towards each of the 9 other targets (90 pairs); 'pairs@ε' = share "
    .. "with minimal ε ≤ ε. 8-bit: still a success after rounding the saved image to bytes.")
    :format(opts.source, opts.target, opts.n > 0 and ("the first " .. results[1].n) or "all",
      opts.source, atk.name:upper(), results[1].n_min,
      opts.source, opts.min_hi, opts.min_tol, opts.min_steps, opts.pair_n)
  lines[#lines + 1] = "minimal ε per model: median [quartiles], ≤ 0.05, ≤ 0.1"
  for _, r in ipairs(results) do
    lines[#lines + 1] = ("  %-16s %s [%s, %s], %.1f%%, %.1f%% (n = %d)"):format(r.name,
      fmt_eps(opts, r.min.median), fmt_eps(opts, r.min.q1), fmt_eps(opts, r.min.q3), r.min.share_le_005,
      r.min.share_le_01, r.min.n)
  end
  if opts.compare_pgd then
    lines[#lines + 1] = ""
    lines[#lines + 1] = ("APGD (100 iterations) vs PGD (100 and 20 steps of ε/4), success %%, "
      .. "first %d validation %ds; budget per digit ≤ 101 forward + 100 backward (PGD-20: 21 + 20)")
      :format(results[1].n_compare or 0, opts.source)
    local head = ("%-16s %6s"):format("model", "ε")
    lines[#lines + 1] = head .. ("%10s %10s %10s"):format("APGD-100", "PGD-100", "PGD-20")
    for _, r in ipairs(results) do
      for _, row in ipairs(r.compare or {}) do
        lines[#lines + 1] = ("%-16s %6g %9.1f%% %9.1f%% %9.1f%%"):format(r.name, row.eps,
          row.apgd, row.pgd100, row.pgd20)
      end
    end
  end
  util.write_file(opts.out .. "/table.txt", table.concat(lines, "\n") .. "\n")
  io.stderr:write(table.concat(lines, "\n"), "\n")
end

return outputs
