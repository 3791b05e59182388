"""The run configuration of ``omniactor rl``: one YAML file, ``key=value`` overrides.

The same conventions as ``omniactor train`` (``training.config``): every key has a one-line
help (``--list-keys``), an unknown key fails with a "did you mean", a value of the wrong type
names the key and the type, and the resolved configuration is written beside the outputs
(``config.yaml``). Per model domain, ``domains.<d>`` names the environment it acts in, its
tasks and the seed split its rollouts use (``train`` or ``validation``); the evaluation before
and after RL always uses ``test`` seeds, so the two never share an episode.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..fileio import write_text_atomic
from ..training.config import ConfigError, _build, _help_of, read_config

ALGORITHMS = ("ppo", "grpo")
ROLLOUT_SPLITS = ("train", "validation")
TASK_SAMPLING = ("uniform", "failures")
LOSS_AVERAGES = ("steps", "episodes")


@dataclass
class RolloutConfig:
    """Where one model domain acts during RL."""

    env: str = ""
    """the environment (babyai, miniwob, metaworld, ...: `omniactor envs list`)"""
    tasks: list[str] = field(default_factory=list)
    """its tasks (levels); [] or [all]: every task of the environment"""
    split: str = "train"
    """the seed split rollouts draw from (train | validation); evaluation uses test"""
    env_config: dict[str, Any] = field(default_factory=dict)
    """the environment's settings (e.g. {state_format: onehot}, {image_size: 112, max_steps: 120})"""
    actions: list[str] = field(default_factory=list)
    """a classification head acts only by these of its discrete actions ([]: all), at rollouts,
    scoring and evaluation; the final agent keeps the restriction (e.g. [left, right, forward] for
    BabyAI's GoTo levels, whose other actions change nothing)"""
    episodes: int = 16
    """rollout episodes per iteration (over all processes; with grpo: groups x group_size)"""
    learning_rate: float | None = None
    """learning rate of this domain's own parameters (its experts; None: the run's learning_rate)"""
    head_learning_rate: float | None = None
    """learning rate of this domain's action head (None: the run's head_learning_rate); a regression
    head's Gaussian (std 0.1) moves far in log-probability for a small step of its mean"""
    init_std: float | None = None
    """a regression head's Gaussian spread at the start of RL (e.g. 0.3; null: the model's own, 0.1
    after SFT): PPO's trust region bounds the move of the mean in units of the spread, so a wider
    Gaussian lets the mean move further per update; evaluation acts by the mean"""
    expert_coef: float | None = None
    """this domain's weight of the expert-label loss (None: the run's expert_coef); the losses differ
    in scale (a head's MSE on motions in [-1, 1] is far smaller than a cross-entropy)"""
    reward_scale: float = 1.0
    """the environment's reward is multiplied by this (Meta-World's shaped reward reaches 10 a step)"""
    eval_episodes: int = 20
    """evaluation episodes per task before and after RL, on test seeds (0: no evaluation)"""
    eval_decoding: dict[str, Any] = field(default_factory=dict)
    """how evaluation acts (default greedy: a head's mode): e.g. {do_sample: true, seed: 0}"""


