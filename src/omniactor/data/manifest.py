"""``manifest.json``: what a dataset folder holds, so nobody has to scan it to find out.

It records the format name and version, the shards and their record counts, the domains
(built-in and declared), and per source: its domain, record and action-type counts, the
declared action space (``ContinuousSpace`` / ``DiscreteSpace`` ``to_json``) and, for
continuous actions, per-dimension statistics with the ``minmax`` and ``quantile``
``ActionNormalizer`` they imply. Writers merge their counts into it when they close
(under a lock file, written to a temporary file then renamed), so appending and parallel
writers keep it exact; quantiles of merged parts are count-weighted averages (flagged
``"quantiles_exact": false``). Derived fields (``records``, ``counts``, ``normalization``)
are written for readers and recomputed on load.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..actions import ActionNormalizer, ContinuousSpace, DiscreteSpace
from ..errors import OmniactorError
from ..fileio import remove_stale_lock, write_text_atomic
from .domains import DEFAULT_DOMAINS, check_domain_declarations, known_domains

FORMAT_NAME = "omniactor-sharegpt"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "manifest.lock"
LLAMAFACTORY_FILE = "dataset_info.json"
SHARD_DIR = "shards"
IMAGE_DIR = "images"

ActionSpace = ContinuousSpace | DiscreteSpace


class ManifestError(OmniactorError, ValueError):
    """A manifest that cannot be read, or two that cannot be merged."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def space_from_json(data: dict[str, Any]) -> ActionSpace:
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "continuous":
        return ContinuousSpace.from_json(data)
    if kind == "discrete":
        return DiscreteSpace.from_json(data)
    raise ManifestError(f"action space must have kind 'continuous' or 'discrete', got {data!r:.120}")


