"""Tokenizers of discrete actions, the three of "Grounding MLLMs in Actions".

- ``DiscreteTokenTokenizer`` (Token): one new token per action (``<dact_2>``).
- ``DiscreteLangTokenizer`` (Lang): each action is an ordinary word unrelated to its meaning
  (``left -> "apple"``): the model uses its vocabulary but not its semantics.
- ``DiscreteSemLangTokenizer`` (SemLang, the paper's best): each action is a phrase that
  says what it does (``pickup -> "pick up"``), so pretrained language knowledge transfers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

from ..discrete import DiscreteAction, DiscreteSpace
from ..errors import ActionDecodeError, ActionValueError
from ..grammar import alternatives
from .base import ActionTokenizer, CodeTokenizer, VocabularyPlacement

#: Words with no relation to any action, handed out in a seeded order (Lang).
NON_SEMANTIC_WORDS = (
    "apple", "river", "candle", "violin", "pebble", "orbit", "maple", "lantern", "velvet", "harbor",
    "tulip", "comet", "walnut", "glacier", "ribbon", "saddle", "meadow", "pepper", "anchor", "falcon",
    "marble", "willow", "copper", "quartz", "biscuit", "thimble", "canyon", "lemon", "puzzle", "cactus",
    "feather", "garnet",
)

#: Phrases that say what common discrete actions do (SemLang); other names read as words.
SEMANTIC_PHRASES = {
    "left": "turn left", "right": "turn right", "forward": "move forward", "backward": "move backward",
    "pickup": "pick up", "drop": "drop", "toggle": "toggle", "done": "done", "noop": "do nothing",
    "up": "move up", "down": "move down", "open": "open", "close": "close", "stop": "stop",
}


def _space(names: Sequence[str] | DiscreteSpace) -> DiscreteSpace:
    return names if isinstance(names, DiscreteSpace) else DiscreteSpace(tuple(names))


def _check(action: Any, space: DiscreteSpace) -> int:
    if not isinstance(action, DiscreteAction):
        raise ActionValueError(f"expected a discrete action, got {type(action).__name__}")
    return space.index(action)


class DiscreteTokenTokenizer(CodeTokenizer):
    """Discrete action -> one code (its index in the action set) -> one new token."""

    name: ClassVar[str] = "discrete_token"
    default_prefix: ClassVar[str] = "dact"

    def __init__(self, names: Sequence[str], placement: VocabularyPlacement | dict | None = None):
        super().__init__(placement)
        self.space = _space(names)
        self.placement.check(len(self.space))

    @property
    def num_codes(self) -> int:
        return len(self.space)

    @property
    def codes_per_action(self) -> int:
        return 1

    def encode(self, action: DiscreteAction) -> list[int]:
        return [_check(action, self.space)]

    def decode(self, encoded: Sequence[int]) -> DiscreteAction:
        if isinstance(encoded, str):
            raise ActionDecodeError(encoded, "discrete_token decodes codes, not text")
        (code,) = self.check_codes(encoded)
        return self.space.action(code)

    def config(self) -> dict[str, Any]:
        return {"names": list(self.space.names), "placement": self.placement.to_json()}


class _PhraseTokenizer(ActionTokenizer):
    """A discrete action <-> a fixed phrase of ordinary text (shared by Lang and SemLang)."""

    output: ClassVar[str] = "text"

    def __init__(self, names: Sequence[str], phrases: Sequence[str]):
        self.space = _space(names)
        phrases = [p.strip() for p in phrases]
        if len(phrases) != len(self.space):
            raise ActionValueError(f"{len(self.space)} actions but {len(phrases)} phrases")
        if len({p.lower() for p in phrases}) != len(phrases) or not all(phrases):
            raise ActionValueError(f"phrases must be distinct and non-empty, got {phrases}")
        self.phrases = tuple(phrases)
        self._lookup = {p.lower(): name for p, name in zip(self.phrases, self.space.names)}

    def encode(self, action: DiscreteAction) -> str:
        return self.phrases[_check(action, self.space)]

    def decode(self, encoded: str) -> DiscreteAction:
        if not isinstance(encoded, str):
            raise ActionDecodeError(encoded, f"{self.name} decodes text, not codes")
        key = " ".join(encoded.split()).lower()
        if key not in self._lookup:
            raise ActionDecodeError(encoded, f"not one of the phrases {list(self.phrases)}")
        return DiscreteAction(self._lookup[key])

    def output_pattern(self, text_limit: int | None = None) -> str:
        return alternatives(self.phrases)

    def max_output_chars(self, text_limit: int | None = None) -> int:
        return max(len(p) for p in self.phrases)

    def config(self) -> dict[str, Any]:
        return {"names": list(self.space.names), "phrases": list(self.phrases)}


class DiscreteLangTokenizer(_PhraseTokenizer):
    """Lang: each action is a non-semantic word, assigned in a seeded order."""

    name: ClassVar[str] = "discrete_lang"

    def __init__(self, names: Sequence[str], phrases: Sequence[str] | None = None, seed: int = 0):
        if phrases is None:
            if len(names) > len(NON_SEMANTIC_WORDS):
                raise ActionValueError(f"give phrases= for more than {len(NON_SEMANTIC_WORDS)} actions")
            words = list(NON_SEMANTIC_WORDS)
            random.Random(seed).shuffle(words)
            phrases = words[: len(names)]
        super().__init__(names, phrases)


class DiscreteSemLangTokenizer(_PhraseTokenizer):
    """SemLang: each action is a phrase that says what it does."""

    name: ClassVar[str] = "discrete_semlang"

    def __init__(self, names: Sequence[str], phrases: Sequence[str] | None = None):
        if phrases is None:
            phrases = [SEMANTIC_PHRASES.get(n, n.replace("_", " ")) for n in names]
        super().__init__(names, phrases)
