"""What a free-text field of an action may hold: typed text and app names.

This module is the one definition. The action classes check their fields with
``check_typed_text`` / ``check_app_name``; the canonical text writes the field as a JSON
string (``write_free_text``, which the parser reads back with Python's literal rules);
and every tokenizer grammar takes its language from ``typed_text_pattern`` /
``app_name_pattern``. So an action the classes accept always has a sentence that
constrained decoding can produce, and every such sentence parses to an accepted action
(``tests/actions/test_free_text.py`` checks both directions).

- **Typed text**: 0 to ``MAX_TEXT_CHARS`` characters. Quotes, backslashes and the control
  characters with a short JSON escape (``\\b \\f \\n \\r \\t``) are allowed, written
  escaped; other control characters (U+0000-U+001F) and lone surrogates are refused.
  Empty text is allowed: datasets record it (AndroidControl's ``input_text`` with no text).
- **App name**: 1 to ``MAX_TEXT_CHARS`` characters, no control characters (U+0000-U+001F,
  U+007F-U+009F) or lone surrogates, and no white space at either end (``" Gmail"`` is
  refused: strip it). Quotes and backslashes are allowed, written escaped.

``MAX_TEXT_CHARS`` bounds the field in characters as read (an escape counts as one), so
a written field is at most twice as long (``ESCAPED_CHARS_MAX``).
"""

from __future__ import annotations

import json

from .errors import ActionValueError

#: longest free text (typed text, app names), in characters
MAX_TEXT_CHARS = 200
#: a written character is at most this long (``\\"``), so a field is at most this many times its length
ESCAPED_CHARS_MAX = 2

#: every character ``str.isspace`` calls white space (``str.strip`` removes them); a test checks the list
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
              "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
#: the control characters JSON writes with a short escape, and those escapes
SHORT_ESCAPES = {"\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}


def _is_control(char: str) -> bool:
    return char < "\x20" or "\x7f" <= char <= "\x9f"


def _is_surrogate(char: str) -> bool:
    return "\ud800" <= char <= "\udfff"


def _check_length(value: object, what: str, minimum: int) -> str:
    if not isinstance(value, str):
        raise ActionValueError(f"{what} must be a string, got {value!r}")
    if not minimum <= len(value) <= MAX_TEXT_CHARS:
        raise ActionValueError(
            f"{what} must have {minimum} to {MAX_TEXT_CHARS} characters, got {len(value)}: {value[:40]!r}"
            + ("..." if len(value) > 40 else ""))
    surrogate = next((c for c in value if _is_surrogate(c)), None)
    if surrogate is not None:
        raise ActionValueError(f"{what} holds a lone surrogate {surrogate!r} (not text): {value[:40]!r}")
    return value


def check_typed_text(text: object) -> str:
    """``text`` if it is valid typed text (see the module docstring); ``ActionValueError`` otherwise."""
    text = _check_length(text, "typed text", 0)
    bad = next((c for c in text if c < "\x20" and c not in SHORT_ESCAPES), None)
    if bad is not None:
        raise ActionValueError(
            f"typed text holds the control character {bad!r}, which an agent cannot type; only "
            f"\\b, \\f, \\n, \\r and \\t are allowed: {text[:40]!r}")
    return text


def check_app_name(name: object) -> str:
    """``name`` if it is a valid app name (see the module docstring); ``ActionValueError`` otherwise."""
    name = _check_length(name, "open_app's app name", 1)
    bad = next((c for c in name if _is_control(c)), None)
    if bad is not None:
        raise ActionValueError(f"open_app's app name holds the control character {bad!r}: {name!r}")
    if not name.strip():
        raise ActionValueError(f"open_app needs a non-empty app name, got {name!r}")
    if name.strip() != name:
        raise ActionValueError(f"open_app's app name {name!r} has white space at an end: strip it ({name.strip()!r})")
    return name


def write_free_text(value: str) -> str:
    """The field as the canonical text writes it: a JSON string literal, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------------- grammar
# Regular expressions (``regex`` package syntax, also valid for ``re``) whose sentences are
# exactly the written fields. One *unit* is one character as read: a plain character or
# an escape, so ``{m,n}`` bounds the field's length as the checks above do.

_SURROGATES = r"\ud800-\udfff"
_ESCAPED_QUOTE_OR_BACKSLASH = r'\\["\\]'


def _whitespace_class() -> str:
    return "".join(f"\\u{ord(c):04x}" for c in WHITESPACE)


def typed_text_pattern(limit: int = MAX_TEXT_CHARS) -> str:
    """Written typed text of 0..``limit`` characters: ``"..."``."""
    short = "".join(SHORT_ESCAPES.values())
    unit = rf'(?:[^"\\\x00-\x1f{_SURROGATES}]|\\["\\{short}])'
    return '"' + unit + "{0," + str(int(limit)) + '}"'


def app_name_pattern(limit: int = MAX_TEXT_CHARS) -> str:
    """A written app name of 1..``limit`` characters with no white space at its ends."""
    limit = int(limit)
    if limit < 1:
        raise ValueError(f"an app name needs a limit of at least 1 character, got {limit}")
    inner = rf'(?:[^"\\\x00-\x1f\x7f-\x9f{_SURROGATES}]|{_ESCAPED_QUOTE_OR_BACKSLASH})'
    edge = rf'(?:[^"\\\x00-\x1f\x7f-\x9f{_SURROGATES}{_whitespace_class()}]|{_ESCAPED_QUOTE_OR_BACKSLASH})'
    if limit == 1:
        return f'"{edge}"'
    return f'"{edge}(?:{inner}{{0,{limit - 2}}}{edge})?"'
