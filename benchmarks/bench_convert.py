"""Throughput and peak memory of the dataset converters, alternatives measured side by side in one run.

Builds format-exact fake sources (``omniactor.data.converters.fake_sources``: GZIP
TFRecords with CRC-32C framing, GUI Odyssey JSON + PNG files, LIBERO HDF5, LeRobot v3
parquet + H.264 MP4) and converts each with the runner ``omniactor convert`` uses.

Throughput (steps/s, episodes/s, MB written), at realistic image sizes:

- every source with 1 and 2 worker processes (``--workers 1,2,4`` for more): wall-clock
  steps/s, and steps/s inside the workers (process start-up, ~1.5 s per spawned worker
  here, excluded: the speed-up a long conversion sees);
- AndroidControl with screenshots passed through as stored vs re-encoded (``--max-side 448
  --image-format jpeg``), and the cost of a resumed run over a finished folder;
- LIBERO with PNG vs JPEG images, and resized to the paper's 448x448;
- TFRecord reading alone (MB/s) with CRC-32C from ``google-crc32c``, from the pure-Python
  table, and unchecked.

Peak memory, per converter: the same kind of source at a base size and ``--scale`` times
larger (default 10x: more files / episodes, the same episode sizes), each converted with
one worker in a fresh Python process whose peak resident set size (``ru_maxrss``) is
read at the end. Streaming means the two peaks match: ``ratio`` = peak at Nx / peak at 1x,
and ``goal_met`` is true when every ratio is at most ``--max-ratio`` (default 1.2). The
1x source is a part of the Nx one (its first file, or links to its first episodes), so
only the large one is generated. LeRobot is measured twice: video features (MP4), and
image features embedded in the parquet data file (one row group, as LeRobot writes it:
the case where reading a data file whole would show).

    python benchmarks/bench_convert.py --json          # about 3 minutes on 2 busy CPU cores
    python benchmarks/bench_convert.py --quick --json  # smaller sources, for a smoke run
    python benchmarks/bench_convert.py --only memory --scale 30

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def folder_mb(path: Path) -> float:
    """Size on disk of a file, or of a folder's files (symbolic links followed)."""
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def run(name: str, converter: str, src: Path, out: Path, options: Any = None, workers: int = 1,
        limit: int | None = None) -> dict[str, Any]:
    from omniactor.data.converters import convert

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    summary = convert(converter, src, out, options, workers=workers, limit=limit)
    seconds = time.perf_counter() - started
    assert summary.episodes_skipped == 0, summary.format()
    row = {
        "case": name, "converter": converter, "workers": workers, "episodes": summary.episodes_converted,
        "steps": summary.steps_written, "seconds": round(seconds, 3),
        "steps_per_s": round(summary.steps_written / seconds, 1),
        # without process start-up: steps over the slowest worker's own time
        "steps_per_s_in_workers": round(summary.steps_written / max(summary.worker_seconds), 1),
        "episodes_per_s": round(summary.episodes_converted / seconds, 2),
        "mb_written": round(folder_mb(out), 2),
    }
    print(f"{name:<34} workers={workers}  {row['steps']:>5} steps  {row['seconds']:>7.2f} s  "
          f"{row['steps_per_s']:>8.1f} steps/s ({row['steps_per_s_in_workers']:>7.1f} in workers)  "
          f"{row['mb_written']:>7.1f} MB", flush=True)
    return row


def tfrecord_read_speed(files: list[Path], python_budget_mb: float) -> dict[str, float]:
    """MB/s of uncompressed record data read, per checksum mode."""
    from omniactor.data.converters import tfrecord

    def once(verify: bool, budget_mb: float | None) -> float:
        total, started = 0, time.perf_counter()
        for path in files:
            for record in tfrecord.read_records(path, verify=verify):
                total += len(record)
                if budget_mb is not None and total / 1e6 >= budget_mb:
                    return total / 1e6 / (time.perf_counter() - started)
        return total / 1e6 / (time.perf_counter() - started)

    def measure(verify: bool, budget_mb: float | None = None, repeats: int = 3) -> float:
        return max(once(verify, budget_mb) for _ in range(repeats))  # best of: other load only slows down

    once(False, None)  # warm the page cache, so the first mode is not charged for disk reads
    out = {"unchecked": measure(False)}
    if tfrecord.CRC32C_BACKEND == "google-crc32c":
        out["google_crc32c"] = measure(True)
    fast = tfrecord.crc32c
    tfrecord.crc32c = tfrecord.crc32c_python
    try:
        out["python_crc32c"] = measure(True, python_budget_mb, repeats=1)
    finally:
        tfrecord.crc32c = fast
    return {k: round(v, 1) for k, v in out.items()}


