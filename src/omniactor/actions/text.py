"""The canonical text form of every action, and its strict parser.

Canonical forms (what ``format_action`` writes; keyword arguments, decimals for points):

    click(x=0.634, y=0.927)            long_press(x=0.5, y=0.5)
    type(text="hello world")           scroll(direction="down")  scroll(direction="up", x=0.5, y=0.7)
    swipe(x1=0.5, y1=0.8, x2=0.5, y2=0.2)
    press_key(key="back")              open_app(name="Gmail")
    wait()                             terminate(status="success")
    continuous(x=0.12, y=-0.5, z=0.0, gripper=1.0)      discrete(name="left")

``parse_action`` accepts exactly those, plus the variants pretrained GUI models write:

- positional arguments (``click(0.634, 0.927)``);
- **integer** points on the 0-1000 grid (``click(x=634, y=927)``). Decimal literals are
  normalised ``[0, 1]``; integer literals are grid points; a point mixing both is an error;
- ``pyautogui.click / write / typewrite / press / scroll`` (``pyautogui.scroll(n)``:
  positive scrolls up, as in pyautogui), ``drag(...)`` for ``swipe``, AndroidControl's
  ``input_text``, ``navigate_back``, ``navigate_home`` and ``open_app(app_name=...)``;
- OmniActor's two-line answer (``Action: <words>`` then ``Operation: <call>``): the call
  on the ``Operation:`` line is parsed.

Anything else raises ``ActionParseError`` saying what was wrong. Parsing uses Python's
own grammar (``ast``) with literal arguments only, so nothing is ever evaluated.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

from .continuous import ContinuousAction
from .discrete import DiscreteAction
from .errors import ActionError, ActionParseError, ActionValueError
from .free_text import write_free_text
from .gui import (
    GRID_SIZE,
    Click,
    GuiAction,
    LongPress,
    OpenApp,
    Point,
    PressKey,
    Scroll,
    Swipe,
    Terminate,
    TypeText,
    Wait,
)

Action = Union[GuiAction, ContinuousAction, DiscreteAction]

_MISSING = object()

# ---------------------------------------------------------------------------- formatting


def _num(value: float) -> str:
    """Shortest text that reads back as exactly ``value``; always a float literal
    (``1.0``, ``0.634``, ``1e-05``), so it is never mistaken for a 0-1000 grid integer."""
    return repr(float(value))


def _str(value: str) -> str:
    return write_free_text(value)


def _point_args(point: Point, tag: str = "") -> str:
    return f"x{tag}={_num(point.x)}, y{tag}={_num(point.y)}"


def format_action(action: Action) -> str:
    """The canonical text of ``action`` (see module docstring)."""
    if isinstance(action, Click):
        return f"click({_point_args(action.point)})"
    if isinstance(action, LongPress):
        return f"long_press({_point_args(action.point)})"
    if isinstance(action, TypeText):
        return f"type(text={_str(action.text)})"
    if isinstance(action, Scroll):
        where = "" if action.point is None else f", {_point_args(action.point)}"
        return f"scroll(direction={_str(action.direction)}{where})"
    if isinstance(action, Swipe):
        return f"swipe({_point_args(action.start, tag='1')}, {_point_args(action.end, tag='2')})"
    if isinstance(action, PressKey):
        return f"press_key(key={_str(action.key)})"
    if isinstance(action, OpenApp):
        return f"open_app(name={_str(action.name)})"
    if isinstance(action, Wait):
        return "wait()"
    if isinstance(action, Terminate):
        return f"terminate(status={_str(action.status)})"
    if isinstance(action, ContinuousAction):
        return "continuous(" + ", ".join(f"{n}={_num(v)}" for n, v in zip(action.names, action.values)) + ")"
    if isinstance(action, DiscreteAction):
        return f"discrete(name={_str(action.name)})"
    raise TypeError(f"not an action: {action!r}")


# ---------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Call:
    """A parsed call: function name and literal arguments, with the source text for errors."""

    text: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]

    def fail(self, reason: str) -> ActionParseError:
        return ActionParseError(self.text, reason)

    def bind(self, params: list[str], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
        """Bind positional then keyword arguments to ``params`` like a Python call would."""
        defaults = defaults or {}
        if len(self.args) > len(params):
            raise self.fail(f"{self.name}() takes at most {len(params)} arguments ({', '.join(params) or 'none'})")
        bound = dict(zip(params, self.args))
        for key, value in self.kwargs.items():
            if key not in params:
                raise self.fail(f"{self.name}() has no argument {key!r}; expected {', '.join(params) or 'none'}")
            if key in bound:
                raise self.fail(f"{self.name}() got argument {key!r} twice")
            bound[key] = value
        for key in params:
            if key not in bound:
                if key not in defaults:
                    raise self.fail(f"{self.name}() is missing argument {key!r}")
                bound[key] = defaults[key]
        return bound

    def string(self, value: Any, what: str) -> str:
        if not isinstance(value, str):
            raise self.fail(f"{what} must be a quoted string, got {value!r}")
        return value

    def point(self, x: Any, y: Any, what: str = "point") -> Point:
        """A point from two literals: both decimals in [0, 1], or both 0-1000 grid integers."""
        for v in (x, y):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.fail(f"{what} coordinates must be numbers, got {v!r}")
        try:
            if isinstance(x, int) and isinstance(y, int):
                if not (0 <= x <= GRID_SIZE and 0 <= y <= GRID_SIZE):
                    raise self.fail(f"integer {what} ({x}, {y}) is outside the 0-{GRID_SIZE} grid")
                return Point.from_grid(x, y)
            if isinstance(x, float) and isinstance(y, float):
                return Point(x, y)
        except ActionValueError as err:
            raise self.fail(f"{what}: {err}") from None
        raise self.fail(
            f"{what} ({x!r}, {y!r}) mixes an integer and a decimal: write decimals in [0, 1] "
            f"or integers on the 0-{GRID_SIZE} grid"
        )


def _literal(text: str, node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise ActionParseError(text, f"argument {ast.unparse(node)!r} is not a literal") from None


def _to_call(text: str) -> _Call:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ActionParseError(text, f"not a function call ({err.msg})") from None
    node = tree.body
    if not isinstance(node, ast.Call):
        raise ActionParseError(text, "expected a single call such as click(x=0.5, y=0.5)")
    name = ast.unparse(node.func)
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise ActionParseError(text, "*args and **kwargs are not allowed")
    args = [_literal(text, a) for a in node.args]
    kwargs = {k.arg: _literal(text, k.value) for k in node.keywords}
    return _Call(text, name, args, kwargs)


def _click(call: _Call, cls: type = Click) -> Action:
    b = call.bind(["x", "y"])
    return cls(call.point(b["x"], b["y"]))


def _type(call: _Call, param: str = "text") -> Action:
    return TypeText(call.string(call.bind([param])[param], "text"))


def _scroll(call: _Call) -> Action:
    b = call.bind(["direction", "x", "y"], {"x": _MISSING, "y": _MISSING})
    direction = call.string(b["direction"], "direction")
    if (b["x"] is _MISSING) != (b["y"] is _MISSING):
        raise call.fail("scroll needs both x and y, or neither")
    point = None if b["x"] is _MISSING else call.point(b["x"], b["y"])
    return Scroll(direction, point)


def _swipe(call: _Call) -> Action:
    b = call.bind(["x1", "y1", "x2", "y2"])
    return Swipe(call.point(b["x1"], b["y1"], "start"), call.point(b["x2"], b["y2"], "end"))


def _press_key(call: _Call, param: str = "key") -> Action:
    key = call.string(call.bind([param])[param], "key")
    return PressKey(_KEY_ALIASES.get(key.lower(), key.lower()))


def _no_args(make: Callable[[], Action]) -> Callable[[_Call], Action]:
    def parse(call: _Call) -> Action:
        call.bind([])
        return make()

    return parse


def _open_app(call: _Call, param: str = "name") -> Action:
    return OpenApp(call.string(call.bind([param])[param], "app name"))


def _terminate(call: _Call) -> Action:
    return Terminate(call.string(call.bind(["status"], {"status": "success"})["status"], "status"))


def _continuous(call: _Call) -> Action:
    if call.args:
        raise call.fail("continuous() takes named dimensions only, e.g. continuous(x=0.1, gripper=1.0)")
    if not call.kwargs:
        raise call.fail("continuous() needs at least one named dimension")
    for name, value in call.kwargs.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise call.fail(f"dimension {name!r} must be a number, got {value!r}")
    return ContinuousAction(tuple(call.kwargs.values()), tuple(call.kwargs))


def _discrete(call: _Call) -> Action:
    return DiscreteAction(call.string(call.bind(["name"])["name"], "name"))


def _pyautogui_scroll(call: _Call) -> Action:
    b = call.bind(["clicks", "x", "y"], {"x": _MISSING, "y": _MISSING})
    clicks = b["clicks"]
    if isinstance(clicks, bool) or not isinstance(clicks, (int, float)) or clicks == 0:
        raise call.fail(f"pyautogui.scroll needs a non-zero number of clicks, got {clicks!r}")
    if (b["x"] is _MISSING) != (b["y"] is _MISSING):
        raise call.fail("scroll needs both x and y, or neither")
    point = None if b["x"] is _MISSING else call.point(b["x"], b["y"])
    return Scroll("up" if clicks > 0 else "down", point)


_KEY_ALIASES = {
    "return": "enter", "esc": "escape", "pageup": "page_up", "pagedown": "page_down",
    "appswitch": "app_switch", "recent": "app_switch", "key_home": "home", "key_back": "back",
    "key_appselect": "app_switch", "volumeup": "volume_up", "volumedown": "volume_down",
}

_PARSERS: dict[str, Callable[[_Call], Action]] = {
    # canonical
    "click": _click,
    "long_press": lambda c: _click(c, LongPress),
    "type": _type,
    "scroll": _scroll,
    "swipe": _swipe,
    "press_key": _press_key,
    "open_app": lambda c: _open_app(c, "app_name" if "app_name" in c.kwargs else "name"),
    "wait": _no_args(Wait),
    "terminate": _terminate,
    "continuous": _continuous,
    "discrete": _discrete,
    # variants of pretrained GUI models and datasets
    "drag": _swipe,
    "input_text": _type,
    "navigate_back": _no_args(lambda: PressKey("back")),
    "navigate_home": _no_args(lambda: PressKey("home")),
    "pyautogui.click": _click,
    "pyautogui.write": lambda c: _type(c, "message"),
    "pyautogui.typewrite": lambda c: _type(c, "message"),
    "pyautogui.press": lambda c: _press_key(c, "keys"),
    "pyautogui.scroll": _pyautogui_scroll,
}


def _operation_line(text: str) -> str:
    """The call to parse: the ``Operation:`` line of a two-line answer, else the whole text."""
    # split on newlines only: str.splitlines() would also split inside typed text on \x85, \u2028, ...
    lines = [line.strip() for line in text.strip().replace("\r\n", "\n").split("\n") if line.strip()]
    ops = [line for line in lines if line.startswith("Operation:")]
    if len(ops) > 1:
        raise ActionParseError(text, "more than one 'Operation:' line")
    if ops:
        if not (lines[0].startswith("Action:") or lines[0] is ops[0]):
            raise ActionParseError(text, "expected 'Action: ...' before the 'Operation:' line")
        return ops[0][len("Operation:"):].strip()
    if len(lines) > 1:
        raise ActionParseError(text, "expected one action, found several lines")
    return text


def parse_action(text: str) -> Action:
    """Parse canonical action text (or an accepted variant); raise ``ActionParseError`` otherwise."""
    if not isinstance(text, str):
        raise ActionParseError(repr(text), "action text must be a string")
    if not text.strip():
        raise ActionParseError(text, "empty text")
    call = _to_call(_operation_line(text))
    parser = _PARSERS.get(call.name)
    if parser is None:
        known = ", ".join(k for k in _PARSERS if "." not in k)
        raise call.fail(f"unknown action {call.name!r}; known actions: {known}")
    try:
        return parser(call)
    except ActionParseError:
        raise
    except ActionError as err:  # a value the typed action refused (bad key, off-screen point, ...)
        raise call.fail(str(err)) from None
