"""What the demo runs: the tasks, how many demonstrations and evaluation episodes, the model.

Two scales share one shape: ``full`` (the README's ``make demo``: about half an hour on a
2-core CPU) and ``quick`` (what the test suite runs end to end, a few minutes). Evaluation
seeds are the ``test`` split's, disjoint from the ``train`` seeds demonstrations come from.

The full demo evaluates the trained agent on 50 episodes per MiniWoB++ task, 34 per Meta-World
task and 100 per BabyAI level: 250, 102 and 200 episodes per domain, so each domain's 95%
interval (Wilson, episodes pooled over its tasks) is at most +-10 points at any rate (at 10
episodes per task one domain's number moved by 20 points between identical runs). The
untrained baseline keeps 10 / 5 / 10: its episodes run to the step limit, and at the trained
agent's counts they would take the demo past half an hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: the model's domain for each environment
ENV_DOMAINS = {"miniwob": "gui", "metaworld": "embodied", "babyai": "discrete"}


@dataclass(frozen=True)
class EnvPlan:
    """One environment's part of the demo."""

    env: str
    tasks: tuple[str, ...]
    demos: int  # expert episodes collected per task
    eval_episodes: int  # evaluation episodes per task (trained agent)
    baseline_episodes: int  # evaluation episodes per task (untrained model)
    study_episodes: int = 5  # evaluation episodes per task of each --study run
    weight: float = 1.0  # resampling weight of its data in training
    collect_config: dict[str, Any] = field(default_factory=dict)  # adapter settings for collection
    eval_config: dict[str, Any] = field(default_factory=dict)  # adapter settings for evaluation
    decoding: dict[str, Any] = field(default_factory=dict)  # Agent.set_decoding options (default greedy)

    @property
    def domain(self) -> str:
        return ENV_DOMAINS[self.env]


@dataclass(frozen=True)
class RLPlan:
    """``omniactor demo --rl``: online RL of the trained agent (``omniactor rl``), then its evaluation
    on the trained agent's test episodes (the same seeds, decoding and settings)."""

    settings: dict[str, Any]  # RLConfig fields
    episodes: dict[str, int]  # rollout episodes per iteration, per environment RL trains in
    reward_scale: dict[str, float] = field(default_factory=dict)
    learning_rates: dict[str, dict[str, float]] = field(default_factory=dict)  # per environment's domain


@dataclass(frozen=True)
class DemoPlan:
    name: str
    envs: tuple[EnvPlan, ...]
    train: dict[str, Any]  # TrainConfig fields
    rl: RLPlan | None = None
    study_steps: int = 200  # training steps of each --study run
    collect_workers: int = 2
    eval_workers: int = 2

    @property
    def domains(self) -> list[str]:
        return [e.domain for e in self.envs]


def _train_settings(max_steps: int, batch_size: int, save_every: int) -> dict[str, Any]:
    """The OmniActor model of the demo: tiny preset, K=2 of 8 layers shared, and per domain the
    output a model trained from scratch can learn in minutes (docs/demo.md has the runs behind
    each choice):

    - GUI: points as cells of a 16 x 16 grid scored by an image pointer over the screenshot's
      patches (224 px: one 14 px patch per cell), text to type copied from the task;
    - Meta-World: motions from a regression head that reads the standardised 39-D state beside
      the model's final state, no previous motions in the prompt (they are copied, not acted on);
    - BabyAI: actions from a classification head that reads the one-hot 7x7 view beside the
      model's final state, with the previous action in the prompt (phrases are trained beside it)."""
    return {
        "model": "tiny",
        "variant": "omniactor",
        "shared_layers": 2,
        # copy on every domain: the head domains' answer tokens (trained beside their heads) may copy too
        "domains": {
            "gui": {"action_tokenizer": {"name": "gui_location", "grid": 16}, "output": "pointer", "copy": True,
                    "history": 2, "image_size": 224},
            "embodied": {"action_tokenizer": {"name": "uniform", "num_bins": 64}, "output": "regression_head",
                         "copy": True, "state": True, "history": 0, "image_size": 112},
            "discrete": {"action_tokenizer": {"name": "discrete_semlang"}, "output": "classification_head",
                         "copy": True, "state": True, "history": 1, "image_size": 112},
        },
        "head_learning_rate": 3e-3,
        "system_prompt": "none",
        "max_steps": max_steps,
        "batch_size": batch_size,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.03,
        "lr_schedule": "cosine",
        "save_every": save_every,
        "log_every": 10,
    }


