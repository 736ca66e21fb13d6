--- cnnlab.attack — the engine of adversarial attacks under an L∞ budget, for any model that
-- maps N×C×H×W inputs in [0,1] to N×K logits. Each attack is one file of lua/cnnlab/attacks/
-- (pgd, fgsm, apgd; the registry cnnlab.attacks finds them by name or path) that sets its
-- defaults and its step; this file does the rest, targeted or untargeted. APGD has its own
-- engine (its `run`), which reuses attack.check and attack.judge from here.
--
--   local r = attack.pgd(model, x, {target = 3, eps = 0.05, confidence = 0.9})
--   local r = attack.pgd(model, x, {labels = y, eps = 0.03})          -- untargeted
--   local r = attack.fgsm(model, x, {target = 3, eps = 0.05})
--   local r = attack.run(lab.attacks.load("path/to/mine.lua"), model, x, opts)
--
-- Options (all optional except target or labels):
--   target        integer class, or int64 tensor of N classes: a targeted attack (makes the
--                 model answer target); every target must be in 0..classes−1
--   labels        int64 tensor of N true classes (or an integer): an untargeted attack (makes
--                 the model answer anything else); give target or labels, not both
--   eps           L∞ budget ε ≥ 0 (default 0.05)
--   step_size     α > 0 per step (default: the attack's, else ε/4; FGSM: ε)
--   steps         number of gradient steps, an integer ≥ 1 (default: the attack's, else 20)
--   confidence    targeted: success needs softmax p(target) ≥ confidence (default 0.9);
--                 untargeted: success needs the wrong answer's probability ≥ confidence
--                 (default 0: any wrong answer)
--   early_stop    stop each sample as soon as it succeeds (default true)
--   random_start  start from x + U(−ε, ε) (clipped), drawn from `generator` (default false)
--   generator     a lab.Generator, required with random_start
--   loss          "ce" (default): cross-entropy; "margin": max_{j≠c} z_j − z_c on the logits
--                 (Carlini–Wagner's f6 without its clamp), for class c
--   batch         samples per forward/backward pass (default 512)
--   classes       number of classes K (default 10)
--
-- The update (the signed-gradient step of PGD and FGSM; an attack file's own `step` replaces
-- it): a targeted attack descends the loss of the target,
--   x ← x − α·sign(∇ₓ L(f(x), target))                         (sign −1)
-- an untargeted one ascends the loss of the true label,
--   x ← x + α·sign(∇ₓ L(f(x), label))                           (sign +1)
-- with L the cross-entropy (or the margin loss, which is also high when c is not winning).
-- and after every step x is projected into the ε-ball around the original and into [0,1]
-- (clip after every step). Before each step every active sample is checked; one that
-- succeeds is set aside with the number of steps it took, so each step is one forward and
-- one backward of the still-active samples only. The model runs in evaluation mode (dropout
-- off) and its parameters are not differentiated; both are restored afterwards.
--
-- The projection uses the bound ε − 1e-6 (for ε > 0): every returned element then differs
-- from its original by at most ε even after float32 rounding, checked by any reader.
--
-- Result: {
--   adversarial   float32 N×C×H×W in [0,1]
--   success       uint8 N (1: the condition holds at the returned image)
--   steps         int64 N, gradient steps taken (0: the original already succeeded)
--   confidence    float32 N: targeted p(target); untargeted p(answer) at the returned image
--   pred          int64 N, the model's answer on the returned image
--   linf, l2      float32 N, norms of adversarial − original
--   n, n_success, success_rate (percent), mean_steps, mean_confidence, max_linf
--   passes        {forward =, backward =}: images passed forward and backward, summed over
--                 steps (the attack's cost; early-stopped samples cost nothing after)
--   settings      {attack = the attack's name, targeted, sign, eps, step_size, steps,
--                  random_start, confidence, early_stop, loss, batch}
-- }
local core = require "cnnlab.core"
local util = require "cnnlab.util"
local nn = require "cnnlab.nn"

local attack = {}

attack.DEFAULTS = {eps = 0.05, steps = 20, confidence = 0.9, batch = 512, classes = 10,
  step_fraction = 0.25}

-- Shrinks the projection bound so float32 rounding never carries an element past ε.
attack.EPS_MARGIN = 1e-6

local function shape_string(t) return table.concat(t.shape, "×") end

local function fail(fn, fmt, ...)
  util.user_error(fn .. ": " .. string.format(fmt, ...))
end

local function is_number(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

local KNOWN = {target = true, labels = true, eps = true, step_size = true, steps = true,
  confidence = true, early_stop = true, random_start = true, generator = true, batch = true,
  classes = true, loss = true}

-- Classes as an int64 tensor of n entries: from an integer or a tensor, each in 0..k−1.
local function class_vector(fn, what, v, n, k)
  if math.type(v) == "integer" or (type(v) == "number" and v == math.floor(v)) then
    if v < 0 or v >= k then
      fail(fn, "%s must be a class in 0..%d, got %s", what, k - 1, tostring(v))
    end
    return core.full({n}, math.tointeger(v), {dtype = "int64"})
  end
  if not core.is_tensor(v) then
    fail(fn, "%s must be an integer class or an int64 tensor of %d classes, got %s", what, n,
      type(v) == "number" and tostring(v) or type(v))
  end
  if v.ndim ~= 1 or v:numel() ~= n then
    fail(fn, "%s must hold one class per sample (%d), got shape %s", what, n, shape_string(v))
  end
  local t = v:long()
  local lo, hi = t:min():item(), t:max():item()
  if lo < 0 or hi >= k then
    fail(fn, "%s must be classes in 0..%d, got values from %d to %d", what, k - 1, lo, hi)
  end
  return t:contiguous()
end

--- Checks the arguments; returns the settings and the class vector. p is the attack's
-- plug-in table (lua/cnnlab/attacks/): its steps, step_size and fixed_steps set the defaults.
local function check(fn, model, x, opts, p)
  local known = KNOWN
  if p.options then -- an attack's own options (APGD: norm, restarts, ...)
    known = {}
    for k in pairs(KNOWN) do known[k] = true end
    for k in pairs(p.options) do known[k] = true end
  end
  if type(model) ~= "table" and type(model) ~= "function" then
    fail(fn, "model must be a module (or a function x → logits), got %s", type(model))
  end
  if not core.is_tensor(x) then fail(fn, "x must be a tensor N×C×H×W, got %s", type(x)) end
  if x.ndim ~= 4 or x:size(0) < 1 then
    fail(fn, "x must be a batch N×C×H×W with N ≥ 1, got %s", shape_string(x))
  end
  if x.dtype ~= "float32" then
    fail(fn, "x must be float32 in [0,1] (divide bytes by 255), got %s", x.dtype)
  end
  if opts == nil then fail(fn, "options table with target or labels required, got nil") end
  if type(opts) ~= "table" then fail(fn, "options must be a table, got %s", type(opts)) end
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for name in pairs(known) do names[#names + 1] = name end
      table.sort(names)
      fail(fn, "unknown option '%s' (known: %s)", tostring(k), table.concat(names, ", "))
    end
  end
  local lo, hi = x:min():item(), x:max():item()
  if not (lo >= 0 and hi <= 1) then
    fail(fn, "x must lie in [0,1], got values from %g to %g", lo, hi)
  end
  local n = x:size(0)
  local k = opts.classes or attack.DEFAULTS.classes
  if math.type(k) ~= "integer" or k < 2 then
    fail(fn, "classes must be an integer ≥ 2, got %s", tostring(k))
  end
  if (opts.target == nil) == (opts.labels == nil) then
    fail(fn, "give exactly one of target (targeted attack) or labels (untargeted attack)")
  end
  local targeted = opts.target ~= nil
  local classes = targeted and class_vector(fn, "target", opts.target, n, k)
    or class_vector(fn, "labels", opts.labels, n, k)
  local eps = opts.eps == nil and attack.DEFAULTS.eps or opts.eps
  if not is_number(eps) or eps < 0 then
    fail(fn, "eps must be a number ≥ 0, got %s", tostring(eps))
  end
  local steps = opts.steps
  if steps == nil then steps = p.fixed_steps or p.steps or attack.DEFAULTS.steps end
  if math.type(steps) ~= "integer" or steps < 1 then
    fail(fn, "steps must be an integer ≥ 1, got %s", tostring(steps))
  end
  if p.fixed_steps and steps ~= p.fixed_steps then
    fail(fn, "%s takes exactly %s, got steps = %d", p.name:upper(),
      p.fixed_steps == 1 and "one step" or (p.fixed_steps .. " steps"), steps)
  end
  local step_size = opts.step_size
  if step_size == nil then
    step_size = p.step_size and p.step_size(eps) or eps * attack.DEFAULTS.step_fraction
  end
  if not is_number(step_size) or step_size < 0 or (step_size == 0 and eps > 0) then
    fail(fn, "step_size must be a number > 0, got %s", tostring(step_size))
  end
  local confidence = opts.confidence
  if confidence == nil then confidence = targeted and attack.DEFAULTS.confidence or 0 end
  if not is_number(confidence) or confidence < 0 or confidence > 1 then
    fail(fn, "confidence must be a probability in [0, 1], got %s", tostring(confidence))
  end
  local random_start = opts.random_start or false
  if type(random_start) ~= "boolean" then
    fail(fn, "random_start must be true or false, got %s", type(random_start))
  end
  if random_start then
    local g = opts.generator
    if not (type(g) == "userdata" and getmetatable(g) and getmetatable(g).__name == "cnnlab.Generator") then
      fail(fn, "random_start needs generator = lab.Generator(seed), got %s", type(g))
    end
  end
  local batch = opts.batch or attack.DEFAULTS.batch
  if math.type(batch) ~= "integer" or batch < 1 then
    fail(fn, "batch must be a positive integer, got %s", tostring(batch))
  end
  local early_stop = opts.early_stop
  if early_stop == nil then early_stop = true end
  local loss = opts.loss or "ce"
  local losses = p.losses or {"ce", "margin"}
  local known_loss = false
  for _, l in ipairs(losses) do known_loss = known_loss or l == loss end
  if not known_loss then
    fail(fn, "loss must be \"%s\", got %s", table.concat(losses, "\" or \""), tostring(loss))
  end
  return {
    attack = p.name, targeted = targeted, sign = targeted and -1 or 1,
    eps = eps, step_size = step_size, steps = steps, confidence = confidence,
    random_start = random_start, early_stop = early_stop, loss = loss, batch = batch, classes = k,
  }, classes
end

-- Success of each row given softmax probabilities p (n×K), classes c (int64 n): returns Lua
-- lists success (booleans), confidence and prediction.
local function judge(p, c, s)
  local pmax, pred = p:max(1)
  local pc = p:gather(1, c:reshape(-1, 1)):reshape(-1)
  local pred_t, pmax_t, pc_t, c_t = pred:totable(), pmax:totable(), pc:totable(), c:totable()
  local ok, conf = {}, {}
  for i = 1, #pred_t do
    if s.targeted then
      ok[i] = pred_t[i] == c_t[i] and pc_t[i] >= s.confidence
      conf[i] = pc_t[i]
    else
      ok[i] = pred_t[i] ~= c_t[i] and pmax_t[i] >= s.confidence
      conf[i] = pmax_t[i]
    end
  end
  return ok, conf, pred_t
end

-- Attacks one chunk x0 (n rows) and writes into the per-sample lists at offset base.
local function run_chunk(model, x0, c0, s, out, base)
  local n = x0:size(0)
  local bound = s.eps > 0 and math.max(0, s.eps - attack.EPS_MARGIN) or 0
  local lo = (x0 - bound):clamp(0, 1)
  local hi = (x0 + bound):clamp(0, 1)
  local cur = x0:clone()
  if s.random_start and s.eps > 0 then
    local u = core.rand(x0.shape, {generator = s.generator})
    cur = (x0 + (u * (2 * s.eps) - s.eps)):maximum(lo):minimum(hi)
  end
  local adv = out.adversarial:narrow(0, base, n)
  local rows = {}
  for i = 1, n do rows[i] = i - 1 end -- position in the chunk of each active row
  local c = c0
  for step = 0, s.steps do
    local xa = cur:detach():requires_grad_(true)
    local logits = model(xa)
    out.forward = out.forward + #rows
    if not core.is_tensor(logits) or logits.ndim ~= 2 or logits:size(0) ~= #rows
      or logits:size(1) ~= s.classes then
      error(("the model must return %d×%d logits, got %s"):format(#rows, s.classes,
        core.is_tensor(logits) and shape_string(logits) or type(logits)), 0)
    end
    core.set_grad_enabled(false)
    local ok, conf, pred = judge(logits:detach():softmax(1), c, s)
    core.set_grad_enabled(true)
    local last = step == s.steps
    local keep = {}
    for j = 1, #rows do
      if (s.early_stop and ok[j]) or last then
        local i = base + rows[j] + 1
        out.success[i] = ok[j] and 1 or 0
        out.steps[i] = step
        out.confidence[i] = conf[j]
        out.pred[i] = pred[j]
        adv:narrow(0, rows[j], 1):copy_(cur:narrow(0, j - 1, 1))
      else
        keep[#keep + 1] = j - 1
      end
    end
    if #keep == 0 then break end
    local loss
    if s.loss == "margin" then
      local onehot = core.arange(s.classes):reshape(1, -1):eq(c:reshape(-1, 1)):float()
      local others = (logits - onehot * 1e9):max(1)
      loss = (others - (logits * onehot):sum(1)):sum()
    else
      loss = core.cross_entropy(logits, c, {reduction = "sum"})
    end
    loss:backward()
    out.backward = out.backward + #rows
    local grad = xa.grad
    core.set_grad_enabled(false)
    if #keep < #rows then
      local idx = core.tensor(keep, {dtype = "int64"})
      cur, grad, c = cur:index_select(0, idx), grad:index_select(0, idx), c:index_select(0, idx)
      lo, hi = lo:index_select(0, idx), hi:index_select(0, idx)
      local kept = {}
      for j, p in ipairs(keep) do kept[j] = rows[p + 1] end
      rows = kept
    end
    cur = s.step(cur, grad, s):maximum(lo):minimum(hi)
    core.set_grad_enabled(true)
  end
end

attack.check = check -- for attacks with their own engine (APGD)
attack.judge = judge

-- The signed-gradient step of FGSM and PGD, before the projection: x + sign·α·sign(∇).
function attack.sign_step(x, grad, s)
  return x + grad:sign() * (s.sign * s.step_size)
end

--- attack.guarded(model, fn, body): runs body with model in evaluation mode, its parameters
-- frozen and gradients on (an attack differentiates with respect to its input only), and
-- restores all of it, even on error (cnnlab.nn.frozen). A model that is a plain function runs
-- as it is. Errors begin with fn.
function attack.guarded(model, fn, body)
  local ok, err
  if type(model) == "table" and type(model.parameters) == "function" then
    ok, err = pcall(nn.frozen, model, body, {grad = true})
  else
    local was = core.set_grad_enabled(true)
    ok, err = pcall(body)
    core.set_grad_enabled(was)
  end
  if not ok then
    local msg = tostring(err)
    if not msg:find("^" .. fn) then msg = fn .. ": " .. msg end
    error(msg, 0)
  end
end

--- Runs the attack plug-in p (a table of lua/cnnlab/attacks/, see its init.lua) on x: the
-- engine above with p's defaults and p.step as the update. Errors begin with fn.
function attack.run(p, model, x, opts, fn)
  fn = fn or ("attack " .. tostring(p.name))
  local s, classes = check(fn, model, x, opts, p)
  s.generator = opts.generator
  s.step = p.step or attack.sign_step
  local n = x:size(0)
  x = x:detach():contiguous()
  local out = {adversarial = x:clone(), success = {}, steps = {}, confidence = {}, pred = {},
    forward = 0, backward = 0}
  -- evaluation mode, no parameter gradients; both restored afterwards, even on error
  attack.guarded(model, fn, function()
    for base = 0, n - 1, s.batch do
      local count = math.min(s.batch, n - base)
      run_chunk(model, x:narrow(0, base, count), classes:narrow(0, base, count), s, out, base)
    end
  end)
  s.generator, s.step = nil, nil
  local result = {settings = s, n = n}
  local was = core.set_grad_enabled(false)
  local d = (out.adversarial - x):flatten(1)
  result.linf = d:abs():max(1)
  result.l2 = (d * d):sum(1):sqrt()
  core.set_grad_enabled(was)
  result.adversarial = out.adversarial
  result.success = core.tensor(out.success, {dtype = "uint8"})
  result.steps = core.tensor(out.steps, {dtype = "int64"})
  result.confidence = core.tensor(out.confidence)
  result.pred = core.tensor(out.pred, {dtype = "int64"})
  local ns, st, cf = 0, 0, 0
  for i = 1, n do
    ns = ns + out.success[i]
    st = st + out.steps[i]
    cf = cf + out.confidence[i]
  end
  result.passes = {forward = out.forward, backward = out.backward}
  result.n_success = ns
  result.success_rate = 100 * ns / n
  result.mean_steps = st / n
  result.mean_confidence = cf / n
  result.max_linf = result.linf:max():item()
  return result
end

--- Iterative PGD under an L∞ budget (lua/cnnlab/attacks/pgd.lua; options and result above).
function attack.pgd(model, x, opts)
  return attack.run(require("cnnlab.attacks").load("pgd"), model, x, opts, "attack.pgd")
end

--- Auto-PGD (lua/cnnlab/attacks/apgd.lua): per-sample step sizes with the paper's schedule,
-- momentum, restarts; L∞ or L2 (norm = "l2"); eps may be a tensor of per-sample budgets.
function attack.apgd(model, x, opts)
  return require("cnnlab.attacks").load("apgd").run(model, x, opts, "attack.apgd")
end

--- The fast gradient sign method: one step of size ε (lua/cnnlab/attacks/fgsm.lua).
function attack.fgsm(model, x, opts)
  return attack.run(require("cnnlab.attacks").load("fgsm"), model, x, opts, "attack.fgsm")
end

--- Checks adversarial images against their originals: the largest |adv − x| (in double,
-- element by element over float32 values) and the number of elements outside [0,1] or
-- farther than eps. Returns {max_linf =, outside_ball =, outside_box =, ok =}.
function attack.verify(x, adv, eps)
  if not (core.is_tensor(x) and core.is_tensor(adv)) then
    error("attack.verify: x and adv must be tensors", 2)
  end
  if shape_string(x) ~= shape_string(adv) then
    error(("attack.verify: x is %s but adv is %s"):format(shape_string(x), shape_string(adv)), 2)
  end
  local was = core.set_grad_enabled(false)
  local d = (adv - x):abs()
  local r = {max_linf = d:max():item(),
    outside_ball = d:gt(eps):sum():item(),
    outside_box = adv:lt(0):sum():item() + adv:gt(1):sum():item()}
  core.set_grad_enabled(was)
  r.ok = r.outside_ball == 0 and r.outside_box == 0 and r.max_linf <= eps
  return r
end

--- One line describing the settings, for logs and captions.
function attack.describe(s)
  return ("%s %s, ε = %g, step %g × %d%s, %s loss, %s, sign %+d, confidence %g"):format(
    s.attack:upper(), s.targeted and "targeted" or "untargeted", s.eps, s.step_size, s.steps,
    s.early_stop and " (early stop)" or "", s.loss == "margin" and "margin" or "cross-entropy",
    s.random_start and "random start" or "no random start", s.sign, s.confidence)
end

return attack
