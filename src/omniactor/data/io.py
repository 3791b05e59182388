"""Dataset folders: JSONL shards + image files + ``manifest.json``; a writer and a reader.

Layout of a dataset folder::

    DIR/manifest.json              counts, action spaces, normalisation statistics
    DIR/dataset_info.json          lets LLaMA-Factory read the shards (dataset_dir=DIR)
    DIR/shards/shard-00000.jsonl   one sample per line, at most ``shard_size`` lines
    DIR/images/00000/000003_0.png  image 0 of line 4 of shard 0 (paths in records are relative to DIR)

``DatasetWriter`` validates every sample before writing it, saves its images (PIL images,
numpy arrays, encoded bytes or existing files), rotates shards by record count, and on
close merges its counts into the manifest under a lock (temporary file + rename). A write
of its own files that fails (a full disk) raises an ``OSError`` naming the file and fails the
writer: it removes the shards (and images) it created and never merges into the manifest,
which goes on describing exactly the records on disk. A writer killed before closing leaves
shards the manifest does not list; ``collect`` and ``convert`` remove them when they resume. With
``append=True`` it continues after the highest shard number; several writers (parallel
collectors) may append to one folder at once: each claims shard files exclusively.
Reading streams line by line, so memory stays flat in the dataset size; a line over
``MAX_LINE_BYTES`` (16 MiB) is refused without being read whole; a bad record is never
skipped silently (``errors="raise"``, or ``"warn"`` to count and warn).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from ..errors import OmniactorError
from ..fileio import naming, write_all
from .domains import action_kind, domain_problems, known_domains
from .manifest import (
    IMAGE_DIR,
    LLAMAFACTORY_FILE,
    MANIFEST_FILE,
    SHARD_DIR,
    ActionSpace,
    ActionStatsAccumulator,
    Manifest,
    SourceInfo,
    llamafactory_dataset_info,
    load_manifest,
    manifest_lock,
    save_manifest,
    shard_count_problems,
    write_json_atomic,
)
from .sample import Problem, Sample, SampleError, check_record, image_path_problem

ImageLike = Image.Image | np.ndarray | bytes | bytearray | str | os.PathLike
ErrorMode = Literal["raise", "warn"]

_SHARD_NAME = re.compile(r"^shard-(\d+)\.jsonl$")
_IMAGE_FORMATS = {"png": ("PNG", "png"), "jpeg": ("JPEG", "jpg"), "jpg": ("JPEG", "jpg"), "webp": ("WEBP", "webp")}
_MAGIC = [(b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF8", "gif"), (b"BM", "bmp")]
_FILE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}
#: the longest shard line read: a record with its prompts and meta takes kilobytes; a longer line
#: (an image embedded as text, a runaway writer) is reported as bad without being read into memory
MAX_LINE_BYTES = 16 * 2**20
#: lines a writer keeps before handing them to the OS
_BUFFER_BYTES = 1 << 20


class NotADatasetError(OmniactorError, FileNotFoundError):
    """A folder with neither ``manifest.json`` nor ``shards/``."""


class DatasetFormatError(OmniactorError, ValueError):
    """A record that cannot be read; the message starts with ``file:line``."""


def shard_paths(root: str | os.PathLike) -> list[str]:
    """Every ``*.jsonl`` under ``shards/`` (relative, '/'-separated), numbered shards first in order."""
    folder = Path(root) / SHARD_DIR
    if not folder.is_dir():
        return []

    def order(name: str) -> tuple[int, str]:
        match = _SHARD_NAME.match(name)
        return (int(match.group(1)) if match else 1 << 62, name)

    names = sorted((p.name for p in folder.iterdir() if p.suffix == ".jsonl" and p.is_file()), key=order)
    return [f"{SHARD_DIR}/{name}" for name in names]


def require_dataset(root: str | os.PathLike) -> Path:
    """``root`` as a Path, or ``NotADatasetError`` when it holds no dataset."""
    root = Path(root)
    if not root.is_dir():
        raise NotADatasetError(f"{root}: no such folder")
    if not (root / MANIFEST_FILE).exists() and not (root / SHARD_DIR).is_dir():
        raise NotADatasetError(f"{root}: not a dataset folder (no {MANIFEST_FILE} and no {SHARD_DIR}/)")
    return root


@dataclass(frozen=True)
class Line:
    """One raw line of a shard: ``complete`` is False for a last line without a newline."""

    file: str
    line: int
    text: str | None  # None when the bytes are not UTF-8 (``error`` says why)
    complete: bool
    error: str | None = None


def _read_line(f: Any) -> tuple[bytes | None, int]:
    """The next line's bytes (``b""`` at the end of the file), or None and its length when it is
    longer than ``MAX_LINE_BYTES``: the rest of such a line is skipped, never held in memory."""
    raw = f.readline(MAX_LINE_BYTES + 1)
    if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
        return raw, len(raw)
    size = len(raw)
    while True:
        part = f.readline(1 << 20)
        size += len(part)
        if not part or part.endswith(b"\n"):
            return None, size


def _too_long(size: int) -> str:
    return (f"the line is {size / 2**20:.1f} MiB, over the {MAX_LINE_BYTES / 2**20:g} MiB a record may take "
            "(MAX_LINE_BYTES in omniactor.data.io); keep images in files under images/, not inside records")


def iter_lines(root: str | os.PathLike) -> Iterator[Line]:
    """Every line of every shard, with its file and 1-based line number.

    A line that is not UTF-8, or longer than ``MAX_LINE_BYTES``, comes with ``text=None`` and
    ``error`` saying why (a too-long line is skipped without reading it into memory).
    """
    root = Path(root)
    for rel in shard_paths(root):
        with open(root / rel, "rb") as f:
            number = 0
            while True:
                raw, size = _read_line(f)
                if raw == b"":
                    break
                number += 1
                if raw is None:
                    yield Line(rel, number, None, True, _too_long(size))
                    continue
                complete = raw.endswith(b"\n")
                try:
                    text = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as err:
                    yield Line(rel, number, None, complete, f"not UTF-8 text ({err.reason} at byte {err.start})")
                    continue
                yield Line(rel, number, text, complete)


def json_error_message(err: json.JSONDecodeError, complete: bool) -> str:
    """What is wrong with a line that is not JSON; a last line without newline was cut short."""
    cut = "" if complete else " (the file ends mid-record, as after an interrupted write)"
    return f"not valid JSON{cut}: {err.msg} (column {err.colno})"


def episode_and_step(data: Any) -> str:
    """`` (episode E, step S)`` of a parsed record whose meta says so, else ``""``."""
    meta = data.get("meta") if isinstance(data, dict) else None
    if not isinstance(meta, dict) or ("episode" not in meta and "step" not in meta):
        return ""
    return f" (episode {meta.get('episode', '?')}, step {meta.get('step', '?')})"


def parse_line(line: Line, root: str | os.PathLike | None = None) -> Sample:
    """The sample of one shard line; ``DatasetFormatError`` otherwise, whose message starts
    ``file:line`` (under ``root`` when given) and names the record's episode, step and fields."""
    where = f"{line.file if root is None else Path(root) / line.file}:{line.line}"
    if line.text is None:
        raise DatasetFormatError(f"{where}: {line.error}")
    if not line.text.strip():
        raise DatasetFormatError(f"{where}: empty line (every line of a shard must be one record)")
    try:
        data = json.loads(line.text)
    except json.JSONDecodeError as err:
        raise DatasetFormatError(f"{where}: {json_error_message(err, line.complete)}") from None
    try:
        return Sample.from_json(data)
    except SampleError as err:
        problems = "; ".join(str(p) for p in err.problems)
        raise DatasetFormatError(f"{where}{episode_and_step(data)}: {problems}") from None


