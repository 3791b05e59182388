"""GUI actions: what an agent does on a phone or a web page.

Every point is normalised to ``[0, 1]`` of the screen (x to the right, y down), so one
action means the same thing on any resolution. Coordinates are kept to 4 decimals
(``POINT_DECIMALS``): 1e-4 of a screen is below a pixel on any display up to 10,000 px,
and it makes the canonical text form (``click(x=0.634, y=0.927)``) exact, so formatting
then parsing returns an equal action.

Conversions: ``Point.to_pixels(width, height)`` / ``Point.from_pixels`` for screens, and
``Point.to_grid`` / ``Point.from_grid`` for the 0-1000 integer grid of GUI datasets
(AndroidControl-style models, GUI Odyssey) and pretrained GUI models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal, Union

from .errors import ActionValueError
from .free_text import check_app_name, check_typed_text

POINT_DECIMALS = 4
GRID_SIZE = 1000

ScrollDirection = Literal["up", "down", "left", "right"]
SCROLL_DIRECTIONS: tuple[str, ...] = ("up", "down", "left", "right")

TerminateStatus = Literal["success", "failure"]
TERMINATE_STATUSES: tuple[str, ...] = ("success", "failure")

#: Named keys an agent may press. Phone navigation keys (back, home, app_switch) and the
#: keyboard keys web tasks need. Extend with care: the model's action space is this set.
KEYS: tuple[str, ...] = (
    "back", "home", "app_switch", "enter", "tab", "escape", "backspace", "delete", "space",
    "up", "down", "left", "right", "page_up", "page_down", "volume_up", "volume_down", "power",
)


def _coordinate(value: float, name: str) -> float:
    """Check one normalised coordinate and round it to ``POINT_DECIMALS``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ActionValueError(f"{name} must be a number in [0, 1], got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ActionValueError(
            f"{name}={value!r} is outside the screen: points are normalised to [0, 1] "
            f"(use Point.from_pixels or Point.from_grid to convert)"
        )
    return round(value, POINT_DECIMALS)


@dataclass(frozen=True)
class Point:
    """A point on the screen, normalised to ``[0, 1]`` (x right, y down)."""

    x: float
    y: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", _coordinate(self.x, "x"))
        object.__setattr__(self, "y", _coordinate(self.y, "y"))

    @classmethod
    def from_pixels(cls, px: float, py: float, width: int, height: int, clip: bool = False) -> Point:
        """Point of pixel ``(px, py)`` on a ``width`` x ``height`` screen.

        ``clip=True`` moves points that lie just off the screen (a common artefact of
        recorded data) onto its edge; otherwise they raise ``ActionValueError``.
        """
        if width <= 0 or height <= 0:
            raise ActionValueError(f"screen size must be positive, got {width}x{height}")
        x, y = px / width, py / height
        if clip:
            x, y = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
        return cls(x, y)

    def to_pixels(self, width: int, height: int) -> tuple[int, int]:
        """Integer pixel ``(px, py)`` on a ``width`` x ``height`` screen (clamped inside it)."""
        px = min(int(self.x * width), width - 1)
        py = min(int(self.y * height), height - 1)
        return px, py

    @classmethod
    def from_grid(cls, gx: float, gy: float, size: int = GRID_SIZE) -> Point:
        """Point of ``(gx, gy)`` on the 0..``size`` integer grid of GUI datasets."""
        return cls(gx / size, gy / size)

    def to_grid(self, size: int = GRID_SIZE) -> tuple[int, int]:
        """Nearest ``(gx, gy)`` on the 0..``size`` integer grid."""
        return round(self.x * size), round(self.y * size)

    def distance(self, other: Point) -> float:
        """Euclidean distance in normalised screen units."""
        return math.hypot(self.x - other.x, self.y - other.y)


@dataclass(frozen=True)
class Click:
    type: ClassVar[str] = "click"
    point: Point


@dataclass(frozen=True)
class LongPress:
    type: ClassVar[str] = "long_press"
    point: Point


@dataclass(frozen=True)
class TypeText:
    """Type ``text`` into the focused field (what text may hold: ``actions.free_text``)."""

    type: ClassVar[str] = "type"
    text: str

    def __post_init__(self) -> None:
        check_typed_text(self.text)


@dataclass(frozen=True)
class Scroll:
    """Scroll the content so that what lies in ``direction`` comes into view.

    ``point`` is where the scroll gesture happens (the centre of the screen when absent).
    """

    type: ClassVar[str] = "scroll"
    direction: str
    point: Point | None = None

    def __post_init__(self) -> None:
        if self.direction not in SCROLL_DIRECTIONS:
            raise ActionValueError(
                f"scroll direction {self.direction!r} is not one of {', '.join(SCROLL_DIRECTIONS)}"
            )


@dataclass(frozen=True)
class Swipe:
    """Press at ``start``, move to ``end``, release (a phone swipe or a mouse drag)."""

    type: ClassVar[str] = "swipe"
    start: Point
    end: Point


@dataclass(frozen=True)
class PressKey:
    type: ClassVar[str] = "press_key"
    key: str

    def __post_init__(self) -> None:
        if self.key not in KEYS:
            raise ActionValueError(f"key {self.key!r} is not a known key; known keys: {', '.join(KEYS)}")


@dataclass(frozen=True)
class OpenApp:
    """Open the app called ``name`` (what a name may hold: ``actions.free_text``)."""

    type: ClassVar[str] = "open_app"
    name: str

    def __post_init__(self) -> None:
        check_app_name(self.name)


@dataclass(frozen=True)
class Wait:
    type: ClassVar[str] = "wait"


@dataclass(frozen=True)
class Terminate:
    """End the episode, declaring the task done (``success``) or impossible (``failure``)."""

    type: ClassVar[str] = "terminate"
    status: str = "success"

    def __post_init__(self) -> None:
        if self.status not in TERMINATE_STATUSES:
            raise ActionValueError(
                f"terminate status {self.status!r} is not one of {', '.join(TERMINATE_STATUSES)}"
            )


GuiAction = Union[Click, LongPress, TypeText, Scroll, Swipe, PressKey, OpenApp, Wait, Terminate]
GUI_ACTION_TYPES: dict[str, type] = {
    cls.type: cls for cls in (Click, LongPress, TypeText, Scroll, Swipe, PressKey, OpenApp, Wait, Terminate)
}


def points_of(action: object) -> list[Point]:
    """The screen points an action refers to, in order (empty for text-only actions)."""
    if isinstance(action, (Click, LongPress)):
        return [action.point]
    if isinstance(action, Swipe):
        return [action.start, action.end]
    if isinstance(action, Scroll) and action.point is not None:
        return [action.point]
    return []
