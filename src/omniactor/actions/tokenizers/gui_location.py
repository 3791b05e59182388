"""GUI actions whose screen points are grid-cell tokens: ``click(<loc_517>)``.

The screen (normalised to ``[0, 1]``) is cut into ``grid`` x ``grid`` cells; a point is
named by its cell, ``<loc_i>`` with ``i = row * grid + col``, and optionally by a second
token ``<fine_j>`` for its sub-cell on a ``fine`` x ``fine`` grid inside the cell. A point
decodes to the centre of its (sub-)cell, so the error is at most half a (sub-)cell per axis.

Naming a point with one token is far easier for a model trained from scratch than
emitting digits (in the project's early runs a pointer over ~16 px cells reached 1.00 on
MiniWoB click-test where x/y classes reached 0.72). Forms::

    click(<loc_517>)   long_press(<loc_3><fine_12>)   swipe(<loc_40>, <loc_8>)
    scroll(direction="down", <loc_33>)               scroll(direction="down")
    type(text="hello")  press_key(key="back")  ...   (actions without points: canonical text)
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from ..errors import ActionDecodeError, ActionValueError
from ..grammar import MAX_TEXT_CHARS, gui_max_chars, gui_pattern, integer_below
from ..gui import Click, LongPress, Point, Scroll, Swipe, points_of
from ..text import Action, format_action
from .base import ActionTokenizer
from .gui_text import check_gui, decode_gui_text

_POINT = r"<loc_(\d+)>(?:<fine_(\d+)>)?"
_POINT_ACTION = re.compile(r"\s*(click|long_press|swipe|scroll)\((.*)\)\s*", re.DOTALL)
_SCROLL_ARGS = re.compile(r'direction="(\w+)"(?:,\s*(' + _POINT + r"))?")


class GuiLocationTokenizer(ActionTokenizer):
    """GUI action <-> text whose points are ``<loc_i>`` (and optional ``<fine_j>``) tokens."""

    name: ClassVar[str] = "gui_location"
    output: ClassVar[str] = "text"

    def __init__(self, grid: int = 32, fine: int = 0):
        if grid < 2:
            raise ActionValueError(f"grid must be at least 2, got {grid}")
        if fine == 1 or fine < 0:
            raise ActionValueError(f"fine must be 0 (no offset token) or at least 2, got {fine}")
        self.grid, self.fine = int(grid), int(fine)

    def tokens(self) -> list[str]:
        return [f"<loc_{i}>" for i in range(self.grid**2)] + [f"<fine_{j}>" for j in range(self.fine**2)]

    # -- one point <-> its token(s) -----------------------------------------------------
    def point_tokens(self, point: Point) -> str:
        resolution = self.grid * max(self.fine, 1)
        ix = min(int(point.x * resolution), resolution - 1)
        iy = min(int(point.y * resolution), resolution - 1)
        step = max(self.fine, 1)
        text = f"<loc_{(iy // step) * self.grid + ix // step}>"
        if self.fine:
            text += f"<fine_{(iy % step) * self.fine + ix % step}>"
        return text

    def _point(self, encoded: str, cell: str, sub: str | None) -> Point:
        cell_index = int(cell)
        if not 0 <= cell_index < self.grid**2:
            raise ActionDecodeError(encoded, f"<loc_{cell}> is outside the {self.grid}x{self.grid} grid")
        if (sub is None) != (self.fine == 0):
            need = "a <fine_j> after each <loc_i>" if self.fine else "no <fine_j> tokens"
            raise ActionDecodeError(encoded, f"this tokenizer expects {need}")
        row, col = divmod(cell_index, self.grid)
        x, y = col + 0.5, row + 0.5
        if sub is not None:
            sub_index = int(sub)
            if not 0 <= sub_index < self.fine**2:
                raise ActionDecodeError(encoded, f"<fine_{sub}> is outside the {self.fine}x{self.fine} sub-grid")
            srow, scol = divmod(sub_index, self.fine)
            x, y = col + (scol + 0.5) / self.fine, row + (srow + 0.5) / self.fine
        return Point(x / self.grid, y / self.grid)

    # -- protocol -------------------------------------------------------------------------
    def encode(self, action: Action) -> str:
        check_gui(action)
        if isinstance(action, (Click, LongPress)):
            return f"{action.type}({self.point_tokens(action.point)})"
        if isinstance(action, Swipe):
            return f"swipe({self.point_tokens(action.start)}, {self.point_tokens(action.end)})"
        if isinstance(action, Scroll) and action.point is not None:
            return f'scroll(direction="{action.direction}", {self.point_tokens(action.point)})'
        return format_action(action)

    def decode(self, encoded: str) -> Action:
        match = _POINT_ACTION.fullmatch(encoded) if isinstance(encoded, str) else None
        if match and "<loc_" in match.group(2):
            return self._decode_points(encoded, match.group(1), match.group(2).strip())
        action = decode_gui_text(encoded, self.name)
        if points_of(action):
            raise ActionDecodeError(encoded, "points must be <loc_i> tokens for this tokenizer")
        return action

    def _decode_points(self, encoded: str, kind: str, args: str) -> Action:
        try:
            if kind in ("click", "long_press"):
                m = re.fullmatch(_POINT, args)
                if not m:
                    raise ActionDecodeError(encoded, f"{kind} takes one point token")
                point = self._point(encoded, *m.groups())
                return Click(point) if kind == "click" else LongPress(point)
            if kind == "swipe":
                m = re.fullmatch(_POINT + r",\s*" + _POINT, args)
                if not m:
                    raise ActionDecodeError(encoded, "swipe takes two point tokens: swipe(<loc_a>, <loc_b>)")
                g = m.groups()
                return Swipe(self._point(encoded, g[0], g[1]), self._point(encoded, g[2], g[3]))
            m = _SCROLL_ARGS.fullmatch(args)
            if not m:
                raise ActionDecodeError(encoded, 'scroll takes direction="..." and an optional point token')
            return Scroll(m.group(1), self._point(encoded, m.group(3), m.group(4)))
        except ActionValueError as err:
            if isinstance(err, ActionDecodeError):
                raise
            raise ActionDecodeError(encoded, str(err)) from None

    def output_pattern(self, text_limit: int | None = None) -> str:
        point = f"<loc_{integer_below(self.grid ** 2)}>"
        if self.fine:
            point += f"<fine_{integer_below(self.fine ** 2)}>"
        return gui_pattern(point, point, point, text_limit or MAX_TEXT_CHARS)

    def max_output_chars(self, text_limit: int | None = None) -> int:
        return gui_max_chars(text_limit or MAX_TEXT_CHARS)

    def config(self) -> dict[str, Any]:
        return {"grid": self.grid, "fine": self.fine}
