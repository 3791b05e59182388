"""Offline GUI step metrics: one predicted action scored against one recorded step, under a named protocol.

Papers report AndroidControl and GUI Odyssey step accuracy under different rules, so the
same predictions give different numbers. Each rule set is a named ``Protocol``; pick the
one of the paper you compare with (``docs/evaluation.md`` has the table and the sources).

Every protocol scores a step the same way, in two stages:

1. **Type match**: the protocol's *type label* of the prediction equals that of the
   ground truth. Labels are our action types (``click``, ``long_press``, ``type``,
   ``scroll``, ``swipe``, ``press_key``, ``open_app``, ``wait``, ``terminate``), except
   that a protocol may merge ``scroll`` and ``swipe`` into one ``scroll`` type (both are
   a finger gesture in Qwen2.5-VL's and GUI Odyssey's action spaces) and may put the key
   or the terminate status into the label (OS-Atlas and GUI Odyssey name ``PRESS_BACK``
   and ``PRESS_HOME``, ``COMPLETE`` and ``IMPOSSIBLE`` as different actions).
   ``long_press`` is never a ``click``.
2. **Argument match** (only after a type match), by ground-truth type:

   - ``click`` / ``long_press``: the point rule (below). These are the *grounding* steps:
     ``StepScore.grounding`` is the point rule's verdict, None for every other step and
     for a type mismatch (OS-Atlas's "grounding accuracy" is conditional on the type).
   - ``type``: the protocol's text rule; ``open_app``: the same rule on the app name.
   - ``scroll`` / ``swipe``: the same *view direction* (what comes into view). A swipe's
     view direction is the opposite of the finger's dominant motion (``|dx| > |dy|``:
     horizontal, else vertical, as GUI Odyssey and Qwen's evaluator derive it). The
     scroll's point is ignored (no protocol scores it).
   - ``press_key``: the same key. ``wait``: nothing more.
   - ``terminate``: the same status, except under ``qwen25vl`` (its evaluator ignores it).

Point rules (points normalised to ``[0, 1]``; x and y in *screen fractions*, so the
distance is Euclidean in normalised coordinates, as every source computes it):

=========  ================================================================================
osatlas    distance <= 0.14 (140 on the 0-1000 grid); the target box is not used
qwen25vl   inside the target box enlarged 1.2x about its centre, or distance <= 0.04
gea        both points on a 50x50 grid of cells: at most 5 cells apart on each axis
odyssey    inside the target box (``sam2_bbox``) as it is, or distance <= 0.14
=========  ================================================================================

Boundaries are inclusive and exact: points carry 4 decimals (``POINT_DECIMALS``), so
distances, boxes and cells are compared in integer units of 1e-4 (and token F1 and ANLS as
integer ratios), never as floats: a click exactly 0.14 away is correct under ``osatlas``,
not a float-rounding coin flip. A step whose protocol uses a box but whose sample has no
``meta.target_box`` is scored by distance alone and counted (``StepScore.box_fallback``).

Text rules: ``osatlas``: equal, or token F1 > 0.5 (lower-cased whitespace tokens, as
sets); ``qwen25vl`` and ``gea``: one lower-cased, stripped string contains the other;
``odyssey``: one stripped string contains the other (case-sensitive) or ANLS >= 0.5
(1 - Levenshtein / longer length).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..actions.gui import (
    GUI_ACTION_TYPES,
    POINT_DECIMALS,
    Click,
    LongPress,
    OpenApp,
    Point,
    PressKey,
    Scroll,
    Swipe,
    Terminate,
    TypeText,
)
from ..errors import OmniactorError

#: Points carry POINT_DECIMALS decimals: comparisons happen on integers of this many units per screen.
UNITS = 10**POINT_DECIMALS

Box = tuple[float, float, float, float]
_Units = tuple[int, int]

_OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}
TEXT_RULES: tuple[str, ...] = ("exact_or_token_f1", "contains", "contains_or_anls")


class UnknownProtocolError(OmniactorError, ValueError):
    """A protocol name that is not registered (the message suggests the nearest one)."""


# ---------------------------------------------------------------------------- text rules


def token_f1(prediction: str, truth: str) -> Fraction:
    """F1 of the lower-cased whitespace token *sets* (OS-Atlas's ``calculate_f1_score``), exactly.

    With ``c`` shared tokens, ``p`` predicted and ``g`` true ones, precision ``c/p`` and
    recall ``c/g`` give F1 ``2c / (p + g)``; 0 when either side has no tokens.
    """
    pred, true = set(prediction.lower().split()), set(truth.lower().split())
    if not pred or not true:
        return Fraction(0)
    return Fraction(2 * len(pred & true), len(pred) + len(true))


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of characters)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def anls(prediction: str, truth: str) -> Fraction:
    """Normalised Levenshtein similarity ``1 - distance / longer length`` (1 for two empty strings)."""
    longer = max(len(prediction), len(truth))
    if longer == 0:
        return Fraction(1)
    return 1 - Fraction(levenshtein(prediction, truth), longer)


def text_matches(rule: str, prediction: str, truth: str) -> bool:
    """Whether ``prediction`` counts as ``truth`` under a text rule (see ``TEXT_RULES``)."""
    if rule == "exact_or_token_f1":  # OS-Atlas: string equality, or token F1 strictly above 0.5
        return prediction == truth or token_f1(prediction, truth) > Fraction(1, 2)
    if rule == "contains":  # Qwen2.5-VL's check_text (an empty prediction is contained in anything)
        pred, true = prediction.lower().strip(), truth.lower().strip()
        return pred in true or true in pred
    if rule == "contains_or_anls":  # GUI Odyssey's text_matching: case-sensitive, ANLS threshold inclusive
        pred, true = prediction.strip(), truth.strip()
        return pred in true or true in pred or anls(pred, true) >= Fraction(1, 2)
    raise ValueError(f"unknown text rule {rule!r}; known: {', '.join(TEXT_RULES)}")


# ---------------------------------------------------------------------------- geometry


def _units(value: float) -> int:
    return round(value * UNITS)


def _point_units(point: Point) -> _Units:
    return _units(point.x), _units(point.y)


def within_distance(prediction: Point, truth: Point, radius: float) -> bool:
    """Euclidean distance in normalised screen coordinates ``<= radius`` (inclusive, exact)."""
    (px, py), (tx, ty) = _point_units(prediction), _point_units(truth)
    limit = Fraction(str(radius)) * UNITS
    return (px - tx) ** 2 + (py - ty) ** 2 <= limit * limit


def inside_box(point: Point, box: Box, scale: float = 1.0) -> bool:
    """``point`` inside ``box`` (``[x1, y1, x2, y2]``) scaled by ``scale`` about its centre, edges included."""
    px, py = _point_units(point)
    x1, y1, x2, y2 = (_units(v) for v in box)
    factor = Fraction(str(scale))
    # |p - centre| <= scale * size / 2, multiplied by 2 to stay in integers
    return abs(2 * px - (x1 + x2)) <= factor * (x2 - x1) and abs(2 * py - (y1 + y2)) <= factor * (y2 - y1)


def grid_cell(point: Point, grid: int) -> tuple[int, int]:
    """The ``(column, row)`` of ``point`` on a ``grid`` x ``grid`` partition of the screen (0-based)."""
    px, py = _point_units(point)
    return min(px * grid // UNITS, grid - 1), min(py * grid // UNITS, grid - 1)


def view_direction(action: Scroll | Swipe) -> str:
    """What comes into view: a scroll's direction, or the opposite of a swipe's dominant finger motion."""
    if isinstance(action, Scroll):
        return action.direction
    (sx, sy), (ex, ey) = _point_units(action.start), _point_units(action.end)
    dx, dy = ex - sx, ey - sy
    finger = ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
    return _OPPOSITE[finger]


# ---------------------------------------------------------------------------- protocols


@dataclass(frozen=True)
class Protocol:
    """One paper's step-scoring rules (see the module docstring for how they combine)."""

    name: str
    summary: str
    source: str
    radius: float | None = None
    """click correct within this Euclidean distance of the true point (normalised units)"""
    box_scale: float | None = None
    """click correct inside ``meta.target_box`` scaled by this about its centre (None: boxes unused)"""
    grid: int | None = None
    """with ``grid_cells``: click correct when at most that many cells away on each axis of this grid"""
    grid_cells: int | None = None
    text_rule: str = "contains"
    """how ``type`` text and ``open_app`` names are compared (one of ``TEXT_RULES``)"""
    scroll_is_swipe: bool = False
    """scroll and swipe are one action type (a finger gesture)"""
    key_in_type: bool = False
    """the pressed key is part of the action type (``press_key:back`` vs ``press_key:home``)"""
    status_in_type: bool = False
    """the terminate status is part of the action type (``terminate:success`` vs ``terminate:failure``)"""
    check_status: bool = True
    """a terminate step also needs the right status (when it is not already part of the type)"""

    def __post_init__(self) -> None:
        if self.text_rule not in TEXT_RULES:
            raise ValueError(f"protocol {self.name!r}: text_rule {self.text_rule!r} not in {TEXT_RULES}")
        if self.radius is None and self.box_scale is None and self.grid is None:
            raise ValueError(f"protocol {self.name!r} has no point rule (radius, box_scale or grid)")
        if (self.grid is None) != (self.grid_cells is None):
            raise ValueError(f"protocol {self.name!r}: grid and grid_cells go together")

    @property
    def uses_box(self) -> bool:
        return self.box_scale is not None

    def type_label(self, action: Any) -> str:
        """The action type this protocol compares (see the class fields)."""
        label = getattr(action, "type", None)
        if type(action) not in GUI_ACTION_TYPES.values():
            return f"non_gui:{type(action).__name__}"
        if self.scroll_is_swipe and label == "swipe":
            return "scroll"
        if self.key_in_type and isinstance(action, PressKey):
            return f"press_key:{action.key}"
        if self.status_in_type and isinstance(action, Terminate):
            return f"terminate:{action.status}"
        return label

    def point_correct(self, prediction: Point, truth: Point, box: Box | None) -> bool:
        """Whether a predicted click point counts as the true one (``box``: the target element, if known)."""
        if self.box_scale is not None and box is not None and inside_box(prediction, box, self.box_scale):
            return True
        if self.radius is not None and within_distance(prediction, truth, self.radius):
            return True
        if self.grid is not None and self.grid_cells is not None:
            (pc, pr), (tc, tr) = grid_cell(prediction, self.grid), grid_cell(truth, self.grid)
            return max(abs(pc - tc), abs(pr - tr)) <= self.grid_cells
        return False


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            name="osatlas",
            summary="OS-Atlas: click within 0.14 (140/1000) of the true point; text equal or token F1 > 0.5",
            source="OS-Atlas (Wu et al., 2024, arXiv:2410.23218), eval_scripts/android_control/evaluation_unify.py",
            radius=0.14,
            text_rule="exact_or_token_f1",
            key_in_type=True,
            status_in_type=True,
        ),
        Protocol(
            name="qwen25vl",
            summary="Qwen2.5-VL: click inside the target box enlarged 1.2x or within 0.04; text containment",
            source="Qwen2.5-VL AndroidControl evaluator (QwenLM/Qwen2.5-VL issue #904, gist by LukeForeverYoung)",
            radius=0.04,
            box_scale=1.2,
            text_rule="contains",
            scroll_is_swipe=True,
            check_status=False,
        ),
        Protocol(
            name="gea",
            summary="GEA: click at most 5 cells away on each axis of a 50x50 grid; text containment",
            source="GEA (Szot et al., 2024, arXiv:2412.08442) as described in DESIGN.md section 4; no public code",
            grid=50,
            grid_cells=5,
            text_rule="contains",
        ),
        Protocol(
            name="odyssey",
            summary="GUI Odyssey: click inside the SAM2 box or within 0.14; text containment or ANLS >= 0.5",
            source="GUI Odyssey (Lu et al., 2024), OpenGVLab/GUI-Odyssey src/eval_mm/GUIOdyssey_action_matching.py",
            radius=0.14,
            box_scale=1.0,
            text_rule="contains_or_anls",
            scroll_is_swipe=True,
            key_in_type=True,
            status_in_type=True,
        ),
    )
}


