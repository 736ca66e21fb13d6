--- Projected gradient descent under an L∞ budget (Madry et al. 2018): up to `steps` signed
-- gradient steps of α, each projected into the ε-ball and [0,1], each sample stopping as soon
-- as it succeeds. The study's attack (Task 5). Its step count and α = ε/4 are the engine's
-- defaults (attack.DEFAULTS), and its step the engine's signed-gradient step.
return {
  name = "pgd",
  description = "iterative signed-gradient steps of ε/4, projected after every step",
}
