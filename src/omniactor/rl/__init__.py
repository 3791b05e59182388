"""Online RL, GEA's second stage (``omniactor rl``, docs/rl.md).

- ``config``: the run's typed configuration (``--list-keys``);
- ``rollout``: episodes sampled through ``omniactor eval``'s environment workers and agent loop;
- ``learner``: scoring the recorded acts again, PPO (with a value head) or GRPO, over processes;
- ``demonstrations``: GEA's SFT term on demonstrations (``sft_coef``);
- ``algorithms``: GAE, PPO's clipped losses, GRPO's group-normalised advantages, in plain torch;
- ``loop``: the resumable job (evaluations, metrics, checkpoints, the final agent).
"""
