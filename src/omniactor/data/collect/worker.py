"""A worker: one environment at a time, restarted when it dies, feeding its ``Committer``."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from typing import Any

from .commit import Committer
from .config import CollectConfig, Job
from .episode import run_episode


def run_worker(worker: int, config: CollectConfig, jobs: Iterable[Job], report: Callable[[dict], None]) -> None:
    """Run ``jobs`` with one environment at a time, restarting it when it dies; reports progress."""
    from ...envs.base import EnvError
    from ...envs.registry import get_spec, make_env, make_expert

    domain = get_spec(config.env).domain
    env = expert = None
    current = None
    committer: Committer | None = None
    try:
        for job in jobs:
            attempts = 0
            while True:
                try:
                    if env is None or current != job.task:
                        _close_quietly(env)
                        env = None
                        env = make_env(config.env, job.task, **config.env_config)
                        expert = make_expert(config.env, env)
                        current = job.task
                        if committer is None:
                            committer = Committer(config, config.env, domain, env.action_space, report)
                    episode = run_episode(env, expert, job)
                    break
                except EnvError as err:
                    attempts += 1
                    report({"type": "restart", "task": job.task, "key": job.key, "error": str(err)[:300]})
                    _close_quietly(env)
                    env = None
                    if attempts > config.max_restarts:
                        episode = None
                        report({"type": "gave_up", "task": job.task, "key": job.key, "error": str(err)[:300]})
                        break
            if episode is None:
                continue
            report({"type": "episode", "task": job.task, "success": episode.success, "steps": len(episode.actions)})
            committer.put(episode)
    finally:
        try:
            if committer is not None:
                committer.close()
        finally:
            _close_quietly(env)


def _close_quietly(env: Any) -> None:
    if env is None:
        return
    try:
        env.close()
    except Exception:  # noqa: BLE001, S110 -- a dying environment often fails to close; it is replaced anyway
        pass


def worker_process(worker: int, config: CollectConfig, jobs: Any, results: Any) -> None:
    """Entry point of a worker process: jobs from a queue until ``None``."""
    try:
        run_worker(worker, config, iter(jobs.get, None), results.put)
    except BaseException as err:  # noqa: BLE001 -- reported to the parent, then the process exits 1
        results.put(
            {
                "type": "worker_error",
                "worker": worker,
                "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(),
                # a full disk: the parent raises it as an OSError naming the file
                **({"os_error": [err.errno, err.strerror or str(err), err.filename]}
                   if isinstance(err, OSError) else {}),
            }
        )
        raise SystemExit(1) from None
    results.put({"type": "worker_done", "worker": worker})
