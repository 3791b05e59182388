"""Converters: outside datasets -> the unified sample format, one file per dataset.

=================  =========  ==========================================================
name               domain     reads
=================  =========  ==========================================================
android_control    gui        AndroidControl GZIP TFRecords (screenshots, a11y trees, JSON actions)
gui_odyssey        gui        GUI Odyssey ``annotations/*.json`` + ``screenshots/``
libero             embodied   LIBERO demonstration HDF5 files (robomimic layout)
lerobot            embodied   LeRobot v3 folders (parquet frames, MP4 or image features)
=================  =========  ==========================================================

``convert(name, src, out, options, workers=N)`` runs one (``runner.py``: parallel workers,
whole episodes, resumable, a summary of what was skipped and why); ``omniactor convert
SOURCE --src PATH --out DIR`` is the same from the shell (``cli.py``). Converters are
resolved lazily by name, so importing this package loads no converter's dependencies.
New converters subclass ``base.Converter`` and add one line to ``CONVERTERS``.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

from .base import (
    BaseOptions,
    Converter,
    MissingDependency,
    PendingEpisode,
    Skip,
    SkippedEpisode,
    SourceError,
    Step,
    Unit,
)

if TYPE_CHECKING:
    from .runner import ConvertSummary

#: name -> "module:Class" (relative to this package), imported on first use.
CONVERTERS: dict[str, str] = {
    "android_control": "android_control:AndroidControlConverter",
    "gui_odyssey": "gui_odyssey:GuiOdysseyConverter",
    "libero": "libero:LiberoConverter",
    "lerobot": "lerobot:LeRobotConverter",
}


def list_converters() -> list[str]:
    return sorted(CONVERTERS)


def get_converter(name: str) -> type[Converter]:
    """The converter class registered as ``name`` (``KeyError`` with a did-you-mean otherwise)."""
    if name not in CONVERTERS:
        hint = difflib.get_close_matches(name, list(CONVERTERS), n=1)
        did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
        raise KeyError(f"no converter named {name!r} (known: {', '.join(list_converters())}){did_you_mean}")
    module, cls = CONVERTERS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def convert(*args, **kwargs) -> ConvertSummary:
    """See ``runner.convert``."""
    from .runner import convert as run

    return run(*args, **kwargs)


__all__ = [
    "BaseOptions",
    "CONVERTERS",
    "Converter",
    "MissingDependency",
    "PendingEpisode",
    "Skip",
    "SkippedEpisode",
    "SourceError",
    "Step",
    "Unit",
    "convert",
    "get_converter",
    "list_converters",
]
