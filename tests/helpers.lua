-- What several specs share: require "tests.helpers" (the specs run from the repository root).
local lab = require "cnnlab"

local helpers = {}

--- A new empty folder under the system's temporary directory.
function helpers.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  lab.util.mkdir_p(d)
  return d
end

--- The one-pixel model of the attack tests: input N×1×1×1 holding v; logits z3 = 40·(v − 0.5),
-- z7 = 0, every other class −100. So p(3) = σ(40(v − 0.5)) and p(3) ≥ 0.9 ⟺ v ≥ 0.5 + ln 9 /
-- 40 = 0.55493. The gradient of CE(·, 3) with respect to v is 40·(p3 − 1) < 0, so a targeted
-- step moves v up by exactly α; an untargeted step against label 7 moves v up as well
-- (∂CE(·,7)/∂v = 40·p3 > 0).
function helpers.pixel_model()
  local lin = lab.nn.Linear(1, 10)
  lab.no_grad(function()
    local w, b = {}, {}
    for k = 0, 9 do w[k + 1], b[k + 1] = {0}, -100 end
    w[4], b[4] = {40}, -20
    b[8] = 0
    lin.weight:copy_(lab.tensor(w))
    lin.bias:copy_(lab.tensor(b))
  end)
  return lab.nn.Sequential {lab.nn.Flatten(), lin}
end

--- Whether this run is the sanitizer build's (make check-asan sets CNNLAB_SANITIZER).
helpers.sanitized = os.getenv("CNNLAB_SANITIZER") ~= nil or
  (os.getenv("CNNLAB_BIN") or ""):find("asan", 1, true) ~= nil

--- `it` for a case that trains or runs whole task scripts. Under the sanitizers (~10x slower)
-- such cases would take CI past its time; they check learning or wiring, not memory, so there
-- they are reported pending with why, and `make test` runs them.
function helpers.heavy(why)
  local busted = require "busted" -- a spec's it and pending live in its own environment
  if not helpers.sanitized then return busted.it end
  return function(name)
    busted.pending(("%s (%s: run by make test, not under the sanitizers)"):format(name, why))
  end
end

return helpers
