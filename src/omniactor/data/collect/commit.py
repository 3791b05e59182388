"""Committing a worker's episodes beside its environment loop (``Committer``, ``CommitLoop``).

See ``Committer`` for what runs where and why.
"""

from __future__ import annotations

import os
import queue
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .config import CollectConfig
from .episode import Episode
from .ledger import Ledger
from .png import encode_png

SMALL_IMAGE_PIXELS = 128 * 128


class Committer:
    """Commits a worker's episodes without slowing its environment loop.

    Large frames (camera images: about 5 ms of PNG encoding each, which releases the GIL)
    are encoded on a thread of the worker; small frames (grid worlds, up to
    ``SMALL_IMAGE_PIXELS`` per step) are shipped raw and encoded in the committer process,
    where ``png.encode_png`` takes about 0.05 ms for 64x64. Sample building, validation and
    file writes (Python that holds the GIL) run in that separate committer process, which
    receives the episodes through a bounded queue. ``report`` receives its events. The
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
        self._os_error: list | None = None  # (errno, strerror, filename) of a failed write: raised as an OSError

    def _encode_and_send(self, episode: Episode) -> None:
        level = self.config.png_compress_level
        if episode.actions and (episode.success or self.config.keep_failed):
            episode.images = [[encode_png(img, level) for img in step] for step in episode.images]
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
                self._os_error = event.get("os_error")
                return True
            self.report(event)

    def _check(self) -> None:
        done = [f for f in self._pending if f.done()]
        for future in done:
            self._pending.remove(future)
            future.result()  # raises what the encoder raised
        if self._os_error is not None:
            raise OSError(*self._os_error)
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
        if self._os_error is not None:  # a full disk: `error: FILE: ...`; what was committed stays
            raise OSError(*self._os_error)
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
    except OSError as err:  # a full disk: the worker raises it as an OSError naming the file
        events.put({"type": "committer_error", "error": f"{type(err).__name__}: {err}",
                    "os_error": [err.errno, err.strerror or str(err), err.filename]})
        return
    except BaseException as err:  # noqa: BLE001 -- reported to the worker, which raises it
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
        self._system: dict[type, str] = {}  # action class -> its system prompt (see _samples)

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
                    [img if isinstance(img, bytes) else encode_png(img, level) for img in step]
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
        """The episode's samples with their images. Each action is put into text once per episode
        (the prompts of the next ``history`` steps repeat it) and the system prompt once per
        action kind: on a 1 ms grid-world step, redoing both per sample was a visible share of
        the collector's time. The samples are exactly what ``build_sample`` gives otherwise."""
        from ...actions import format_action
        from ..prompts import build_sample, prompt_for_action

        history = self.config.history
        texts = [format_action(action) for action in episode.actions] if history else []
        for step, (action, images) in enumerate(zip(episode.actions, encoded)):
            extra: dict[str, Any] = {}
            state = episode.states[step]
            if state is not None:
                values = np.asarray(state, dtype=np.float64)
                whole = np.all(values == np.round(values))
                extra["state"] = values.astype(np.int64).tolist() if whole else np.round(values, 5).tolist()
            kind = type(action)
            system = self._system.get(kind)
            if system is None:
                system = self._system[kind] = prompt_for_action(action, self.space)
            sample = build_sample(
                domain=self.domain,
                instruction=episode.instruction[step],
                action=action,
                source=self.env_name,
                episode=episode.job.key,
                step=step,
                num_images=len(images),
                history=texts[max(0, step - history) : step],
                system=system,
                space=self.space,
                task=episode.job.task,
                split=episode.job.split,
                seed=episode.job.seed,
                success=episode.success,
                **extra,
            )
            yield sample, images

    def _commit(self, pending: list[tuple[Episode, list[list[bytes]]]]) -> None:
        from ..io import DatasetWriter

        written = [(ep, enc) for ep, enc in pending if enc]
        dropped = [ep for ep, enc in pending if not enc]
        if dropped:  # failed episodes left out: their record is the commit
            self.ledger.write_failed([ep.info(written=False) for ep in dropped])
        if written:
            spaces = {self.env_name: self.space} if self.space is not None else None
            writer = DatasetWriter(self.config.out, append=True, shard_size=1 << 40, action_spaces=spaces)
            shard = None
            try:
                for episode, encoded in written:
                    for sample, images in self._samples(episode, encoded):
                        shard = writer.write(sample, images=images).file
                # A crash before close leaves the shard out of the manifest: the next run discards it.
                self.ledger.write_commit(shard, [ep.info(written=True) for ep, _ in written])
                writer.close()  # merges into manifest.json: the commit point
            except OSError:  # a full disk: the batch's shard goes now, the folder stays as committed
                writer.abandon()
                raise
        self.report({"type": "commit", "episodes": [ep.info(written=bool(enc)) for ep, enc in pending]})