@dataclass
class ActionStats:
    """Per-dimension statistics of one source's continuous actions; mergeable across writers."""

    names: tuple[str, ...]
    count: int
    mean: list[float]
    m2: list[float]  # sum of squared deviations from the mean (Welford)
    min: list[float]
    max: list[float]
    q01: list[float]
    q99: list[float]
    quantiles_exact: bool = True

    @property
    def std(self) -> list[float]:
        return [math.sqrt(v / self.count) if self.count else 0.0 for v in self.m2]

    def merge(self, other: ActionStats) -> ActionStats:
        if other.names != self.names:
            raise ManifestError(f"cannot merge statistics of dimensions {list(self.names)} and {list(other.names)}")
        n = self.count + other.count
        a, b = np.asarray(self.mean), np.asarray(other.mean)
        delta = b - a
        mean = a + delta * other.count / n
        m2 = np.asarray(self.m2) + np.asarray(other.m2) + delta**2 * self.count * other.count / n
        w = self.count / n
        return ActionStats(
            self.names,
            n,
            mean.tolist(),
            m2.tolist(),
            np.minimum(self.min, other.min).tolist(),
            np.maximum(self.max, other.max).tolist(),
            (w * np.asarray(self.q01) + (1 - w) * np.asarray(other.q01)).tolist(),
            (w * np.asarray(self.q99) + (1 - w) * np.asarray(other.q99)).tolist(),
            quantiles_exact=False,
        )

    def normalizer(self, mode: str = "quantile") -> ActionNormalizer:
        """The ``ActionNormalizer`` of these statistics (``minmax``: min/max; ``quantile``: q01/q99)."""
        if mode == "minmax":
            return ActionNormalizer(tuple(self.min), tuple(self.max), "minmax", self.names)
        if mode == "quantile":
            return ActionNormalizer(tuple(self.q01), tuple(self.q99), "quantile", self.names)
        raise ManifestError(f"normalization mode {mode!r} is not one of minmax, quantile")

    def to_json(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "count": self.count,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "q01": self.q01,
            "q99": self.q99,
            "quantiles_exact": self.quantiles_exact,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActionStats:
        count = int(data["count"])
        m2 = [s * s * count for s in data["std"]]
        return cls(
            tuple(data["names"]),
            count,
            list(data["mean"]),
            m2,
            list(data["min"]),
            list(data["max"]),
            list(data["q01"]),
            list(data["q99"]),
            bool(data.get("quantiles_exact", True)),
        )


class ActionStatsAccumulator:
    """Streaming statistics of action vectors: exact moments and range, quantiles from a
    uniform reservoir of at most ``capacity`` vectors (exact while fewer were seen).
    Memory is ``capacity x D`` floats however long the stream."""

    def __init__(self, names: tuple[str, ...], capacity: int = 50_000, seed: int = 0):
        self.names = tuple(names)
        self.capacity = capacity
        self.count = 0
        dim = len(self.names)
        self._mean = np.zeros(dim)
        self._m2 = np.zeros(dim)
        self._min = np.full(dim, np.inf)
        self._max = np.full(dim, -np.inf)
        self._reservoir = np.empty((min(capacity, 1024), dim))
        self._rng = np.random.default_rng(seed)

    def add(self, values: np.ndarray | list[float]) -> None:
        x = np.asarray(values, dtype=np.float64)
        self.count += 1
        delta = x - self._mean
        self._mean += delta / self.count
        self._m2 += delta * (x - self._mean)
        np.minimum(self._min, x, out=self._min)
        np.maximum(self._max, x, out=self._max)
        if self.count <= self.capacity:
            if self.count > len(self._reservoir):
                grown = np.empty((min(2 * len(self._reservoir), self.capacity), len(self.names)))
                grown[: len(self._reservoir)] = self._reservoir
                self._reservoir = grown
            self._reservoir[self.count - 1] = x
        else:
            j = int(self._rng.integers(0, self.count))
            if j < self.capacity:
                self._reservoir[j] = x

    def result(self) -> ActionStats | None:
        if not self.count:
            return None
        kept = self._reservoir[: min(self.count, self.capacity)]
        return ActionStats(
            self.names,
            self.count,
            self._mean.tolist(),
            self._m2.tolist(),
            self._min.tolist(),
            self._max.tolist(),
            np.quantile(kept, 0.01, axis=0).tolist(),
            np.quantile(kept, 0.99, axis=0).tolist(),
            quantiles_exact=self.count <= self.capacity,
        )


@dataclass
class SourceInfo:
    """What the manifest knows about one source (an outside dataset, an environment, ...)."""

    domain: str
    records: int = 0
    action_types: dict[str, int] = field(default_factory=dict)
    action_space: ActionSpace | None = None
    action_stats: ActionStats | None = None

    def merge(self, other: SourceInfo, name: str) -> SourceInfo:
        if other.domain != self.domain:
            raise ManifestError(
                f"source {name!r} is in domain {self.domain!r} and {other.domain!r}; a source has one domain"
            )
        if self.action_space is not None and other.action_space is not None and self.action_space != other.action_space:
            raise ManifestError(
                f"source {name!r} declares two action spaces: "
                f"{self.action_space.to_json()} and {other.action_space.to_json()}"
            )
        types = dict(self.action_types)
        for key, n in other.action_types.items():
            types[key] = types.get(key, 0) + n
        stats = self.action_stats
        if other.action_stats is not None:
            stats = other.action_stats if stats is None else stats.merge(other.action_stats)
        return SourceInfo(
            self.domain, self.records + other.records, types, self.action_space or other.action_space, stats
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "domain": self.domain,
            "records": self.records,
            "action_types": dict(sorted(self.action_types.items())),
        }
        if self.action_space is not None:
            out["action_space"] = self.action_space.to_json()
        if self.action_stats is not None:
            out["action_stats"] = self.action_stats.to_json()
            out["normalization"] = {m: self.action_stats.normalizer(m).to_json() for m in ("minmax", "quantile")}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceInfo:
        space = space_from_json(data["action_space"]) if data.get("action_space") else None
        stats = ActionStats.from_json(data["action_stats"]) if data.get("action_stats") else None
        return cls(data["domain"], int(data.get("records", 0)), dict(data.get("action_types", {})), space, stats)


@dataclass
class Manifest:
    """Contents of ``manifest.json``; ``merge`` adds another writer's contribution."""

    domains: dict[str, str | None] = field(default_factory=dict)  # declared beyond the defaults
    sources: dict[str, SourceInfo] = field(default_factory=dict)
    shards: dict[str, int] = field(default_factory=dict)  # shard path (relative) -> records
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)

    @property
    def num_records(self) -> int:
        return sum(self.shards.values())

    def known_domains(self) -> dict[str, str | None]:
        return known_domains(self.domains)

    def action_space(self, source: str) -> ActionSpace | None:
        info = self.sources.get(source)
        return info.action_space if info else None

    def normalizer(self, source: str, mode: str = "quantile") -> ActionNormalizer:
        """The normalizer of ``source``'s continuous actions (fitted on all records written)."""
        info = self.sources.get(source)
        if info is None or info.action_stats is None:
            raise ManifestError(f"source {source!r} has no continuous action statistics in this manifest")
        return info.action_stats.normalizer(mode)

    def counts(self) -> dict[str, dict[str, int]]:
        by_domain: dict[str, int] = {}
        by_type: dict[str, int] = {}
        for info in self.sources.values():
            by_domain[info.domain] = by_domain.get(info.domain, 0) + info.records
            for key, n in info.action_types.items():
                by_type[key] = by_type.get(key, 0) + n
        by_source = {name: info.records for name, info in self.sources.items()}
        return {
            "domain": dict(sorted(by_domain.items())),
            "source": dict(sorted(by_source.items())),
            "action_type": dict(sorted(by_type.items())),
        }

    def merge(self, other: Manifest) -> Manifest:
        domains = dict(self.domains)
        for name, kind in other.domains.items():
            if name in domains and domains[name] != kind:
                raise ManifestError(f"domain {name!r} declared with action kinds {domains[name]!r} and {kind!r}")
            domains[name] = kind
        sources = dict(self.sources)
        for name, info in other.sources.items():
            sources[name] = sources[name].merge(info, name) if name in sources else info
        twice = sorted(set(self.shards) & set(other.shards))
        if twice:
            raise ManifestError(f"shard(s) {', '.join(twice)} listed by two writers")
        created = min(c for c in (self.created, other.created) if c) if (self.created or other.created) else _now()
        return Manifest(domains, sources, {**self.shards, **other.shards}, created, _now())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created": self.created,
            "updated": self.updated,
            "records": self.num_records,
            "counts": self.counts(),
            "domains": self.known_domains(),
            "sources": {name: info.to_json() for name, info in sorted(self.sources.items())},
            "shards": dict(sorted(self.shards.items())),
        }

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise ManifestError(f"not an omniactor dataset manifest (format must be {FORMAT_NAME!r})")
        version = data.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ManifestError(f"manifest version {version!r} is newer than this omniactor reads ({FORMAT_VERSION})")
        try:
            declared = check_domain_declarations(dict(data.get("domains", {})))
            return cls(
                domains={k: v for k, v in declared.items() if k not in DEFAULT_DOMAINS},
                sources={name: SourceInfo.from_json(info) for name, info in dict(data.get("sources", {})).items()},
                shards={str(k): int(v) for k, v in dict(data.get("shards", {})).items()},
                created=str(data.get("created", "")),
                updated=str(data.get("updated", "")),
            )
        except ManifestError:
            raise
        except (KeyError, TypeError, ValueError) as err:
            raise ManifestError(f"malformed manifest: {type(err).__name__}: {err}") from None


