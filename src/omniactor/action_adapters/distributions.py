"""The policy's distribution over one domain's actions, per adapter: what acting samples from
(or takes the mode of) and what online RL reads ``log_prob`` and ``entropy`` from.

- ``Categorical``: a classification head's logits over the domain's discrete actions.
- ``SquashedGaussian``: a regression head. The head's pre-``tanh`` output is the mean ``mu``
  of a Gaussian with a learned, state-independent ``log_std`` (one per action dimension); a
  draw ``u ~ N(mu, std)`` is squashed into the action bounds, ``a = tanh(u)`` (the normalised
  action in ``[-1, 1]``; the domain tokenizer's normaliser maps it to the motion). The
  density of ``a`` carries the change of variables (SAC, Haarnoja et al. 2018, appendix C):

      log p(a) = sum_i [ log N(atanh(a_i); mu_i, std_i) - log(1 - a_i^2) ]

  Near the bounds ``tanh`` saturates (in float32 ``tanh(u)`` is exactly 1 from ``u`` about 9
  on), so ``atanh(a)`` no longer recovers the draw. An action with ``|a_i| >= BOUND``
  (``1 - 1e-6``) therefore counts as the bound itself, and its dimension scores the
  probability of reaching it, ``P(u_i >= atanh(BOUND)) = Phi((mu_i - atanh(BOUND)) / std_i)``
  (mirrored at ``-BOUND``): the action is censored at the bound, as clipped actions are in
  Fujita & Maeda 2018 ("Clipped action policy gradient"). Without it a draw from a mean past
  the bound was scored as ``u = atanh(BOUND)``, many standard deviations from the mean, and a
  small move of the mean moved its log-probability by tens of nats: PPO's ratios exploded
  on the steps where a regression head saturates.
  It is the density of the *normalised* action: the normaliser's affine map to the motion
  adds a constant, which cancels in the probability ratios RL uses. ``mode()`` is
  ``tanh(mu)``, exactly the action the head gave before it had a distribution. The entropy
  of a squashed Gaussian has no closed form; ``entropy()`` is the Gaussian's (before the
  squash), the usual stand-in for the entropy bonus.
- ``TokenSequence``: an answer written token by token. Step ``t`` is a categorical over the
  tokens the constraint allows there (``agent.constraints``), at temperature 1:
  ``p(y_t) = softmax(logits_t[allowed_t])``. ``log_prob`` is the sum over the answer's steps
  (the product of the per-token probabilities), ``entropy`` the sum of the per-step
  entropies along the answer. ``mode()`` and ``sample()`` read the steps' own choices
  (greedy argmax, or a draw) and are meaningful along one answer's path: to draw a whole new
  answer the model has to be run step by step, which ``Agent`` generation does (and records
  as this distribution).

Every distribution is batched: one row per action.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: |a| at or past this is the bound itself: its dimension scores the probability mass beyond it
BOUND = 1.0 - 1e-6
#: ``atanh(BOUND)``: where the Gaussian before the squash reaches the bound
BOUND_PRE_SQUASH = math.atanh(BOUND)
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class ActionDistribution:
    """Batched: ``sample``/``mode`` give one value per row, ``log_prob``/``entropy`` a ``(B,)`` tensor."""

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def mode(self) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError


class Categorical(ActionDistribution):
    """``softmax(logits / temperature)`` over ``N`` choices, rows ``(B, N)``; ``-inf`` logits are
    choices ruled out (probability 0). A draw is ``sample_top_k`` over all ``N`` (the draw the
    Agent has always made, so a seeded run repeats)."""

    def __init__(self, logits: torch.Tensor, temperature: float = 1.0):
        self.raw = logits.float()
        self.temperature = float(temperature)
        self.logits = torch.log_softmax(self.raw / max(self.temperature, 1e-6), dim=-1)

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        drawn = [sample_top_k(row, self.temperature, row.numel(), generator) for row in self.raw]
        return torch.tensor(drawn, dtype=torch.long, device=self.raw.device)

    def mode(self) -> torch.Tensor:
        return self.raw.argmax(dim=-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(value, device=self.logits.device).long().reshape(-1, 1)
        return self.logits.gather(1, index).squeeze(1)

    def entropy(self) -> torch.Tensor:
        p = self.probs
        return -(p * torch.where(p > 0, self.logits, torch.zeros_like(self.logits))).sum(dim=-1)


class SquashedGaussian(ActionDistribution):
    """``tanh(N(mean, exp(log_std)))``; ``mean`` ``(B, D)`` before the squash, ``log_std`` ``(D,)``."""

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor):
        self.mean = mean.float()
        # a new tensor, not a view of the parameter: built without grad, it stays without grad
        self.log_std = log_std.float() + torch.zeros_like(self.mean)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, dtype=torch.float32).to(self.mean.device)
        return torch.tanh(self.mean + noise * self.log_std.exp())

    def mode(self) -> torch.Tensor:
        return torch.tanh(self.mean)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        a = torch.as_tensor(value, dtype=torch.float32, device=self.mean.device)
        at_bound = a.abs() >= BOUND
        inside = torch.where(at_bound, torch.zeros_like(a), a)  # finite atanh where the mass is scored
        std = self.log_std.exp()
        u = torch.atanh(inside)
        density = -0.5 * ((u - self.mean) / std) ** 2 - self.log_std - LOG_SQRT_2PI - torch.log1p(-inside * inside)
        # the mass past the bound a lies at: Phi((mu - c) / std) at +c, Phi((-c - mu) / std) at -c
        mass = torch.special.log_ndtr(torch.sign(a) * (self.mean - torch.sign(a) * BOUND_PRE_SQUASH) / std)
        return torch.where(at_bound, mass, density).sum(dim=-1)

    def entropy(self) -> torch.Tensor:
        return (0.5 + LOG_SQRT_2PI + self.log_std).sum(dim=-1)


class TokenSequence(ActionDistribution):
    """Answers as token sequences: ``logits`` ``(B, T, V)`` at each answer step, ``allowed``
    ``(B, T, V)`` the constraint's mask there, ``steps`` ``(B,)`` each row's length (the steps
    after it are padding)."""

    def __init__(self, logits: torch.Tensor, allowed: torch.Tensor, steps: torch.Tensor | Sequence[int]):
        masked = logits.float().masked_fill(~allowed, float("-inf"))
        self.log_probs = torch.log_softmax(masked, dim=-1)
        self.allowed = allowed
        self.steps = torch.as_tensor(steps, device=logits.device).long()
        positions = torch.arange(logits.shape[1], device=logits.device)
        self.valid = positions[None, :] < self.steps[:, None]  # (B, T)

    def step_log_probs(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, T)``: each step's log-probability of ``ids`` (0 on padding)."""
        ids = torch.as_tensor(ids, device=self.log_probs.device).long()
        picked = self.log_probs.gather(2, ids.clamp(min=0)[..., None]).squeeze(2)
        return torch.where(self.valid, picked, torch.zeros_like(picked))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``value``: the answers' token ids ``(B, T)``."""
        return self.step_log_probs(value).sum(dim=1)

    def step_entropies(self) -> torch.Tensor:
        p = self.log_probs.exp()
        ent = -(p * torch.where(self.allowed, self.log_probs, torch.zeros_like(self.log_probs))).sum(dim=-1)
        return torch.where(self.valid, ent, torch.zeros_like(ent))

    def entropy(self) -> torch.Tensor:
        return self.step_entropies().sum(dim=1)

    def mode(self) -> torch.Tensor:
        return torch.where(self.valid, self.log_probs.argmax(dim=-1), torch.full_like(self.valid, -1, dtype=torch.long))

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        b, t, v = self.log_probs.shape
        flat = self.log_probs.exp().reshape(b * t, v).cpu()
        flat = torch.where(flat.sum(dim=1, keepdim=True) > 0, flat, torch.ones_like(flat))  # padding rows
        drawn = torch.multinomial(flat, 1, generator=generator).reshape(b, t).to(self.log_probs.device)
        return torch.where(self.valid, drawn, torch.full_like(drawn, -1))


def sample_top_k(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator | None) -> int:
    """An index drawn from ``softmax(logits / temperature)`` over the ``top_k`` best finite logits."""
    best = logits.float().cpu().topk(min(top_k, logits.numel()))
    finite = torch.isfinite(best.values)
    values, indices = (best.values[finite], best.indices[finite]) if finite.any() else (best.values, best.indices)
    weights = torch.softmax(values / max(temperature, 1e-6), dim=0)
    return int(indices[torch.multinomial(weights, 1, generator=generator)])
