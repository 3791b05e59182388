"""The one protocol every action tokenizer follows, and where its tokens live in an LLM vocabulary.

An action tokenizer turns a typed action into what a language model emits, and back:

- ``output == "codes"``: ``encode(action) -> list[int]`` of codes in ``[0, num_codes)``
  (uniform bins, VQ/RVQ, discrete Token). A ``VocabularyPlacement`` maps codes onto LLM
  token ids in one of three ways: ``new`` special tokens (``<act_0>``, ...), ``reuse`` of
  given existing ids (the paper reuses the least-frequent ids), or the ``last`` ids of the
  vocabulary (OpenVLA).
- ``output == "text"``: ``encode(action) -> str`` that the LLM's own tokenizer splits
  (decimal GUI text, Lang/SemLang words, GUI location tokens embedded in text).

``decode`` raises ``ActionDecodeError`` on anything that is not a valid encoding;
``try_decode`` returns that error instead of raising. ``tokens()`` lists the new token
strings the LLM vocabulary must gain (empty when none).

Save/load: ``save(dir)`` writes ``tokenizer.json`` (config + small state) and, for learned
tokenizers, a safetensors file; ``load_action_tokenizer(dir)`` rebuilds any tokenizer.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..errors import ActionDecodeError, ActionValueError
from ..text import Action

TOKENIZER_FILE = "tokenizer.json"

PlacementMode = Literal["new", "reuse", "last"]


@dataclass
class VocabularyPlacement:
    """Where ``num_codes`` codes live in an LLM vocabulary.

    - ``new``: code ``i`` is the new special token ``f"<{prefix}_{i}>"``; its id is known once
      the tokens are added to the LLM tokenizer (``bind``).
    - ``reuse``: code ``i`` is ``ids[i]`` (for example the K least-frequent ids, as OmniActor).
    - ``last``: code ``i`` is ``vocab_size - 1 - i`` (OpenVLA's placement on the last K ids).
    """

    mode: PlacementMode = "new"
    prefix: str = "act"
    ids: list[int] = field(default_factory=list)
    vocab_size: int | None = None

    def check(self, num_codes: int) -> None:
        if self.mode == "reuse":
            if len(self.ids) != num_codes:
                raise ActionValueError(f"reuse placement needs {num_codes} ids, got {len(self.ids)}")
            if len(set(self.ids)) != len(self.ids):
                raise ActionValueError("reuse placement ids must be distinct")
        elif self.mode == "last":
            if self.vocab_size is not None and self.vocab_size < num_codes:
                raise ActionValueError(f"vocabulary of {self.vocab_size} ids cannot hold {num_codes} codes")
        elif self.mode != "new":
            raise ActionValueError(f"placement mode {self.mode!r} is not one of new, reuse, last")

    def token_strings(self, num_codes: int) -> list[str]:
        """The new tokens to add to the LLM tokenizer (only for ``new``)."""
        return [f"<{self.prefix}_{i}>" for i in range(num_codes)] if self.mode == "new" else []

    def bind(self, llm_tokenizer: Any, num_codes: int) -> None:
        """Resolve ids against a Hugging Face tokenizer (after the new tokens were added)."""
        if self.mode == "new":
            strings = self.token_strings(num_codes)
            ids = llm_tokenizer.convert_tokens_to_ids(strings)
            unknown = getattr(llm_tokenizer, "unk_token_id", None)
            if any(i is None or i == unknown for i in ids):
                raise ActionValueError(f"add the action tokens {strings[0]}..{strings[-1]} to the tokenizer first")
            self.ids = list(ids)
        elif self.mode == "last":
            self.vocab_size = len(llm_tokenizer)

    def to_ids(self, codes: Sequence[int]) -> list[int]:
        if self.mode == "last":
            if self.vocab_size is None:
                raise ActionValueError("'last' placement needs vocab_size (call bind or set it)")
            return [self.vocab_size - 1 - c for c in codes]
        if not self.ids:
            raise ActionValueError("'new' placement needs bind(llm_tokenizer) before ids are known")
        return [self.ids[c] for c in codes]

    def to_codes(self, ids: Sequence[int]) -> list[int]:
        """Codes of LLM ids; raises ``ActionDecodeError`` on an id outside the placement."""
        if self.mode == "last":
            if self.vocab_size is None:
                raise ActionValueError("'last' placement needs vocab_size (call bind or set it)")
            # ids below the placement give codes >= num_codes: the tokenizer's range check reports them
            codes = [self.vocab_size - 1 - i for i in ids]
            bad = [i for i, c in zip(ids, codes) if c < 0]
        else:
            lookup = {token_id: code for code, token_id in enumerate(self.ids)}
            bad = [i for i in ids if i not in lookup]
            codes = [lookup.get(i, -1) for i in ids]
        if bad:
            raise ActionDecodeError(list(ids), f"id(s) {bad[:5]} are not action tokens")
        return codes

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "prefix": self.prefix, "ids": list(self.ids), "vocab_size": self.vocab_size}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VocabularyPlacement:
        return cls(data.get("mode", "new"), data.get("prefix", "act"), list(data.get("ids", [])), data.get("vocab_size"))


class ActionTokenizer(ABC):
    """Base of every action tokenizer (see module docstring for the contract)."""

    #: registry name, written to ``tokenizer.json``
    name: ClassVar[str]
    #: ``"codes"`` (list of ints) or ``"text"`` (a string for the LLM's own tokenizer)
    output: ClassVar[Literal["codes", "text"]]

    def fit(self, actions: Any) -> ActionTokenizer:
        """Learn from example actions (no-op for tokenizers with nothing to learn)."""
        return self

    @abstractmethod
    def encode(self, action: Action) -> list[int] | str: ...

    @abstractmethod
    def decode(self, encoded: Sequence[int] | str) -> Action: ...

    def try_decode(self, encoded: Sequence[int] | str, **options: Any) -> Action | ActionDecodeError:
        """``decode`` that returns the ``ActionDecodeError`` instead of raising it."""
        try:
            return self.decode(encoded, **options)
        except ActionDecodeError as err:
            return err

    def tokens(self) -> list[str]:
        """New token strings this tokenizer needs in the LLM vocabulary."""
        return []

    def output_pattern(self, text_limit: int | None = None) -> str:
        """The language of ``encode``'s text as a regular expression (``actions.grammar``):
        every full match decodes to an in-range action; free text (typed text, app names)
        has at most ``text_limit`` characters (default ``grammar.MAX_TEXT_CHARS``). Text
        tokenizers implement it; constrained decoding uses it."""
        raise NotImplementedError(f"{self.name} does not describe its output language")

    def max_output_chars(self, text_limit: int | None = None) -> int:
        """The length of the longest sentence of ``output_pattern(text_limit)`` (a decoding budget)."""
        raise NotImplementedError(f"{self.name} does not describe its output language")

    # -- persistence -------------------------------------------------------------------
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (and small state)."""

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path | None = None) -> ActionTokenizer:
        return cls(**config)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"tokenizer": self.name, "config": self.config()}
        (directory / TOKENIZER_FILE).write_text(json.dumps(payload, indent=2))
        self._save_state(directory)
        return directory

    def _save_state(self, directory: Path) -> None:
        """Write learned weights beside ``tokenizer.json`` (learned tokenizers override)."""


