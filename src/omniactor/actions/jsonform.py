"""Actions as JSON objects: the ``action`` field of every sample.

``{"type": "click", "x": 0.634, "y": 0.927}``, ``{"type": "type", "text": "hi"}``,
``{"type": "scroll", "direction": "down"}``, ``{"type": "swipe", "x1":.., "y1":.., "x2":.., "y2":..}``,
``{"type": "continuous", "names": [...], "values": [...]}``, ``{"type": "discrete", "name": "left"}``.
``action_from_json`` raises ``ActionValueError`` naming the field that is wrong.
"""

from __future__ import annotations

from typing import Any

from .continuous import ContinuousAction
from .discrete import DiscreteAction
from .errors import ActionError, ActionValueError
from .gui import Click, LongPress, OpenApp, Point, PressKey, Scroll, Swipe, Terminate, TypeText, Wait
from .text import Action


def action_to_json(action: Action) -> dict[str, Any]:
    """The JSON object of ``action`` (plain dict of str, float, list)."""
    if isinstance(action, (Click, LongPress)):
        return {"type": action.type, "x": action.point.x, "y": action.point.y}
    if isinstance(action, TypeText):
        return {"type": "type", "text": action.text}
    if isinstance(action, Scroll):
        out: dict[str, Any] = {"type": "scroll", "direction": action.direction}
        if action.point is not None:
            out.update(x=action.point.x, y=action.point.y)
        return out
    if isinstance(action, Swipe):
        return {"type": "swipe", "x1": action.start.x, "y1": action.start.y, "x2": action.end.x, "y2": action.end.y}
    if isinstance(action, PressKey):
        return {"type": "press_key", "key": action.key}
    if isinstance(action, OpenApp):
        return {"type": "open_app", "name": action.name}
    if isinstance(action, Wait):
        return {"type": "wait"}
    if isinstance(action, Terminate):
        return {"type": "terminate", "status": action.status}
    if isinstance(action, ContinuousAction):
        return {"type": "continuous", "names": list(action.names), "values": list(action.values)}
    if isinstance(action, DiscreteAction):
        return {"type": "discrete", "name": action.name}
    raise TypeError(f"not an action: {action!r}")


_FIELDS: dict[str, tuple[str, ...]] = {
    "click": ("x", "y"), "long_press": ("x", "y"), "type": ("text",), "scroll": ("direction",),
    "swipe": ("x1", "y1", "x2", "y2"), "press_key": ("key",), "open_app": ("name",), "wait": (),
    "terminate": ("status",), "continuous": ("names", "values"), "discrete": ("name",),
}


def action_from_json(data: Any) -> Action:
    """The action of a JSON object written by ``action_to_json``."""
    if not isinstance(data, dict):
        raise ActionValueError(f"an action must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if kind not in _FIELDS:
        raise ActionValueError(f"action type {kind!r} is not one of {', '.join(_FIELDS)}")
    missing = [f for f in _FIELDS[kind] if f not in data]
    if missing:
        raise ActionValueError(f"{kind} action is missing field(s) {', '.join(missing)}")
    try:
        if kind == "click":
            return Click(Point(data["x"], data["y"]))
        if kind == "long_press":
            return LongPress(Point(data["x"], data["y"]))
        if kind == "type":
            return TypeText(data["text"])
        if kind == "scroll":
            has_x, has_y = "x" in data, "y" in data
            if has_x != has_y:
                raise ActionValueError("scroll needs both x and y, or neither")
            return Scroll(data["direction"], Point(data["x"], data["y"]) if has_x else None)
        if kind == "swipe":
            return Swipe(Point(data["x1"], data["y1"]), Point(data["x2"], data["y2"]))
        if kind == "press_key":
            return PressKey(data["key"])
        if kind == "open_app":
            return OpenApp(data["name"])
        if kind == "wait":
            return Wait()
        if kind == "terminate":
            return Terminate(data["status"])
        if kind == "continuous":
            if not isinstance(data["values"], list) or not isinstance(data["names"], list):
                raise ActionValueError("continuous names and values must be lists")
            return ContinuousAction(tuple(data["values"]), tuple(data["names"]))
        return DiscreteAction(data["name"])
    except ActionError:
        raise
    except (TypeError, ValueError) as err:
        raise ActionValueError(f"{kind} action: {err}") from None