@dataclass(frozen=True)
class Record:
    """A sample and where it was read from."""

    file: str
    line: int
    sample: Sample

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


class DatasetReader:
    """Streams the samples of a dataset folder, shard by shard, line by line.

    ``errors="raise"`` (default) stops at the first bad record with ``file:line`` and the
    reason; ``errors="warn"`` warns, counts it in ``skipped`` and goes on. A read to the end
    also checks each shard's line count against the manifest (a shard cut short, an empty
    one): ``DatasetFormatError`` (or, with ``"warn"``, a warning and ``folder_problems``).
    """

    def __init__(self, root: str | os.PathLike, errors: ErrorMode = "raise"):
        if errors not in ("raise", "warn"):
            raise ValueError(f"errors must be 'raise' or 'warn', got {errors!r}")
        self.root = require_dataset(root)
        self.errors = errors
        self.manifest: Manifest | None = load_manifest(self.root)
        self.skipped = 0
        self.folder_problems: list[str] = []

    @property
    def shards(self) -> list[str]:
        return shard_paths(self.root)

    def __len__(self) -> int:
        """Records according to the manifest (``validate`` checks it against the shards)."""
        if self.manifest is not None:
            return self.manifest.num_records
        return sum(1 for _ in iter_lines(self.root))

    def records(self) -> Iterator[Record]:
        lines_per_shard = {rel: 0 for rel in self.shards}
        for line in iter_lines(self.root):
            lines_per_shard[line.file] = line.line
            try:
                sample = parse_line(line, self.root)
            except DatasetFormatError as err:
                if self.errors == "raise":
                    raise
                self.skipped += 1
                warnings.warn(f"skipped {err}", stacklevel=2)
                continue
            yield Record(line.file, line.line, sample)
        self.folder_problems = [f"{self.root / rel}: {what}" for rel, what in
                                shard_count_problems(self.manifest, lines_per_shard)]
        if self.folder_problems:
            message = "; ".join(self.folder_problems) + f" (`omniactor data validate {self.root}` checks the folder)"
            if self.errors == "raise":
                raise DatasetFormatError(message)
            warnings.warn(message, stacklevel=2)

    def __iter__(self) -> Iterator[Sample]:
        return (record.sample for record in self.records())

    def image_path(self, relative: str) -> Path:
        """The file of an image path of a record (refused when it is not a clean path inside the folder)."""
        problem = image_path_problem(relative)
        if problem:
            raise DatasetFormatError(f"{self.root}: image path {problem}")
        return self.root / relative

    def load_images(self, sample: Sample, mode: str | None = "RGB") -> list[Image.Image]:
        """The sample's images, decoded (converted to ``mode`` unless None); ``DatasetFormatError``
        names the record and the image when one is missing or cannot be decoded."""
        out = []
        for i, rel in enumerate(sample.images):
            path = self.image_path(rel)
            try:
                with Image.open(path) as image:
                    image.load()
                    out.append(image.convert(mode) if mode else image.copy())
            except (OSError, SyntaxError, ValueError) as err:  # what PIL raises for a bad file
                why = "file not found" if not path.is_file() else f"cannot be decoded ({type(err).__name__}: {err})"
                raise DatasetFormatError(f"{self.root}: {sample.where}: images[{i}]: {rel}: {why} "
                                         f"(`omniactor data validate {self.root}` lists every such record)") from None
        return out