def list_protocols() -> list[str]:
    return list(PROTOCOLS)


def get_protocol(name: str | Protocol) -> Protocol:
    """The protocol registered as ``name`` (``UnknownProtocolError`` with a did-you-mean otherwise)."""
    if isinstance(name, Protocol):
        return name
    key = str(name).strip().lower()
    if key in PROTOCOLS:
        return PROTOCOLS[key]
    hint = difflib.get_close_matches(key, list(PROTOCOLS), n=1, cutoff=0.5)
    did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
    raise UnknownProtocolError(f"no protocol named {name!r} (known: {', '.join(PROTOCOLS)}){did_you_mean}")


def parse_protocols(spec: str | Sequence[str | Protocol]) -> list[Protocol]:
    """Protocols from ``"osatlas,odyssey"``, ``"all"`` or a list of names; duplicates removed, order kept."""
    names: list[str | Protocol] = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[Protocol] = []
    for name in names:
        if isinstance(name, str) and name.strip().lower() == "all":
            found = list(PROTOCOLS.values())
        elif isinstance(name, str) and not name.strip():
            continue
        else:
            found = [get_protocol(name)]
        out.extend(p for p in found if p not in out)
    if not out:
        raise UnknownProtocolError(f"no protocol given (known: {', '.join(PROTOCOLS)}, or 'all')")
    return out


