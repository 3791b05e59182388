"""The collector's bookkeeping under ``DIR/.collect``: the lock, the settings, committed and failed
episodes, and the recovery of shards an interrupted run left uncommitted.

The commit point of a batch is its shard's entry in ``manifest.json``; a sidecar
``.collect/commits/<shard>.json`` names the batch's episodes. Anything the manifest does not
list was never committed and is moved to ``.collect/discarded`` by ``Ledger.recover``, so
resuming never sees half an episode.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from ...fileio import pid_alive as _alive
from ..manifest import IMAGE_DIR, LOCK_FILE, SHARD_DIR, load_manifest, write_json_atomic
from .config import STATE_DIR, CollectError

LOCK_NAME = "lock"


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
