"""Constrained decoding: the model may only write the start of a valid action, and may
only stop on a complete one.

Each domain's action tokenizer says what a valid answer is:

- **code tokenizers** (uniform bins, VQ, discrete tokens): exactly ``codes_per_action``
  codes, each from its position's code range (``code_choices``), then end-of-turn
  (``CodeGrammar``: a fixed mask per position, one tensor operation per step);
- **text tokenizers** (GUI text, grid-cell GUI text, discrete phrases): a sentence of the
  regular language ``output_pattern()`` (``actions.grammar``), then end-of-turn
  (``TextGrammar``). A token may follow the text written so far only if the text plus the
  token's text is still a prefix of some sentence (``regex`` partial matching); end-of-turn
  only once the text is a complete sentence.

``ActionConstraint`` is a Hugging Face logits processor over a batch whose rows may be of
different domains. For text grammars it does not test the whole vocabulary at every step
(151k regex calls for Qwen): it first keeps the tokens whose first character may come
next (a union of precomputed first-character buckets, cached per character set), then
tests the best-scoring survivors in order until it has what decoding needs (greedy: the
best valid token; sampling: the ``top_k`` best valid tokens, whose scores are kept so the
usual temperature sampling happens among them). Grammars are finite, so with a
``max_new_tokens`` of at least the longest sentence's length in characters (plus one) every
row ends on a complete action: the decoded action always parses and lies in range.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

#: characters probed to find which first characters may come next; one non-ASCII letter
#: stands for every token that starts outside ASCII
PROBE_CHARS = tuple(string.printable[:95]) + ("é",)
_OTHER = "é"


class TokenTable:
    """The text of every token of an LLM tokenizer, bucketed by first character.

    Tokens whose text is empty or holds a replacement character (a byte-level token that
    is only part of a UTF-8 character) can never be part of an action's text and are
    left out of every bucket.
    """

    def __init__(self, tokenizer: Any, vocab_size: int | None = None):
        size = len(tokenizer)
        self.vocab_size = max(vocab_size or size, size)
        self.texts: list[str] = tokenizer.batch_decode(
            [[i] for i in range(size)], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        buckets: dict[str, list[int]] = {}
        for token_id, text in enumerate(self.texts):
            if not text or "\ufffd" in text:
                continue
            first = text[0] if text[0] in PROBE_CHARS and text[0] != _OTHER else (
                _OTHER if ord(text[0]) > 127 else None)
            if first is not None:
                buckets.setdefault(first, []).append(token_id)
        self.buckets = {c: torch.tensor(ids, dtype=torch.long) for c, ids in buckets.items()}
        self._candidates: dict[frozenset[str], torch.Tensor] = {}

    def candidates(self, chars: frozenset[str]) -> torch.Tensor:
        """Ids of the tokens whose first character is in ``chars`` (cached per character set)."""
        ids = self._candidates.get(chars)
        if ids is None:
            parts = [self.buckets[c] for c in sorted(chars) if c in self.buckets]
            ids = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
            self._candidates[chars] = ids
        return ids


class CodeGrammar:
    """``length`` codes, position ``i`` drawn from ``choices[i]`` (LLM token ids), then the end."""

    def __init__(self, choices: Sequence[Sequence[int]], end_id: int, vocab_size: int):
        self.length = len(choices)
        self.masks = []
        for ids in choices:
            mask = torch.zeros(vocab_size, dtype=torch.bool)
            mask[torch.as_tensor(list(ids), dtype=torch.long)] = True
            self.masks.append(mask)
        end = torch.zeros(vocab_size, dtype=torch.bool)
        end[end_id] = True
        self.masks.append(end)
        self.end_id = end_id
        self.max_tokens = self.length + 1

    def allowed(self, text: str, count: int) -> torch.Tensor:
        """``(V,)`` bool: every token that may come after ``count`` codes."""
        return self.masks[min(count, self.length)]

    @classmethod
    def for_tokenizer(cls, action_tokenizer: Any, end_id: int, vocab_size: int) -> CodeGrammar:
        positions = [action_tokenizer.placement.to_ids(list(action_tokenizer.code_choices(p)))
                     for p in range(action_tokenizer.codes_per_action)]
        return cls(positions, end_id, vocab_size)


class TextGrammar:
    """A sentence of ``pattern`` (a ``regex`` pattern string), then the end token."""

    def __init__(self, pattern: str, table: TokenTable, end_id: int, max_chars: int):
        import regex

        self.pattern = regex.compile(pattern)
        self.table = table
        self.end_id = end_id
        self.max_tokens = max_chars + 1
        self._next_chars: dict[str, frozenset[str]] = {}
        self._masks: dict[str, torch.Tensor] = {}

    def can_continue(self, text: str) -> bool:
        return self.pattern.fullmatch(text, partial=True) is not None

    def is_complete(self, text: str) -> bool:
        return self.pattern.fullmatch(text) is not None

    def allowed(self, text: str, count: int) -> torch.Tensor:
        """``(V,)`` bool: every token that may follow ``text`` after ``count`` tokens (the whole
        mask, not just the best few that decoding looks at; cached per text). Its best-scoring
        token is the one greedy constrained decoding takes."""
        if self.is_complete(text) and count + 1 >= self.max_tokens:  # out of budget: finish now
            return self._only_end()
        mask = self._masks.get(text)
        if mask is None:
            mask = torch.zeros(self.table.vocab_size, dtype=torch.bool)
            texts = self.table.texts
            ids = [t for t in self.table.candidates(self.next_chars(text)).tolist()
                   if t != self.end_id and self.can_continue(text + texts[t])]
            mask[torch.tensor(ids, dtype=torch.long)] = True
            if self.is_complete(text):
                mask[self.end_id] = True
            if not mask.any():  # a dead end (cannot happen with a byte-level vocabulary): the end
                mask[self.end_id] = True
            if len(self._masks) > 10_000:
                self._masks.clear()
            self._masks[text] = mask
        return mask

    def _only_end(self) -> torch.Tensor:
        mask = torch.zeros(self.table.vocab_size, dtype=torch.bool)
        mask[self.end_id] = True
        return mask

    def next_chars(self, text: str) -> frozenset[str]:
        """The probe characters that may follow ``text`` (cached per text)."""
        chars = self._next_chars.get(text)
        if chars is None:
            chars = frozenset(c for c in PROBE_CHARS if self.can_continue(text + c))
            if len(self._next_chars) > 100_000:
                self._next_chars.clear()
            self._next_chars[text] = chars
        return chars


@dataclass
class RowState:
    """What one row has written so far."""

    grammar: CodeGrammar | TextGrammar | None
    text: str = ""
    count: int = 0
    done: bool = False
    ids: list[int] = field(default_factory=list)
    log_probs: list[float] = field(default_factory=list)  # each written token's, under the whole mask
    pending: torch.Tensor | None = None  # this step's masked log-softmax, until its token is known

    def write(self, token: int) -> None:
        """Take ``token`` as this row's next one (and its log-probability, when recorded)."""
        self.ids.append(token)
        self.count += 1
        if self.pending is not None:
            self.log_probs.append(float(self.pending[token]) if token < self.pending.numel() else float("-inf"))
            self.pending = None
        if self.grammar is not None and token == self.grammar.end_id:
            self.done = True
        elif isinstance(self.grammar, TextGrammar) and token < len(self.grammar.table.texts):
            self.text += self.grammar.table.texts[token]


