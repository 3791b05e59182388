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

Tasks: by default (``task_sampling: uniform``) the episodes go to the tasks in turn. With
``task_sampling: failures`` an iteration's episodes go to the tasks in proportion to their
estimated failure rate (``failure_weighted_tasks``): a task the agent already solves teaches little, and
under GRPO a group whose rollouts all succeed has no advantage at all. Each task keeps at least
one episode (group) while there are as many as tasks, so its estimate stays current. The
estimate is Laplace-smoothed over the earlier iterations' rollouts, each iteration's counts
weighing half as much as the next one's (``TaskOutcomes``), so iteration 0 is uniform.

Expert labels (``expert_coef``): the workers run the environment's expert beside the agent
(``EnvWorker(expert_labels=True)``) and return its action with each observation; each ``Step``
keeps the expert's action for the state it was taken in (None where the expert gave none).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..action_adapters import ActRecord
from ..actions import Action
from ..evaluation.online import (
    EXPERT_ACTION,
    EnvWorker,
    EvalConfig,
    Job,
    Recorder,
    StepHooks,
    _run_agent,
    cpu_threads_beside,
)
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
    expert_action: Action | None = None  # what the environment's expert would have done here (expert_coef)
    action: Action | None = None  # what the agent did (its kind is counted per iteration: actions/<d>/<kind>)


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


#: how much an iteration's rollout outcomes count, per iteration since, in the task weights
OUTCOME_DECAY = 0.5


@dataclass
class TaskOutcomes:
    """Per task, the decayed count of rollout episodes and successes so far (over all processes)."""

    counts: dict[str, list[float]] = field(default_factory=dict)  # task -> [episodes, successes]

    def add(self, new: dict[str, tuple[float, float]]) -> None:
        for task in sorted(set(self.counts) | set(new)):
            episodes, successes = self.counts.get(task, (0.0, 0.0))
            got = new.get(task, (0.0, 0.0))
            self.counts[task] = [OUTCOME_DECAY * episodes + got[0], OUTCOME_DECAY * successes + got[1]]

    def failure_rate(self, task: str) -> float:
        """Laplace-smoothed: 0.5 for a task with no episodes yet."""
        episodes, successes = self.counts.get(task, (0.0, 0.0))
        return 1.0 - (successes + 1.0) / (episodes + 2.0)


def failure_weighted_tasks(tasks: list[str], groups: int, outcomes: TaskOutcomes) -> list[str]:
    """The task of each of ``groups`` groups: at least one per task while ``groups >= len(tasks)``,
    the rest in proportion to the failure rates (largest remainder, ties to the earlier task),
    interleaved task by task."""
    rates = [outcomes.failure_rate(t) for t in tasks]
    floor = 1 if groups >= len(tasks) else 0
    spare = groups - floor * len(tasks)
    total = sum(rates)
    shares = [spare * r / total for r in rates]
    counts = [floor + int(share) for share in shares]
    by_remainder = sorted(range(len(tasks)), key=lambda i: (-(shares[i] - int(shares[i])), i))
    for i in by_remainder[:groups - sum(counts)]:
        counts[i] += 1
    order: list[str] = []
    while len(order) < groups:
        for i, task in enumerate(tasks):
            if counts[i]:
                order.append(task)
                counts[i] -= 1
    return order


def plan_iteration(config: RLConfig, rollout: RolloutConfig, tasks: list[str], iteration: int, rank: int = 0,
                   world: int = 1, outcomes: TaskOutcomes | None = None) -> list[RolloutJob]:
    """This process's share of the iteration's episodes (see the module docstring); ``outcomes``:
    the domain's rollout outcomes so far, which ``task_sampling: failures`` weighs the tasks by."""
    from ..data.collect import episode_seed

    group_size = config.group_size if config.algorithm == "grpo" else 1
    groups = rollout.episodes // group_size
    chosen = None
    if config.task_sampling == "failures":
        chosen = failure_weighted_tasks(tasks, groups, outcomes or TaskOutcomes())
    jobs = []
    for g in range(groups):
        index = iteration * groups + g
        task = chosen[g] if chosen else tasks[index % len(tasks)]  # uniform: over the iterations, every task in turn
        seed = episode_seed(config.seed, rollout.split, index)
        jobs.extend(RolloutJob(task, index, seed, group=index, sample=s) for s in range(group_size))
    return [job for job in jobs if job.group % world == rank]


class _Keeper(StepHooks):
    """Each episode's steps as the loop reports them, with the expert's label of the state each
    was taken in when the workers give one; a re-started episode starts over."""

    def __init__(self, domain: str, scale: float):
        self.domain, self.scale = domain, scale
        self.running: dict[str, Trajectory] = {}
        self.suggestion: dict[str, Action | None] = {}  # the expert's action for the state now

    def started(self, job: Job, observation: Any) -> None:
        self.running[job.key] = Trajectory(job, self.domain)  # type: ignore[arg-type]
        self.suggestion[job.key] = observation.extra.get(EXPERT_ACTION)

    def stepped(self, job: Job, episode: Any, answer: Any, reward: float, terminated: bool, truncated: bool,
                observation: Any) -> None:
        from ..agent.inputs import observation_inputs

        trajectory = self.running[job.key]
        trajectory.steps.append(Step(answer.record, float(reward) * self.scale, bool(terminated),
                                     bool(truncated) and not terminated, len(trajectory.steps),
                                     self.suggestion.pop(job.key, None), answer.action))
        self.suggestion[job.key] = observation.extra.get(EXPERT_ACTION)
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

    @property
    def expert_labelled(self) -> int:
        """Steps the environment's expert labelled (``expert_coef``)."""
        return sum(step.expert_action is not None for t in self.trajectories for step in t.steps)

    def task_counts(self) -> dict[str, tuple[int, int]]:
        """Per task: this process's finished episodes and successes."""
        counts: dict[str, tuple[int, int]] = {}
        for trajectory in self.trajectories:
            episodes, successes = counts.get(trajectory.job.task, (0, 0))
            counts[trajectory.job.task] = (episodes + 1, successes + int(trajectory.success))
        return counts


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
