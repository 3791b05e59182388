"""Typed errors of the action layer, so callers can catch exactly what they expect."""

from __future__ import annotations

from ..errors import OmniactorError


class ActionError(OmniactorError, ValueError):
    """Base class of every action error (a ``ValueError``, so generic handlers still work)."""


class ActionValueError(ActionError):
    """An action was built with a value outside its domain (a point off-screen, a NaN, ...)."""


class ActionParseError(ActionError):
    """Text that is not a valid action; the message says what was wrong and where."""

    def __init__(self, text: str, reason: str):
        self.text = text
        self.reason = reason
        shown = text if len(text) <= 120 else text[:117] + "..."
        super().__init__(f"cannot parse action {shown!r}: {reason}")


class ActionDecodeError(ActionError):
    """A token or code sequence that does not decode to an action of the tokenizer's space."""

    def __init__(self, tokens: object, reason: str):
        self.tokens = tokens
        self.reason = reason
        shown = repr(tokens)
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        super().__init__(f"cannot decode {shown}: {reason}")
