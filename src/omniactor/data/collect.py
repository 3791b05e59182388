"""Expert demonstration collection: run an environment's scripted expert, write unified samples.

``collect(CollectConfig(env="metaworld", tasks=["reach-v3"], episodes=50, out="data/mw"))``
runs each task's episodes with the expert and writes one record per step (the
instruction, the image(s), the previous actions in the prompt, the expert's action) into
a dataset folder that ``omniactor data validate`` accepts.

- **Deterministic**: episode ``i`` of split ``s`` has seed ``SPLIT_OFFSETS[s] + seed + i``;
  the splits never share a seed, and the same seed gives the same episode whatever the
  number of workers.
- **Parallel**: ``workers`` processes, each with its own environment (browser, simulator).
- **Atomic episodes**: a worker buffers whole episodes and commits them in batches: one
  ``DatasetWriter`` per batch writes one shard, then a sidecar ``.collect/commits/<shard>.json``
  naming its episodes, then merges into ``manifest.json`` -- the commit point. A shard the
  manifest does not list was never committed: the next run moves it (with its images and
  sidecar) to ``.collect/discarded/``, so the folder never holds half an episode.
- **Resumable**: episodes named in committed sidecars (and failed episodes, recorded in
  ``.collect/failed/``) are skipped when the same command runs again.
- **Recovering**: when the browser or simulator dies mid-episode, the worker discards that
  episode, starts a new environment and runs it again (``max_restarts`` times), counting restarts.
- Failed expert episodes are left out (``keep_failed`` keeps them, with ``meta.success = false``)
  and counted in the summary.
- **Beside the loop**: each worker hands finished episodes to a ``Committer``: PNGs are
  encoded on a thread (large images) or in a committer process (small ones), and samples
  are built, validated and written in that process, so the environment loop rarely waits.

Layout: ``CollectConfig`` / ``plan_jobs`` (what), ``Ledger`` (the folder's bookkeeping),
``run_episode`` (one episode), ``Committer`` / ``CommitLoop`` (writing), ``run_worker``
(one worker), ``collect`` (the run and its ``CollectSummary``).
"""

from __future__ import annotations

import io
import json
import os
import queue
import shutil
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .manifest import IMAGE_DIR, LOCK_FILE, SHARD_DIR, load_manifest, write_json_atomic

#: Images up to this many pixels (per step, all views) are PNG-encoded in the committer process.
SMALL_IMAGE_PIXELS = 128 * 128
SPLIT_OFFSETS = {"train": 0, "validation": 1_000_000_000, "test": 2_000_000_000}
STATE_DIR = ".collect"
LOCK_NAME = "lock"


class CollectError(RuntimeError):
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
    task: str
    index: int
    seed: int
    split: str

    @property
    def key(self) -> str:
        return f"{self.task}/{self.split}/{self.seed}"


def episode_seed(seed: int, split: str, index: int) -> int:
    return SPLIT_OFFSETS[split] + seed + index


def plan_jobs(config: CollectConfig) -> list[Job]:
    """Every episode of the run, task after task (workers then share an environment kind at a time)."""
    return [
        Job(task, i, episode_seed(config.seed, config.split, i), config.split)
        for task in config.tasks
        for i in range(config.episodes)
    ]


# ---------------------------------------------------------------------------- the folder's ledger