def iter_records(root: str | os.PathLike, errors: ErrorMode = "raise") -> Iterator[Record]:
    """Every record of a dataset folder with its file and line (see ``DatasetReader``)."""
    return DatasetReader(root, errors).records()


# ---------------------------------------------------------------------------- writing


def _image_kind(image: ImageLike, image_format: str) -> str:
    """The file extension ``image`` will be saved with (checks its type, saves nothing)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        head = bytes(image[:12])
        for magic, ext in _MAGIC:
            if head.startswith(magic):
                return ext
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return "webp"
        raise ValueError("image bytes are not an encoded PNG, JPEG, WebP, GIF or BMP")
    if isinstance(image, (str, os.PathLike)):
        suffix = Path(image).suffix.lower()
        if suffix not in _FILE_SUFFIXES:
            raise ValueError(f"image file {image} has suffix {suffix!r}; expected one of {sorted(_FILE_SUFFIXES)}")
        if not Path(image).is_file():
            raise FileNotFoundError(f"image file {image} does not exist")
        return "jpg" if suffix == ".jpeg" else suffix[1:]
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(
                f"image arrays must be uint8, got {image.dtype} (for floats in [0, 1]: (a * 255).astype(np.uint8))"
            )
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))):
            raise ValueError(f"image arrays must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
        return _IMAGE_FORMATS[image_format][1]
    if isinstance(image, Image.Image):
        return _IMAGE_FORMATS[image_format][1]
    raise TypeError(
        f"an image must be a PIL image, a uint8 array, encoded bytes or a file path, got {type(image).__name__}"
    )


def _save_image(image: ImageLike, path: Path, image_format: str, jpeg_quality: int) -> None:
    if isinstance(image, (bytes, bytearray, memoryview)):
        path.write_bytes(bytes(image))
        return
    if isinstance(image, (str, os.PathLike)):
        shutil.copyfile(image, path)
        return
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    pil_format = _IMAGE_FORMATS[image_format][0]
    if pil_format == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(path, pil_format, quality=jpeg_quality)
    else:
        image.save(path, pil_format)


class DatasetWriter:
    """Writes samples (and their images) into a dataset folder; use as a context manager.

    ``append=False`` refuses a folder that already holds a dataset; ``append=True``
    continues it (shard numbers go on after the highest one; the manifest counts add up).
    ``action_spaces`` declares each source's ``ContinuousSpace`` / ``DiscreteSpace``:
    actions outside it are refused, and the validator checks it later. ``domains`` declares
    domains beyond gui/embodied/discrete (name -> action kind, or None for any).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        append: bool = False,
        shard_size: int = 10_000,
        image_format: str = "png",
        jpeg_quality: int = 95,
        action_spaces: Mapping[str, ActionSpace] | None = None,
        domains: Mapping[str, str | None] | None = None,
        check_images: bool = True,
        stats_capacity: int = 50_000,
    ):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        if image_format not in _IMAGE_FORMATS:
            raise ValueError(f"image_format {image_format!r} is not one of {', '.join(_IMAGE_FORMATS)}")
        self.root = Path(root)
        existing = load_manifest(self.root) if self.root.is_dir() else None
        if not append and (existing is not None or shard_paths(self.root)):
            raise FileExistsError(f"{self.root} already holds a dataset; pass append=True to add to it")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / SHARD_DIR).mkdir(exist_ok=True)
        self.shard_size = shard_size
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self.check_images = check_images
        self.stats_capacity = stats_capacity
        self.num_written = 0

        self._existing = existing or Manifest()
        self._contribution = Manifest()
        self._known = known_domains(self._existing.domains)
        self._spaces: dict[str, ActionSpace] = {
            name: info.action_space for name, info in self._existing.sources.items() if info.action_space is not None
        }
        self._accumulators: dict[str, ActionStatsAccumulator] = {}
        for name, kind in (domains or {}).items():
            self.declare_domain(name, kind)
        for source, space in (action_spaces or {}).items():
            self.declare_action_space(source, space)

        numbers = [_SHARD_NAME.match(Path(rel).name) for rel in shard_paths(self.root)]
        self._next_index = max((int(m.group(1)) for m in numbers if m), default=-1) + 1
        self._file: Any = None  # the open shard (unbuffered binary); lines wait in _buffer
        self._buffer = bytearray()
        self._failed = False  # a write of this writer's own files failed: it never merges into the manifest
        self._created: list[int] = []  # the shard numbers this writer claimed (removed again if it fails)
        self._merged = False  # close merged it into the manifest
        self._shard_rel = ""
        self._shard_index = -1
        self._in_shard = 0
        self.closed = False

    # -- declarations

    def declare_domain(self, name: str, kind: str | None) -> None:
        known = known_domains({**self._existing.domains, **self._contribution.domains, name: kind})
        self._contribution.domains[name] = kind
        self._known = known

    def declare_action_space(self, source: str, space: ActionSpace) -> None:
        old = self._spaces.get(source)
        if old is not None and old != space:
            raise ValueError(
                f"source {source!r} already has action space {old.to_json()}; cannot declare {space.to_json()}"
            )
        self._spaces[source] = space

    # -- shards

    def _open_next_shard(self) -> None:
        self._close_shard()
        index = self._next_index
        while True:
            rel = f"{SHARD_DIR}/shard-{index:05d}.jsonl"
            try:
                with naming(self.root / rel):
                    self._file = open(self.root / rel, "xb", buffering=0)  # noqa: SIM115 - closed in _close_shard
                break
            except FileExistsError:  # another writer claimed it
                index += 1
        self._next_index = index + 1
        self._created.append(index)
        self._shard_index, self._shard_rel, self._in_shard = index, rel, 0

    def _write_out(self) -> None:
        """Hand the buffered lines to the OS (see ``_fail`` for an error)."""
        if self._buffer:
            with naming(self.root / self._shard_rel):
                write_all(self._file.fileno(), self._buffer)
            self._buffer.clear()

    def abandon(self) -> None:
        """Drop everything this writer wrote (when something it was written with failed, e.g. a
        full disk while writing a ledger): its shards and images are removed and it merges nothing.
        A no-op once ``close`` has merged it into the manifest."""
        if not self._merged:
            self.closed = True
            self._fail()

    def _fail(self) -> None:
        """After a failed write of its own files (a full disk): remove every shard this writer
        created and their images, so the folder holds what the manifest lists and nothing else
        (and the space is free again); ``close`` then merges nothing."""
        self._failed = True
        self._buffer.clear()
        if self._file is not None:
            with suppress(OSError):
                self._file.close()
            self._file = None
        for index in self._created:
            with suppress(OSError):
                (self.root / SHARD_DIR / f"shard-{index:05d}.jsonl").unlink()
            shutil.rmtree(self.root / IMAGE_DIR / f"{index:05d}", ignore_errors=True)

    @contextmanager
    def _or_fail(self) -> Iterator[None]:
        """``_fail`` on an ``OSError`` of the block, then raise it."""
        try:
            yield
        except OSError:
            self._fail()
            raise

    def _close_shard(self) -> None:
        if self._file is None:
            return
        with self._or_fail(), naming(self.root / self._shard_rel):
            self._write_out()
            os.fsync(self._file.fileno())
            self._file.close()
        self._file = None
        if self._in_shard == 0:
            os.unlink(self.root / self._shard_rel)

    def _refuse_if_failed(self) -> None:
        if self._failed:
            raise OSError(f"{self.root / self._shard_rel}: an earlier write of this DatasetWriter failed; "
                          "its records are not committed")

    # -- writing

    def _problems(self, sample: Sample, record: dict[str, Any], check_files: bool) -> list[Problem]:
        check = check_record(record)
        problems = list(check.problems)
        action = check.action
        if isinstance(record.get("domain"), str) and record["domain"]:
            problems += [Problem("domain", p) for p in domain_problems(sample.domain, action, self._known)]
        if check_files:
            for i, rel in enumerate(sample.images):
                if not (self.root / rel).is_file():
                    problems.append(Problem(f"images[{i}]", f"{rel} does not exist in {self.root}"))
        source = sample.meta.get("source")
        if action is None or not isinstance(source, str):
            return problems
        for manifest in (self._existing, self._contribution):
            info = manifest.sources.get(source)
            if info is not None and info.domain != sample.domain:
                problems.append(
                    Problem("domain", f"source {source!r} is in domain {info.domain!r}, not {sample.domain!r}")
                )
                break
        kind = action_kind(action)
        space = self._spaces.get(source)
        if space is not None:
            space_kind = space.to_json()["kind"]
            if kind != space_kind:
                problems.append(
                    Problem("action", f"a {kind} action, but source {source!r} declares a {space_kind} space")
                )
            else:
                problems += [Problem("action", f"{p} (space of source {source!r})") for p in space.violations(action)]
        expected = self._dimension_names(source)
        if kind == "continuous" and expected is not None and tuple(action.names) != expected:
            problems.append(
                Problem("action", f"dimensions {list(action.names)} differ from source {source!r}'s {list(expected)}")
            )
        return problems

    def _dimension_names(self, source: str) -> tuple[str, ...] | None:
        """The continuous dimensions this source's actions have so far (None when unknown)."""
        if source in self._accumulators:
            return self._accumulators[source].names
        info = self._existing.sources.get(source)
        return info.action_stats.names if info is not None and info.action_stats is not None else None

    def write(self, sample: Sample, images: Sequence[ImageLike] | None = None) -> Record:
        """Validate ``sample``, save ``images`` (if given) and append it; returns where it went.

        ``images`` are saved under ``images/`` and their relative paths become the sample's
        ``images`` (which must then be empty). Without ``images``, the sample's paths must
        already exist inside the folder. Raises ``SampleError`` (nothing written) on any problem.
        """
        if self.closed:
            raise ValueError("write to a closed DatasetWriter")
        self._refuse_if_failed()
        if images is not None and sample.images:
            raise ValueError(f"sample ({sample.where}) already has image paths; pass images= or paths, not both")
        kinds = [_image_kind(image, self.image_format) for image in (images or ())]
        if self._file is None or self._in_shard >= self.shard_size:
            self._open_next_shard()
        if images is not None:
            folder = f"{IMAGE_DIR}/{self._shard_index:05d}"
            sample = replace(sample, images=[f"{folder}/{self._in_shard:06d}_{k}.{ext}" for k, ext in enumerate(kinds)])
        record = sample.to_json()
        problems = self._problems(sample, record, check_files=self.check_images and images is None)
        try:
            line = json.dumps(record, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as err:
            problems.append(Problem("meta", f"not JSON-serialisable: {err}"))
        if problems:
            raise SampleError(problems, sample.where)
        if images is not None:
            with self._or_fail():
                (self.root / IMAGE_DIR / f"{self._shard_index:05d}").mkdir(parents=True, exist_ok=True)
                for image, rel in zip(images, sample.images, strict=True):
                    with naming(self.root / rel):
                        _save_image(image, self.root / rel, self.image_format, self.jpeg_quality)
        self._buffer += (line + "\n").encode("utf-8")
        if len(self._buffer) >= _BUFFER_BYTES:
            with self._or_fail():
                self._write_out()
        self._in_shard += 1
        self.num_written += 1
        self._count(sample)
        return Record(self._shard_rel, self._in_shard, sample)

    def _count(self, sample: Sample) -> None:
        sources = self._contribution.sources
        info = sources.get(sample.source)
        if info is None:
            info = sources[sample.source] = SourceInfo(sample.domain, action_space=self._spaces.get(sample.source))
        info.records += 1
        info.action_types[sample.action.type] = info.action_types.get(sample.action.type, 0) + 1
        if action_kind(sample.action) == "continuous":
            acc = self._accumulators.get(sample.source)
            if acc is None:
                acc = ActionStatsAccumulator(sample.action.names, self.stats_capacity)
                self._accumulators[sample.source] = acc
            acc.add(sample.action.values)
        self._contribution.shards[self._shard_rel] = self._in_shard

    def flush(self) -> None:
        """Hand every line written so far to the OS (they survive a kill of this process)."""
        self._refuse_if_failed()
        if self._file is not None:
            with self._or_fail():
                self._write_out()

    def close(self) -> Manifest:
        """Close the shard and merge this writer's counts into ``manifest.json``; returns the merged manifest."""
        if self.closed:
            return load_manifest(self.root) or Manifest()
        self.closed = True
        self._close_shard()
        if self._failed:  # its shards are gone (``_fail``): the manifest stays as it was
            return load_manifest(self.root) or Manifest()
        for source, acc in self._accumulators.items():
            self._contribution.sources[source].action_stats = acc.result()
        for source, info in self._contribution.sources.items():
            info.action_space = info.action_space or self._spaces.get(source)
        with manifest_lock(self.root):
            current = load_manifest(self.root) or Manifest()
            merged = current.merge(self._contribution)
            with self._or_fail():  # the manifest last: it is the commit point
                if not (self.root / LLAMAFACTORY_FILE).exists():
                    write_json_atomic(self.root / LLAMAFACTORY_FILE, llamafactory_dataset_info())
                save_manifest(self.root, merged)
            self._merged = True
        return merged

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # also on errors: what was written is valid and must be counted
