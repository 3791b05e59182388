"""The losses and advantages of online RL, on flat tensors of steps.

- ``gae``: generalised advantage estimation (Schulman et al. 2016). A step that ends its
  episode by termination bootstraps nothing; one cut by the time limit (truncation)
  bootstraps from the value of the state it reached; either way the trace stops there.
- ``ppo_policy_loss``: the clipped surrogate (Schulman et al. 2017), with the statistics a
  run logs (clip fraction, approximate KL by the low-variance estimator
  ``(r - 1) - log r``); ``clipped_surrogate`` per step, with the optional dual clip (Ye et al.
  2020) that bounds the loss of a step with a negative advantage.
- ``ppo_value_loss``: the squared error to the returns, clipped around the old values.
- ``grpo_advantages``: each rollout's outcome normalised within its group (the G rollouts of
  one task seed): ``(R - mean) / (std + eps)``, no critic (Shao et al. 2024).
- ``explained_variance``: how much of the returns' variance the value head explains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
        truncated: torch.Tensor, gamma: float = 0.99, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """``(advantages, returns)`` of one environment's steps in time order, each ``(T,)``.

    ``values[t]`` = V(s_t); ``next_values[t]`` = V(s_{t+1}), the state step ``t`` reached;
    ``terminated`` / ``truncated``: step ``t`` ended its episode by the task (no future) or by the
    step limit (a future the value estimates). Several episodes may follow each other."""
    rewards, values, next_values = rewards.double(), values.double(), next_values.double()
    alive = 1.0 - terminated.double()
    ends = (terminated | truncated).double()
    deltas = rewards + gamma * next_values * alive - values
    advantages = torch.zeros_like(deltas)
    running = torch.zeros((), dtype=torch.float64)
    for t in range(len(deltas) - 1, -1, -1):
        running = deltas[t] + gamma * lam * (1.0 - ends[t]) * running
        advantages[t] = running
    return advantages.float(), (advantages + values).float()


@dataclass
class PolicyLoss:
    loss: torch.Tensor
    clip_fraction: float
    approx_kl: float


def clipped_surrogate(log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor,
                      clip: float = 0.2, dual_clip: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per step: ``-min(r A, clip(r, 1 - clip, 1 + clip) A)`` and the log-ratio ``log r`` (``(N,)`` each).

    ``dual_clip`` ``c > 1`` (Ye et al. 2020): a step with ``A < 0`` loses at most ``-c A``, and its
    gradient stops once ``r > c``. Without it, such a step's loss ``-r A`` grows with ``r``
    unbounded: one update of a narrow Gaussian's mean (std 0.1) can put ``r`` at ``e^100``. The
    ratio is taken at ``min(log r, log c)``, which is the same loss (for ``A > 0`` the clip
    already holds it at ``(1 + clip) A``) without overflowing."""
    log_ratio = log_probs - old_log_probs
    ratio = (log_ratio if dual_clip is None else log_ratio.clamp(max=math.log(dual_clip))).exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    return -torch.minimum(unclipped, clipped), log_ratio


def ratio_statistics(log_ratio: torch.Tensor, clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per step: whether the ratio left the clip range (0/1) and the approximate KL ``(r - 1) - log r``."""
    with torch.no_grad():
        ratio = log_ratio.exp()
        return ((ratio - 1.0).abs() > clip).float(), (ratio - 1.0) - log_ratio


def ppo_policy_loss(log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor,
                    clip: float = 0.2) -> PolicyLoss:
    """``-mean(min(r A, clip(r, 1 - clip, 1 + clip) A))`` with ``r = exp(log_probs - old_log_probs)``."""
    losses, log_ratio = clipped_surrogate(log_probs, old_log_probs, advantages, clip)
    clipped, kl = ratio_statistics(log_ratio, clip)
    return PolicyLoss(losses.mean(), float(clipped.mean()), float(kl.mean()))


def value_errors(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                 clip: float | None = 0.2) -> torch.Tensor:
    """Per step: ``0.5 * max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)`` (no clipping: ``clip=None``)."""
    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * unclipped
    clipped = (old_values + (values - old_values).clamp(-clip, clip) - returns) ** 2
    return 0.5 * torch.maximum(unclipped, clipped)


def ppo_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                   clip: float | None = 0.2) -> torch.Tensor:
    """The mean of ``value_errors``."""
    return value_errors(values, old_values, returns, clip).mean()


def grpo_advantages(outcomes: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each rollout's ``(R - mean_g) / (std_g + eps)`` over the rollouts of its group ``g``
    (the population standard deviation; a group whose rollouts all scored the same gives 0)."""
    outcomes = outcomes.double()
    advantages = torch.zeros_like(outcomes)
    for group in torch.unique(groups):
        members = groups == group
        scores = outcomes[members]
        advantages[members] = (scores - scores.mean()) / (scores.std(unbiased=False) + eps)
    return advantages.float()


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """``1 - Var(R - V) / Var(R)`` (nan when the returns do not vary)."""
    variance = float(returns.var(unbiased=False))
    if variance == 0:
        return float("nan")
    return 1.0 - float((returns - values).var(unbiased=False)) / variance
