"""A small synthetic dataset in the unified format: all three domains, optionally with planted faults.

- ``example_gui`` (gui): phone screenshots drawn with PIL (a search field and a list);
  each episode taps the field, types a query, scrolls, taps a row and terminates, with
  OmniActor's ``Action: ...`` / ``Operation: ...`` answers and the previous actions as history.
- ``example_embodied`` (embodied): 7-D end-effector delta + gripper actions from smooth
  trajectories, in a declared ``ContinuousSpace`` of [-1, 1]; a top view of a gripper and a block.
- ``example_babyai`` (discrete): a BabyAI-style grid, the agent turning and walking to a
  goal, then ``done``; a declared ``DiscreteSpace`` of BabyAI's seven actions.

``faults=True`` then plants exactly four faults and returns where: a missing image file,
an action outside its declared space, a human turn with one ``<image>`` marker too many,
and a last line cut in half (as an interrupted write leaves it). Used by the CLI demo
(``omniactor data example``) and the tests.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..actions import (
    BABYAI_ACTIONS,
    EEF_DELTA_GRIPPER,
    Click,
    ContinuousAction,
    ContinuousSpace,
    DiscreteAction,
    DiscreteSpace,
    Point,
    Scroll,
    Terminate,
    TypeText,
    format_action,
)
from ..fileio import write_text_atomic
from .io import DatasetWriter, Record
from .prompts import build_sample

GUI_SOURCE = "example_gui"
EMBODIED_SOURCE = "example_embodied"
DISCRETE_SOURCE = "example_babyai"
EMBODIED_SPACE = ContinuousSpace.symmetric(EEF_DELTA_GRIPPER)
DISCRETE_SPACE = DiscreteSpace(BABYAI_ACTIONS)
FAULT_KINDS = ("missing_image", "bad_action", "marker_mismatch", "truncated_json")

_APPS = {
    "Settings": ["Wi-Fi", "Bluetooth", "Display", "Sound", "Battery", "Storage", "Privacy", "About phone"],
    "Contacts": ["Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Gita", "Hiro"],
    "Shop": ["Shoes", "Lamps", "Books", "Tea", "Bikes", "Tents", "Clocks", "Paint"],
}
_COLOURS = ["red", "green", "blue", "purple", "yellow", "grey"]


@dataclass(frozen=True)
class PlantedFault:
    """Where a fault was planted (file relative to the dataset folder, 1-based line)."""

    kind: str
    file: str
    line: int
    episode: str
    step: int
    detail: str


@dataclass
class ExampleDataset:
    root: Path
    records: int
    faults: list[PlantedFault] = field(default_factory=list)


# ---------------------------------------------------------------------------- GUI


def _draw_screen(app: str, rows: list[str], query: str, offset: int, size: tuple[int, int]) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size, (250, 250, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, width, 12], fill=(40, 40, 40))
    draw.text((4, 14), app, fill=(20, 20, 20))
    draw.rectangle([4, 28, width - 4, 42], outline=(120, 120, 120), fill=(255, 255, 255))
    draw.text((8, 30), query or "Search", fill=(20, 20, 20) if query else (160, 160, 160))
    for i, label in enumerate(rows[offset:]):
        top = 48 + 18 * i
        if top + 16 > height:
            break
        draw.rectangle([4, top, width - 4, top + 16], fill=(230, 236, 245))
        draw.text((8, top + 3), label, fill=(10, 10, 10))
    return image


def _row_centre(index: int, offset: int, size: tuple[int, int]) -> Point:
    top = 48 + 18 * (index - offset)
    return Point.from_pixels(size[0] / 2, top + 8, *size)


def _gui_episode(writer: DatasetWriter, episode: int, rng: np.random.Generator, records: dict) -> None:
    size = (90, 160)
    app = list(_APPS)[episode % len(_APPS)]
    rows = _APPS[app]
    target = int(rng.integers(4, len(rows)))
    query = rows[target][:3].lower()
    plan = [
        (Click(Point.from_pixels(size[0] / 2, 35, *size)), "Tap the search field.", "", 0),
        (TypeText(query), f"Type '{query}'.", "", 0),
        (Scroll("down"), "Scroll down to see more results.", query, 0),
        (Click(_row_centre(target, 2, size)), f"Open '{rows[target]}'.", query, 2),
        (Terminate("success"), "The item is open; the task is done.", query, 2),
    ]
    history = []
    for step, (action, thought, shown_query, offset) in enumerate(plan):
        sample = build_sample(
            domain="gui",
            instruction=f"In {app}, find and open '{rows[target]}'.",
            action=action,
            source=GUI_SOURCE,
            episode=f"gui-{episode:03d}",
            step=step,
            history=history,
            thought=thought,
            app=app,
        )
        records[("gui", episode, step)] = writer.write(
            sample, images=[_draw_screen(app, rows, shown_query, offset, size)]
        )
        history.append(action)


# ---------------------------------------------------------------------------- embodied


def _embodied_episode(
    writer: DatasetWriter, episode: int, rng: np.random.Generator, records: dict, steps: int = 8
) -> None:
    phase = rng.uniform(0, 2 * math.pi, size=6)
    speed = rng.uniform(0.5, 1.5, size=6)
    colour = _COLOURS[episode % len(_COLOURS)]
    block = rng.integers(12, 52, size=2)
    position = np.array([32.0, 32.0])
    for step in range(steps):
        t = step / steps
        motion = 0.6 * np.sin(2 * math.pi * speed * t + phase)
        gripper = -1.0 if step < steps // 2 else 1.0
        values = tuple(round(float(v), 4) for v in (*motion, gripper))
        action = ContinuousAction(values, EEF_DELTA_GRIPPER)
        image = Image.new("RGB", (64, 64), (200, 190, 170))
        draw = ImageDraw.Draw(image)
        draw.rectangle([block[0] - 4, block[1] - 4, block[0] + 4, block[1] + 4], fill=colour)
        r = 5 if gripper < 0 else 3
        draw.ellipse(
            [position[0] - r, position[1] - r, position[0] + r, position[1] + r], outline=(30, 30, 30), width=2
        )
        sample = build_sample(
            domain="embodied",
            instruction=f"pick up the {colour} block",
            action=action,
            source=EMBODIED_SOURCE,
            episode=f"embodied-{episode:03d}",
            step=step,
            space=EMBODIED_SPACE,
        )
        records[("embodied", episode, step)] = writer.write(sample, images=[image])
        position = np.clip(position + 6 * np.asarray(values[:2]), 4, 60)


# ---------------------------------------------------------------------------- discrete

_HEADINGS = [(1, 0), (0, 1), (-1, 0), (0, -1)]  # right, down, left, up (MiniGrid's order)


def _grid_image(agent: tuple[int, int], heading: int, goal: tuple[int, int], colour: str, cells: int = 7) -> np.ndarray:
    tile = 8
    grid = np.full((cells * tile, cells * tile, 3), 30, dtype=np.uint8)
    grid[:tile] = grid[-tile:] = grid[:, :tile] = grid[:, -tile:] = 110  # walls
    rgb = np.asarray(Image.new("RGB", (1, 1), colour)).reshape(3)
    gx, gy = goal
    grid[gy * tile + 2 : (gy + 1) * tile - 2, gx * tile + 2 : (gx + 1) * tile - 2] = rgb
    ax, ay = agent
    grid[ay * tile + 2 : (ay + 1) * tile - 2, ax * tile + 2 : (ax + 1) * tile - 2] = (230, 60, 60)
    dx, dy = _HEADINGS[heading]
    cx, cy = ax * tile + 4 + 3 * dx, ay * tile + 4 + 3 * dy
    grid[cy - 1 : cy + 1, cx - 1 : cx + 1] = 255  # the agent's nose shows its heading
    return grid


def _discrete_episode(writer: DatasetWriter, episode: int, rng: np.random.Generator, records: dict) -> None:
    agent = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    goal = agent
    while abs(goal[0] - agent[0]) + abs(goal[1] - agent[1]) < 3:
        goal = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    colour = _COLOURS[episode % len(_COLOURS)]
    heading = int(rng.integers(0, 4))
    step = 0
    history: list = []

    def emit(name: str) -> None:
        nonlocal step
        action = DiscreteAction(name)
        sample = build_sample(
            domain="discrete",
            instruction=f"go to the {colour} box",
            action=action,
            source=DISCRETE_SOURCE,
            episode=f"babyai-{episode:03d}",
            step=step,
            history=history[-4:],
            space=DISCRETE_SPACE,
        )
        records[("discrete", episode, step)] = writer.write(sample, images=[_grid_image(agent, heading, goal, colour)])
        history.append(action)
        step += 1

    def face(want: int) -> None:
        nonlocal heading
        while heading != want:
            turn = "left" if (want - heading) % 4 == 3 else "right"
            emit(turn)
            heading = (heading + (1 if turn == "right" else -1)) % 4

    def walk(axis: int, stop_at: int) -> None:
        nonlocal agent
        while abs(goal[axis] - agent[axis]) > stop_at:
            direction = [0, 0]
            direction[axis] = int(np.sign(goal[axis] - agent[axis]))
            face(_HEADINGS.index(tuple(direction)))
            emit("forward")
            agent = (agent[0] + direction[0], agent[1] + direction[1])

    walk(0, 1 if goal[1] == agent[1] else 0)  # same row: stop next to the goal
    walk(1, 1)
    toward = (int(np.sign(goal[0] - agent[0])), int(np.sign(goal[1] - agent[1])))
    face(_HEADINGS.index(toward))
    emit("done")


# ---------------------------------------------------------------------------- faults


def _rewrite_line(root: Path, record: Record, text: str, newline: bool = True) -> None:
    path = root / record.file
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    lines[record.line - 1] = text
    write_text_atomic(path, "\n".join(lines) + ("\n" if newline else ""))


def _plant_faults(root: Path, records: dict) -> list[PlantedFault]:
    def fault(kind: str, record: Record, detail: str) -> PlantedFault:
        return PlantedFault(kind, record.file, record.line, record.sample.episode, record.sample.step, detail)

    gui = records[("gui", 0, 1)]
    os.unlink(root / gui.sample.images[0])
    planted = [fault("missing_image", gui, f"deleted {gui.sample.images[0]}")]

    robot = records[("embodied", 0, 2)]
    data = robot.sample.to_json()
    values = list(robot.sample.action.values)
    values[-1] = 2.5
    bad = ContinuousAction(tuple(values), robot.sample.action.names)
    data["action"]["values"] = values
    data["conversations"][-1]["value"] = format_action(bad)
    _rewrite_line(root, robot, json.dumps(data, ensure_ascii=False))
    planted.append(fault("bad_action", robot, "gripper=2.5, outside the declared [-1, 1]"))

    grid = records[("discrete", 0, 1)]
    data = grid.sample.to_json()
    data["conversations"][0]["value"] = "<image>" + data["conversations"][0]["value"]
    _rewrite_line(root, grid, json.dumps(data, ensure_ascii=False))
    planted.append(fault("marker_mismatch", grid, "2 <image> markers, 1 image"))

    last = max(records.values(), key=lambda r: (r.file, r.line))
    text = json.dumps(last.sample.to_json(), ensure_ascii=False)
    _rewrite_line(root, last, text[: len(text) // 2], newline=False)
    planted.append(fault("truncated_json", last, "last line cut in half, no newline"))
    return planted


def write_example_dataset(
    root: str | os.PathLike, episodes_per_domain: int = 2, seed: int = 0, faults: bool = False, shard_size: int = 16
) -> ExampleDataset:
    """Write the example dataset to the new folder ``root``; with ``faults=True`` plant the four faults."""
    if episodes_per_domain < 1:
        raise ValueError(f"episodes_per_domain must be >= 1, got {episodes_per_domain}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    records: dict[tuple[str, int, int], Record] = {}
    spaces = {EMBODIED_SOURCE: EMBODIED_SPACE, DISCRETE_SOURCE: DISCRETE_SPACE}
    with DatasetWriter(root, shard_size=shard_size, action_spaces=spaces) as writer:
        for episode in range(episodes_per_domain):
            _gui_episode(writer, episode, rng, records)
        for episode in range(episodes_per_domain):
            _embodied_episode(writer, episode, rng, records)
        for episode in range(episodes_per_domain):
            _discrete_episode(writer, episode, rng, records)
    planted = _plant_faults(root, records) if faults else []
    return ExampleDataset(root, len(records), planted)
