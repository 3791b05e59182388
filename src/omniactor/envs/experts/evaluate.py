"""Measure an expert's success rate: ``omniactor envs check-experts --env ENV --tasks ... --episodes N``.

Episodes use the same seeds ``omniactor collect`` gives the train split (seed 0 + i), so the
measured rate is the share of collected episodes that will be kept. Tasks run in parallel
processes with ``workers > 1``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ExpertReport:
    env: str
    task: str
    episodes: int
    successes: int
    mean_steps: float
    seconds: float
    errors: int  # episodes where the expert raised (counted as failures)

    @property
    def rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rate": round(self.rate, 4)}


def evaluate_expert(
    env_name: str, task: str, episodes: int, seed: int = 0, env_config: dict | None = None
) -> ExpertReport:
    """Run the expert of ``env_name`` on ``task`` for ``episodes`` episodes (seeds ``seed .. seed + episodes - 1``)."""
    from ...data.collect import Job, episode_seed, run_episode
    from ..registry import make_env, make_expert

    env = make_env(env_name, task, **(env_config or {}))
    expert = make_expert(env_name, env)
    successes = steps = errors = 0
    start = time.monotonic()
    try:
        for i in range(episodes):
            episode = run_episode(env, expert, Job(env.task, i, episode_seed(seed, "train", i), "train"))
            successes += int(episode.success)
            steps += len(episode.actions)
            errors += int(episode.error is not None)
    finally:
        env.close()
    return ExpertReport(
        env_name, env.task, episodes, successes, steps / max(episodes, 1), time.monotonic() - start, errors
    )


def _run(args: tuple) -> ExpertReport:
    return evaluate_expert(*args)


def evaluate_experts(
    env_name: str,
    tasks: list[str],
    episodes: int,
    seed: int = 0,
    env_config: dict | None = None,
    workers: int = 1,
    on_report=None,
) -> list[ExpertReport]:
    """``evaluate_expert`` over ``tasks`` (in ``workers`` processes), in task order."""
    jobs = [(env_name, task, episodes, seed, env_config) for task in tasks]
    if workers <= 1:
        out = []
        for job in jobs:
            out.append(_run(job))
            if on_report:
                on_report(out[-1])
        return out
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        out = []
        for report in pool.imap(_run, jobs):
            out.append(report)
            if on_report:
                on_report(report)
        return out
