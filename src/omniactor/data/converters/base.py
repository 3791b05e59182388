"""The converter protocol: what one outside dataset has to say so the runner can convert it.

A converter lists its **units** of work (files, or episodes inside them) and, for one unit,
yields its **episodes**, each either pending (an id and a ``load()`` that builds every step
as a ``Sample`` plus its images, raising ``Skip`` when the episode cannot be converted) or
already known to be unreadable (``SkippedEpisode``). It never writes: the runner
(``runner.py``) shards units among worker processes, writes whole episodes only, keeps the
resume ledger and counts what was skipped and why.

Options are one frozen dataclass per converter (``Options``), each field with a one-line
``help`` in its metadata; the CLI is generated from them.
"""

from __future__ import annotations

import io
import os
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image

from ...actions import Action, ContinuousSpace, DiscreteSpace
from ...errors import OmniactorError
from ..sample import Sample

ActionSpace = ContinuousSpace | DiscreteSpace
ImageInput = bytes | np.ndarray | str | os.PathLike | Image.Image


class SourceError(OmniactorError, ValueError):
    """The source path is not what the converter reads; the message says what was expected."""


class MissingDependency(OmniactorError, ImportError):
    """An optional package a converter needs; the message carries the install hint."""


def require(module: str, package: str | None = None):
    """Import an optional dependency or raise ``MissingDependency`` with the install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(
            f"this converter needs {package or module}: "
            f"pip install 'omniactor[convert]' (or pip install {package or module})"
        ) from None


class Skip(Exception):
    """An episode that cannot be converted. ``reason`` is a short code the summary counts;
    ``detail`` says what exactly (shown for the first few of each reason)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Step:
    """One sample and the images to save with it (encoded bytes, arrays or file paths)."""

    sample: Sample
    images: list[ImageInput]


@dataclass
class PendingEpisode:
    """An episode found in a unit; ``load()`` builds its steps (or raises ``Skip``)."""

    id: str
    load: Callable[[], list[Step]]


@dataclass(frozen=True)
class SkippedEpisode:
    """An episode (or a record that should have been one) that cannot even be read."""

    id: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Unit:
    """One piece of work: ``key`` names it (a file, ``file#demo_3``), ``size`` weighs it for
    sharding among workers, ``data`` is any picklable detail the converter needs."""

    key: str
    size: int = 1
    data: Any = None


def option(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field with a one-line help text (shown by ``omniactor convert SOURCE --help``)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for list options")
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class BaseOptions:
    """Options every converter takes."""

    source_name: str | None = option(None, "meta.source of the records (default: the converter's name)")
    image_format: Literal["source", "png", "jpeg"] = option(
        "source", "how to store images: 'source' keeps encoded source images as they are (arrays become PNG)"
    )
    max_side: int | None = option(None, "downscale images so their longer side is at most this many pixels")
    jpeg_quality: int = option(95, "JPEG quality when image_format is jpeg")


@dataclass(frozen=True)
class GuiOptions(BaseOptions):
    """Options of GUI converters."""

    level: Literal["high", "low"] = option(
        "high", "instruction per step: 'high' the episode goal only, 'low' the goal plus the step instruction"
    )
    history: int = option(4, "previous actions shown in the prompt (0: none, -1: all)")


class Converter(ABC):
    """One outside dataset. Subclasses set ``name``, ``domain``, ``summary`` and ``Options``."""

    name: ClassVar[str]
    domain: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type[BaseOptions]] = BaseOptions
    #: How the source path must look, for ``--help`` and errors.
    layout: ClassVar[str] = ""

    def __init__(self, src: str | os.PathLike, options: BaseOptions | None = None):
        self.src = Path(src)
        self.options = options if options is not None else self.Options()
        if not isinstance(self.options, self.Options):
            raise TypeError(f"{self.name} takes {self.Options.__name__}, got {type(self.options).__name__}")
        #: Step-level notes the summary reports (clipped points, dropped no-ops, ...).
        self.counters: Counter[str] = Counter()

    @property
    def source(self) -> str:
        return self.options.source_name or self.name

    def check_source(self) -> None:
        """Raise ``SourceError`` when ``src`` does not look like this dataset (cheap checks only)."""

    @abstractmethod
    def units(self) -> list[Unit]:
        """The units of work, in a stable order."""

    @abstractmethod
    def episodes(self, unit: Unit) -> Iterator[PendingEpisode | SkippedEpisode]:
        """The episodes of one unit, lazily."""

    def action_spaces(self) -> dict[str, ActionSpace]:
        """Action spaces to declare in the manifest, per source name."""
        return {}

    def note(self, key: str, count: int = 1) -> None:
        self.counters[key] += count