def load_manifest(root: str | os.PathLike) -> Manifest | None:
    """The manifest of the dataset folder ``root``; None when it has none."""
    path = Path(root) / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path}: not valid JSON ({err})") from None
    return Manifest.from_json(data)


def shard_count_problems(manifest: Manifest | None, lines_per_shard: dict[str, int]) -> list[tuple[str, str]]:
    """``(shard, what)`` for each shard whose line count differs from the manifest's, that the
    manifest lists but is not on disk, or that is on disk but not listed.

    ``lines_per_shard``: the lines read from every shard file on disk (0 for an empty file)."""
    if manifest is None:
        return []
    problems = []
    for rel, expected in sorted(manifest.shards.items()):
        found = lines_per_shard.get(rel)
        if found is None:
            problems.append((rel, f"listed in {MANIFEST_FILE} with {expected} records but missing"))
        elif found != expected:
            empty = " (an empty file: was the disk full?)" if found == 0 else ""
            problems.append((rel, f"{MANIFEST_FILE} says {expected} records but the file has {found} lines{empty}"))
    problems += [(rel, f"not listed in {MANIFEST_FILE} (from a writer that did not close?)")
                 for rel in lines_per_shard if rel not in manifest.shards]
    return problems


def dumps_readable(data: Any, indent: str = "") -> str:
    """JSON with one key per line, but lists of numbers and strings kept on one line."""
    inner = indent + "  "
    if isinstance(data, dict) and data:
        items = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {dumps_readable(v, inner)}" for k, v in data.items()
        ]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(data, list) and any(isinstance(v, (dict, list)) for v in data):
        return "[\n" + ",\n".join(inner + dumps_readable(v, inner) for v in data) + f"\n{indent}]"
    return json.dumps(data, ensure_ascii=False, allow_nan=False)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write readable JSON to ``path`` whole or not at all (``fileio.write_text_atomic``)."""
    write_text_atomic(path, dumps_readable(data) + "\n")


def save_manifest(root: str | os.PathLike, manifest: Manifest) -> None:
    write_json_atomic(Path(root) / MANIFEST_FILE, manifest.to_json())


def llamafactory_dataset_info(name: str = "omniactor") -> dict[str, Any]:
    """``dataset_info.json`` letting LLaMA-Factory (``dataset_dir`` = this folder) read the shards."""
    return {
        name: {
            "file_name": SHARD_DIR,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "images": "images"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
        }
    }


@contextmanager
def manifest_lock(root: str | os.PathLike, timeout: float = 120.0) -> Iterator[None]:
    """Hold ``manifest.lock`` (created exclusively, holding the pid) while reading, merging and writing
    the manifest; a lock whose process is gone (killed while merging) is taken over."""
    path = Path(root) / LOCK_FILE
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            if remove_stale_lock(path):  # left by a writer killed while merging
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{path} has been held for over {timeout:.0f}s; if no writer is running, delete it"
                ) from None
            time.sleep(0.02)
    try:
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)
        os.unlink(path)
