"""Shared fixtures: small datasets in the unified format, built fresh in temporary folders."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from omniactor.actions import (
    BABYAI_ACTIONS,
    Click,
    ContinuousAction,
    ContinuousSpace,
    DiscreteAction,
    DiscreteSpace,
    Point,
)
from omniactor.data import DatasetWriter, build_sample
from omniactor.data.example import write_example_dataset

ROBOT_SPACE = ContinuousSpace(("x", "y", "gripper"), (-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
GRID_SPACE = DiscreteSpace(BABYAI_ACTIONS)


def tiny_image(value: int = 128, size: int = 8) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


def click(x: float, y: float) -> Click:
    return Click(Point(x, y))


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """Three valid records in ``shards/shard-00000.jsonl``: line 1 gui, 2 embodied, 3 discrete."""
    root = tmp_path / "small"
    with DatasetWriter(root, action_spaces={"robot": ROBOT_SPACE, "grid": GRID_SPACE}) as writer:
        writer.write(
            build_sample(
                domain="gui", instruction="tap ok", action=click(0.25, 0.75), source="gui_src", episode="g0", step=0
            ),
            images=[tiny_image(10)],
        )
        reach = ContinuousAction((0.5, -0.25, 1.0), ("x", "y", "gripper"))
        writer.write(
            build_sample(
                domain="embodied",
                instruction="reach",
                action=reach,
                source="robot",
                episode="r0",
                step=0,
                space=ROBOT_SPACE,
            ),
            images=[tiny_image(20)],
        )
        writer.write(
            build_sample(
                domain="discrete",
                instruction="go",
                action=DiscreteAction("forward"),
                source="grid",
                episode="d0",
                step=0,
                space=GRID_SPACE,
            ),
            images=[tiny_image(30)],
        )
    return root


@pytest.fixture
def edit_line() -> Callable[[Path, int, Callable[[dict[str, Any]], Any]], None]:
    """Rewrite line ``line`` (1-based) of a shard: ``change(record)`` edits the dict in place,
    or returns ``bytes`` that replace the line's text."""

    def edit(shard: Path, line: int, change: Callable[[dict[str, Any]], Any]) -> None:
        lines = shard.read_text(encoding="utf-8").split("\n")
        record = json.loads(lines[line - 1])
        result = change(record)
        lines[line - 1] = result.decode() if isinstance(result, bytes) else json.dumps(record)
        shard.write_text("\n".join(lines), encoding="utf-8")

    return edit


@pytest.fixture(scope="session")
def _example_master(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("example") / "clean"
    write_example_dataset(root, episodes_per_domain=2, seed=0)
    return root


@pytest.fixture
def example_dir(_example_master: Path, tmp_path: Path) -> Path:
    """A fresh copy of the clean example dataset (tests may modify it)."""
    root = tmp_path / "example"
    shutil.copytree(_example_master, root)
    return root


def save_png(path: Path, value: int = 0) -> None:
    Image.fromarray(tiny_image(value)).save(path)
