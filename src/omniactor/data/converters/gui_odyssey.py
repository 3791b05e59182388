"""GUI Odyssey (Lu et al., 2024): cross-app phone episodes, one JSON file per episode.

Layout: ``SRC/annotations/<episode_id>.json``, ``SRC/screenshots/<file>.png`` (flat, or
still in the sub-folders of the download), ``SRC/splits/*.json`` (``{"train": [...],
"test": [...]}`` of annotation file names). An annotation holds ``episode_id``,
``device_info`` (``w``, ``h``, ``device_name``), ``task_info`` (``instruction``, ``task``,
``category``, ``app``) and ``steps``: ``screenshot``, ``action``, ``info`` (points on the
0-1000 grid), ``low_level_instruction`` and, in the 2025 release, ``sam2_bbox`` (the
target element's box on the same grid).

Actions -> typed actions::

    CLICK [[x, y]]                     click(x=x/1000, y=y/1000)
    CLICK "KEY_HOME" / "KEY_BACK" / "KEY_APPSELECT"   press_key(home / back / app_switch)
    LONG_PRESS [[x, y]]                long_press(...)
    SCROLL [[x1, y1], [x2, y2]]        scroll(direction=..., x=x1, y=y1)  (or swipe, see scroll_as)
    TEXT / TYPE "hello"                type(text="hello")
    COMPLETE / INCOMPLETE (IMPOSSIBLE) terminate(status="success" / "failure")

Scroll: ``info`` is the finger's path, start to end, on the 0-1000 grid (y down). Our
``Scroll(direction)`` names what comes into view, the opposite of the finger's motion; the
larger of the horizontal and vertical moves decides (a tie goes to the vertical one)::

    finger moves up    (y2 < y1)   scroll(direction="down")   content below comes into view
    finger moves down  (y2 > y1)   scroll(direction="up")
    finger moves left  (x2 < x1)   scroll(direction="right")
    finger moves right (x2 > x1)   scroll(direction="left")

The gesture's start point is kept as the scroll's ``point``. A path that does not move
has no direction: its episode is skipped (``bad_action``), not given a guessed label.
GUI Odyssey's own evaluation labels scrolls by the finger's direction (``SCROLL: UP``
for the first row); that label is kept in ``meta.gesture_direction`` and the path in
``meta.gesture``, so its metric can be reproduced exactly. ``scroll_as="swipe"`` writes
the path itself as ``swipe(...)``.

``sam2_bbox`` is kept as given (grid units) in ``meta.sam2_bbox`` and normalised to
``[0, 1]`` in ``meta.target_box``: the ``odyssey`` metric counts a click inside it as correct.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ...actions import Action, Click, LongPress, Point, PressKey, Scroll, Swipe, Terminate, TypeText
from ..prompts import build_sample
from .base import (
    Converter,
    GuiOptions,
    PendingEpisode,
    Skip,
    SkippedEpisode,
    SourceError,
    Step,
    Unit,
    history_window,
    option,
    prepare_image,
)

_KEYS = {"KEY_HOME": "home", "KEY_BACK": "back", "KEY_APPSELECT": "app_switch", "HOME": "home", "BACK": "back",
         "RECENT": "app_switch", "APPSELECT": "app_switch"}


@dataclass(frozen=True)
class GuiOdysseyOptions(GuiOptions):
    split_file: str | None = option(None, "a splits JSON (e.g. SRC/splits/random_split.json); needs --split")
    split: str | None = option(None, "convert only this split of --split-file (train or test)")
    scroll_as: Literal["scroll", "swipe"] = option(
        "scroll", "write SCROLL steps as scroll(direction) (what comes into view) or as the finger's swipe path"
    )


def _grid(value: Any, what: str, converter: Converter) -> Point:
    pair = isinstance(value, (list, tuple)) and len(value) >= 2
    if not (pair and all(isinstance(v, (int, float)) for v in value[:2])):
        raise Skip("bad_action", f"{what}: expected [x, y] on the 0-1000 grid, got {value!r}")
    x, y = float(value[0]), float(value[1])
    if not (0 <= x <= 1000 and 0 <= y <= 1000):
        converter.note("points off the screen moved onto its edge")
        x, y = min(max(x, 0.0), 1000.0), min(max(y, 0.0), 1000.0)
    return Point.from_grid(x, y)


class GuiOdysseyConverter(Converter):
    name = "gui_odyssey"
    domain = "gui"
    summary = "GUI Odyssey annotations/*.json + screenshots/ (cross-app phone episodes) -> gui samples"
    layout = "SRC: a folder with annotations/<episode>.json and screenshots/ (and optionally splits/)"
    Options = GuiOdysseyOptions
    options: GuiOdysseyOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._screenshot_index: dict[str, Path] | None = None

    def check_source(self) -> None:
        if not (self.src / "annotations").is_dir():
            raise SourceError(f"{self.src}: no annotations/ folder ({self.layout})")
        if not (self.src / "screenshots").is_dir():
            raise SourceError(f"{self.src}: no screenshots/ folder ({self.layout})")
        if (self.options.split is None) != (self.options.split_file is None):
            raise SourceError("--split and --split-file go together")
        self._split_names()

    def _split_names(self) -> set[str] | None:
        if self.options.split is None or self.options.split_file is None:
            return None
        path = Path(self.options.split_file)
        if not path.is_absolute() and not path.exists():
            path = self.src / path
        if not path.is_file():
            raise SourceError(f"split file {self.options.split_file} not found")
        splits = json.loads(path.read_text(encoding="utf-8"))
        if self.options.split not in splits:
            raise SourceError(f"{path} has no split {self.options.split!r} (it has: {', '.join(sorted(splits))})")
        return {Path(str(name)).stem for name in splits[self.options.split]}

    def units(self) -> list[Unit]:
        wanted = self._split_names()
        files = sorted((self.src / "annotations").glob("*.json"))
        if wanted is not None:
            self.note(f"episodes outside split {self.options.split!r}", sum(p.stem not in wanted for p in files))
            files = [p for p in files if p.stem in wanted]
        return [Unit(str(p), p.stat().st_size) for p in files]

    def episodes(self, unit: Unit) -> Iterator[PendingEpisode | SkippedEpisode]:
        path = Path(unit.key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            episode = str(data.get("episode_id") or path.stem)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
            yield SkippedEpisode(path.stem, "unreadable_annotation", f"{path.name}: {err}")
            return
        yield PendingEpisode(episode, lambda: self._steps(episode, data))

    def _screenshot(self, name: str) -> Path:
        path = self.src / "screenshots" / name
        if path.is_file():
            return path
        if self._screenshot_index is None:  # screenshots still in the download's sub-folders
            self._screenshot_index = {p.name: p for p in (self.src / "screenshots").rglob("*") if p.is_file()}
        found = self._screenshot_index.get(Path(name).name)
        if found is None:
            raise Skip("missing_screenshot", f"{name} not found under {self.src / 'screenshots'}")
        return found

    def _action(self, step: dict[str, Any]) -> tuple[Action, dict[str, Any]]:
        kind = str(step.get("action", "")).upper()
        info = step.get("info")
        where = f"step {step.get('step')} {kind}"
        if kind in ("CLICK", "LONG_PRESS"):
            if isinstance(info, str):
                if info in _KEYS:
                    return PressKey(_KEYS[info]), {}
                raise Skip("unknown_action", f"{where} on {info!r}")
            point = _grid(info[0] if isinstance(info, list) and info else info, where, self)
            return (Click(point) if kind == "CLICK" else LongPress(point)), {}
        if kind == "SCROLL":
            if not (isinstance(info, list) and len(info) >= 2):
                raise Skip("bad_action", f"{where}: expected [[x1, y1], [x2, y2]], got {info!r}")
            start, end = _grid(info[0], where, self), _grid(info[1], where, self)
            dx, dy = end.x - start.x, end.y - start.y
            if dx == 0 and dy == 0:  # no direction to read: guessing one would teach a wrong label
                raise Skip("bad_action", f"{where}: the swipe starts and ends at the same point {info[0]!r}")
            finger = ("left" if dx < 0 else "right") if abs(dx) > abs(dy) else ("up" if dy < 0 else "down")
            view = {"up": "down", "down": "up", "left": "right", "right": "left"}[finger]
            meta = {"gesture": [[start.x, start.y], [end.x, end.y]], "gesture_direction": finger}
            if self.options.scroll_as == "swipe":
                return Swipe(start, end), meta
            return Scroll(view, start), meta
        if kind in ("TEXT", "TYPE"):
            if not isinstance(info, str):
                raise Skip("bad_action", f"{where}: text must be a string, got {info!r}")
            return TypeText(info), {}
        if kind == "COMPLETE":
            return Terminate("success"), {}
        if kind in ("INCOMPLETE", "IMPOSSIBLE"):
            return Terminate("failure"), {}
        if kind in _KEYS:
            return PressKey(_KEYS[kind]), {}
        raise Skip("unknown_action", f"{where}: action {kind!r}")

    def _steps(self, episode: str, data: dict[str, Any]) -> list[Step]:
        opts = self.options
        task = data.get("task_info") or {}
        device = data.get("device_info") or {}
        goal = str(task.get("instruction") or task.get("task") or "").strip()
        if not goal:
            raise Skip("missing_field", "task_info has no instruction")
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise Skip("empty_episode", "no steps")
        common: dict[str, Any] = {"goal": goal}
        for key, value in (("category", task.get("category")), ("apps", task.get("app")),
                           ("device", device.get("device_name"))):
            if value:
                common[key] = value
        if device.get("w") and device.get("h"):
            common["screen"] = [int(device["w"]), int(device["h"])]
        steps: list[Step] = []
        history: list[Action] = []
        for raw in raw_steps:
            if not isinstance(raw, dict) or not raw.get("screenshot"):
                raise Skip("bad_step", f"step {len(steps)} has no screenshot: {str(raw)[:80]}")
            action, meta = self._action(raw)
            meta = {**common, **meta}
            low = str(raw.get("low_level_instruction") or "").strip()
            if low:
                meta["step_instruction"] = low
            box = raw.get("sam2_bbox")
            if box is not None:
                if isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box):
                    x1, x2 = sorted(min(max(float(v), 0.0), 1000.0) / 1000 for v in (box[0], box[2]))
                    y1, y2 = sorted(min(max(float(v), 0.0), 1000.0) / 1000 for v in (box[1], box[3]))
                    meta["sam2_bbox"] = box
                    meta["target_box"] = [round(x1, 4), round(y1, 4), round(x2, 4), round(y2, 4)]
                else:
                    self.note("malformed sam2_bbox dropped")
            instruction = f"{goal}\nStep instruction: {low}" if opts.level == "low" and low else goal
            sample = build_sample(
                domain="gui",
                instruction=instruction,
                action=action,
                source=self.source,
                episode=episode,
                step=len(steps),
                history=history_window(history, opts.history),
                **meta,
            )
            steps.append(Step(sample, [prepare_image(self._screenshot(str(raw["screenshot"])), opts)]))
            history.append(action)
        return steps