# ---------------------------------------------------------------------------- helpers


def history_window(actions: Sequence[Action], size: int) -> list[Action]:
    """The last ``size`` actions (``0``: none, negative: all)."""
    if size == 0:
        return []
    return list(actions) if size < 0 else list(actions[-size:])


def float32_list(values: np.ndarray | Sequence[float]) -> list[float]:
    """Float32 data as the shortest decimals that read back as the same float32 (no 0.10000000149)."""
    return [float(str(v)) for v in np.asarray(values, dtype=np.float32).reshape(-1)]


def rounded_list(values: np.ndarray | Sequence[float], decimals: int = 6) -> list[float]:
    return [round(float(v), decimals) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def snake_names(names: Sequence[Any], fallback_prefix: str = "a") -> tuple[str, ...]:
    """Dimension names as unique lower_snake_case identifiers (``"Shoulder Pan"`` -> ``shoulder_pan``)."""
    import keyword

    out: list[str] = []
    for i, name in enumerate(names):
        text = re.sub(r"[^0-9a-z_]+", "_", str(name).lower()).strip("_") or f"{fallback_prefix}{i}"
        if text[0].isdigit() or keyword.iskeyword(text):
            text = f"{fallback_prefix}_{text}"
        while text in out:
            text = f"{text}_{i}"
        out.append(text)
    return tuple(out)


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG header, without decoding (None when not a PNG)."""
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


RESIZE_FILTERS: dict[str, Image.Resampling] = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}


def parse_image_size(text: str) -> tuple[int, int]:
    """``"448"`` -> ``(448, 448)``, ``"224x448"`` -> ``(224, 448)``: (height, width) in pixels.

    Height first, as in array shapes (``H x W x 3``); raises ``ValueError`` naming the
    accepted forms, so a typo on the command line fails before anything is converted.
    """
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or any(n <= 0 for n in numbers):
        raise ValueError(f"image size {text!r}: expected N (an NxN square, e.g. 448) or HxW (e.g. 224x448)")
    return (numbers[0], numbers[0]) if len(numbers) == 1 else (numbers[0], numbers[1])


def resize_exact(image: np.ndarray, size: tuple[int, int], resample: str = "bicubic") -> Image.Image:
    """``image`` (an ``H x W x C`` array) resized to exactly ``size`` = (height, width), aspect ratio
    not kept (models with a fixed square input, e.g. 448x448, are trained and evaluated on the
    stretched frame). Returns a PIL image so ``prepare_image`` encodes it without another copy."""
    pil = Image.fromarray(np.ascontiguousarray(image))
    height, width = size
    if pil.size == (width, height):
        return pil
    return pil.resize((width, height), RESIZE_FILTERS[resample])


def prepare_image(image: ImageInput, options: BaseOptions) -> bytes | str:
    """The image as the writer should store it: encoded bytes, or a file path to copy as is.

    With ``image_format="source"`` and no ``max_side``, encoded images (bytes, files) pass
    through untouched; arrays and PIL images become PNG. Otherwise the image is decoded,
    downscaled to ``max_side`` (longer side) if larger, and encoded as PNG or JPEG.
    Encoding here (in the worker, before anything is written) keeps writing an episode pure I/O.
    """
    fmt, max_side = options.image_format, options.max_side
    encoded = isinstance(image, (bytes, bytearray, str, os.PathLike))
    if encoded and fmt == "source" and max_side is None:
        return bytes(image) if isinstance(image, (bytes, bytearray)) else os.fspath(image)
    if isinstance(image, np.ndarray):
        pil = Image.fromarray(np.ascontiguousarray(image))
        source_format = "PNG"
    elif isinstance(image, Image.Image):
        pil, source_format = image, "PNG"
    else:
        pil = Image.open(io.BytesIO(image) if isinstance(image, (bytes, bytearray)) else image)
        source_format = pil.format if pil.format in ("PNG", "JPEG") else "PNG"
    if max_side is not None and max(pil.size) > max_side:
        scale = max_side / max(pil.size)
        size = (max(1, round(pil.size[0] * scale)), max(1, round(pil.size[1] * scale)))
        pil = pil.convert("RGB").resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    target = {"source": source_format, "png": "PNG", "jpeg": "JPEG"}[fmt]
    buffer = io.BytesIO()
    if target == "JPEG":
        pil.convert("RGB").save(buffer, "JPEG", quality=options.jpeg_quality)
    else:
        pil.save(buffer, "PNG")
    return buffer.getvalue()