@dataclass
class RLConfig:
    """Everything one RL run needs."""

    init: str = ""
    """the SFT agent to start from: a training run's final/ folder"""
    output_dir: str = "outputs/rl"
    """run folder: checkpoints, metrics.jsonl, TensorBoard, plots, evaluations, the final agent"""
    domains: dict[str, RolloutConfig] = field(default_factory=dict)
    """the model domains RL trains, each with its environment: {discrete: {env: babyai, tasks: [GoToLocal]}}"""
    algorithm: str = "ppo"
    """ppo (GAE, clipped policy and value losses, a value head) | grpo (group-normalised outcomes, no critic)"""
    iterations: int = 10
    """rollout + update rounds"""
    workers: int = 2
    """environment processes per domain (per process)"""
    task_sampling: str = "uniform"
    """how a domain's rollout episodes are shared among its tasks: uniform (in turn) | failures (in
    proportion to each task's failure rate in the earlier rollouts; at least one episode each)"""
    seed: int = 0
    """seed of the rollout seeds, the sampling streams, the value heads and the minibatches"""
    temperature: float = 1.0
    """sampling temperature of the rollouts (continuous heads sample from their own Gaussian)"""
    gamma: float = 0.99
    """discount"""
    lam: float = 0.95
    """GAE's lambda"""
    clip: float = 0.2
    """PPO's ratio clip"""
    dual_clip: float | None = None
    """PPO's dual clip c > 1 (e.g. 3): a step with a negative advantage loses at most c x |A|, so a
    ratio blown up by a narrow Gaussian stops pulling (null: off)"""
    value_clip: float | None = None
    """clip of the value loss around the old values (null: unclipped)"""
    value_epochs: int = 10
    """passes of the value heads over each iteration's steps (on features computed once: cheap)"""
    policy_coef: float = 1.0
    """weight of the PPO / GRPO surrogate (0: the SFT and expert-label terms alone: DAgger, with
    expert_coef)"""
    entropy_coef: float = 0.0
    """weight of the entropy bonus"""
    kl_coef: float = 0.0
    """weight of the KL to the SFT policy (keeps a frozen copy of the starting model)"""
    sft_coef: float = 0.0
    """weight of the SFT loss on the demonstrations in sft_data (GEA: 0.1)"""
    sft_data: list[str] = field(default_factory=list)
    """dataset folders of demonstrations for the SFT term (the RL domains' records are used)"""
    cache_dir: str | None = None
    """where the sft_data's preprocessed samples are cached (default: .omniactor-cache beside
    output_dir, as `omniactor train` does, so runs of one parent folder encode the data once)"""
    sft_batch_size: int = 8
    """demonstration samples per minibatch for the SFT term"""
    expert_coef: float = 0.0
    """weight of the SFT loss toward the environment's scripted expert on the rollouts' own states
    (DAgger: the expert labels each state the agent reaches, in the environment process; 0: off)"""
    group_size: int = 4
    """grpo: rollouts per task seed (each domain's episodes must be a multiple of it)"""
    advantage_floor: float | None = None
    """advantages below this are raised to it, after PPO's normalisation (e.g. 0: only the episodes
    better than their baseline are reinforced, as in self-imitation learning, Oh et al. 2018; the
    acts of worse ones are no longer pushed down, which moves a softmax's mass onto the actions
    not taken); null: off"""
    loss_average: str = "steps"
    """how the policy loss averages over a minibatch: steps (each step counts once) | episodes (each
    step weighs 1 / its episode's length, so every episode counts alike: GRPO's per-sequence mean)"""
    epochs: int = 2
    """passes over each iteration's rollouts"""
    minibatches: int = 2
    """minibatches per pass (steps are assigned by a hash: the same split on any number of processes)"""
    learning_rate: float = 1e-5
    """AdamW learning rate of the policy's parameters"""
    head_learning_rate: float | None = None
    """learning rate of the action heads (None: learning_rate)"""
    desired_kl: float | None = None
    """adaptive learning rates, per domain (rsl_rl's schedule, Rudin et al. 2022): after each
    minibatch whose steps' approximate KL to the rollout policy exceeds 2 x desired_kl, the domain's
    rates are divided by 1.5; below desired_kl / 2 they are multiplied by 1.5; within 1/100 and 100
    times the set rates (e.g. 0.01; null: fixed rates). The rates carry over between iterations and
    into checkpoints"""
    value_learning_rate: float = 1e-3
    """learning rate of the value heads"""
    value_state: bool = False
    """the value head also reads the standardised state beside the hidden state (the hidden state
    already carries it through the state token; a one-hot view standardises to large values)"""
    value_warmup: int = 1
    """iterations at the start that train only the value head (ppo)"""
    max_grad_norm: float = 1.0
    """gradient clipping of the policy's parameters (0: off)"""
    train_shared: bool = False
    """also train the shared layers (embeddings, the K shared decoder layers, vision, state and copy
    modules); false: only the RL domains' own experts and heads, the other domains stay bit-identical"""
    lora: dict[str, Any] | None = None
    """PEFT LoRA on the trainable projections (e.g. {r: 16, alpha: 32}); null: full fine-tune"""
    evaluate_before: bool = True
    """evaluate the starting agent on the test seeds too (false: e.g. the demo, which already has)"""
    save_every: int = 1
    """iterations between checkpoints (re-running the command resumes from the newest)"""
    keep_checkpoints: int = 2
    """how many of the newest checkpoints to keep"""

    def expert_coef_of(self, domain: str) -> float:
        """The weight of ``domain``'s expert-label loss (0: its workers label nothing)."""
        own = self.domains[domain].expert_coef
        return self.expert_coef if own is None else own

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm: {self.algorithm!r} is not one of {list(ALGORITHMS)}")
        if self.task_sampling not in TASK_SAMPLING:
            raise ConfigError(f"task_sampling: {self.task_sampling!r} is not one of {list(TASK_SAMPLING)}")
        if self.loss_average not in LOSS_AVERAGES:
            raise ConfigError(f"loss_average: {self.loss_average!r} is not one of {list(LOSS_AVERAGES)}")
        for domain, rollout in self.domains.items():
            where = f"domains.{domain}"
            if not rollout.env:
                raise ConfigError(f"{where}.env: give the environment this domain acts in (e.g. env: babyai)")
            if rollout.split not in ROLLOUT_SPLITS:
                raise ConfigError(f"{where}.split: {rollout.split!r} is not one of {list(ROLLOUT_SPLITS)} "
                                  "(test seeds are kept for the evaluation)")
            if rollout.init_std is not None and rollout.init_std <= 0:
                raise ConfigError(f"{where}.init_std: {rollout.init_std} must be above 0 (e.g. 0.3), or null")
            if rollout.episodes < 1:
                raise ConfigError(f"{where}.episodes: at least 1 rollout episode per iteration")
            if self.algorithm == "grpo" and rollout.episodes % self.group_size:
                raise ConfigError(f"{where}.episodes: {rollout.episodes} is not a multiple of group_size="
                                  f"{self.group_size} (grpo runs group_size rollouts per task seed)")
        for key in ("iterations", "workers", "epochs", "value_epochs", "minibatches", "group_size", "save_every", "keep_checkpoints"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be at least 1")
        if self.dual_clip is not None and self.dual_clip <= 1:
            raise ConfigError(f"dual_clip: {self.dual_clip} must be above 1 (e.g. 3), or null for none")
        if self.advantage_floor is not None and self.advantage_floor > 0:
            raise ConfigError(f"advantage_floor: {self.advantage_floor} must be at most 0 (e.g. 0), or null for none")
        if self.desired_kl is not None and self.desired_kl <= 0:
            raise ConfigError(f"desired_kl: {self.desired_kl} must be above 0 (e.g. 0.01), or null for fixed rates")
        if self.policy_coef < 0:
            raise ConfigError(f"policy_coef: {self.policy_coef} is a weight of a loss, at least 0")
        if self.expert_coef < 0 or self.sft_coef < 0 or any((r.expert_coef or 0) < 0 for r in self.domains.values()):
            raise ConfigError("expert_coef and sft_coef: weights of a loss, at least 0")
        if self.sft_coef and not self.sft_data:
            raise ConfigError("sft_coef > 0 needs sft_data: the demonstration folders (e.g. the SFT run's data)")


def config_help() -> dict[str, str]:
    """``{key: meaning}``, the domain block's keys as ``domains.<d>.<key>``."""
    out = {}
    for key, text in _help_of(RLConfig).items():
        out[key] = text
        if key == "domains":
            out.update({f"domains.<d>.{k}": v for k, v in _help_of(RolloutConfig).items()})
    return out


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RLConfig:
    """The config of a YAML file with ``key=value`` overrides applied (dotted keys for nested values)."""
    data, where = read_config(path, overrides)
    domains = data.pop("domains", None) or {}
    if not isinstance(domains, dict):
        raise ConfigError(f"{where}.domains: a mapping of model domains to their environments, e.g. "
                          "{discrete: {env: babyai, tasks: [GoToLocal]}}")
    blocks = {str(d): _build(RolloutConfig, v, f"{where}.domains.{d}") for d, v in domains.items()}
    config = _build(RLConfig, {**data, "domains": {}}, where)
    config.domains = blocks
    config.__post_init__()
    if not config.init:
        raise ConfigError(f"{where}.init: give the SFT agent to start from (a training run's final/ folder)")
    if not config.domains:
        raise ConfigError(f"{where}.domains: name at least one domain and its environment, e.g. "
                          "domains.discrete.env=babyai")
    return config


def to_plain(config: RLConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: RLConfig, path: str | Path) -> None:
    write_text_atomic(path, yaml.safe_dump(to_plain(config), sort_keys=False))