class Ledger:
    """The collector's bookkeeping under ``DIR/.collect``: lock, settings, commits, failures."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.dir = self.root / STATE_DIR
        self.commits = self.dir / "commits"
        self.failed = self.dir / "failed"
        self.discarded = self.dir / "discarded"

    # -- lock: one collect run per folder at a time

    def acquire(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / LOCK_NAME
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _alive(pid) and pid != os.getpid():
                    raise CollectError(
                        f"{self.root} is being written by another collect run (pid {pid}); "
                        f"wait for it or, if it is gone, delete {path}"
                    ) from None
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return

    def release(self) -> None:
        (self.dir / LOCK_NAME).unlink(missing_ok=True)

    # -- settings

    def check_settings(self, settings: dict[str, Any]) -> None:
        path = self.dir / "settings.json"
        if path.exists():
            old = json.loads(path.read_text(encoding="utf-8"))
            if old != json.loads(json.dumps(settings)):
                raise CollectError(
                    f"{self.root} holds episodes collected with {json.dumps(old)}; this run asks for "
                    f"{json.dumps(settings)}. Use another --out, or the same settings to continue."
                )
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, settings)

    # -- recovery and resume

    def recover(self) -> list[str]:
        """Move shards the manifest does not list (never committed) to ``.collect/discarded``; returns them.
        Also removes a ``manifest.lock`` left by a writer that was killed while merging."""
        lock = self.root / LOCK_FILE
        try:
            holder = int(lock.read_text().strip() or 0)
        except (OSError, ValueError):
            holder = None
        if holder is not None and not (holder and _alive(holder)):
            lock.unlink(missing_ok=True)
        manifest = load_manifest(self.root)
        listed = set(manifest.shards) if manifest else set()
        moved = []
        shard_dir = self.root / SHARD_DIR
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for path in sorted(shard_dir.glob("*.jsonl")) if shard_dir.is_dir() else []:
            rel = f"{SHARD_DIR}/{path.name}"
            if rel in listed:
                continue
            target = self.discarded / f"{stamp}-{path.stem}"
            target.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target / path.name)
            index = path.stem.rsplit("-", 1)[-1]
            images = self.root / IMAGE_DIR / index
            if images.is_dir():
                shutil.move(str(images), target / "images")
            sidecar = self.commits / f"{path.stem}.json"
            if sidecar.exists():
                shutil.move(str(sidecar), target / sidecar.name)
            moved.append(rel)
        for sidecar in self.commits.glob("*.json") if self.commits.is_dir() else []:
            if f"{SHARD_DIR}/{sidecar.stem}.jsonl" not in listed:
                sidecar.unlink()  # its shard is gone: nothing of it was committed
        return moved

    def finished(self) -> dict[str, dict[str, Any]]:
        """Episode key -> its record (task, seed, success, steps) for every committed or failed episode."""
        manifest = load_manifest(self.root)
        listed = set(manifest.shards) if manifest else set()
        out: dict[str, dict[str, Any]] = {}
        for sidecar in sorted(self.commits.glob("*.json")) if self.commits.is_dir() else []:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            if data.get("shard") in listed:
                for episode in data["episodes"]:
                    out[episode["key"]] = episode
        for path in sorted(self.failed.glob("*.json")) if self.failed.is_dir() else []:
            for episode in json.loads(path.read_text(encoding="utf-8"))["episodes"]:
                out.setdefault(episode["key"], episode)
        return out

    def write_failed(self, episodes: list[dict[str, Any]]) -> None:
        self.failed.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.failed / f"{uuid.uuid4().hex}.json", {"episodes": episodes})

    def write_commit(self, shard: str, episodes: list[dict[str, Any]]) -> None:
        self.commits.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.commits / f"{Path(shard).stem}.json", {"shard": shard, "episodes": episodes})


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


# ---------------------------------------------------------------------------- one episode


@dataclass
class Episode:
    """A finished episode held in memory until committed."""

    job: Job
    instruction: list[str]
    images: list[list[np.ndarray]]  # per step, one (H, W, 3) array per view
    actions: list[Any]
    states: list[np.ndarray | None]
    success: bool
    error: str | None = None  # the expert failed with an exception

    def info(self, written: bool) -> dict[str, Any]:
        return {
            "key": self.job.key,
            "task": self.job.task,
            "seed": self.job.seed,
            "split": self.job.split,
            "success": self.success,
            "steps": len(self.actions),
            "written": written,
            **({"error": self.error} if self.error else {}),
        }


def run_episode(env: Any, expert: Any, job: Job) -> Episode:
    """Run the expert for one episode. Environment failures raise ``EnvError``; an expert that
    raises, or emits an action the environment refuses, ends the episode as a failure (its
    message kept in ``Episode.error``)."""
    from ..envs.base import EnvError

    obs = env.reset(job.seed)
    episode = Episode(job, [], [], [], [], False)
    try:
        expert.reset(env, obs)
    except Exception as err:
        episode.error = f"{type(err).__name__}: {err}"
        return episode
    while True:
        try:
            action = expert.act(obs)
        except Exception as err:
            episode.error = f"{type(err).__name__}: {err}"
            return episode
        episode.instruction.append(obs.instruction)
        episode.images.append(list(obs.images.values()))
        episode.states.append(obs.state)
        episode.actions.append(action)
        try:
            result = env.step(action)
        except EnvError:
            raise
        except (TypeError, ValueError) as err:  # an action the environment refuses: the expert's fault
            episode.error = f"{type(err).__name__}: {err}"
            return episode
        obs = result.observation
        if result.done:
            episode.success = result.success
            return episode


# ---------------------------------------------------------------------------- committing (background thread)


def _encode_png(image: np.ndarray, level: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG", compress_level=level)
    return buffer.getvalue()


class Committer:
    """Commits a worker's episodes without slowing its environment loop.

    PNG encoding (which releases the GIL) runs on a thread of the worker; sample building,
    validation and file writes (Python that holds the GIL) run in a separate committer
    process, which receives the encoded episodes. ``report`` receives its events. The
    committer dies with its worker, so a killed worker leaves only uncommitted shards
    behind (discarded by the next run).
    """

    def __init__(self, config: CollectConfig, env_name: str, domain: str, space: Any, report: Callable):
        import multiprocessing as mp
        from concurrent.futures import ThreadPoolExecutor

        self.config = config
        self.report = report
        context = mp.get_context("spawn")
        self._episodes = context.Queue(maxsize=32)
        self._events = context.Queue()
        self._process = context.Process(
            target=_committer_main,
            args=(config, env_name, domain, space, self._episodes, self._events, os.getpid()),
            name="omniactor-committer",
            daemon=True,
        )
        self._process.start()
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="omniactor-png")
        self._pending: list[Any] = []
        self._error: str | None = None

    def _encode_and_send(self, episode: Episode) -> None:
        level = self.config.png_compress_level
        if episode.actions and (episode.success or self.config.keep_failed):
            episode.images = [[_encode_png(img, level) for img in step] for step in episode.images]
        else:
            episode.images = []
        self._send(episode)

    def _send(self, item: Any) -> None:
        """Put on the committer's queue, never blocking forever on a committer that died."""
        while True:
            try:
                self._episodes.put(item, timeout=1.0)
                return
            except queue.Full:
                if not self._process.is_alive():
                    raise RuntimeError(f"the committer process died (exit code {self._process.exitcode})") from None

    def _drain(self, block: bool = False) -> bool:
        """Forward the committer's events; True once it said it is done (or died)."""
        while True:
            try:
                event = self._events.get(timeout=0.5) if block else self._events.get_nowait()
            except queue.Empty:
                if block and not self._process.is_alive():
                    self._error = self._error or f"the committer process died (exit code {self._process.exitcode})"
                    return True
                if not block:
                    return False
                continue
            if event["type"] == "committer_done":
                return True
            if event["type"] == "committer_error":
                self._error = event["error"]
                return True
            self.report(event)

    def _check(self) -> None:
        done = [f for f in self._pending if f.done()]
        for future in done:
            self._pending.remove(future)
            future.result()  # raises what the encoder raised
        if self._error is not None or not self._process.is_alive():
            raise RuntimeError(f"committing failed: {self._error or 'the committer process is gone'}")

    def put(self, episode: Episode) -> None:
        self._drain()
        self._check()
        pixels = sum(img.shape[0] * img.shape[1] for step in episode.images[:1] for img in step)
        if pixels <= SMALL_IMAGE_PIXELS:  # small images: cheaper to ship raw than to encode beside the env loop
            if not (episode.actions and (episode.success or self.config.keep_failed)):
                episode.images = []
            self._pending.append(self._encoder.submit(self._send, episode))
        else:
            self._pending.append(self._encoder.submit(self._encode_and_send, episode))

    def close(self) -> None:
        try:
            self._encoder.shutdown(wait=True)
            for future in self._pending:
                future.result()
            if self._process.is_alive():
                self._send(None)
                self._drain(block=True)
        finally:
            self._process.join(timeout=60)
            if self._process.is_alive():
                self._process.kill()
            self._episodes.cancel_join_thread()  # never hang at exit on a pipe nobody reads
        if self._error is not None:
            raise RuntimeError(f"committing failed: {self._error}")


