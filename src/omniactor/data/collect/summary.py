"""The per-task summary a run prints at the end (and writes to ``.collect/last_run.json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .config import STATE_DIR, Job


@dataclass
class TaskSummary:
    """One task's line of the summary: this run's and earlier runs' finished episodes together."""

    task: str
    episodes: int = 0  # finished episodes (this run and before)
    successes: int = 0
    failed_excluded: int = 0
    failed_kept: int = 0
    steps_written: int = 0
    new: int = 0  # finished in this run
    skipped: int = 0  # found finished before this run

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0


@dataclass
class CollectSummary:
    """What ``collect`` returns and prints: per-task counts, restarts, discarded shards, errors."""

    out: str
    env: str
    tasks: dict[str, TaskSummary]
    restarts: int = 0
    given_up: int = 0
    discarded_shards: list[str] = field(default_factory=list)
    worker_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    steps_run: int = 0  # environment steps taken in this run

    @property
    def steps_per_second(self) -> float:
        return self.steps_run / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name, task in self.tasks.items():
            data["tasks"][name]["success_rate"] = round(task.success_rate, 4)
        data["steps_per_second"] = round(self.steps_per_second, 2)
        return data

    def format(self) -> str:
        width = max([len(t) for t in self.tasks] + [4])
        lines = [f"{'task':<{width}}  episodes  success  rate    steps  new  skipped  excluded"]
        for name, t in self.tasks.items():
            lines.append(
                f"{name:<{width}}  {t.episodes:8d}  {t.successes:7d}  {t.success_rate:5.1%}  {t.steps_written:7d}"
                f"  {t.new:3d}  {t.skipped:7d}  {t.failed_excluded:8d}"
            )
        total_eps = sum(t.episodes for t in self.tasks.values())
        total_ok = sum(t.successes for t in self.tasks.values())
        rate = total_ok / total_eps if total_eps else 0.0
        lines.append(
            f"all: {total_ok}/{total_eps} expert successes ({rate:.1%}), "
            f"{sum(t.steps_written for t in self.tasks.values())} records in {self.out}; "
            f"{self.steps_run} steps in {self.seconds:.1f}s ({self.steps_per_second:.1f} steps/s); "
            f"environment restarts: {self.restarts}"
            + (f"; episodes given up after restarts: {self.given_up}" if self.given_up else "")
        )
        if self.discarded_shards:
            lines.append(
                f"moved {len(self.discarded_shards)} uncommitted shard(s) of an interrupted run to "
                f"{self.out}/{STATE_DIR}/discarded"
            )
        for error in self.worker_errors:
            lines.append(f"worker failed: {error} (re-run the same command to finish the remaining episodes)")
        return "\n".join(lines)


def count_finished(summary: CollectSummary, finished: dict[str, dict], jobs: list[Job], new_keys: set[str]) -> None:
    """Count the run's jobs from the ledger's records (not from the events), so the summary says
    what the folder holds even when a worker died before reporting."""
    for job in jobs:
        record = finished.get(job.key)
        if record is None:
            continue
        task = summary.tasks[job.task]
        task.episodes += 1
        written = record.get("written", True)
        if record["success"]:
            task.successes += 1
        elif written:
            task.failed_kept += 1
        else:
            task.failed_excluded += 1
        if written:
            task.steps_written += record["steps"]
        if job.key in new_keys:
            task.new += 1