class ActionConstraint:
    """Hugging Face logits processor: row ``i`` may only continue a valid action of ``grammars[i]``.

    ``prompt_length`` is the (padded) prompt length, so the generated part of each row is
    ``input_ids[:, prompt_length:]``. ``top_k`` > 0 keeps that many valid tokens per step
    (for sampling); ``top_k=1`` keeps only the best valid token (greedy). A row whose
    grammar is None is left unconstrained.
    """

    def __init__(self, grammars: Sequence[CodeGrammar | TextGrammar | None], prompt_length: int,
                 top_k: int = 1, max_checks: int = 4096, record: bool = False):
        self.rows = [RowState(g) for g in grammars]
        self.prompt_length = prompt_length
        self.top_k = max(1, int(top_k))
        self.max_checks = max_checks
        self.record = record  # keep each written token's log-probability under the whole mask (``finish``)
        self.dead_ends = 0  # rows that found no valid token (cannot happen with a byte-level vocabulary)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        generated = input_ids.shape[1] - self.prompt_length
        out = torch.full_like(scores, float("-inf"))
        for i, row in enumerate(self.rows):
            if generated > row.count and not row.done:  # record the token chosen last step
                row.write(int(input_ids[i, -1]))
            if row.grammar is None or row.done:
                out[i] = scores[i]
                continue
            if self.record:
                row.pending = masked_log_softmax(scores[i].detach().float().cpu(), row.grammar.allowed(row.text,
                                                                                                     row.count))
            keep = self._allowed(row, scores[i].detach().float().cpu())  # masks and tables live on the CPU
            if keep.numel() == 0:
                self.dead_ends += 1
                keep = torch.tensor([row.grammar.end_id])
            keep = keep.to(scores.device)
            out[i, keep] = scores[i, keep]
        return out

    def finish(self, sequences: torch.Tensor) -> list[RowState]:
        """Take the last step's tokens from ``generate``'s output ``sequences`` (the processor is not
        called after it); the rows, each with its ids and (recorded) log-probabilities."""
        for i, row in enumerate(self.rows):
            if row.pending is not None and sequences.shape[1] > self.prompt_length + row.count:
                row.write(int(sequences[i, self.prompt_length + row.count]))
        return self.rows

    # -- per row ---------------------------------------------------------------------
    def _allowed(self, row: RowState, scores: torch.Tensor) -> torch.Tensor:
        grammar = row.grammar
        if isinstance(grammar, CodeGrammar):
            mask = grammar.masks[min(row.count, grammar.length)][: scores.shape[0]]
            return self._best(scores, mask, self.top_k)
        text = row.text
        complete = grammar.is_complete(text)
        if complete and row.count + 1 >= grammar.max_tokens:  # out of budget: finish now
            return torch.tensor([grammar.end_id])
        candidates = grammar.table.candidates(grammar.next_chars(text))
        if complete:
            candidates = torch.cat([candidates, torch.tensor([grammar.end_id])])
        texts = grammar.table.texts
        chosen: list[int] = []
        checked = 0
        # best candidates first; a first look at a few, the full order only if they do not suffice
        for look in (4 * self.top_k + 16, candidates.numel()):
            look = min(look, candidates.numel(), self.max_checks)
            order = candidates[torch.topk(scores[candidates], look).indices].tolist()
            for token in order[checked:]:
                checked += 1
                if token == grammar.end_id:
                    if complete:
                        chosen.append(token)
                elif grammar.can_continue(text + texts[token]):
                    chosen.append(token)
                if len(chosen) == self.top_k:
                    return torch.tensor(chosen, dtype=torch.long)
            if checked >= min(candidates.numel(), self.max_checks):
                break
        return torch.tensor(chosen, dtype=torch.long)

    @staticmethod
    def _best(scores: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
        allowed = mask.nonzero().squeeze(1)
        if k >= allowed.numel():
            return allowed
        return allowed[torch.topk(scores[allowed], k).indices]


def masked_log_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``log softmax`` of ``scores`` ``(..., V)`` over the ``allowed`` tokens (the others ``-inf``):
    the temperature-1 distribution constrained decoding draws from. ``allowed`` may be longer
    than the score rows (a grammar built for a larger vocabulary) and is cut to them."""
    allowed = allowed[..., : scores.shape[-1]].to(scores.device)
    if allowed.shape[-1] < scores.shape[-1]:  # output rows beyond the grammar's vocabulary: never allowed
        allowed = torch.nn.functional.pad(allowed, (0, scores.shape[-1] - allowed.shape[-1]), value=False)
    return torch.log_softmax(scores.float().masked_fill(~allowed, float("-inf")), dim=-1)