def _committer_main(config, env_name, domain, space, episodes, events, parent: int) -> None:
    """Entry point of the committer process. Ctrl-C is left to the worker, which then closes
    the committer: finished episodes are still committed."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    loop = CommitLoop(config, env_name, domain, space, events.put)

    def get(timeout: float) -> Any:
        if os.getppid() != parent:
            raise SystemExit(1)  # the worker is gone: commit nothing more
        return episodes.get(timeout=min(timeout, 1.0))

    try:
        loop.run(get)
    except BaseException as err:
        events.put({"type": "committer_error", "error": f"{type(err).__name__}: {err}\n{traceback.format_exc()}"})
        return
    events.put({"type": "committer_done"})


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent check in the loop still applies
        pass


class CommitLoop:
    """Buffers finished episodes (images already PNG-encoded) and commits them as shards
    (see the module docstring)."""

    def __init__(self, config: CollectConfig, env_name: str, domain: str, space: Any, report: Callable):
        self.config = config
        self.env_name = env_name
        self.domain = domain
        self.space = space
        self.report = report
        self.ledger = Ledger(config.out)

    def run(self, get: Callable[[float], Any]) -> None:
        """Take episodes from ``get(timeout)`` (``None`` ends) and commit every ``commit_seconds``
        or ``commit_steps`` steps, and at the end."""
        pending: list[tuple[Episode, list[list[bytes]]]] = []
        steps, since = 0, time.monotonic()
        while True:
            timeout = max(0.05, self.config.commit_seconds - (time.monotonic() - since))
            try:
                episode = get(timeout)
            except queue.Empty:
                episode = ...
            if episode is None:
                break
            if episode is not ...:
                level = self.config.png_compress_level
                encoded = [  # PNG bytes per step and view (empty: not to be written); small images come raw
                    [img if isinstance(img, bytes) else _encode_png(img, level) for img in step]
                    for step in episode.images
                ]
                episode.images = []
                pending.append((episode, encoded))
                steps += len(encoded)
            due = time.monotonic() - since >= self.config.commit_seconds or steps >= self.config.commit_steps
            if pending and due:
                self._commit(pending)
                pending, steps, since = [], 0, time.monotonic()
            elif not pending:
                since = time.monotonic()
        if pending:
            self._commit(pending)

    def _samples(self, episode: Episode, encoded: list[list[bytes]]) -> Iterable[tuple[Any, list[bytes]]]:
        from .prompts import build_sample

        history = self.config.history
        for step, (action, images) in enumerate(zip(episode.actions, encoded)):
            extra: dict[str, Any] = {}
            state = episode.states[step]
            if state is not None:
                values = np.asarray(state, dtype=np.float64)
                whole = np.all(values == np.round(values))
                extra["state"] = values.astype(np.int64).tolist() if whole else np.round(values, 5).tolist()
            sample = build_sample(
                domain=self.domain,
                instruction=episode.instruction[step],
                action=action,
                source=self.env_name,
                episode=episode.job.key,
                step=step,
                num_images=len(images),
                history=episode.actions[max(0, step - history) : step] if history else (),
                space=self.space,
                task=episode.job.task,
                split=episode.job.split,
                seed=episode.job.seed,
                success=episode.success,
                **extra,
            )
            yield sample, images

    def _commit(self, pending: list[tuple[Episode, list[list[bytes]]]]) -> None:
        from .io import DatasetWriter

        written = [(ep, enc) for ep, enc in pending if enc]
        dropped = [ep for ep, enc in pending if not enc]
        if dropped:  # failed episodes left out: their record is the commit
            self.ledger.write_failed([ep.info(written=False) for ep in dropped])
        if written:
            spaces = {self.env_name: self.space} if self.space is not None else None
            writer = DatasetWriter(self.config.out, append=True, shard_size=1 << 40, action_spaces=spaces)
            shard = None
            for episode, encoded in written:
                for sample, images in self._samples(episode, encoded):
                    shard = writer.write(sample, images=images).file
            # A crash before close leaves the shard out of the manifest: the next run discards it.
            self.ledger.write_commit(shard, [ep.info(written=True) for ep, _ in written])
            writer.close()  # merges into manifest.json: the commit point
        self.report({"type": "commit", "episodes": [ep.info(written=bool(enc)) for ep, enc in pending]})


# ---------------------------------------------------------------------------- workers


def run_worker(worker: int, config: CollectConfig, jobs: Iterable[Job], report: Callable[[dict], None]) -> None:
    """Run ``jobs`` with one environment at a time, restarting it when it dies; reports progress."""
    from ..envs.base import EnvError
    from ..envs.registry import get_spec, make_env, make_expert

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
    except Exception:
        pass


def _worker_process(worker: int, config: CollectConfig, jobs: Any, results: Any) -> None:
    """Entry point of a worker process: jobs from a queue until ``None``."""
    try:
        run_worker(worker, config, iter(jobs.get, None), results.put)
    except BaseException as err:
        results.put(
            {
                "type": "worker_error",
                "worker": worker,
                "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(),
            }
        )
        raise SystemExit(1) from None
    results.put({"type": "worker_done", "worker": worker})


# ---------------------------------------------------------------------------- the run


@dataclass
class TaskSummary:
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


def collect(config: CollectConfig, on_event: Callable[[dict], None] | None = None) -> CollectSummary:
    """Run the collection described by ``config``; returns the per-task summary (also written to
    ``DIR/.collect/last_run.json``)."""
    from ..envs.registry import get_spec

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
        _count_finished(summary, ledger.finished(), jobs, new_keys)
        ledger.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(ledger.dir / "last_run.json", {"config": _config_json(config), "summary": summary.to_json()})
        return summary
    finally:
        ledger.release()


def _config_json(config: CollectConfig) -> dict[str, Any]:
    data = asdict(config)
    data["tasks"] = list(config.tasks)
    return data


def _count_finished(summary: CollectSummary, finished: dict[str, dict], jobs: list[Job], new_keys: set[str]) -> None:
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


def _run_jobs(config: CollectConfig, todo: list[Job], summary: CollectSummary, on_event: Callable | None) -> set[str]:
    """Run ``todo`` in-process (one worker) or in worker processes; returns the keys committed."""
    bar = None
    if config.progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="ep", desc=f"collect {config.env}", dynamic_ncols=True)
    new_keys: set[str] = set()
    counts = {"ok": 0, "done": 0}

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
        if on_event is not None:
            on_event(event)

    try:
        if not todo:
            return new_keys
        if config.workers == 1:
            try:
                run_worker(0, config, todo, handle)
            except Exception as err:
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
            context.Process(target=_worker_process, args=(w, config, jobs_queue, results), daemon=False)
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
        return new_keys
    finally:
        if bar is not None:
            bar.close()