#: BabyAI's policy sees one frame: greedy decoding falls into loops where the object is out of
#: sight (timeouts); sampling the policy leaves them (docs/demo.md: 30% greedy, 60% sampled)
SAMPLED = {"do_sample": True, "temperature": 1.0, "seed": 0}
#: BabyAI's symbolic view as one-hot cells: the state the classification head reads
BABYAI_STATE = {"state_format": "onehot"}

FULL = DemoPlan(
    name="full",
    envs=(
        EnvPlan("miniwob", ("click-test", "focus-text", "click-button", "click-dialog", "enter-text"), demos=100,
                eval_episodes=50, baseline_episodes=10, study_episodes=10, weight=5.5, eval_config={"max_steps": 10}),
        EnvPlan("metaworld", ("reach-v3", "push-v3", "button-press-topdown-v3"), demos=40, eval_episodes=34,
                baseline_episodes=5, study_episodes=4, weight=1.5, collect_config={"image_size": 112},
                eval_config={"image_size": 112, "max_steps": 120}),  # the expert needs 46-65 steps
        EnvPlan("babyai", ("GoToRedBall", "GoToLocal"), demos=1000, eval_episodes=100, baseline_episodes=10,
                study_episodes=10, weight=0.7, decoding=SAMPLED, collect_config=BABYAI_STATE,
                eval_config=BABYAI_STATE),
    ),
    train=_train_settings(max_steps=2700, batch_size=16, save_every=200),
    study_steps=250,
    # GEA's SFT term (sft_coef 0.1 on the demo's demonstrations): without it, RL taught enter-text to click
    # Submit first (68% -> 30%); with it, 62% (docs/rl.md)
    rl=RLPlan(settings={"algorithm": "ppo", "iterations": 6, "learning_rate": 1e-4, "head_learning_rate": 1e-3,
                        "value_learning_rate": 1e-3, "value_warmup": 1, "epochs": 1, "minibatches": 4,
                        "sft_coef": 0.1},
              episodes={"miniwob": 20, "metaworld": 6, "babyai": 32}, reward_scale={"metaworld": 0.1},
              # the regression head's Gaussian (std 0.1) moved by KL 30-600 per update at 1e-4 / 1e-3
              learning_rates={"metaworld": {"learning_rate": 1e-5, "head_learning_rate": 1e-5}}),
)

QUICK = DemoPlan(
    name="quick",
    envs=(
        EnvPlan("miniwob", ("click-test", "click-button"), demos=4, eval_episodes=2, baseline_episodes=1,
                study_episodes=1, weight=2.0, eval_config={"max_steps": 3}),
        EnvPlan("metaworld", ("reach-v3",), demos=2, eval_episodes=2, baseline_episodes=1,
                study_episodes=1, collect_config={"image_size": 112}, eval_config={"image_size": 112, "max_steps": 8}),
        EnvPlan("babyai", ("GoToRedBall",), demos=6, eval_episodes=2, baseline_episodes=1,
                study_episodes=1, collect_config=BABYAI_STATE, eval_config={**BABYAI_STATE, "max_steps": 8},
                decoding=SAMPLED),
    ),
    train=_train_settings(max_steps=12, batch_size=8, save_every=6),
    study_steps=4,
    rl=RLPlan(settings={"algorithm": "ppo", "iterations": 1, "learning_rate": 1e-4, "value_warmup": 0, "epochs": 1,
                        "minibatches": 1, "value_epochs": 2, "sft_coef": 0.1, "sft_batch_size": 2},
              episodes={"miniwob": 2, "metaworld": 1, "babyai": 2}, reward_scale={"metaworld": 0.1}),
)

PLANS = {"full": FULL, "quick": QUICK}
