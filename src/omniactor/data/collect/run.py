"""``collect``: the whole run -- lock, recovery, resume, the workers, the summary."""

from __future__ import annotations

import queue
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..manifest import write_json_atomic
from .config import CollectConfig, Job, plan_jobs
from .ledger import Ledger
from .summary import CollectSummary, TaskSummary, count_finished
from .worker import run_worker, worker_process


def collect(config: CollectConfig, on_event: Callable[[dict], None] | None = None) -> CollectSummary:
    """Run the collection described by ``config``; returns the per-task summary (also written to
    ``DIR/.collect/last_run.json``)."""
    from ...envs.registry import get_spec

    get_spec(config.env).require()
    ledger = Ledger(config.out)
    Path(config.out).mkdir(parents=True, exist_ok=True)
    ledger.acquire()
    try:
        ledger.check_settings(config.settings())
        discarded = ledger.recover()
        done_before = ledger.finished()
        jobs = plan_jobs(config)
        todo = [job for job in jobs if job.key not in done_before]
        summary = CollectSummary(config.out, config.env, {t: TaskSummary(t) for t in config.tasks})
        summary.discarded_shards = discarded
        for job in jobs:
            if job.key in done_before:
                summary.tasks[job.task].skipped += 1
        start = time.monotonic()
        new_keys = _run_jobs(config, todo, summary, on_event)
        summary.seconds = time.monotonic() - start
        summary.discarded_shards += ledger.recover()  # shards of workers that died
        count_finished(summary, ledger.finished(), jobs, new_keys)
        ledger.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(ledger.dir / "last_run.json", {"config": _config_json(config), "summary": summary.to_json()})
        return summary
    finally:
        ledger.release()


def _config_json(config: CollectConfig) -> dict[str, Any]:
    data = asdict(config)
    data["tasks"] = list(config.tasks)
    return data


def _run_jobs(config: CollectConfig, todo: list[Job], summary: CollectSummary, on_event: Callable | None) -> set[str]:
    """Run ``todo`` in-process (one worker) or in worker processes; returns the keys committed."""
    bar = None
    if config.progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="ep", desc=f"collect {config.env}", dynamic_ncols=True)
    new_keys: set[str] = set()
    counts = {"ok": 0, "done": 0}
    os_errors: list[list] = []  # failed writes (a full disk): raised once the workers are gone

    def handle(event: dict) -> None:
        kind = event["type"]
        if kind == "episode":
            counts["done"] += 1
            counts["ok"] += int(event["success"])
            summary.steps_run += event["steps"]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(success=f"{counts['ok']}/{counts['done']}", restarts=summary.restarts, refresh=False)
        elif kind == "commit":
            new_keys.update(e["key"] for e in event["episodes"])
        elif kind == "restart":
            summary.restarts += 1
            if bar is not None:
                bar.set_postfix(success=f"{counts['ok']}/{counts['done']}", restarts=summary.restarts, refresh=False)
        elif kind == "gave_up":
            summary.given_up += 1
        elif kind == "worker_error":
            summary.worker_errors.append(event["error"])
            if event.get("os_error"):
                os_errors.append(event["os_error"])
        if on_event is not None:
            on_event(event)

    try:
        if not todo:
            return new_keys
        if config.workers == 1:
            try:
                run_worker(0, config, todo, handle)
            except OSError:  # a full disk: `error: FILE: ...` (exit 2); the committed episodes stay
                raise
            except Exception as err:  # noqa: BLE001 -- reported in the summary, like a worker process's
                summary.worker_errors.append(f"{type(err).__name__}: {err}")
                traceback.print_exc()
            return new_keys
        import multiprocessing as mp

        context = mp.get_context("spawn")  # fresh processes: no inherited browser threads or GL contexts
        jobs_queue, results = context.Queue(), context.Queue()
        for job in todo:
            jobs_queue.put(job)
        workers = min(config.workers, len(todo))
        for _ in range(workers):
            jobs_queue.put(None)
        processes = [
            context.Process(target=worker_process, args=(w, config, jobs_queue, results), daemon=False)
            for w in range(workers)
        ]
        for process in processes:
            process.start()
        finished, reported = 0, set()
        while finished < workers:
            try:
                event = results.get(timeout=1.0)
            except queue.Empty:
                if all(p.exitcode is not None for p in processes):
                    break  # every worker is gone (some without a word: killed)
                continue
            handle(event)
            if event["type"] in ("worker_done", "worker_error"):
                finished += 1
                reported.add(event["worker"])
        for number, process in enumerate(processes):
            process.join()
            if process.exitcode not in (0, None) and number not in reported:
                summary.worker_errors.append(f"worker {number} (pid {process.pid}) exited with code {process.exitcode}")
        if os_errors:
            raise OSError(*os_errors[0])
        return new_keys
    finally:
        if bar is not None:
            bar.close()
