"""Run a converter: parallel workers, whole episodes only, a resume ledger, a summary.

``convert(name, src, out)`` lists the converter's units, splits them into contiguous,
size-balanced blocks, one per worker process, and each worker streams its episodes into
its own ``DatasetWriter`` (append mode: several writers share one folder). An episode is
built completely (every sample checked, every image encoded) before its first line is
written, so a bad episode is skipped whole and never half-written.

Resuming. Each worker appends ``{"episode", "status": "done", "shards"}`` to a ledger
(``OUT/.convert/<source>/ledger-*.jsonl``) once an episode's lines are flushed; a writer
that closes merges its shards into ``manifest.json``. On start (under ``OUT/.convert/lock``,
so two conversions never share a folder) the runner

1. removes shards that ``manifest.json`` does not list, and their image folders: they were
   left by a worker that was killed (its episodes are not counted anywhere);
2. keeps the ledger entries whose shards are all in the manifest, compacted into one file;
3. skips those episodes. Everything else is converted (again). A resumed run must use the
   options the finished episodes were made with (``config.json`` beside the ledger), or
   the folder would mix two conversions: ``OptionsChanged`` says which option differs.

A worker interrupted between episodes closes its writer cleanly; one interrupted inside an
episode abandons it (step 1 cleans up on the next run). ``checkpoint_every`` closes and
reopens writers every N episodes so an interruption loses little work.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue as queue_module
import shutil
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ...errors import OmniactorError
from ...fileio import JsonLinesAppender, json_line, read_json_lines, write_bytes_atomic
from ..domains import domain_problems, known_domains
from ..io import DatasetWriter, shard_paths
from ..manifest import IMAGE_DIR, load_manifest, write_json_atomic
from .base import Converter, PendingEpisode, Skip, SkippedEpisode, Step, Unit

STATE_DIR = ".convert"
LOCK_FILE = "lock"
LEDGER_FILE = "ledger.jsonl"
EXAMPLES_PER_REASON = 3


class ConversionLocked(OmniactorError, RuntimeError):
    """Another conversion holds the output folder."""


class OptionsChanged(OmniactorError, ValueError):
    """A resumed conversion with options other than those its finished episodes were made with."""


def _check_same_options(config_path: Path, options: dict[str, Any], done: set[str], source: str) -> None:
    if not done or not config_path.is_file():
        return
    before = json.loads(config_path.read_text(encoding="utf-8")).get("options", {})
    now = json.loads(json.dumps(options))  # tuples -> lists, as saved
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if changed:
        what = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise OptionsChanged(
            f"{len(done)} episode(s) of {source!r} in this folder were converted with other options ({what}); "
            "resuming would mix the two. Use the same options, another --out, or another --source-name."
        )


@dataclass
class ConvertSummary:
    """What one run did; ``skipped`` maps a reason code to a count, ``examples`` to a few details."""

    source: str
    converter: str
    src: str
    out: str
    workers: int = 1
    units: int = 0
    episodes_converted: int = 0
    steps_written: int = 0
    episodes_already_done: int = 0
    episodes_skipped: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    removed_after_interruption: list[str] = field(default_factory=list)
    seconds: float = 0.0
    worker_seconds: list[float] = field(default_factory=list)  # each worker's own time, process start excluded
    records_in_folder: int = 0

    @property
    def episodes_per_second(self) -> float:
        return self.episodes_converted / self.seconds if self.seconds else 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps_written / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["episodes_per_second"] = round(self.episodes_per_second, 3)
        out["steps_per_second"] = round(self.steps_per_second, 3)
        return out

    def format(self) -> str:
        head = (
            f"{self.source}: converted {self.episodes_converted:,} episode(s), {self.steps_written:,} step(s) "
            f"in {self.seconds:.1f} s with {self.workers} worker(s) ({self.steps_per_second:.1f} steps/s); "
            f"{self.records_in_folder:,} records now in {self.out}"
        )
        lines = [head]
        if self.episodes_already_done:
            lines.append(f"  {self.episodes_already_done:,} episode(s) already converted by an earlier run (resumed)")
        if self.removed_after_interruption:
            lines.append(
                f"  removed {len(self.removed_after_interruption)} shard(s) an interrupted run left unfinished: "
                + ", ".join(self.removed_after_interruption)
            )
        if self.episodes_skipped:
            lines.append(f"  skipped {self.episodes_skipped:,} episode(s):")
            for reason, count in sorted(self.skipped.items(), key=lambda kv: -kv[1]):
                lines.append(f"    {reason}: {count:,}")
                lines += [f"      e.g. {example}" for example in self.examples.get(reason, [])]
        for note, count in sorted(self.notes.items()):
            lines.append(f"  note: {note}: {count:,}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- ledger and recovery


@contextmanager
def conversion_lock(out: Path) -> Iterator[None]:
    """Hold ``OUT/.convert/lock`` for the whole conversion (refuses a second one at once)."""
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    handle = open(state / LOCK_FILE, "a+")  # noqa: SIM115 - held across the yield, closed in finally
    try:
        try:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not POSIX: no protection
            pass
        except OSError:
            raise ConversionLocked(f"another conversion is writing into {out}; wait for it to finish") from None
        yield
    finally:
        handle.close()


def _ledger_entries(folder: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(folder.glob("ledger*.jsonl")):
        entries, _ = read_json_lines(path)  # a line cut short by a kill is dropped: that episode was not confirmed
        yield from (e for e in entries if isinstance(e, dict) and e.get("status") == "done")


def recover(out: Path, had_state: bool) -> list[str]:
    """Remove shards left unlisted by killed workers, compact every source's ledger; returns removed shards.

    Unlisted shards are only removed in a folder a conversion used before (``had_state``);
    elsewhere they may belong to someone else, so the run refuses to start.
    """
    manifest = load_manifest(out) if (out / "manifest.json").exists() else None
    listed = set(manifest.shards) if manifest else set()
    orphans = [rel for rel in shard_paths(out) if rel not in listed]
    if orphans and not had_state:
        raise RuntimeError(
            f"{out} holds shard(s) that manifest.json does not list ({', '.join(orphans[:3])}...): a writer did not "
            "close. Fix or remove them before converting into this folder."
        )
    for rel in orphans:
        path = out / rel
        stem = path.stem  # shard-00012 -> images/00012
        if stem.startswith("shard-") and stem[6:].isdigit():
            shutil.rmtree(out / IMAGE_DIR / stem[6:], ignore_errors=True)
        path.unlink(missing_ok=True)
    state = out / STATE_DIR
    for folder in (p for p in state.iterdir() if p.is_dir()) if state.is_dir() else ():
        kept: dict[str, dict[str, Any]] = {}
        for entry in _ledger_entries(folder):
            shards = entry.get("shards") or []
            if shards and all(s in listed for s in shards) and entry.get("episode") not in kept:
                kept[entry["episode"]] = entry
        # the compacted ledger replaces ledger.jsonl first, then the others go: a kill in between
        # leaves entries twice (read once), never none
        write_bytes_atomic(folder / LEDGER_FILE, b"".join(json_line(entry) for entry in kept.values()))
        for old in folder.glob("ledger*.jsonl"):
            if old.name != LEDGER_FILE:
                old.unlink()
    return orphans


def done_episodes(out: Path, source: str) -> set[str]:
    folder = out / STATE_DIR / source
    return {entry["episode"] for entry in _ledger_entries(folder)} if folder.is_dir() else set()


# ---------------------------------------------------------------------------- workers


@dataclass
class _Job:
    converter: type[Converter]
    src: str
    options: Any
    out: str
    units: list[Unit]
    done: set[str]
    ledger: str
    limit: int | None
    checkpoint_every: int
    shard_size: int


@dataclass
class _Result:
    converted: int = 0
    steps: int = 0
    already_done: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def skip(self, episode: str, reason: str, detail: str) -> None:
        self.skipped[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_PER_REASON:
            kept.append(f"episode {episode}: {detail}" if detail else f"episode {episode}")


def _check_steps(steps: list[Step], spaces: dict[str, Any], known: dict[str, Any]) -> None:
    """Every check the writer makes on a sample, before any is written (``Skip`` otherwise)."""
    if not steps:
        raise Skip("empty_episode", "no steps")
    for step in steps:
        sample = step.sample
        if step.images:  # the writer fills in the paths; stand-ins make the marker count checkable
            sample = replace(sample, images=[f"{IMAGE_DIR}/check/{k}.png" for k in range(len(step.images))])
        problems = [str(p) for p in sample.problems()]
        problems += domain_problems(sample.domain, sample.action, known)
        space = spaces.get(sample.meta.get("source"))
        if space is not None and not problems:
            problems += space.violations(sample.action)
        if problems:
            raise Skip("invalid_sample", f"step {sample.meta.get('step')}: {'; '.join(problems)}")


def _run_job(job: _Job, report: Callable[[str, int], None]) -> _Result:
    started = time.perf_counter()
    converter = job.converter(job.src, job.options)
    spaces = converter.action_spaces()
    known = known_domains()
    result = _Result()
    writer: DatasetWriter | None = None
    in_episode = False
    since_checkpoint = 0
    seen: set[str] = set()

    def open_writer() -> DatasetWriter:
        return DatasetWriter(job.out, append=True, action_spaces=spaces, shard_size=job.shard_size)

    ledger = JsonLinesAppender(job.ledger)
    try:
        for unit in job.units:
            for item in converter.episodes(unit):
                if job.limit is not None and result.converted >= job.limit:
                    break
                if isinstance(item, SkippedEpisode):
                    result.skip(item.id, item.reason, item.detail)
                    report("skipped", 0)
                    continue
                if not isinstance(item, PendingEpisode):
                    raise TypeError(f"{job.converter.name}.episodes() yielded {type(item).__name__}")
                if item.id in job.done:
                    result.already_done += 1
                    report("done_before", 0)
                    continue
                if item.id in seen:
                    result.skip(item.id, "duplicate_episode_id", "a second episode with this id in the source")
                    report("skipped", 0)
                    continue
                seen.add(item.id)
                try:
                    steps = item.load()
                    _check_steps(steps, spaces, known)
                except Skip as skip:
                    result.skip(item.id, skip.reason, skip.detail)
                    report("skipped", 0)
                    continue
                except Exception as err:  # noqa: BLE001 - malformed source data: count it, keep going
                    result.skip(item.id, "unreadable", f"{type(err).__name__}: {err}")
                    report("skipped", 0)
                    continue
                if writer is None:
                    writer = open_writer()
                in_episode = True
                shards: list[str] = []
                for step in steps:
                    record = writer.write(step.sample, images=step.images)
                    if record.file not in shards:
                        shards.append(record.file)
                writer.flush()
                # the episode counts once its ledger line is whole: a full disk before that abandons
                # the writer (its shards stay unlisted), so no record is ever kept without its line
                ledger.append({"episode": item.id, "status": "done", "shards": shards, "records": len(steps)})
                in_episode = False
                result.converted += 1
                result.steps += len(steps)
                report("converted", len(steps))
                since_checkpoint += 1
                if job.checkpoint_every and since_checkpoint >= job.checkpoint_every:
                    writer.close()
                    writer, since_checkpoint = None, 0
            if job.limit is not None and result.converted >= job.limit:
                break
        if writer is not None:
            writer.close()
            writer = None
    except OSError:  # a full disk: inside an episode (its ledger line included), drop the writer's shards now
        if writer is not None and in_episode:
            writer.abandon()
        elif writer is not None:
            writer.close()
        raise
    except BaseException:
        if writer is not None and not in_episode:
            writer.close()  # everything written so far is whole episodes: keep it
        raise  # inside an episode: abandon the writer; its shards are removed on the next run
    finally:
        ledger.close()
    result.notes = Counter(converter.counters)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _worker_main(job: _Job, queue: Any, index: int) -> None:
    try:
        result = _run_job(job, lambda kind, steps: queue.put(("progress", index, kind, steps)))
        queue.put(("result", index, result, None))
    except OSError as err:  # a full disk, a permission: the parent raises it as it is (``error: FILE: ...``)
        queue.put(("error", index, (err.errno, err.strerror or str(err), err.filename), traceback.format_exc()))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        queue.put(("error", index, None, traceback.format_exc()))


def split_units(units: list[Unit], parts: int) -> list[list[Unit]]:
    """Contiguous blocks of roughly equal total ``size`` (neighbouring units often share a file)."""
    parts = max(1, min(parts, len(units)))
    total = sum(max(u.size, 1) for u in units)
    blocks: list[list[Unit]] = [[] for _ in range(parts)]
    acc, k = 0, 0
    for i, unit in enumerate(units):
        remaining_units, remaining_blocks = len(units) - i, parts - k
        if blocks[k] and k < parts - 1 and (acc >= total * (k + 1) / parts or remaining_units <= remaining_blocks - 1):
            k += 1
        blocks[k].append(unit)
        acc += max(unit.size, 1)
    return [b for b in blocks if b]


# ---------------------------------------------------------------------------- entry point


def convert(
    converter: str | type[Converter],
    src: str | os.PathLike,
    out: str | os.PathLike,
    options: Any = None,
    *,
    workers: int = 1,
    limit: int | None = None,
    checkpoint_every: int = 200,
    shard_size: int = 10_000,
    progress: bool = False,
) -> ConvertSummary:
    """Convert the dataset at ``src`` into the dataset folder ``out`` (created or continued).

    ``converter`` is a registered name (see ``list_converters()``) or a ``Converter`` class;
    ``options`` its ``Options`` (defaults when None). ``workers`` processes share the units;
    ``limit`` caps the episodes converted in this run (split among workers). Re-running
    the same command resumes: finished episodes are skipped. Raises ``SourceError`` when
    ``src`` is not that dataset, ``MissingDependency`` when an optional package is missing.
    """
    from . import get_converter

    cls = get_converter(converter) if isinstance(converter, str) else converter
    instance = cls(src, options)
    instance.check_source()
    out = Path(out)
    source = instance.source
    started = time.perf_counter()
    had_state = (out / STATE_DIR).is_dir()
    summary = ConvertSummary(source, cls.name, str(src), str(out))
    with conversion_lock(out):
        summary.removed_after_interruption = recover(out, had_state)
        done = done_episodes(out, source)
        state = out / STATE_DIR / source
        # Options first: a changed option (e.g. the gripper mapping) also changes the action space,
        # and "options changed" says what to do about it better than "two action spaces" would.
        _check_same_options(state / "config.json", asdict(instance.options), done, source)
        DatasetWriter(out, append=True, action_spaces=instance.action_spaces()).close()  # checks the spaces agree
        units = instance.units()
        summary.units = len(units)
        blocks = split_units(units, workers) if units else []
        summary.workers = max(1, len(blocks))
        state.mkdir(parents=True, exist_ok=True)
        run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        shares = [None] * len(blocks)
        if limit is not None:  # as even as possible, summing to the limit
            shares = [limit // len(blocks) + (i < limit % len(blocks)) for i in range(len(blocks))]
        jobs = [
            _Job(cls, str(src), instance.options, str(out), block, done, str(state / f"ledger-{run_id}-w{i}.jsonl"),
                 share, checkpoint_every, shard_size)
            for i, (block, share) in enumerate(zip(blocks, shares))
        ]
        write_json_atomic(
            state / "config.json",
            {"converter": cls.name, "src": str(src), "out": str(out), "workers": workers, "limit": limit,
             "checkpoint_every": checkpoint_every, "shard_size": shard_size, "options": asdict(instance.options)},
        )
        results = _run_jobs(jobs, progress, source)
        for result in results:
            summary.episodes_converted += result.converted
            summary.steps_written += result.steps
            summary.episodes_already_done += result.already_done
            summary.worker_seconds.append(result.seconds)
            for reason, count in result.skipped.items():
                summary.skipped[reason] = summary.skipped.get(reason, 0) + count
                kept = summary.examples.setdefault(reason, [])
                kept += result.examples.get(reason, [])[: EXAMPLES_PER_REASON - len(kept)]
            for note, count in result.notes.items():
                summary.notes[note] = summary.notes.get(note, 0) + count
        for note, count in instance.counters.items():  # noted while listing units
            summary.notes[note] = summary.notes.get(note, 0) + count
        summary.episodes_skipped = sum(summary.skipped.values())
        summary.seconds = round(time.perf_counter() - started, 3)
        manifest = load_manifest(out)
        summary.records_in_folder = manifest.num_records if manifest else 0
        write_json_atomic(state / "summary.json", summary.to_json())
    return summary


def _run_jobs(jobs: list[_Job], progress: bool, source: str) -> list[_Result]:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="ep", desc=f"convert {source}", disable=None)

    def report(kind: str, steps: int) -> None:
        if bar is not None:
            bar.update(1)
            if kind == "skipped":
                bar.set_postfix_str("some episodes skipped (see summary)", refresh=False)

    try:
        if len(jobs) <= 1:
            return [_run_job(job, report) for job in jobs]
        context = mp.get_context("spawn")  # h5py, PyAV and threads do not survive fork well
        queue = context.Queue()
        processes = [context.Process(target=_worker_main, args=(job, queue, i)) for i, job in enumerate(jobs)]
        for process in processes:
            process.start()
        results: dict[int, _Result] = {}
        errors: dict[int, str] = {}
        os_errors: list[tuple] = []
        try:
            while len(results) + len(errors) < len(jobs):
                try:
                    kind, index, payload, extra = queue.get(timeout=1.0)
                except queue_module.Empty:  # a worker killed by a signal says nothing: look for it
                    for i, process in enumerate(processes):
                        if i not in results and i not in errors and not process.is_alive() and process.exitcode:
                            errors[i] = f"worker {i} died (exit code {process.exitcode})"
                    continue
                if kind == "progress":
                    report(payload, extra)
                elif kind == "result":
                    results[index] = payload
                else:
                    errors[index] = f"worker {index} failed:\n{extra}"
                    if payload is not None:
                        os_errors.append(payload)
        finally:
            for process in processes:
                process.join()
        if os_errors:  # the other workers closed what they finished: re-running resumes
            raise OSError(*os_errors[0])
        if errors:
            message = "\n".join(errors[i] for i in sorted(errors))
            raise RuntimeError(f"conversion failed (finished episodes are kept; re-run to resume):\n{message}")
        return [results[i] for i in sorted(results)]
    finally:
        if bar is not None:
            bar.close()
