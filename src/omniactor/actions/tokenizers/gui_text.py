"""GUI actions as canonical text with decimal coordinates: ``click(x=0.634, y=0.927)``.

This is what pretrained GUI models emit and what the OmniActor paper trains on. Points are
rounded to ``decimals`` places when encoding (3 by default: 0.001 of the screen, the
resolution of the 0-1000 grid), so the model's targets stay short.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import ActionDecodeError, ActionParseError, ActionValueError
from ..grammar import MAX_TEXT_CHARS, decimal_point, gui_max_chars, gui_pattern
from ..gui import GUI_ACTION_TYPES, Click, LongPress, Point, Scroll, Swipe
from ..text import Action, format_action, parse_action
from .base import ActionTokenizer


def round_points(action: Action, decimals: int) -> Action:
    """``action`` with every screen point rounded to ``decimals`` places."""

    def r(p: Point) -> Point:
        return Point(round(p.x, decimals), round(p.y, decimals))

    if isinstance(action, (Click, LongPress)):
        return type(action)(r(action.point))
    if isinstance(action, Swipe):
        return Swipe(r(action.start), r(action.end))
    if isinstance(action, Scroll) and action.point is not None:
        return Scroll(action.direction, r(action.point))
    return action


def check_gui(action: Any) -> None:
    if not isinstance(action, tuple(GUI_ACTION_TYPES.values())):
        raise ActionValueError(f"expected a GUI action, got {type(action).__name__}")


def decode_gui_text(encoded: Any, tokenizer: str) -> Action:
    """A GUI action from canonical text; ``ActionDecodeError`` for anything else."""
    if not isinstance(encoded, str):
        raise ActionDecodeError(encoded, f"{tokenizer} decodes text, not codes")
    try:
        action = parse_action(encoded)
    except ActionParseError as err:
        raise ActionDecodeError(encoded, err.reason) from None
    if action.type not in GUI_ACTION_TYPES:
        raise ActionDecodeError(encoded, f"{action.type} is not a GUI action")
    return action


class GuiTextTokenizer(ActionTokenizer):
    """GUI action <-> canonical action text (the LLM's own tokenizer splits it)."""

    name: ClassVar[str] = "gui_text"
    output: ClassVar[str] = "text"

    def __init__(self, decimals: int = 3):
        if not 1 <= decimals <= 4:
            raise ActionValueError(f"decimals must be in 1..4, got {decimals}")
        self.decimals = decimals

    def encode(self, action: Action) -> str:
        check_gui(action)
        return format_action(round_points(action, self.decimals))

    def decode(self, encoded: str) -> Action:
        return decode_gui_text(encoded, self.name)

    def output_pattern(self, text_limit: int | None = None) -> str:
        return gui_pattern(decimal_point(self.decimals), decimal_point(self.decimals, "1"),
                           decimal_point(self.decimals, "2"), text_limit or MAX_TEXT_CHARS)

    def max_output_chars(self, text_limit: int | None = None) -> int:
        return gui_max_chars(text_limit or MAX_TEXT_CHARS)

    def config(self) -> dict[str, Any]:
        return {"decimals": self.decimals}
