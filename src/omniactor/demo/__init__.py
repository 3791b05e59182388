"""The main job end to end: ``omniactor demo`` / ``make demo`` (see ``pipeline``)."""

from __future__ import annotations

from typing import Any


def run_demo(*args: Any, **kwargs: Any) -> int:
    from .pipeline import run_demo as run

    return run(*args, **kwargs)