class CodeTokenizer(ActionTokenizer):
    """An action tokenizer that emits codes placed in the LLM vocabulary by a placement."""

    output: ClassVar[Literal["codes"]] = "codes"

    #: prefix of the new tokens by default (``<act_0>``); each tokenizer picks its own so
    #: that two tokenizers in one model never claim the same token string by accident
    default_prefix: ClassVar[str] = "act"

    def __init__(self, placement: VocabularyPlacement | dict[str, Any] | None = None):
        if isinstance(placement, dict):
            placement = VocabularyPlacement.from_json(placement)
        self.placement = placement or VocabularyPlacement(prefix=self.default_prefix)

    @property
    @abstractmethod
    def num_codes(self) -> int:
        """Size of the code alphabet (how many LLM tokens the tokenizer occupies)."""

    @property
    @abstractmethod
    def codes_per_action(self) -> int:
        """How many codes one action takes."""

    def tokens(self) -> list[str]:
        return self.placement.token_strings(self.num_codes)

    def code_choices(self, position: int) -> range:
        """The codes allowed at ``position`` of an action (all of them unless a tokenizer
        gives positions their own code ranges, as residual VQ does per level)."""
        return range(self.num_codes)

    def encode_text(self, action: Action) -> str:
        """The action as new-token text (``<act_3><act_250>...``), for ShareGPT-style targets."""
        strings = self.placement.token_strings(self.num_codes)
        if not strings:
            raise ActionValueError("text targets need the 'new' placement; other placements map to ids")
        return "".join(strings[c] for c in self.encode(action))

    def encode_ids(self, action: Action) -> list[int]:
        return self.placement.to_ids(self.encode(action))

    def decode_ids(self, ids: Sequence[int], **options: Any) -> Action:
        """Decode LLM ids (``options`` go to ``decode``, e.g. ``embodiment=`` for RVQ)."""
        return self.decode(self.placement.to_codes(ids), **options)

    def check_codes(self, codes: Sequence[int]) -> list[int]:
        """Codes as ints, checked for count and range (``ActionDecodeError`` otherwise)."""
        try:
            codes = [int(c) for c in codes]
        except (TypeError, ValueError):
            raise ActionDecodeError(codes, "codes must be integers") from None
        if len(codes) != self.codes_per_action:
            raise ActionDecodeError(codes, f"expected {self.codes_per_action} codes, got {len(codes)}")
        bad = [c for c in codes if not 0 <= c < self.num_codes]
        if bad:
            raise ActionDecodeError(codes, f"code(s) {bad[:5]} outside 0..{self.num_codes - 1}")
        return codes
