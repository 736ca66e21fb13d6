--- cnnlab.defaults — every training default, in one table.
--
-- The optimisers, the trainer and the task scripts read their defaults from here, so that a
-- default is written once. Two kinds live side by side:
--
--   * the library's defaults (adam, adamw, sgd): what lab.optim and lab.train.fit do when a
--     caller leaves a setting out. Where PyTorch has an option of the same name, the default
--     is PyTorch's (torch.optim.Adam: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0;
--     AdamW: weight_decay 1e-2; SGD: momentum 0, weight_decay 0, nesterov false).
--     SGD has no default learning rate, as in PyTorch before 2.2: no step size suits every
--     problem, and a silent one hides a forgotten setting. optim.SGD without lr is an error.
--
--   * the study's settings (study): what the task scripts pass explicitly on every run. The
--     study's SGD uses momentum 0.9 (the trainer gave it before these defaults existed), so it
--     is written here and passed by name rather than left to SGD's default of 0.
--
-- The table is read-only: a typo such as defaults.adam.betas raises instead of giving nil.
local defaults = {}

local LR = 1e-3 -- the one learning-rate default: Adam's (PyTorch's) and the study's

defaults.adam = {lr = LR, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0,
  decoupled = false}
-- AdamW is Adam with decoupled weight decay; only the decay's default differs.
defaults.adamw = {lr = LR, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01,
  decoupled = true}
-- no lr: SGD requires one (see above).
defaults.sgd = {momentum = 0.0, weight_decay = 0.0, nesterov = false}

--- train.fit's defaults for what a call leaves out (a debias method may name its own epochs).
defaults.fit = {epochs = 5, batch = 128, optimizer = "adam", seed = 1}

--- The study's settings: the task scripts' option defaults, passed to train.fit explicitly.
defaults.study = {
  lr = LR, batch = 128, epochs = 5, optimizer = "adam", seed = 1,
  sgd_momentum = 0.9, -- with --optimizer sgd
}

--- The optimiser settings the study passes for --optimizer NAME (nil: the optimiser's own).
function defaults.study_optimizer(name)
  if tostring(name):lower() == "sgd" then return {momentum = defaults.study.sgd_momentum} end
  return {}
end

local function frozen(t, path)
  for k, v in pairs(t) do
    if type(v) == "table" then t[k] = frozen(v, path .. "." .. k) end
  end
  return setmetatable({}, {
    __index = function(_, k)
      local v = t[k]
      if v == nil then
        error(("%s has no setting '%s'"):format(path, tostring(k)), 2)
      end
      return v
    end,
    __newindex = function(_, k)
      error(("%s is read-only (tried to set '%s'); pass the value where it is used")
        :format(path, tostring(k)), 2)
    end,
    __pairs = function() return next, t, nil end,
  })
end

return frozen(defaults, "cnnlab.defaults")
