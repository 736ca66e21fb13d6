--- The fast gradient sign method (Goodfellow et al. 2015): one signed-gradient step of the
-- whole budget ε — PGD with steps = 1 and α = ε.
return {
  name = "fgsm",
  description = "one signed-gradient step of size ε",
  fixed_steps = 1,
  step_size = function(eps) return eps end,
}
