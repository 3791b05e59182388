"""Collector overhead and worker scaling, per environment, measured side by side in one run.

For each environment (same tasks, same episodes, same render size, same expert):

- ``raw``: the bare loop ``env.reset(seed)`` / ``expert.act`` / ``env.step`` over the episodes;
- ``collect_1``: ``omniactor collect`` with one worker (samples built, PNGs encoded, shards
  written and committed, manifest merged) on the same episodes;
- ``collect_2``: the same with two worker processes;
- ``raw_2``: the bare loop split over two processes (no collector): the speed-up this machine
  gives two processes that only step, the ceiling for ``collect_2``'s.

Reported: steps per second of each, the collector's overhead over the raw loop
(``raw / collect_1 - 1``), the 1 -> 2 worker speed-up, and how many cores one worker keeps
busy (process + child CPU time / wall time: an environment whose own step already uses
more than one core cannot scale 2x on two cores). Timings include creating the
environments (one per task) in every variant. The machine may be shared: each variant
runs ``--repeats`` times and the best time is kept.

The collected folders go under ``--out-dir`` (default ``runs/bench-collect`` in the repository,
where a user's ``--out`` would be). The format stores one image file per step, so the cost of
creating a file is part of the collector's: each collect variant reports ``file_create_ms``,
the CPU it took to create one small file in its own output folder just before the run (on
the project's 2-core machine this varies between fresh folders of the same ext4 disk, from
about 0.03 ms to about 1 ms; at 1 ms it alone adds about 80% to a 1.2 ms BabyAI step).

    python benchmarks/bench_collect.py --json            # all three environments
    python benchmarks/bench_collect.py --envs babyai     # one of them
    python benchmarks/bench_collect.py --envs babyai --out-dir /tmp   # another disk / folder
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

# env -> (tasks, episodes per task, env config)
SETUPS = {
    "babyai": (("BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0"), 1000, {"image_size": [64, 64]}),
    "metaworld": (("reach-v3", "drawer-close-v3"), 8, {"image_size": [224, 224]}),
    "miniwob": (("click-test", "enter-text", "login-user"), 45, {}),
}


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def raw_loop(env_name: str, tasks, episodes: int, env_config: dict, part: int = 0, parts: int = 1) -> dict:
    """The bare environment + expert loop on the collector's seeds (episodes ``part``, ``part + parts``,
    ... of each task); returns steps, seconds, cores."""
    from omniactor.data.collect import episode_seed
    from omniactor.envs import make_env, make_expert

    steps = successes = 0
    cpu, start = _cpu(), time.perf_counter()
    for task in tasks:
        env = make_env(env_name, task, **env_config)
        expert = make_expert(env_name, env)
        for i in range(part, episodes, parts):
            obs = env.reset(episode_seed(0, "train", i))
            expert.reset(env, obs)
            while True:
                result = env.step(expert.act(obs))
                obs = result.observation
                steps += 1
                if result.done:
                    successes += int(result.success)
                    break
        env.close()
    seconds = time.perf_counter() - start
    return {"steps": steps, "seconds": seconds, "successes": successes, "cores": (_cpu() - cpu) / seconds}


def _raw_part(args: tuple) -> dict:
    return raw_loop(*args)


def raw_parallel(env_name: str, tasks, episodes: int, env_config: dict, processes: int = 2) -> dict:
    """The bare loop split over ``processes`` spawned processes (each its own environments, the
    episodes dealt out in turn): what this machine gives two workers that do nothing but step.
    Timed from before the processes start until the last one is done, as the collector is."""
    import multiprocessing as mp

    cpu, start = _cpu(), time.perf_counter()
    with mp.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_raw_part, [(env_name, tasks, episodes, env_config, k, processes) for k in range(processes)])
    seconds = time.perf_counter() - start
    return {"steps": sum(p["steps"] for p in parts), "seconds": seconds,
            "successes": sum(p["successes"] for p in parts), "cores": (_cpu() - cpu) / seconds}


def file_create_ms(folder: str, files: int = 300) -> float:
    """CPU milliseconds to create, write (1.4 KB, a small PNG) and close one file in ``folder``."""
    probe = os.path.join(folder, ".probe")
    os.makedirs(probe)
    try:
        cpu = time.process_time()
        for i in range(files):
            with open(os.path.join(probe, f"{i:06d}.png"), "wb") as handle:
                handle.write(b"x" * 1400)
        return round((time.process_time() - cpu) / files * 1e3, 4)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def collect_run(env_name: str, tasks, episodes: int, env_config: dict, workers: int, out_dir: str) -> dict:
    from omniactor.data.collect import CollectConfig, collect

    out = tempfile.mkdtemp(prefix=f"bench-collect-{env_name}-", dir=out_dir)
    try:
        config = CollectConfig(
            env=env_name,
            tasks=tuple(tasks),
            episodes=episodes,
            out=out,
            workers=workers,
            env_config=env_config,
            progress=False,
        )
        create_ms = file_create_ms(out)  # the folder's own cost: it varies between folders of one disk
        cpu, start = _cpu(), time.perf_counter()
        summary = collect(config)
        seconds = time.perf_counter() - start
        if summary.worker_errors:
            raise RuntimeError(f"collect failed: {summary.worker_errors}")
        return {
            "steps": summary.steps_run,
            "seconds": seconds,
            "successes": sum(t.successes for t in summary.tasks.values()),
            "records": sum(t.steps_written for t in summary.tasks.values()),
            "cores": (_cpu() - cpu) / seconds,
            "file_create_ms": create_ms,
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def best(runs: list[dict]) -> dict:
    out = min(runs, key=lambda r: r["seconds"])
    return {
        **out,
        "steps_per_second": round(out["steps"] / out["seconds"], 2),
        "seconds": round(out["seconds"], 2),
        "cores": round(out["cores"], 2),
        # CPU per step (all processes): unlike steps/s, barely moved by other programs' load
        "cpu_ms_per_step": round(out["cores"] * out["seconds"] / out["steps"] * 1e3, 3),
    }


def bench(env_name: str, repeats: int, scale: float, out_dir: str) -> dict:
    tasks, episodes, env_config = SETUPS[env_name]
    episodes = max(1, int(episodes * scale))
    raw = best([raw_loop(env_name, tasks, episodes, env_config) for _ in range(repeats)])
    raw_2 = best([raw_parallel(env_name, tasks, episodes, env_config, 2) for _ in range(repeats)])
    one = best([collect_run(env_name, tasks, episodes, env_config, 1, out_dir) for _ in range(repeats)])
    two = best([collect_run(env_name, tasks, episodes, env_config, 2, out_dir) for _ in range(repeats)])
    assert raw["steps"] == raw_2["steps"] == one["steps"] == two["steps"], "the variants did not run the same episodes"
    return {
        "tasks": list(tasks),
        "episodes_per_task": episodes,
        "env_config": env_config,
        "raw": raw,
        "raw_2": raw_2,
        "collect_1": one,
        "collect_2": two,
        "overhead": round(raw["steps_per_second"] / one["steps_per_second"] - 1, 4),
        "speedup_2_workers": round(two["steps_per_second"] / one["steps_per_second"], 3),
        # the machine's own ceiling: two bare loops in two processes against one
        "raw_speedup_2_processes": round(raw_2["steps_per_second"] / raw["steps_per_second"], 3),
        "cores_per_worker": one["cores"],
        "cpu_overhead": round(one["cpu_ms_per_step"] / raw["cpu_ms_per_step"] - 1, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(SETUPS), help="comma-separated environments (default: all three)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per variant; the fastest is kept (default 1)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the episodes per task (default 1)")
    parser.add_argument(
        "--out-dir",
        default=str(Path(__file__).resolve().parents[1] / "runs" / "bench-collect"),
        help="folder for the collected datasets (removed after each run; default: runs/bench-collect)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    from omniactor.envs.registry import get_spec

    os.makedirs(args.out_dir, exist_ok=True)
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1min": round(os.getloadavg()[0], 2),
            "out_dir": os.path.relpath(args.out_dir),  # recorded results hold no machine paths
        }
    }
    for name in args.envs.split(","):
        missing = get_spec(name).missing()
        if missing:
            results[name] = {"skipped": f"missing {', '.join(missing)}: {get_spec(name).install_hint()}"}
            print(f"{name}: skipped ({results[name]['skipped']})", flush=True)
            continue
        r = bench(name, args.repeats, args.scale, args.out_dir)
        results[name] = r
        print(
            f"{name}: raw {r['raw']['steps_per_second']:.1f} steps/s | collect 1 worker "
            f"{r['collect_1']['steps_per_second']:.1f} steps/s (overhead {r['overhead']:+.1%}) | 2 workers "
            f"{r['collect_2']['steps_per_second']:.1f} steps/s (x{r['speedup_2_workers']:.2f}); "
            f"two bare loops in two processes: x{r['raw_speedup_2_processes']:.2f} over one; "
            f"one worker keeps {r['cores_per_worker']:.2f} cores busy; {r['raw']['steps']} steps",
            flush=True,
        )
    results["machine"]["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
