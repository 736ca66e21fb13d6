--- Auto-PGD (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness with an
-- ensemble of diverse parameter-free attacks"), written from the paper's definitions.
--
-- Every sample has its own step size η, starting at 2ε. For N iterations the checkpoints are
-- w_j = ⌈p_j·N⌉ with p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)
-- (for N = 100: 0, 22, 41, 57, 70, 80, 87, 93, 99). The update, maximising the objective f,
--   z   = P(x_k + η·s(∇f(x_k)))                        s = sign (L∞) or ∇/‖∇‖₂ (L2)
--   x_{k+1} = P(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1}))       α = 0.75 (x_1 = z at k = 0)
-- with P the projection into the ε-ball around the original and into [0,1]. At checkpoint w_j
-- the step of a sample is halved when
--   condition 1: f increased in fewer than ρ·(w_j − w_{j−1}) of the iterations since w_{j−1}
--                (ρ = 0.75), or
--   condition 2: η and the best objective f_max were both unchanged since w_{j−1};
-- and a sample whose step was halved restarts from its best point x_max (the one with f_max).
--
-- Objectives (maximised; t the target, y the true class, π the classes sorted by logit):
--   ce   targeted: log p_t (= −cross-entropy of t); untargeted: cross-entropy of y
--   dlr  targeted: −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e−12)
--        untargeted: −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e−12)
-- The targeted DLR needs y: option `source` (a class or an int64 tensor; default: the model's
-- highest class other than t on the original — its answer, unless it already answers t).
--
-- Success is the study's criterion (cnnlab.attack: targeted — the answer is t and p_t ≥
-- confidence), checked at every iterate; a sample stops at its first successful iterate and
-- that image is returned. Failing samples return their iterate with the highest p_t
-- (untargeted: the highest wrong-answer probability) over all iterates and restarts.
-- `restarts` > 1 runs the failing samples again from a uniform random point of the ball
-- (drawn from `generator`, default lab.Generator(0)).
--
-- Options beyond cnnlab.attack's: norm ("linf" default, or "l2"), restarts (1), rho (0.75),
-- momentum (0.75), source (targeted DLR's true class); eps may also be a float tensor of N
-- budgets, one per sample (the minimal-ε bisection uses that). steps = N iterations
-- (default 100); step_size = the initial η (default 2ε). Cost: N + 1 forward and N backward
-- passes per sample and restart at most, like PGD with steps = N.
local core = require "cnnlab.core"

local apgd = {
  name = "apgd",
  description = "Auto-PGD: per-sample step sizes halved at checkpoints, momentum 0.75, restarts",
  steps = 100,
  step_size = function(eps) return 2 * eps end,
  losses = {"ce", "dlr"},
  options = {norm = true, restarts = true, rho = true, momentum = true, source = true},
  RHO = 0.75, MOMENTUM = 0.75,
}

--- The checkpoints of N iterations: a list of iteration indices (w_0 = 0 first) and the p_j.
function apgd.checkpoints(n_iter)
  local p = {0, 0.22}
  while true do
    local nxt = p[#p] + math.max(p[#p] - p[#p - 1] - 0.03, 0.06)
    if nxt > 1 + 1e-12 then break end
    p[#p + 1] = nxt
  end
  local w, seen = {}, {}
  for _, pj in ipairs(p) do
    local wj = math.min(n_iter, math.ceil(pj * n_iter - 1e-9))
    if not seen[wj] then seen[wj] = true; w[#w + 1] = wj end
  end
  return w, p
end

local function fail(fn, fmt, ...) error(fn .. ": " .. string.format(fmt, ...), 0) end

-- Per-sample column n×1×1×1 from a Lua list.
local function col(list, ndim)
  local t = core.tensor(list)
  if ndim == 4 then return t:reshape(-1, 1, 1, 1) end
  return t:reshape(-1, 1)
end

-- Row-wise blend: rows where mask (Lua booleans) is true take b, others a.
local function pick(a, b, mask)
  local m, any = {}, false
  for i, v in ipairs(mask) do m[i] = v and 1 or 0; any = any or v end
  if not any then return a end
  local mt = col(m, a.ndim)
  return a * (1 - mt) + b * mt
end

-- The objective per sample (a differentiable tensor of n values) from the logits.
local function objective(logits, c, src, s)
  local k = s.classes
  if s.loss == "ce" then
    local lp = logits:log_softmax(1):gather(1, c:reshape(-1, 1)):reshape(-1)
    return s.targeted and lp or -lp
  end
  -- DLR: masks of π1, π3, π4 (sorted logits) and of y, t, from the logits' values
  local z = logits:detach():totable()
  local m1, m3, m4, my, mt = {}, {}, {}, {}, {}
  local ct, yt = c:totable(), src and src:totable()
  for i, row in ipairs(z) do
    local order = {}
    for j = 1, k do order[j] = j end
    table.sort(order, function(a, b) return row[a] > row[b] end)
    local r1, r3, r4, ry, rt = {}, {}, {}, {}, {}
    for j = 1, k do r1[j], r3[j], r4[j], ry[j], rt[j] = 0, 0, 0, 0, 0 end
    r1[order[1]], r3[order[3] or order[#order]] = 1, 1
    r4[order[4] or order[#order]] = 1
    if s.targeted then
      ry[yt[i] + 1], rt[ct[i] + 1] = 1, 1
    else
      ry[ct[i] + 1] = 1
      local best -- the largest other logit
      for _, j in ipairs(order) do if j ~= ct[i] + 1 then best = j; break end end
      rt[best] = 1
    end
    m1[i], m3[i], m4[i], my[i], mt[i] = r1, r3, r4, ry, rt
  end
  local function pickz(m) return (logits * core.tensor(m)):sum(1) end
  local num = pickz(my) - pickz(mt)
  local den = s.targeted and (pickz(m1) - (pickz(m3) + pickz(m4)) * 0.5)
    or (pickz(m1) - pickz(m3))
  return -(num / (den + 1e-12))
end

-- The step direction: sign of the gradient (L∞) or the gradient over its L2 norm.
local function direction(grad, s)
  if s.norm == "linf" then return grad:sign() end
  local g = grad:flatten(1)
  local norm = (g * g):sum(1):sqrt() + 1e-12
  return grad / norm:reshape(-1, 1, 1, 1)
end

-- Projection into the ball of radius bound (n×1×1×1) around x0 and into [0,1].
local function project(x, st, s)
  if s.norm == "linf" then return x:maximum(st.lo):minimum(st.hi) end
  local d = x - st.x0
  local norm = (d:flatten(1) * d:flatten(1)):sum(1):sqrt():reshape(-1, 1, 1, 1)
  local factor = (st.bound / (norm + 1e-12)):clamp(0, 1)
  return (st.x0 + d * factor):clamp(0, 1)
end

-- Keeps the rows idx (0-based Lua list) of every state tensor and list.
local TENSORS = {"x0", "bound", "lo", "hi", "x", "xprev", "xmax", "gmax", "c", "src"}
local LISTS = {"rows", "eta", "fmax", "fprev", "incr", "eta_ck", "fmax_ck"}
local function compact(st, keep)
  local idx = core.tensor(keep, {dtype = "int64"})
  for _, k in ipairs(TENSORS) do if st[k] then st[k] = st[k]:index_select(0, idx) end end
  for _, k in ipairs(LISTS) do
    local new = {}
    for j, p in ipairs(keep) do new[j] = st[k][p + 1] end
    st[k] = new
  end
end

-- One run of N iterations on the rows `rows` (global 0-based positions) from `start`.
local function run_once(model, st, s, out, attack)
  local n_iter = s.steps
  local ckpts = apgd.checkpoints(n_iter)
  local is_ckpt, prev_ckpt = {}, {}
  for j = 2, #ckpts do is_ckpt[ckpts[j]] = true; prev_ckpt[ckpts[j]] = ckpts[j - 1] end
  for k = 0, n_iter do
    local n = #st.rows
    local xa = st.x:detach():requires_grad_(true)
    local logits = model(xa)
    if not core.is_tensor(logits) or logits.ndim ~= 2 or logits:size(0) ~= n
      or logits:size(1) ~= s.classes then
      error(("the model must return %d×%d logits, got %s"):format(n, s.classes,
        core.is_tensor(logits) and table.concat(logits.shape, "×") or type(logits)), 0)
    end
    out.forward = out.forward + n
    local last = k == n_iter
    local f, grad
    if not last then
      f = objective(logits, st.c, st.src, s)
      f:sum():backward()
      out.backward = out.backward + n
      grad = xa.grad
    end
    core.set_grad_enabled(false)
    local ok, conf, pred = attack.judge(logits:detach():softmax(1), st.c, s)
    local fv = f and f:detach():totable()
    -- the best image by the study's criterion: the first success, else the highest confidence
    local better, keep = {}, {}
    for j = 1, n do
      local i = st.rows[j] + 1
      better[j] = false
      if out.success[i] == 0 and (ok[j] or conf[j] > out.confidence[i]) then
        out.success[i] = ok[j] and 1 or 0
        out.confidence[i], out.pred[i] = conf[j], pred[j]
        out.steps[i] = out.done_steps[i] + k
        better[j] = true
      end
      if not (ok[j] and s.early_stop) then keep[#keep + 1] = j - 1 end
    end
    -- write the improved rows into the output images
    local any = false
    for j = 1, n do any = any or better[j] end
    if any then
      for j = 1, n do
        if better[j] then
          out.adversarial:narrow(0, st.rows[j], 1):copy_(st.x:narrow(0, j - 1, 1))
        end
      end
    end
    if last or #keep == 0 then core.set_grad_enabled(true); return end
    -- the step-size schedule: best point, increases, checkpoints (per sample)
    local upd, halve = {}, {}
    for j = 1, n do
      if k == 0 then
        st.fmax[j], st.fmax_ck[j], st.eta_ck[j], st.incr[j] = fv[j], fv[j], st.eta[j], 0
        upd[j] = true
      else
        if fv[j] > st.fprev[j] then st.incr[j] = st.incr[j] + 1 end
        upd[j] = fv[j] > st.fmax[j]
        if upd[j] then st.fmax[j] = fv[j] end
      end
      st.fprev[j] = fv[j]
    end
    st.xmax = k == 0 and st.x or pick(st.xmax, st.x, upd)
    st.gmax = k == 0 and grad or pick(st.gmax, grad, upd)
    local x, g = st.x, grad
    if is_ckpt[k] then
      local width = k - prev_ckpt[k]
      for j = 1, n do
        -- condition 2 compares the step in effect before the last checkpoint's decision
        -- with the one in effect now: equal unless that checkpoint halved it
        local cond1 = st.incr[j] < s.rho * width
        local cond2 = st.eta_ck[j] == st.eta[j] and st.fmax_ck[j] == st.fmax[j]
        halve[j] = cond1 or cond2
        st.eta_ck[j], st.fmax_ck[j], st.incr[j] = st.eta[j], st.fmax[j], 0
        if halve[j] then st.eta[j] = st.eta[j] / 2 end
      end
      x, g = pick(x, st.xmax, halve), pick(g, st.gmax, halve)
      st.xprev = pick(st.xprev, st.xmax, halve)
    end
    -- the step with momentum
    local eta = col(st.eta, 4)
    local z = project(x + direction(g, s) * eta, st, s)
    local nxt
    if k == 0 then
      nxt = z
    else
      nxt = project(x + (z - x) * s.momentum + (x - st.xprev) * (1 - s.momentum), st, s)
    end
    st.xprev, st.x = x, nxt
    if #keep < n then compact(st, keep) end
    core.set_grad_enabled(true)
  end
end

--- The engine of APGD: same arguments and result as cnnlab.attack's (see attack.lua).
function apgd.run(model, x, opts, fn)
  fn = fn or "attack.apgd"
  local attack = require "cnnlab.attack"
  if type(opts) ~= "table" then fail(fn, "options must be a table, got %s", type(opts)) end
  local o, eps_t = {}, nil
  for k, v in pairs(opts) do o[k] = v end
  if core.is_tensor(o.eps) then -- one budget per sample
    eps_t = o.eps:float():contiguous()
    if eps_t.ndim ~= 1 or eps_t:numel() ~= (core.is_tensor(x) and x:size(0) or -1) then
      fail(fn, "eps as a tensor must hold one budget per sample")
    end
    if eps_t:numel() > 0 and eps_t:min():item() < 0 then fail(fn, "eps must be ≥ 0") end
    o.eps = eps_t:max():item()
  end
  local s, classes = attack.check(fn, model, x, o, apgd)
  s.norm = opts.norm or "linf"
  if s.norm ~= "linf" and s.norm ~= "l2" then
    fail(fn, "norm must be \"linf\" or \"l2\", got %s", tostring(s.norm))
  end
  s.restarts = opts.restarts or 1
  if math.type(s.restarts) ~= "integer" or s.restarts < 1 then
    fail(fn, "restarts must be an integer ≥ 1, got %s", tostring(s.restarts))
  end
  s.rho = opts.rho or apgd.RHO
  s.momentum = opts.momentum or apgd.MOMENTUM
  local n = x:size(0)
  x = x:detach():contiguous()
  local eps_list = eps_t and eps_t:totable() or {}
  if not eps_t then for i = 1, n do eps_list[i] = s.eps end end
  local step_scale = s.eps > 0 and s.step_size / s.eps or 2 -- η₀ = step_scale · ε per sample
  local generator = opts.generator
  if s.restarts > 1 and not generator then generator = require("cnnlab").Generator(0) end
  local out = {adversarial = x:clone(), success = {}, steps = {}, confidence = {}, pred = {},
    done_steps = {}, forward = 0, backward = 0}
  for i = 1, n do
    out.success[i], out.steps[i], out.confidence[i], out.pred[i] = 0, 0, -1, -1
    out.done_steps[i] = 0
  end
  attack.guarded(model, fn, function()
    local src_all
    if s.targeted and s.loss == "dlr" then
      if opts.source ~= nil then
        src_all = core.is_tensor(opts.source) and opts.source:long()
          or core.full({n}, math.tointeger(opts.source), {dtype = "int64"})
      else
        -- the model's answer on the original other than the target
        core.set_grad_enabled(false)
        local parts = {}
        for base = 0, n - 1, s.batch do
          local cnt = math.min(s.batch, n - base)
          local z = model(x:narrow(0, base, cnt))
          local onehot = core.arange(s.classes):reshape(1, -1)
            :eq(classes:narrow(0, base, cnt):reshape(-1, 1)):float()
          local _, p = (z - onehot * 1e9):max(1)
          parts[#parts + 1] = p
        end
        src_all = core.cat(parts, 0)
        core.set_grad_enabled(true)
      end
    end
    for r = 1, s.restarts do
      local todo = {}
      for i = 1, n do if out.success[i] == 0 then todo[#todo + 1] = i - 1 end end
      for b = 1, #todo, s.batch do
        local rows = {}
        for j = b, math.min(#todo, b + s.batch - 1) do rows[#rows + 1] = todo[j] end
        local idx = core.tensor(rows, {dtype = "int64"})
        local st = {rows = rows, eta = {}, fmax = {}, fprev = {}, incr = {}, eta_ck = {},
          fmax_ck = {}}
        local bounds = {}
        for j, i in ipairs(rows) do
          local e = eps_list[i + 1]
          bounds[j] = e > 0 and math.max(0, e - attack.EPS_MARGIN) or 0
          st.eta[j] = step_scale * e
        end
        core.set_grad_enabled(false)
        st.x0 = x:index_select(0, idx)
        st.bound = col(bounds, 4)
        st.lo = (st.x0 - st.bound):clamp(0, 1)
        st.hi = (st.x0 + st.bound):clamp(0, 1)
        st.c = classes:index_select(0, idx)
        st.src = src_all and src_all:index_select(0, idx)
        local start = st.x0
        if (r > 1 or s.random_start) and s.eps > 0 then
          local g = (r == 1 and opts.generator) or generator
          if s.norm == "linf" then
            local u = core.rand(st.x0.shape, {generator = g}) * 2 - 1
            start = project(st.x0 + u * st.bound, st, s)
          else
            local u = core.randn(st.x0.shape, {generator = g})
            local norm = (u:flatten(1) * u:flatten(1)):sum(1):sqrt():reshape(-1, 1, 1, 1)
            start = project(st.x0 + u / (norm + 1e-12) * st.bound, st, s)
          end
        end
        st.x, st.xprev = start, start
        core.set_grad_enabled(true)
        run_once(model, st, s, out, attack)
      end
      for i = 1, n do -- iterations spent by the samples still failing
        if out.success[i] == 0 then out.done_steps[i] = out.done_steps[i] + s.steps end
      end
    end
  end)
  s.generator = nil
  s.eps_per_sample = eps_t ~= nil
  local result = {settings = s, n = n}
  local was = core.set_grad_enabled(false)
  local d = (out.adversarial - x):flatten(1)
  result.linf = d:abs():max(1)
  result.l2 = (d * d):sum(1):sqrt()
  core.set_grad_enabled(was)
  result.adversarial = out.adversarial
  result.eps = eps_t or core.full({n}, s.eps)
  result.success = core.tensor(out.success, {dtype = "uint8"})
  result.steps = core.tensor(out.steps, {dtype = "int64"})
  result.confidence = core.tensor(out.confidence)
  result.pred = core.tensor(out.pred, {dtype = "int64"})
  result.passes = {forward = out.forward, backward = out.backward}
  for i = 1, n do -- a failing sample used every iteration of every restart
    if out.success[i] == 0 then out.steps[i] = out.done_steps[i] end
  end
  local ns, stp, cf = 0, 0, 0
  for i = 1, n do ns, stp, cf = ns + out.success[i], stp + out.steps[i], cf + out.confidence[i] end
  result.n_success, result.success_rate = ns, 100 * ns / n
  result.mean_steps, result.mean_confidence = stp / n, cf / n
  result.max_linf = result.linf:max():item()
  return result
end

return apgd