# ---------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Target:
    """What a step is scored against: the true GUI action and, when known, its target element's box."""

    action: Any
    box: Box | None = None
    where: str = ""

    def __post_init__(self) -> None:
        if type(self.action) not in GUI_ACTION_TYPES.values():
            raise TypeError(f"{self.where or 'target'}: the true action must be a GUI action, got {self.action!r}")

    @classmethod
    def from_sample(cls, sample: Any) -> Target:
        """The sample's action and box: ``meta.target_box`` (normalised), else ``meta.sam2_bbox`` / 1000."""
        meta = sample.meta
        where = getattr(sample, "where", "")
        if meta.get("target_box") is not None:
            box = check_box(meta["target_box"], f"{where}: meta.target_box")
        elif meta.get("sam2_bbox") is not None:
            raw = check_box(meta["sam2_bbox"], f"{where}: meta.sam2_bbox", scale=1000)
            box = tuple(v / 1000 for v in raw)
        else:
            box = None
        return cls(sample.action, box, where)


def check_box(value: Any, what: str, scale: float = 1.0) -> Box:
    """``value`` as an ``(x1, y1, x2, y2)`` box within ``[0, scale]``, corners sorted; ValueError naming ``what``."""
    fine = (
        isinstance(value, (list, tuple))
        and len(value) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        and all(0 <= v <= scale for v in value)
    )
    if not fine:
        raise ValueError(
            f"{what} must be [x1, y1, x2, y2] with numbers in [0, {scale:g}], got {value!r:.80}; "
            "fix or remove it (a step without a box is scored by distance alone)"
        )
    x1, x2 = sorted((float(value[0]), float(value[2])))
    y1, y2 = sorted((float(value[1]), float(value[3])))
    return x1, y1, x2, y2


