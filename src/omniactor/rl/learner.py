"""The update of one iteration: PPO or GRPO on its rollouts, over any number of processes.

``Learner.update(batches, iteration)``:

1. **Scoring** (``score``): each recorded act is scored again from exactly what it saw and
   produced (``ActRecord``: the prompt's tokens and images, the answer's ids or the head's
   value). Head domains (regression, classification) take one forward pass per chunk of
   rows, answers one pass per answer with the constraint's recorded masks
   (``TokenSequence``). The final hidden state at the answer position feeds the value head.
2. **Advantages**: PPO runs GAE on the environment's rewards with a value head per domain
   (``models.adapters.ValueHead``, on the detached hidden state, and the standardised state with
   ``value_state``; a truncated episode bootstraps from the value of the state it reached), normalised per domain
   over all processes' steps. GRPO normalises each episode's return within its group (the
   ``group_size`` rollouts of one task seed) and needs no critic. ``advantage_floor`` then
   raises the advantages below it to it (0: only better-than-baseline episodes are reinforced).
3. **Epochs of minibatches**: each step lands in a minibatch by a hash of (seed, iteration,
   epoch, episode, step), so the partition is the same on one process or several. Each
   minibatch's losses are summed and divided by its step count over all processes, the
   gradients summed over processes (``all_reduce``), clipped, and applied: N processes
   compute what one computes on the same rollouts, up to the order of float sums.
   With ``desired_kl``, each domain's learning rates follow the approximate KL of its steps in
   each minibatch after the first (``adapt_learning_rates``), the same on every process.

The policy's loss: clipped surrogate − ``entropy_coef`` × entropy (+ ``kl_coef`` × KL to the
starting policy, + ``sft_coef`` × the SFT loss on demonstrations). The critic reads detached
features, so it learns apart from the policy: on the features the scoring pass computed
before the update (cached: no second forward pass), ``value_epochs`` passes of the clipped
value loss. During the first ``value_warmup`` iterations only the value heads learn.

What is trained (``trainable_parameters``): by default only the RL domains' own parameters
(their experts in the OmniActor model, their action heads, the image pointer of a pointer
domain); every other parameter is frozen, so the other domains stay bit-identical.
``train_shared`` adds the shared ones (never another domain's experts or heads).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..action_adapters import ActRecord
from ..errors import OmniactorError
from ..models.adapters import HEAD_PREFIXES, ValueHead, model_adapters
from .algorithms import clipped_surrogate, gae, grpo_advantages, ratio_statistics, value_errors
from .config import RLConfig
from .rollout import RolloutBatch, Trajectory

#: head rows scored in one forward pass
HEAD_CHUNK = 16
#: ``desired_kl``: the factor a domain's learning rates move by, and their range around the set rates
LR_STEP = 1.5
LR_RANGE = (0.01, 100.0)
#: the sums an update reports (reduced over processes in this order)
STATISTICS = ("policy_loss", "entropy", "clip_fraction", "approx_kl", "kl_to_start", "scored", "value_loss",
              "value_scored", "sft_loss", "sft_batches", "expert_loss", "expert_scored", "expert_unencodable")


class RLError(OmniactorError, RuntimeError):
    """RL cannot run as configured (the message says what to change)."""


def owned_by(name: str, domain: str, pointer_domain: str | None) -> bool:
    """Whether parameter ``name`` belongs to ``domain`` alone: its experts, its action head, the
    image pointer when ``domain`` is the pointer domain."""
    if f".experts.{domain}." in name:
        return True
    if any(f"omniactor_adapters.{prefix}{domain}." in name for prefix in HEAD_PREFIXES):
        return True
    return pointer_domain == domain and "omniactor_adapters.pointer." in name


def trainable_parameters(model: nn.Module, domains: Sequence[str], all_domains: Sequence[str],
                         pointer_domain: str | None, train_shared: bool) -> dict[str, nn.Parameter]:
    """The parameters RL updates (see the module docstring); every other one gets ``requires_grad=False``."""
    others = [d for d in all_domains if d not in domains]
    chosen = {}
    for name, parameter in model.named_parameters():
        mine = any(owned_by(name, d, pointer_domain) for d in domains)
        theirs = any(owned_by(name, d, pointer_domain) for d in others)
        shared = not mine and not theirs and not any(owned_by(name, d, pointer_domain) for d in all_domains)
        keep = mine or (train_shared and shared)
        parameter.requires_grad_(keep)
        if keep:
            chosen[name] = parameter
    experts = [n for n in chosen if ".experts." in n]
    if not experts and not train_shared:
        raise RLError(f"the model has no experts of its own for {list(domains)} (a dense model?): only their action "
                      "heads would learn; set train_shared: true to train the shared layers")
    return chosen


class Collective:
    """Sums over the processes of an Accelerate run (one process: the identity)."""

    def __init__(self, accelerator: Any = None):
        self.accelerator = accelerator
        self.world = accelerator.num_processes if accelerator is not None else 1
        self.rank = accelerator.process_index if accelerator is not None else 0

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return values
        device = getattr(self.accelerator, "device", values.device)  # NCCL reduces only device tensors
        return self.accelerator.reduce(values.to(device), reduction="sum").to(values.device)

    def sum_gradients(self, parameters: Sequence[nn.Parameter]) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist

        for parameter in parameters:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)


@dataclass
class Scored:
    log_probs: torch.Tensor  # (N,)
    entropies: torch.Tensor  # (N,)
    hidden: torch.Tensor  # (N, H): the final hidden state at the answer position


@dataclass
class _Item:
    """One step in the update: its record and, once computed, its targets."""

    record: ActRecord
    key: str
    index: int
    old_log_prob: float
    advantage: float = 0.0
    value_return: float = 0.0
    old_value: float = 0.0
    reference_log_prob: float = 0.0
    features: torch.Tensor | None = None  # the value head's input, from the scoring pass before the update
    expert_target: Any = None  # the expert's action for this step's state, encoded: answer ids or a head's target
    weight: float = 1.0  # in the policy loss's average (loss_average: episodes gives 1 / the episode's length)


class Learner:
    def __init__(self, agent: Any, config: RLConfig, parameters: dict[str, nn.Parameter],
                 collective: Collective | None = None, reference: nn.Module | None = None):
        self.agent, self.model, self.config = agent, agent.model, config
        self.collective = collective or Collective()
        self.reference = reference
        self.parameters = parameters
        self.device = next(self.model.parameters()).device
        self.optimizer = torch.optim.AdamW(self.parameter_groups(parameters), lr=config.learning_rate,
                                           weight_decay=0.0)
        self.value_heads: nn.ModuleDict | None = None
        self.value_optimizer = None
        if config.algorithm == "ppo":
            hidden = self.model.get_input_embeddings().weight.shape[1]
            state_width = self._state_width() if config.value_state else 0
            generator_state = torch.random.get_rng_state()
            torch.manual_seed(config.seed)  # the value heads' init does not depend on what ran before
            self.value_heads = nn.ModuleDict({d: ValueHead(hidden, state_dim=state_width) for d in config.domains})
            torch.random.set_rng_state(generator_state)
            self.value_heads.to(self.device)
            self.value_optimizer = torch.optim.AdamW(self.value_heads.parameters(), lr=config.value_learning_rate,
                                                     weight_decay=0.0)
        self.expert_unencodable = 0  # expert labels the domain's tokenizer could not encode (skipped)
        self.demonstrations = None
        if config.sft_coef:
            from .demonstrations import Demonstrations

            self.demonstrations = Demonstrations(agent, config)

    def parameter_groups(self, parameters: dict[str, nn.Parameter]) -> list[dict[str, Any]]:
        """The policy's parameters by owner and learning rate: each domain's own at its block's
        ``learning_rate`` and ``head_learning_rate`` when given, else the run's (shared parameters,
        owner None: the run's). A group keeps its set rate (``set_lr``) beside the one in use."""
        config = self.config
        groups: dict[tuple[str | None, float], list[nn.Parameter]] = {}
        for name, parameter in parameters.items():
            owner = next((d for d in config.domains if owned_by(name, d, None)), None)  # None: shared, the pointer
            block = config.domains[owner] if owner is not None else None
            if "omniactor_adapters." in name:
                rate = (block.head_learning_rate if block else None) or config.head_learning_rate or \
                    (block.learning_rate if block else None) or config.learning_rate
            else:
                rate = (block.learning_rate if block else None) or config.learning_rate
            groups.setdefault((owner, rate), []).append(parameter)
        return [{"params": group, "lr": rate, "set_lr": rate, "domain": owner}
                for (owner, rate), group in groups.items()] or [{"params": []}]

    def adapt_learning_rates(self, kl_sums: dict[str, list[float]]) -> None:
        """``desired_kl``'s schedule: each domain's groups by the mean approximate KL of its steps in
        the minibatch just scored (``kl_sums``: domain -> [KL sum, steps], summed over processes)."""
        target = self.config.desired_kl
        for group in self.optimizer.param_groups:
            total, steps = kl_sums.get(group.get("domain"), (0.0, 0.0))
            if not steps:
                continue
            kl = total / steps
            factor = 1 / LR_STEP if kl > 2 * target else LR_STEP if kl < target / 2 else 1.0
            group["lr"] = min(max(group["lr"] * factor, group["set_lr"] * LR_RANGE[0]), group["set_lr"] * LR_RANGE[1])

    def learning_rate_scales(self) -> dict[str, float]:
        """Per domain: its rates in use over its set rates (``desired_kl``)."""
        return {f"learning_rate_scale/{g['domain']}": g["lr"] / g["set_lr"]
                for g in self.optimizer.param_groups if g.get("domain") is not None}

    def _state_width(self) -> int:
        try:
            return int(model_adapters(self.model)["state"].state_dim)
        except (ValueError, KeyError):
            return 0

    # -- scoring ---------------------------------------------------------------------------
    def score(self, records: Sequence[ActRecord], grad: bool, model: nn.Module | None = None) -> Scored:
        """Log-probability of each record's action under the current policy (or ``model``'s), its
        entropy, and the hidden state the value head reads; one domain per call."""
        model = self.model if model is None else model
        domain = records[0].domain
        adapter = self.agent.adapters[domain]
        context = torch.enable_grad() if grad else torch.no_grad()
        rows = 1 if adapter.writes_answer else len(records)  # answers: one forward pass each
        with context, self.agent._routed([domain] * rows, model):
            if adapter.writes_answer:
                return self._score_answers(model, adapter, records)
            return self._score_heads(model, adapter, records)

    def _score_heads(self, model: nn.Module, adapter: Any, records: Sequence[ActRecord]) -> Scored:
        from ..models.adapters import set_state
        from ..models.chat import batch_rows

        inputs = batch_rows([r.inputs for r in records], self.agent.tokenizer.pad_token_id)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        state = torch.cat([r.state for r in records]).to(self.device) if records[0].state is not None else None
        if state is not None:
            set_state(model, state)
        final = model(**inputs, output_hidden_states=True).hidden_states[-1][:, -1]
        distribution = adapter.distribution(model, final, state, self.config.temperature)
        values = torch.stack([r.value for r in records]).to(self.device)
        return Scored(distribution.log_prob(values), distribution.entropy(), final)

    def _with_answer(self, model: nn.Module, record: ActRecord, answer: torch.Tensor,
                     hidden_states: bool = False) -> tuple[Any, int]:
        """The model's output on ``record``'s prompt (its state set) followed by ``answer`` ``(1, T)``,
        and the prompt's length: ``logits[:, length - 1 + t]`` predicts answer token ``t``."""
        from ..models.adapters import set_state
        from ..models.chat import extend_with_answer

        inputs = {k: v.to(self.device) for k, v in record.inputs.items()}
        if record.state is not None:
            set_state(model, record.state.to(self.device))
        out = model(**extend_with_answer(inputs, answer), output_hidden_states=hidden_states)
        return out, inputs["input_ids"].shape[1]

    def _score_answers(self, model: nn.Module, adapter: Any, records: Sequence[ActRecord]) -> Scored:
        log_probs, entropies, hidden = [], [], []
        for record in records:
            answer = torch.tensor([record.ids], dtype=torch.long, device=self.device)
            out, prompt_length = self._with_answer(model, record, answer, hidden_states=True)
            logits = out.logits[:, prompt_length - 1: prompt_length - 1 + answer.shape[1]]
            distribution = adapter.distribution(logits.float(), [record.ids], self.agent.grammar(record.domain))
            log_probs.append(distribution.log_prob(answer))
            entropies.append(distribution.entropy())
            hidden.append(out.hidden_states[-1][:, prompt_length - 1])
        return Scored(torch.cat(log_probs), torch.cat(entropies), torch.cat(hidden))

    def value_features(self, domain: str, hidden: torch.Tensor, states: torch.Tensor | None) -> torch.Tensor:
        """The value head's input: the detached hidden states (and the standardised state)."""
        assert self.value_heads is not None
        features = hidden.detach().float()
        head = self.value_heads[domain]
        if head.state_dim:
            standardised = model_adapters(self.model)["state"].standardise(
                states.to(self.device) if states is not None else torch.zeros(len(features), head.state_dim))
            features = torch.cat([features, standardised.detach()], dim=-1)
        return features

    def _bootstrap_value(self, trajectory: Trajectory) -> float:
        """The value of the state a truncated episode reached (its prompt built as the agent would)."""
        with torch.no_grad(), self.agent._routed([trajectory.domain]):
            inputs, state = self.agent._inputs([trajectory.bootstrap])
            final = self.model(**inputs, output_hidden_states=True).hidden_states[-1][:, -1]
            return float(self.value_heads[trajectory.domain](self.value_features(trajectory.domain, final, state))[0])

    def _chunks(self, items: Sequence[_Item]) -> list[list[_Item]]:
        size = HEAD_CHUNK if not self.agent.adapters[items[0].record.domain].writes_answer else 4
        return [list(items[i:i + size]) for i in range(0, len(items), size)]

    # -- advantages ------------------------------------------------------------------------
    def _prepare(self, batch: RolloutBatch) -> list[_Item]:
        """The domain's steps with their old values (PPO), reference log-probs (KL), advantages and returns."""
        items = [_Item(s.record, t.job.key, s.index, s.record.log_prob,
                       weight=1.0 / len(t.steps) if self.config.loss_average == "episodes" else 1.0)
                 for t in batch.trajectories for s in t.steps]
        if not items:
            return items
        if self.config.expert_coef_of(batch.domain):
            steps = [s for t in batch.trajectories for s in t.steps]
            for item, step in zip(items, steps):
                item.expert_target = self.expert_target(batch.domain, step.expert_action)
        if self.value_heads is not None or self.reference is not None:
            for chunk in self._chunks(items):
                records = [i.record for i in chunk]
                if self.value_heads is not None:
                    scored = self.score(records, grad=False)
                    states = torch.cat([r.state for r in records]) if records[0].state is not None else None
                    features = self.value_features(batch.domain, scored.hidden, states)
                    with torch.no_grad():
                        values = self.value_heads[batch.domain](features).tolist()
                    for item, value, row in zip(chunk, values, features):
                        item.old_value, item.features = value, row
                if self.reference is not None:
                    reference = self.score(records, grad=False, model=self.reference)
                    for item, value in zip(chunk, reference.log_probs.tolist()):
                        item.reference_log_prob = value
        position = 0
        if self.config.algorithm == "ppo":
            for trajectory in batch.trajectories:
                mine = items[position:position + len(trajectory.steps)]
                position += len(trajectory.steps)
                values = torch.tensor([i.old_value for i in mine])
                following = torch.cat([values[1:], torch.zeros(1)])
                if trajectory.bootstrap is not None:
                    following[-1] = self._bootstrap_value(trajectory)
                advantages, returns = gae(torch.tensor([s.reward for s in trajectory.steps]), values, following,
                                          torch.tensor([s.terminated for s in trajectory.steps]),
                                          torch.tensor([s.truncated for s in trajectory.steps]),
                                          self.config.gamma, self.config.lam)
                for item, advantage, value_return in zip(mine, advantages.tolist(), returns.tolist()):
                    item.advantage, item.value_return = advantage, value_return
        else:
            outcomes = torch.tensor([t.episode_return for t in batch.trajectories])
            groups = torch.tensor([t.job.group for t in batch.trajectories])
            for trajectory, advantage in zip(batch.trajectories, grpo_advantages(outcomes, groups).tolist()):
                for item in items[position:position + len(trajectory.steps)]:
                    item.advantage = advantage
                position += len(trajectory.steps)
        return items

    def prepare(self, batches: Sequence[RolloutBatch]) -> dict[str, list[_Item]]:
        """Each domain's steps with their final advantages: PPO's normalised, then ``advantage_floor``."""
        prepared = {b.domain: self._prepare(b) for b in batches}
        if self.config.algorithm == "ppo":
            self._normalise(prepared)
        if self.config.advantage_floor is not None:
            for item in (i for items in prepared.values() for i in items):
                item.advantage = max(item.advantage, self.config.advantage_floor)
        return prepared

    def _summed_per_domain(self, prepared: dict[str, list[_Item]], moments: Any) -> torch.Tensor:
        """``moments(items)`` (a list of float64 scalars) of each configured domain's steps, summed over
        processes in one call: a (domains, moments) tensor, rows in the config's order (the same on
        every process, whatever each one collected)."""
        rows = [torch.stack(moments(prepared.get(domain, []))) for domain in self.config.domains]
        return self.collective.sum(torch.stack(rows))

    def _normalise(self, prepared: dict[str, list[_Item]]) -> None:
        """PPO's advantages to mean 0, std 1 per domain, over every process's steps of it. Per domain
        because their returns differ in scale and length (Meta-World's shaped reward over 120 steps,
        MiniWoB++'s one outcome after 2): pooled, the largest would set every domain's step size."""
        def moments(items: list[_Item]) -> list[torch.Tensor]:
            advantages = torch.tensor([i.advantage for i in items], dtype=torch.float64)
            return [advantages.sum(), (advantages ** 2).sum(), torch.tensor(float(len(items)), dtype=torch.float64)]

        for domain, (total, squares, count) in zip(self.config.domains,
                                                   self._summed_per_domain(prepared, moments).tolist()):
            count = max(count, 1.0)
            mean = total / count
            std = math.sqrt(max(squares / count - mean ** 2, 0.0))
            for item in prepared.get(domain, []):
                item.advantage = (item.advantage - mean) / (std + 1e-8)

    def minibatch_of(self, iteration: int, epoch: int, item: _Item) -> int:
        digest = hashlib.sha256(f"{self.config.seed}/{iteration}/{epoch}/{item.key}/{item.index}".encode()).digest()
        return int.from_bytes(digest[:8], "little") % self.config.minibatches

    # -- the update ------------------------------------------------------------------------
    def update(self, batches: Sequence[RolloutBatch], iteration: int) -> dict[str, float]:
        """Advantages, then ``epochs`` x ``minibatches`` optimizer steps; returns the statistics."""
        config = self.config
        self.model.train(False)  # no dropout: the scores must match the rollouts'
        self.expert_unencodable = 0
        prepared = self.prepare(batches)
        warming = config.algorithm == "ppo" and iteration < config.value_warmup
        sums: dict[str, float] = {"expert_unencodable": self.expert_unencodable} if self.expert_unencodable else {}
        if self.value_heads is not None:
            self._update_values(prepared, iteration, sums)
        moved = False  # whether the policy has stepped since the rollouts (its KL to them is 0 before)
        for epoch in range(0 if warming else config.epochs):
            for minibatch in range(config.minibatches):
                members = {d: [i for i in items if self.minibatch_of(iteration, epoch, i) == minibatch]
                           for d, items in prepared.items()}
                total = self._global_sum(sum(i.weight for m in members.values() for i in m))
                if total == 0:
                    continue
                self.optimizer.zero_grad(set_to_none=False)  # unused parameters step alike on 1 or N processes
                kl_sums: dict[str, float] = {}
                for chosen in members.values():
                    for chunk in (self._chunks(chosen) if chosen else []):
                        self._backward(chunk, total, sums, kl_sums)
                if config.desired_kl and moved:
                    domains = list(prepared)
                    summed = self.collective.sum(torch.tensor(
                        [[kl_sums.get(d, 0.0), float(len(members[d]))] for d in domains], dtype=torch.float64))
                    self.adapt_learning_rates({d: row for d, row in zip(domains, summed.tolist())})
                moved = True
                if self.demonstrations is not None:
                    sums["sft_loss"] = sums.get("sft_loss", 0.0) + self.demonstrations.backward(
                        config.sft_coef, iteration, epoch, minibatch, self.collective.world, self.collective.rank)
                    sums["sft_batches"] = sums.get("sft_batches", 0.0) + 1
                policy = list(self.parameters.values())
                self.collective.sum_gradients(policy)
                if config.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(policy, config.max_grad_norm)
                self.optimizer.step()
        return self._statistics(prepared, sums)

    def _global_sum(self, local: float) -> float:
        return float(self.collective.sum(torch.tensor(float(local)))) if self.collective.world > 1 else float(local)

    def _update_values(self, prepared: dict[str, list[_Item]], iteration: int, sums: dict[str, float]) -> None:
        """``value_epochs`` passes of the clipped value loss over the cached features (minibatches as
        the policy's, over all processes)."""
        assert self.value_heads is not None and self.value_optimizer is not None
        config = self.config
        for epoch in range(config.value_epochs):
            for minibatch in range(config.minibatches):
                members = {d: [i for i in items if self.minibatch_of(iteration, 1000 + epoch, i) == minibatch]
                           for d, items in prepared.items()}
                total = self._global_sum(sum(len(m) for m in members.values()))
                if total == 0:
                    continue
                self.value_optimizer.zero_grad(set_to_none=False)
                for domain, chosen in members.items():
                    if not chosen:
                        continue
                    values = self.value_heads[domain](torch.stack([i.features for i in chosen]))
                    errors = value_errors(values, torch.tensor([i.old_value for i in chosen], device=self.device),
                                          torch.tensor([i.value_return for i in chosen], device=self.device),
                                          config.value_clip)
                    (errors.sum() / total).backward()
                    if epoch == config.value_epochs - 1:  # the loss of the last pass
                        sums["value_loss"] = sums.get("value_loss", 0.0) + float(errors.detach().sum())
                        sums["value_scored"] = sums.get("value_scored", 0.0) + len(chosen)
                self.collective.sum_gradients(list(self.value_heads.parameters()))
                self.value_optimizer.step()

    def _backward(self, chunk: list[_Item], total: float, sums: dict[str, float],
                  kl_sums: dict[str, float] | None = None) -> None:
        """Accumulate the policy's loss of ``chunk``, each step's terms times its weight, divided by the
        minibatch's global sum of weights (its step count with ``loss_average: steps``);
        ``kl_sums``: the approximate KL summed per domain, for ``desired_kl``."""
        config = self.config
        domain = chunk[0].record.domain  # a chunk holds one domain's steps
        scored = self.score([i.record for i in chunk], grad=True)
        old = torch.tensor([i.old_log_prob for i in chunk], device=self.device)
        advantages = torch.tensor([i.advantage for i in chunk], device=self.device)
        weights = torch.tensor([i.weight for i in chunk], device=self.device)
        losses, log_ratio = clipped_surrogate(scored.log_probs, old, advantages, config.clip, config.dual_clip)
        clipped, approx_kl = ratio_statistics(log_ratio, config.clip)
        loss = config.policy_coef * (weights * losses).sum() - config.entropy_coef * (weights * scored.entropies).sum()
        if self.reference is not None:
            reference = torch.tensor([i.reference_log_prob for i in chunk], device=self.device)
            delta = reference - scored.log_probs  # k3: exp(d) - d - 1 >= 0, the KL to the starting policy
            kl = delta.exp() - delta - 1.0
            loss = loss + config.kl_coef * (weights * kl).sum()
            sums["kl_to_start"] = sums.get("kl_to_start", 0.0) + float(kl.detach().sum())
        labelled = [k for k, item in enumerate(chunk) if item.expert_target is not None]
        coefficient = config.expert_coef_of(domain)
        if coefficient and labelled:
            expert = self.expert_losses([chunk[k] for k in labelled], scored.hidden[labelled])
            loss = loss + coefficient * (weights[labelled] * expert).sum()
            for key in ("expert_loss", f"expert_loss/{domain}"):
                sums[key] = sums.get(key, 0.0) + float(expert.detach().sum())
            for key in ("expert_scored", f"expert_scored/{domain}"):
                sums[key] = sums.get(key, 0.0) + len(labelled)
        (loss / total).backward()
        sums["policy_loss"] = sums.get("policy_loss", 0.0) + float(losses.detach().sum())
        sums["entropy"] = sums.get("entropy", 0.0) + float(scored.entropies.detach().sum())
        sums["clip_fraction"] = sums.get("clip_fraction", 0.0) + float(clipped.sum())
        sums["approx_kl"] = sums.get("approx_kl", 0.0) + float(approx_kl.sum())
        if kl_sums is not None:
            kl_sums[domain] = kl_sums.get(domain, 0.0) + float(approx_kl.sum())
        sums["scored"] = sums.get("scored", 0.0) + len(chunk)

    def expert_target(self, domain: str, action: Any) -> Any:
        """The expert's ``action`` as the domain's SFT target: its answer ids (end-of-turn included)
        or its head's target; None for no label, or one the domain's tokenizer cannot encode
        (counted in ``expert_unencodable``)."""
        if action is None:
            return None
        adapter = self.agent.adapters[domain]
        try:
            if adapter.writes_answer:
                return adapter.answer_ids(action, self.agent.tokenizer, self.agent.end_id)
            return adapter.action_target(action)
        except (ValueError, TypeError, KeyError):  # the action errors of omniactor.actions are ValueErrors
            self.expert_unencodable += 1
            return None

    def expert_losses(self, items: Sequence[_Item], hidden: torch.Tensor) -> torch.Tensor:
        """Per step ``(N,)``, the SFT loss toward the expert's action in the state the agent acted in:
        a head's own loss (MSE, cross-entropy) on the hidden state its act was scored from, an
        answer's mean cross-entropy over the expert's answer tokens (end-of-turn included)."""
        domain = items[0].record.domain
        adapter = self.agent.adapters[domain]
        if not adapter.writes_answer:
            state = torch.cat([i.record.state for i in items]).to(self.device) if items[0].record.state is not None \
                else None
            return torch.stack([adapter.head_loss(self.model, hidden[k:k + 1], None if state is None else state[k:k + 1],
                                                  item.expert_target)
                                for k, item in enumerate(items)])
        losses = []
        with self.agent._routed([domain], self.model):
            for item in items:
                answer = torch.tensor([item.expert_target], dtype=torch.long, device=self.device)
                out, prompt_length = self._with_answer(self.model, item.record, answer)
                losses.append(nn.functional.cross_entropy(out.logits[0, prompt_length - 1:-1].float(), answer[0]))
        return torch.stack(losses)

    def _statistics(self, prepared: dict[str, list[_Item]], sums: dict[str, float]) -> dict[str, float]:
        """Means over every process's scored steps; the explained variance of the old values."""
        per_domain = tuple(f"{k}/{d}" for d in self.config.domains for k in ("expert_loss", "expert_scored"))
        keys = STATISTICS + per_domain  # the same list on every process, whatever each one scored
        totals = self.collective.sum(torch.tensor([sums.get(k, 0.0) for k in keys], dtype=torch.float64)).tolist()
        summed = {k: v for k, v in zip(keys, totals) if k in sums or v}
        divisors = {"sft_loss": max(summed.pop("sft_batches", 0.0), 1.0),
                    "value_loss": max(summed.pop("value_scored", 0.0), 1.0),
                    "expert_loss": max(summed.pop("expert_scored", 0.0), 1.0)}
        scored = max(summed.pop("scored", 0.0), 1.0)
        divisors["expert_unencodable"] = 1.0  # a count of labels, over all processes
        for domain in self.config.domains:
            divisors[f"expert_loss/{domain}"] = max(summed.pop(f"expert_scored/{domain}", 0.0), 1.0)
        out = {k: v / divisors.get(k, scored) for k, v in summed.items()}
        if self.config.desired_kl:
            out.update(self.learning_rate_scales())
        if self.value_heads is not None:  # of the values before the update, per domain and over all
            def moments(items: list[_Item]) -> list[torch.Tensor]:
                returns = torch.tensor([i.value_return for i in items], dtype=torch.float64)
                values = torch.tensor([i.old_value for i in items], dtype=torch.float64)
                return [returns.sum(), (returns ** 2).sum(), (returns - values).sum(), ((returns - values) ** 2).sum(),
                        torch.tensor(float(len(items)), dtype=torch.float64)]

            per_domain = self._summed_per_domain(prepared, moments)
            for name, row in [*zip(self.config.domains, per_domain), (None, per_domain.sum(0))]:
                if row[4] < 1:
                    continue
                n = float(row[4])
                variance = float(row[1]) / n - (float(row[0]) / n) ** 2
                residual = float(row[3]) / n - (float(row[2]) / n) ** 2
                key = "explained_variance" if name is None else f"explained_variance/{name}"
                out[key] = 1.0 - residual / variance if variance > 1e-12 else float("nan")
        return out

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"parameters": {n: p.detach().cpu().clone() for n, p in self.parameters.items()},
                "optimizer": self.optimizer.state_dict(),
                "value_heads": self.value_heads.state_dict() if self.value_heads is not None else None,
                "value_optimizer": self.value_optimizer.state_dict() if self.value_optimizer is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, parameter in self.parameters.items():
                parameter.copy_(state["parameters"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.value_heads is not None:
            self.value_heads.load_state_dict(state["value_heads"])
            self.value_optimizer.load_state_dict(state["value_optimizer"])