# ---------------------------------------------------------------------------- peak memory


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this program's own
    address space. Not ``ru_maxrss``: it survives ``execve``, so a child forked from a big
    parent would report the parent's peak. Elsewhere ``ru_maxrss`` (KiB, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def measure_child(spec: dict[str, Any]) -> None:
    """Child mode: convert ``spec["src"]`` with one worker (in this process), print steps, seconds
    and peak RSS as one JSON line. ``baseline_rss_mb`` is the peak after importing the
    converter's libraries and checking the source, before converting: what no source size changes.
    """
    from omniactor.data.converters import convert, get_converter

    get_converter(spec["converter"])(spec["src"]).check_source()  # imports h5py / pyarrow / av
    baseline = peak_rss_mb()
    started = time.perf_counter()
    summary = convert(spec["converter"], spec["src"], spec["out"], workers=1)
    seconds = time.perf_counter() - started
    print(json.dumps({
        "steps": summary.steps_written, "episodes": summary.episodes_converted, "skipped": summary.episodes_skipped,
        "seconds": round(seconds, 3), "baseline_rss_mb": round(baseline, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
    }))


def measure(converter: str, src: Path, out: Path) -> dict[str, Any]:
    """Peak RSS of one conversion, in a fresh interpreter (nothing of earlier runs in its heap)."""
    shutil.rmtree(out, ignore_errors=True)
    spec = {"converter": converter, "src": str(src), "out": str(out)}
    done = subprocess.run([sys.executable, __file__, "--measure-child", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    shutil.rmtree(out, ignore_errors=True)  # the outputs of the large sources are big
    if done.returncode:
        raise RuntimeError(f"measuring {converter} on {src} failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    if row["skipped"]:
        raise RuntimeError(f"{converter} skipped {row['skipped']} episode(s) of {src}")
    return row


@dataclass
class MemorySource:
    """A base-size source and one ``scale`` times larger, with their step counts and sizes on disk."""

    case: str
    converter: str
    small: Path
    large: Path
    small_steps: int
    large_steps: int
    small_mb: float
    large_mb: float


def build_memory_sources(root: Path, quick: bool, scale: int) -> list[MemorySource]:
    """Sources at 1x and ``scale``x. Only the large one is generated where the small one can be a part
    of it (a file of it, or links to its first episodes); LeRobot's metadata covers the whole
    folder, so its two sizes are written separately."""
    from omniactor.data.converters import fake_sources as fake

    screen = (135, 300) if quick else (270, 600)
    n_ac, n_od = (3, 4) if quick else (8, 10)
    demos, demo_steps, side = (2, 20, 32) if quick else (8, 60, 64)
    lr_episodes, lr_steps = (3, 20) if quick else (10, 60)
    out = []

    ac = fake.write_android_control(root / "ac", n_ac * scale, files=scale, size=screen, detail=0.25)
    first = min(p for p in ac.path.iterdir() if p.name.startswith("android_control"))
    small = sum(ac.episodes[str(1000 + i)] for i in range(0, n_ac * scale, scale))  # episode i is in file i % scale
    out.append(MemorySource("android_control", "android_control", first, ac.path, small, ac.steps,
                            folder_mb(first), folder_mb(ac.path)))

    od = fake.write_gui_odyssey(root / "od", n_od * scale, size=screen, detail=0.25)
    part = root / "od_1x"
    (part / "annotations").mkdir(parents=True, exist_ok=True)
    names = sorted((od.path / "annotations").glob("*.json"))[:n_od]
    for path in names:
        (part / "annotations" / path.name).symlink_to(path)
    (part / "screenshots").symlink_to(od.path / "screenshots", target_is_directory=True)
    small = sum(od.episodes[p.stem] for p in names)
    small_mb = sum(folder_mb(p) for p in names) + sum(
        folder_mb(shot) for p in names for shot in (od.path / "screenshots").glob(f"{p.stem}_*.png"))
    out.append(MemorySource("gui_odyssey", "gui_odyssey", part, od.path, small, od.steps, small_mb, folder_mb(od.path)))

    files = [fake.write_libero(root / "libero" / f"KITCHEN_SCENE{k}_task_{k}_demo.hdf5", demos, demo_steps, side,
                               seed=k, detail=0.25) for k in range(scale)]
    out.append(MemorySource("libero", "libero", files[0].path, root / "libero", files[0].steps,
                            sum(f.steps for f in files), folder_mb(files[0].path), folder_mb(root / "libero")))

    for case, video, detail in (("lerobot (video)", True, 0.0), ("lerobot (parquet images)", False, 0.5)):
        tag = "video" if video else "images"
        sizes = [fake.write_lerobot(root / f"lerobot_{tag}_{n}x", lr_episodes * n, lr_steps, side, video=video,
                                    detail=detail, keep_frames=False) for n in (1, scale)]
        out.append(MemorySource(case, "lerobot", sizes[0].path, sizes[1].path, sizes[0].steps, sizes[1].steps,
                                folder_mb(sizes[0].path), folder_mb(sizes[1].path)))
    return out


def memory_rows(sources: list[MemorySource], root: Path, scale: int, max_ratio: float) -> list[dict[str, Any]]:
    rows = []
    for source in sources:
        small = measure(source.converter, source.small, root / "out_mem")
        large = measure(source.converter, source.large, root / "out_mem")
        assert (small["steps"], large["steps"]) == (source.small_steps, source.large_steps), (source, small, large)
        ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
        row = {
            "case": source.case, "converter": source.converter, "scale": scale,
            "steps_1x": small["steps"], "steps_nx": large["steps"],
            "source_mb_1x": round(source.small_mb, 1), "source_mb_nx": round(source.large_mb, 1),
            "baseline_rss_mb": large["baseline_rss_mb"],
            "peak_rss_mb_1x": small["peak_rss_mb"], "peak_rss_mb_nx": large["peak_rss_mb"],
            "ratio": round(ratio, 3), "growth_mb": round(large["peak_rss_mb"] - small["peak_rss_mb"], 1),
            "flat": ratio <= max_ratio,
            "steps_per_s_nx": round(large["steps"] / large["seconds"], 1),
        }
        rows.append(row)
        print(f"{source.case:<26} {row['steps_1x']:>6} -> {row['steps_nx']:>6} steps  "
              f"source {row['source_mb_1x']:>6.1f} -> {row['source_mb_nx']:>6.1f} MB  "
              f"peak RSS {row['peak_rss_mb_1x']:>6.1f} -> {row['peak_rss_mb_nx']:>6.1f} MB  "
              f"ratio {row['ratio']:.2f}  (baseline {row['baseline_rss_mb']:.0f} MB)", flush=True)
    return rows


def throughput(root: Path, quick: bool, counts: list[int]) -> dict[str, Any]:
    """Steps/s of every converter at realistic image sizes (see the module docstring)."""
    from omniactor.data.converters import convert
    from omniactor.data.converters import fake_sources as fake
    from omniactor.data.converters.android_control import AndroidControlOptions
    from omniactor.data.converters.libero import LiberoOptions

    sizes = {
        "ac_episodes": 8 if quick else 24, "ac_screen": (270, 600) if quick else (540, 1200),
        "od_episodes": 8 if quick else 32, "od_screen": (270, 600) if quick else (540, 1200),
        "lib_demos": 4 if quick else 20, "lib_steps": 20 if quick else 100, "lib_size": 128,
        "lr_episodes": 4 if quick else 20, "lr_steps": 20 if quick else 100, "lr_size": 128,
    }
    print(f"building fake sources in {root} ...", flush=True)
    t = time.perf_counter()
    ac = fake.write_android_control(root / "src_ac", sizes["ac_episodes"], files=4, size=sizes["ac_screen"],
                                    detail=0.25)
    od = fake.write_gui_odyssey(root / "src_od", sizes["od_episodes"], size=sizes["od_screen"], detail=0.25)
    libero_dir = root / "src_libero"
    for k in range(4):
        fake.write_libero(libero_dir / f"KITCHEN_SCENE{k}_task_{k}_demo.hdf5", sizes["lib_demos"] // 4,
                          sizes["lib_steps"], sizes["lib_size"], seed=k, detail=0.25)
    lr = fake.write_lerobot(root / "src_lerobot", sizes["lr_episodes"], sizes["lr_steps"], sizes["lr_size"],
                            keep_frames=False)
    print(f"  built in {time.perf_counter() - t:.1f} s: android_control {ac.steps} steps "
          f"({folder_mb(ac.path):.1f} MB), gui_odyssey {od.steps} steps ({folder_mb(od.path):.1f} MB), libero "
          f"{sizes['lib_demos'] * sizes['lib_steps']} steps, lerobot {lr.steps} steps", flush=True)

    out = root / "out"
    rows = []
    for workers in counts:
        rows.append(run("android_control (passthrough)", "android_control", ac.path, out, None, workers))
    small = AndroidControlOptions(max_side=448, image_format="jpeg")
    rows.append(run("android_control (448px jpeg)", "android_control", ac.path, out, small, 1))
    started = time.perf_counter()
    resumed = convert("android_control", ac.path, out, small)  # everything done: scan and skip
    resume_seconds = time.perf_counter() - started
    print(f"{'android_control resumed (all done)':<34} {resumed.episodes_already_done} episodes skipped in "
          f"{resume_seconds:.2f} s", flush=True)
    for workers in counts:
        rows.append(run("gui_odyssey", "gui_odyssey", od.path, out, None, workers))
    for workers in counts:
        rows.append(run("libero (png)", "libero", libero_dir, out, None, workers))
    rows.append(run("libero (jpeg)", "libero", libero_dir, out, LiberoOptions(image_format="jpeg"), 1))
    paper = LiberoOptions(image_size="448", gripper="open1close0")  # the paper's input size, 128 -> 448 bicubic
    rows.append(run("libero (448x448 png)", "libero", libero_dir, out, paper, 1, limit=2))
    for workers in counts:
        rows.append(run("lerobot (h264 video)", "lerobot", lr.path, out, None, workers))
    shutil.rmtree(out, ignore_errors=True)

    files = sorted(p for p in ac.path.iterdir() if p.name.startswith("android_control"))
    read = tfrecord_read_speed(files, python_budget_mb=2 if quick else 10)
    print(f"TFRecord read MB/s: {read}", flush=True)

    def speedup(case: str) -> dict[str, float] | None:
        by_workers = {r["workers"]: r["steps_per_s_in_workers"] for r in rows if r["case"] == case}
        if 1 not in by_workers or len(by_workers) < 2:
            return None
        return {str(n): round(v / by_workers[1], 2) for n, v in sorted(by_workers.items()) if n != 1}

    default_case = {"android_control": "android_control (passthrough)", "gui_odyssey": "gui_odyssey",
                    "libero": "libero (png)", "lerobot": "lerobot (h264 video)"}
    return {
        "samples_per_s": {name: next(r["steps_per_s"] for r in rows if r["case"] == case and r["workers"] == 1)
                          for name, case in default_case.items()},
        "sources": sizes,
        "cases": rows,
        "speedup_vs_1_worker_in_workers": {case: speedup(case) for case in dict.fromkeys(r["case"] for r in rows)
                                           if speedup(case) is not None},
        "resume_all_done_seconds": round(resume_seconds, 3),
        "tfrecord_read_mb_per_s": read,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sources (a smoke run of about a minute)")
    parser.add_argument("--json", action="store_true", help="accepted for `make bench`; the last line is JSON anyway")
    parser.add_argument("--workdir", default=None, help="where to build sources and outputs (default: a temp dir)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default: 1,2)")
    parser.add_argument("--scale", type=int, default=10, help="the large memory source is this many times the "
                        "base one (default: 10)")
    parser.add_argument("--max-ratio", type=float, default=1.2,
                        help="goal: peak RSS at --scale x over peak RSS at 1x at most this (default: 1.2)")
    parser.add_argument("--only", choices=("throughput", "memory"), default=None, help="run one part only")
    parser.add_argument("--measure-child", default=None, help=argparse.SUPPRESS)  # internal: one measured run
    args = parser.parse_args()
    if args.measure_child is not None:
        measure_child(json.loads(args.measure_child))
        return
    if args.scale < 2:
        parser.error("--scale must be at least 2")

    from omniactor.data.converters.tfrecord import CRC32C_BACKEND

    started = time.perf_counter()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench_convert_"))
    root.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "benchmark": "convert",
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(), "crc32c": CRC32C_BACKEND},
    }
    try:
        if args.only != "memory":
            result.update(throughput(root / "throughput", args.quick, [int(n) for n in args.workers.split(",")]))
        if args.only != "throughput":
            print(f"peak memory, 1x vs {args.scale}x sources, one worker, a fresh process per run ...", flush=True)
            t = time.perf_counter()
            sources = build_memory_sources(root / "memory", args.quick, args.scale)
            print(f"  built in {time.perf_counter() - t:.1f} s", flush=True)
            rows = memory_rows(sources, root / "memory", args.scale, args.max_ratio)
            result["memory"] = {
                "scale": args.scale, "max_ratio": args.max_ratio,
                "goal_met": all(r["flat"] for r in rows),
                "peak_rss_mb": {r["case"]: {"1x": r["peak_rss_mb_1x"], f"{args.scale}x": r["peak_rss_mb_nx"],
                                            "ratio": r["ratio"]} for r in rows},
                "cases": rows,
            }
            result.setdefault("samples_per_s", {})
            for r in rows:  # without the throughput part: the large memory runs' rates
                result["samples_per_s"].setdefault(r["converter"], r["steps_per_s_nx"])
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine"]["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
