"""Rollouts: the agent samples in the real environments, through ``omniactor eval``'s loop.

``collect(...)`` runs one iteration's episodes of one domain with the evaluation harness's
own pieces (``evaluation.online``): the spawned ``EnvWorker`` processes, their restart of a
dead environment (counted; the episode runs again from its seed and its earlier steps are
dropped), and ``_run_agent``, which asks the ``Agent`` for every running environment's next
action in one batched ``act_batch``. The agent records each answer (``Agent(record=True)``:
the prompt's tokens and images, the answer's ids or the head's value, its log-probability),
and ``StepHooks`` keep it with the environment's reward. Each iteration's finished episodes
are also written to ``rollouts/iter-NNNNNN/<domain>/episodes.jsonl``.

Seeds: iteration ``i`` of a domain with ``E`` episodes runs the split's episode indices
``i*E ... i*E+E-1`` (task by task in turn), so no two iterations share a seed; with GRPO,
``E / G`` seeds each run ``G`` times, each run sampling from its own stream (``sample``).
Each process takes its share of the jobs (GRPO: whole groups), so N processes run the same
episodes as one.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..action_adapters import ActRecord
from ..evaluation.online import EnvWorker, EvalConfig, Job, Recorder, StepHooks, _run_agent, cpu_threads_beside
from .config import RLConfig, RolloutConfig


@dataclass
class RolloutJob(Job):
    group: int = 0  # GRPO: the rollouts of one task seed share a group
    sample: int = 0  # which of the group's rollouts (its own sampling stream)

    @property
    def key(self) -> str:
        return f"{self.task}/{self.seed}#{self.sample}"


@dataclass
class Step:
    record: ActRecord
    reward: float
    terminated: bool
    truncated: bool
    index: int  # the step's place in its episode


@dataclass
class Trajectory:
    """One finished episode: its steps in order and, when the step limit cut it, the request of
    the state it reached (its value is the bootstrap)."""

    job: RolloutJob
    domain: str
    steps: list[Step] = field(default_factory=list)
    success: bool = False
    bootstrap: tuple | None = None

    @property
    def episode_return(self) -> float:
        return sum(step.reward for step in self.steps)


def plan_iteration(config: RLConfig, rollout: RolloutConfig, tasks: list[str], iteration: int, rank: int = 0,
                   world: int = 1) -> list[RolloutJob]:
    """This process's share of the iteration's episodes (see the module docstring)."""
    from ..data.collect import episode_seed

    group_size = config.group_size if config.algorithm == "grpo" else 1
    groups = rollout.episodes // group_size
    jobs = []
    for g in range(groups):
        index = iteration * groups + g
        task = tasks[index % len(tasks)]  # over the iterations, every task in turn
        seed = episode_seed(config.seed, rollout.split, index)
        jobs.extend(RolloutJob(task, index, seed, group=index, sample=s) for s in range(group_size))
    return [job for job in jobs if job.group % world == rank]


class _Keeper(StepHooks):
    """Each episode's steps as the loop reports them; a re-started episode starts over."""

    def __init__(self, domain: str, scale: float):
        self.domain, self.scale = domain, scale
        self.running: dict[str, Trajectory] = {}

    def started(self, job: Job) -> None:
        self.running[job.key] = Trajectory(job, self.domain)  # type: ignore[arg-type]

    def stepped(self, job: Job, episode: Any, answer: Any, reward: float, terminated: bool, truncated: bool,
                observation: Any) -> None:
        from ..agent.inputs import observation_inputs

        trajectory = self.running[job.key]
        trajectory.steps.append(Step(answer.record, float(reward) * self.scale, bool(terminated),
                                     bool(truncated) and not terminated, len(trajectory.steps)))
        if truncated and not terminated:
            images, state = observation_inputs(observation, job.key)
            trajectory.bootstrap = (self.domain, episode.instruction, images, list(episode.actions), state)


class _Collector(Recorder):
    """The harness's recorder, also keeping each finished episode's outcome."""

    def __init__(self, out: Path, keeper: _Keeper):
        super().__init__(out, 0, None)
        self.keeper = keeper
        self.finished: list[Trajectory] = []
        self.env_failures = 0

    def record(self, job: Job, record: dict[str, Any], frames: list) -> dict[str, Any]:
        trajectory = self.keeper.running.pop(job.key, None)
        if record.get("cause") == "env_error" or trajectory is None:  # gave up after max_restarts: nothing to learn
            self.env_failures += 1
            return super().record(job, record, frames)
        trajectory.success = bool(record["success"])
        self.finished.append(trajectory)
        return super().record(job, {**record, "return": round(trajectory.episode_return, 6)}, frames)


@dataclass
class RolloutBatch:
    domain: str
    trajectories: list[Trajectory]
    restarts: int
    env_failures: int
    seconds: float

    @property
    def steps(self) -> int:
        return sum(len(t.steps) for t in self.trajectories)


def collect(agent: Any, domain: str, rollout: RolloutConfig, jobs: list[RolloutJob], workers: list[EnvWorker],
            out: Path, max_restarts: int = 3) -> RolloutBatch:
    """Run ``jobs`` (sampling, recording) on ``workers``; ``out``: where their episodes.jsonl goes
    (a folder left by an interrupted run is started over)."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    keeper = _Keeper(domain, rollout.reward_scale)
    collector = _Collector(out, keeper)
    config = EvalConfig(env=rollout.env, tasks=[], episodes=len(jobs), out=str(out), max_restarts=max_restarts,
                        progress=False)
    threads = cpu_threads_beside(agent, len(workers))
    started = time.perf_counter()
    try:
        restarts = _run_agent(config, agent, domain, workers, deque(jobs), collector, keeper) if jobs else 0
    finally:
        collector.close()
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
    order = {job.key: i for i, job in enumerate(jobs)}
    trajectories = sorted(collector.finished, key=lambda t: order[t.job.key])  # plan order, not finishing order
    return RolloutBatch(domain, trajectories, restarts, collector.env_failures, time.perf_counter() - started)
