"""AndroidControl (Li et al., 2024): GZIP TFRecords of ``tf.train.Example`` episodes.

Each record is one episode: ``episode_id`` (int64), ``goal`` (bytes), ``screenshots``
(PNG bytes, one per observation), ``screenshot_widths`` / ``screenshot_heights``,
``accessibility_trees`` (serialised ``AndroidAccessibilityForest``), ``actions`` (JSON,
``len(screenshots) - 1`` of them, action i taken on screenshot i) and
``step_instructions`` (one per action). ``splits.json`` maps split names to episode ids.

Actions -> typed actions (pixels -> normalised ``Point`` with the screenshot's size)::

    {"action_type": "click", "x": 540, "y": 1200}       click(x=0.5, y=0.5)         (1080x2400)
    {"action_type": "long_press", "x": .., "y": ..}     long_press(...)
    {"action_type": "scroll", "direction": "down"}      scroll(direction="down")    (see below)
    {"action_type": "open_app", "app_name": "Gmail"}    open_app(name="Gmail")
    {"action_type": "input_text", "text": "hello"}      type(text="hello")
    {"action_type": "type", "text": .., "x": .., "y": ..}  type(text=...), the point in meta.type_point
    {"action_type": "navigate_back"} / "navigate_home"  press_key(key="back") / press_key(key="home")
    {"action_type": "wait"}                             wait()

Scroll direction. Our ``Scroll(direction)`` means "scroll so that what lies in
``direction`` comes into view" (``down``: the finger moves up, the content moves up, what
was below appears). AndroidControl's ``direction`` names the same thing: the AndroidWorld
executor of this very action JSON (same authors, ``android_world/env/actuation.py``)
performs it as a swipe from the centre of the screen (or of the element) to its edge::

    AndroidControl direction   finger (AndroidWorld)      written as
    "down"                     centre -> top edge         scroll(direction="down")   content below comes into view
    "up"                       centre -> bottom edge      scroll(direction="up")
    "right"                    centre -> left edge        scroll(direction="right")
    "left"                     centre -> right edge       scroll(direction="left")

So ``scroll_convention="view"`` (default) keeps the direction. Should a copy of the data
use the opposite meaning (the direction the content or the finger moves),
``scroll_convention="content"`` flips it. (AndroidWorld's separate ``swipe`` action type,
the inverse of scroll, does not occur in AndroidControl.)

Target boxes: for clicks, long presses and ``type`` points, the smallest interactive
(clickable, long-clickable or editable) accessibility node whose bounds contain the point
goes into ``meta.target_box`` (normalised ``[x1, y1, x2, y2]``) with its text in
``meta.target_text``: what the Qwen2.5-VL protocol ("inside the target box") needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ...actions import Action, Click, LongPress, OpenApp, Point, PressKey, Scroll, Terminate, TypeText, Wait
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
    png_size,
    prepare_image,
)
from .protobuf import BYTES, VARINT, ProtobufError, fields, signed64
from .tfrecord import BadRecord, parse_example, read_records

_OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}
_KEYS = {"navigate_back": "back", "navigate_home": "home"}
_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".gz")


@dataclass(frozen=True)
class AndroidControlOptions(GuiOptions):
    split: str | None = option(None, "convert only this split of the splits file (e.g. train, validation, test)")
    splits_file: str | None = option(None, "JSON file: split name -> episode ids (default: SRC/splits.json if present)")
    scroll_convention: Literal["view", "content"] = option(
        "view", "what AndroidControl's scroll direction names: 'view' (what comes into view: kept as is) "
        "or 'content' (where the content moves: flipped)"
    )
    target_boxes: bool = option(True, "find each click's target element in the accessibility tree (meta.target_box)")
    add_terminate: bool = option(False, "add a terminate(status=\"success\") step on each episode's last screenshot")
    verify_checksums: bool = option(True, "check each record's CRC-32C (corrupt records are skipped and counted)")


def _rect(data: bytes) -> tuple[int, int, int, int]:
    values = {1: 0, 2: 0, 3: 0, 4: 0}
    for number, wire, value in fields(data):
        if wire == VARINT and number in values:
            values[number] = signed64(value)
    return values[1], values[2], values[3], values[4]


def target_element(forest: bytes, px: float, py: float) -> tuple[tuple[int, int, int, int], str] | None:
    """Pixel box ``(left, top, right, bottom)`` and label of the node under ``(px, py)``.

    The smallest interactive node containing the point wins; without one, the smallest
    node of any kind. Field numbers follow android_env's ``a11y`` protos (forest.windows=1,
    window.tree=11, tree.nodes=1; node: bounds=2, class=3, content_description=4, text=7,
    view id=10, clickable=14, editable=15, long_clickable=19).
    """
    best: tuple[bool, int, tuple[int, int, int, int], str] | None = None
    for n, w, window in fields(forest):
        if n != 1 or w != BYTES:
            continue
        for wn, ww, tree in fields(window):
            if wn != 11 or ww != BYTES:
                continue
            for tn, tw, node in fields(tree):
                if tn != 1 or tw != BYTES:
                    continue
                box, labels, interactive = None, {}, False
                for fn, fw, value in fields(node):
                    if fn == 2 and fw == BYTES:
                        box = _rect(value)
                    elif fn in (4, 7, 10) and fw == BYTES:
                        labels[fn] = value.decode("utf-8", "replace")
                    elif fn in (14, 15, 19) and fw == VARINT and value:
                        interactive = True
                if box is None:
                    continue
                left, top, right, bottom = box
                area = (right - left) * (bottom - top)
                if area <= 0 or not (left <= px <= right and top <= py <= bottom):
                    continue
                label = labels.get(7) or labels.get(4) or labels.get(10) or ""
                key = (not interactive, area)
                if best is None or key < (best[0], best[1]):
                    best = (not interactive, area, box, label)
    return None if best is None else (best[2], best[3])


class AndroidControlConverter(Converter):
    name = "android_control"
    domain = "gui"
    summary = "AndroidControl GZIP TFRecords (screenshots, accessibility trees, JSON actions) -> gui samples"
    layout = "SRC: a folder of android_control-*-of-* TFRecord files (GZIP) and optionally splits.json, or one file"
    Options = AndroidControlOptions
    options: AndroidControlOptions

    def _files(self) -> list[Path]:
        if self.src.is_file():
            return [self.src]
        return sorted(
            p for p in self.src.iterdir()
            if p.is_file() and (p.name.startswith("android_control") or p.name.endswith(_SUFFIXES))
            and not p.name.endswith(".json")
        )

    def check_source(self) -> None:
        if not self.src.exists():
            raise SourceError(f"{self.src}: no such file or folder ({self.layout})")
        if not self._files():
            raise SourceError(f"{self.src}: no TFRecord files found ({self.layout})")
        self._split_ids()

    def _split_ids(self) -> set[str] | None:
        if self.options.split is None:
            return None
        path = Path(self.options.splits_file) if self.options.splits_file else self.src / "splits.json"
        if not path.is_file():
            raise SourceError(f"--split {self.options.split} needs a splits file; {path} does not exist")
        splits = json.loads(path.read_text(encoding="utf-8"))
        if self.options.split not in splits:
            raise SourceError(f"{path} has no split {self.options.split!r} (it has: {', '.join(sorted(splits))})")
        return {str(i) for i in splits[self.options.split]}

    def units(self) -> list[Unit]:
        return [Unit(str(p), p.stat().st_size) for p in self._files()]

    def episodes(self, unit: Unit) -> Iterator[PendingEpisode | SkippedEpisode]:
        wanted = self._split_ids()
        name = Path(unit.key).name
        for i, record in enumerate(read_records(unit.key, verify=self.options.verify_checksums)):
            if isinstance(record, BadRecord):
                reason = "corrupt_file" if record.fatal else "corrupt_record"
                rest = " (the rest of the file cannot be read)" if record.fatal else ""
                yield SkippedEpisode(f"{name}#{record.index}", reason, f"byte {record.offset}: {record.reason}{rest}")
                continue
            try:
                features = parse_example(record)
                episode = str(features["episode_id"][0])
            except (ProtobufError, KeyError, IndexError, UnicodeDecodeError) as err:
                yield SkippedEpisode(f"{name}#{i}", "unreadable_record", f"not an AndroidControl example: {err}")
                continue
            if wanted is not None and episode not in wanted:
                self.note(f"episodes outside split {self.options.split!r}")
                continue
            yield PendingEpisode(episode, lambda f=features, e=episode: self._steps(e, f))

    def _action(self, raw: dict[str, Any], width: int, height: int) -> tuple[Action, dict[str, Any]]:
        kind = raw.get("action_type")
        if kind in ("click", "long_press", "type"):
            x, y = raw.get("x"), raw.get("y")
            if kind != "type" or (x is not None and y is not None):
                if not isinstance(x, (int, float)) or not isinstance(y, (int, float)):
                    raise Skip("bad_action", f"{kind} without numeric x, y: {raw}")
                if not (0 <= x <= width and 0 <= y <= height):
                    self.note("points off the screen moved onto its edge")
                point = Point.from_pixels(x, y, width, height, clip=True)
                if kind == "click":
                    return Click(point), {"pixel": (x, y)}
                if kind == "long_press":
                    return LongPress(point), {"pixel": (x, y)}
                return TypeText(str(raw.get("text", ""))), {"pixel": (x, y), "type_point": [point.x, point.y]}
            return TypeText(str(raw.get("text", ""))), {}
        if kind == "input_text":
            return TypeText(str(raw.get("text", ""))), {}
        if kind == "scroll":
            direction = raw.get("direction")
            if direction not in _OPPOSITE:
                raise Skip("bad_action", f"scroll direction {direction!r}")
            return Scroll(_OPPOSITE[direction] if self.options.scroll_convention == "content" else direction), {}
        if kind == "open_app":
            name = raw.get("app_name")
            if not isinstance(name, str) or not name.strip():
                raise Skip("bad_action", f"open_app without app_name: {raw}")
            return OpenApp(name.strip()), {}
        if kind in _KEYS:
            return PressKey(_KEYS[kind]), {}
        if kind == "wait":
            return Wait(), {}
        raise Skip("unknown_action", f"action_type {kind!r}")

    def _steps(self, episode: str, features: dict[str, list]) -> list[Step]:
        opts = self.options
        try:
            goal = features["goal"][0].decode("utf-8").strip()
            screenshots = features["screenshots"]
            actions = [json.loads(a) for a in features["actions"]]
        except (KeyError, IndexError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise Skip("missing_field", f"{type(err).__name__}: {err}") from None
        instructions = [s.decode("utf-8").strip() for s in features.get("step_instructions", [])]
        widths, heights = features.get("screenshot_widths", []), features.get("screenshot_heights", [])
        trees = features.get("accessibility_trees", [])
        if len(screenshots) < len(actions):
            raise Skip("inconsistent_episode", f"{len(screenshots)} screenshots for {len(actions)} actions")
        steps: list[Step] = []
        history: list[Action] = []
        plan = [(i, raw) for i, raw in enumerate(actions)]
        if opts.add_terminate and len(screenshots) > len(actions):
            plan.append((len(actions), None))
        for i, raw in plan:
            image = screenshots[i]
            size = (widths[i], heights[i]) if i < len(widths) and i < len(heights) else png_size(image)
            if not size or size[0] <= 0 or size[1] <= 0:
                raise Skip("bad_screenshot", f"step {i}: unknown screenshot size")
            width, height = int(size[0]), int(size[1])
            if raw is None:
                action, extra = Terminate("success"), {}
            elif not isinstance(raw, dict):
                raise Skip("bad_action", f"step {i}: {raw!r} is not a JSON object")
            else:
                action, extra = self._action(raw, width, height)
            meta: dict[str, Any] = {"goal": goal, "screen": [width, height]}
            step_instruction = instructions[i] if i < len(instructions) else ""
            if raw is not None:
                meta["step_instruction"] = step_instruction
            if "type_point" in extra:
                meta["type_point"] = extra["type_point"]
            if opts.target_boxes and "pixel" in extra and i < len(trees) and trees[i]:
                try:
                    found = target_element(trees[i], *extra["pixel"])
                except ProtobufError:
                    self.note("unreadable accessibility trees")
                    found = None
                if found:
                    (left, top, right, bottom), label = found
                    box = [(left, width), (top, height), (right, width), (bottom, height)]
                    meta["target_box"] = [round(min(max(v / s, 0.0), 1.0), 4) for v, s in box]
                    meta["target_text"] = label[:200]
            instruction = goal
            if opts.level == "low" and step_instruction:
                instruction = f"{goal}\nStep instruction: {step_instruction}"
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
            steps.append(Step(sample, [prepare_image(image, opts)]))
            history.append(action)
        return steps