@dataclass(frozen=True)
class StepScore:
    """How one prediction scored on one step under one protocol.

    ``action_type``: the true action's type (what per-type results are grouped by).
    ``grounding``: None unless the step is a click/long press and the type matched.
    ``cause``: why the step failed (None on success): ``unparsable``, ``wrong_type``,
    ``point_off_target``, ``text_mismatch``, ``wrong_app``, ``wrong_direction``,
    ``wrong_key`` or ``wrong_status``. ``box_fallback``: the protocol would use a target
    box but the step has none (scored by distance alone).
    """

    action_type: str
    type_match: bool
    grounding: bool | None
    step_success: bool
    cause: str | None = None
    box_fallback: bool = False


def _as_target(target: Any) -> Target:
    if isinstance(target, Target):
        return target
    if hasattr(target, "meta") and hasattr(target, "action"):
        return Target.from_sample(target)
    return Target(target)


def score_step(prediction: Any, target: Any, protocol: str | Protocol) -> StepScore:
    """Score ``prediction`` (a typed action; None when the model's answer did not parse) against a step.

    ``target`` is a ``Sample`` (its action and ``meta.target_box``), a ``Target`` or a bare
    true action (no box). See the module docstring for the rules.
    """
    proto = get_protocol(protocol)
    step = _as_target(target)
    truth = step.action
    point_step = isinstance(truth, (Click, LongPress))
    fallback = proto.uses_box and point_step and step.box is None
    if prediction is None:
        return StepScore(truth.type, False, None, False, "unparsable", fallback)
    if proto.type_label(prediction) != proto.type_label(truth):
        return StepScore(truth.type, False, None, False, "wrong_type", fallback)
    if point_step:
        ok = proto.point_correct(prediction.point, truth.point, step.box)
        return StepScore(truth.type, True, ok, ok, None if ok else "point_off_target", fallback)
    if isinstance(truth, TypeText):
        ok, cause = text_matches(proto.text_rule, prediction.text, truth.text), "text_mismatch"
    elif isinstance(truth, OpenApp):
        ok, cause = text_matches(proto.text_rule, prediction.name, truth.name), "wrong_app"
    elif isinstance(truth, (Scroll, Swipe)):
        ok, cause = view_direction(prediction) == view_direction(truth), "wrong_direction"
    elif isinstance(truth, PressKey):
        ok, cause = prediction.key == truth.key, "wrong_key"
    elif isinstance(truth, Terminate):
        ok, cause = (not proto.check_status) or prediction.status == truth.status, "wrong_status"
    else:  # wait: the type is all there is
        ok, cause = True, None
    return StepScore(truth.type, True, None, ok, None if ok else cause, fallback)
