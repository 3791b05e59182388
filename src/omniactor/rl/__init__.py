"""Online RL, GEA's second stage (work in progress): ``algorithms`` holds the losses and
advantage estimators (GAE, PPO's clipped policy and value losses, GRPO's group-normalised
advantages), in plain torch, checked against hand-computed examples."""
