"""What a collect run does: its settings (``CollectConfig``), its episodes (``Job``) and their seeds.

Episode ``i`` of split ``s`` has seed ``SPLIT_OFFSETS[s] + seed + i``: the splits never share a
seed, and a job's seed does not depend on the number of workers, which is what makes a run
deterministic and a re-run able to recognise finished episodes by their key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import OmniactorError

SPLIT_OFFSETS = {"train": 0, "validation": 1_000_000_000, "test": 2_000_000_000}
#: The collector's bookkeeping folder inside the dataset folder (see ``ledger``).
STATE_DIR = ".collect"


class CollectError(OmniactorError, RuntimeError):
    """Collection cannot start or continue (another collector runs, settings differ, ...)."""


@dataclass(frozen=True)
class CollectConfig:
    """What to collect and where; every field is also a flag of ``omniactor collect``."""

    env: str  # registered environment name (``omniactor envs list``)
    tasks: tuple[str, ...]  # task names (resolved: no sets or aliases)
    episodes: int  # episodes per task
    out: str  # dataset folder (created, or continued)
    workers: int = 1  # worker processes, each with its own environment
    seed: int = 0  # base seed; episode i of a split has seed SPLIT_OFFSETS[split] + seed + i
    split: str = "train"  # train / validation / test: disjoint seed ranges
    env_config: dict[str, Any] = field(default_factory=dict)  # adapter settings (image_size, camera, ...)
    keep_failed: bool = False  # also write episodes the expert failed (meta.success = false)
    history: int = 8  # previous actions shown in each prompt (0: none)
    max_restarts: int = 3  # environment restarts per episode before it is given up
    commit_seconds: float = 20.0  # commit buffered episodes at least this often
    commit_steps: int = 2048  # ... or when this many steps are buffered
    png_compress_level: int = 1  # zlib level of the saved PNGs (1: fast, 9: small)
    progress: bool = True  # show a progress bar

    def __post_init__(self) -> None:
        if self.split not in SPLIT_OFFSETS:
            raise ValueError(f"split {self.split!r} is not one of {', '.join(SPLIT_OFFSETS)}")
        if self.episodes < 0 or self.workers < 1 or self.history < 0:
            raise ValueError("episodes >= 0, workers >= 1 and history >= 0 are required")
        if not 0 <= self.seed < 500_000_000:
            raise ValueError(f"seed {self.seed} must be in [0, 5e8) so the splits' seeds stay disjoint")

    def settings(self) -> dict[str, Any]:
        """The settings that must not change between runs writing to the same folder."""
        return {"env": self.env, "env_config": self.env_config, "history": self.history}


@dataclass(frozen=True)
class Job:
    """One episode to run: task, index within its split, seed. ``key`` names it in the ledger."""

    task: str
    index: int
    seed: int
    split: str

    @property
    def key(self) -> str:
        return f"{self.task}/{self.split}/{self.seed}"


def episode_seed(seed: int, split: str, index: int) -> int:
    """The seed of episode ``index`` of ``split`` (see the module docstring: splits never overlap)."""
    return SPLIT_OFFSETS[split] + seed + index


def plan_jobs(config: CollectConfig) -> list[Job]:
    """Every episode of the run, task after task (workers then share an environment kind at a time)."""
    return [
        Job(task, i, episode_seed(config.seed, config.split, i), config.split)
        for task in config.tasks
        for i in range(config.episodes)
    ]
