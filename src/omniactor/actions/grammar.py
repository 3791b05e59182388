"""The languages text action tokenizers emit, written as regular expressions.

Constrained decoding (``omniactor.agent.constraints``) lets the model emit only text
that is a prefix of a sentence of its domain's language, and end only on a complete
sentence. Each text tokenizer describes its language with ``output_pattern()``, built
from the pieces here, and the patterns are **finite and in range by construction**:

- a coordinate is ``0.d{1,4}`` or ``1.0`` (``format_action`` writes ``repr(float)``,
  points keep at most 4 decimals), so every accepted point lies in ``[0, 1]``;
- keys, scroll directions and terminate statuses are alternations of the allowed values;
- free text (``type``, ``open_app``) is the written form ``actions.free_text`` defines
  (the same definition the action classes check), bounded in length, so generation
  always terminates;
- grid cells are alternations of ``0 .. n-1`` (``<loc_517>`` with 1024 cells).

So every sentence parses with ``parse_action`` / the tokenizer's ``decode`` and lies in
range, whatever the weights. The patterns are matched with the ``regex`` package (a
dependency of ``transformers``), whose ``partial=True`` matching tells whether a text can
still be completed.
"""

from __future__ import annotations

from collections.abc import Iterable

from .free_text import ESCAPED_CHARS_MAX, MAX_TEXT_CHARS, app_name_pattern, typed_text_pattern
from .gui import KEYS, SCROLL_DIRECTIONS, TERMINATE_STATUSES

__all__ = ["MAX_TEXT_CHARS", "alternatives", "coordinate", "decimal_point", "gui_max_chars", "gui_pattern",
           "integer_below", "quoted"]


def alternatives(options: Iterable[str]) -> str:
    """A group matching exactly one of ``options`` (escaped; longest first)."""
    import regex

    ordered = sorted(set(options), key=lambda s: (-len(s), s))
    if not ordered:
        raise ValueError("an alternation needs at least one option")
    return "(?:" + "|".join(regex.escape(o) for o in ordered) + ")"


def integer_below(n: int) -> str:
    """A group matching the decimal integers ``0 .. n-1`` (no leading zeros)."""
    if n < 1:
        raise ValueError(f"need n >= 1, got {n}")
    return alternatives(str(i) for i in range(n))


def quoted(options: Iterable[str]) -> str:
    """One of ``options`` as a JSON string literal (``"down"``)."""
    return '"' + alternatives(options) + '"'


#: an upper bound on the length of GUI sentences with points: the longest is a swipe,
#: ``swipe(x1=0.1234, y1=0.1234, x2=0.1234, y2=0.1234)`` (50) or with cell tokens
#: ``swipe(<loc_99999><fine_9999>, <loc_99999><fine_9999>)`` (54)
POINT_ACTION_MAX_CHARS = 64


def gui_max_chars(text_limit: int = MAX_TEXT_CHARS) -> int:
    """An upper bound on the length of a GUI sentence: a swipe, or ``open_app(name="...")``
    with the longest free text, every character written escaped."""
    return max(POINT_ACTION_MAX_CHARS, len('open_app(name="")') + ESCAPED_CHARS_MAX * int(text_limit))


def coordinate(decimals: int = 4) -> str:
    """A normalised coordinate as ``format_action`` writes it, at most ``decimals`` decimals."""
    return r"(?:0\.[0-9]{1," + str(decimals) + r"}|1\.0)"


def decimal_point(decimals: int = 4, tag: str = "") -> str:
    """``x=0.5, y=0.25`` (``x1=..., y1=...`` with ``tag="1"``)."""
    c = coordinate(decimals)
    return f"x{tag}={c}, y{tag}={c}"


def gui_pattern(point: str, point1: str, point2: str, text_limit: int = MAX_TEXT_CHARS) -> str:
    """Every GUI action of ``format_action``, with points written by the given patterns.

    ``point`` is the argument text of one point (``x=0.5, y=0.5`` or ``<loc_3>``); ``point1``
    and ``point2`` those of a swipe's start and end; typed text and app names have at most
    ``text_limit`` characters.
    """
    return "(?:" + "|".join([
        rf"click\({point}\)",
        rf"long_press\({point}\)",
        rf"type\(text={typed_text_pattern(text_limit)}\)",
        rf"scroll\(direction={quoted(SCROLL_DIRECTIONS)}(?:, {point})?\)",
        rf"swipe\({point1}, {point2}\)",
        rf"press_key\(key={quoted(KEYS)}\)",
        rf"open_app\(name={app_name_pattern(text_limit)}\)",
        r"wait\(\)",
        rf"terminate\(status={quoted(TERMINATE_STATUSES)}\)",
    ]) + ")"
