--- cnnlab.attacks — finds adversarial attacks by name or file path, as cnnlab.debias finds
-- debias methods. An attack is one Lua file returning a table:
--   name          defaults to the file's base name; settings.attack in every result
--   description   one line for --help and logs
--   steps         default number of gradient steps (default 20)
--   step_size     function(eps) → default step α (default ε/4)
--   fixed_steps   the only step count allowed (FGSM: 1), optional
--   step          function(x, grad, s) → the next x before the projection into the ε-ball and
--                 [0,1]; grad = ∇ₓ loss of the active rows, s the settings (s.sign: −1
--                 targeted, +1 untargeted; s.step_size, s.eps, ...). Default: the signed
--                 gradient step x + s.sign·α·sign(grad) (attack.sign_step)
--   run           function(model, x, opts) → result, optional: replaces the whole engine
-- Everything else — argument checks, evaluation mode, early stop, projection, the result
-- table — is cnnlab.attack's engine (lua/cnnlab/attack.lua documents options and result).
-- Shipped attacks live in lua/cnnlab/attacks/NAME.lua; `--attack path/to/mine.lua` loads any
-- other file, with no other change.
--
--   attacks.available() → names      attacks.load(name_or_path) → attack table
--   attacks.run(name_or_table, model, x, opts) → result
local plugins = require "cnnlab.plugins"

local attacks = plugins.folder{kind = "attack", dir = plugins.caller_dir(),
  check = function(t)
    for _, key in ipairs({"step", "run", "step_size"}) do
      if t[key] ~= nil and type(t[key]) ~= "function" then
        return ("field %s must be a function, got %s"):format(key, type(t[key]))
      end
    end
    for _, key in ipairs({"steps", "fixed_steps"}) do
      if t[key] ~= nil and (math.type(t[key]) ~= "integer" or t[key] < 1) then
        return ("field %s must be an integer ≥ 1, got %s"):format(key, tostring(t[key]))
      end
    end
  end}

--- Runs an attack (a name, a path or an attack table) on model and x with opts, through its own
-- run or else cnnlab.attack's engine, and returns the engine's result table.
function attacks.run(a, model, x, opts)
  if type(a) == "string" then a = attacks.load(a) end
  if type(a) ~= "table" then
    error(("attacks.run: argument #1 must be an attack name, path or table, got %s"):format(
      type(a)), 2)
  end
  if a.run then return a.run(model, x, opts) end
  return require("cnnlab.attack").run(a, model, x, opts)
end

return attacks
