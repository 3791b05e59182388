"""``output: tokens``: the model writes the action as its answer, under the tokenizer's grammar.

Covers every tokenizer: codes (uniform bins, VQ / RVQ codes, one token per discrete action)
and text (GUI actions with decimal or grid-cell points, discrete phrases, typed text the copy
module may copy from the prompt). The grammar (``agent.constraints``) makes every answer a
valid action; an answer that still does not decode (possible only unconstrained) becomes the
domain's no-op and is counted.

Its distribution is ``TokenSequence``: the answer's tokens, each under the grammar's whole
mask at that step, at temperature 1 (``distribution``; ``agent.constraints.masked_log_softmax``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from ..actions import Action, ContinuousAction, DiscreteAction, Wait, format_action
from ..actions.errors import ActionDecodeError
from ..actions.tokenizers.base import CodeTokenizer
from .base import ActionAdapter, Decoded
from .distributions import TokenSequence


class TokenAnswer(ActionAdapter):
    output: ClassVar[str] = "tokens"
    writes_answer: ClassVar[bool] = True

    def __init__(self, domain: str, action_tokenizer: Any):
        super().__init__(domain, action_tokenizer)
        self._grammar: Any = None

    # -- acting ----------------------------------------------------------------------------
    def grammar(self, end_id: int, vocab_size: int, token_table: Any, max_text_chars: int | None) -> Any:
        """The constraint of this domain's answers (built once): a fixed code mask per position for
        code tokenizers, the tokenizer's regular language for text ones."""
        from ..agent.constraints import CodeGrammar, TextGrammar

        if self._grammar is None:
            tokenizer = self.action_tokenizer
            if isinstance(tokenizer, CodeTokenizer):
                self._grammar = CodeGrammar.for_tokenizer(tokenizer, end_id, vocab_size)
            else:
                self._grammar = TextGrammar(tokenizer.output_pattern(max_text_chars), token_table(), end_id,
                                            tokenizer.max_output_chars(max_text_chars))
        return self._grammar

    def decode(self, ids: Sequence[int], end_id: int, llm_tokenizer: Any) -> Decoded:
        """The generated ``ids`` (up to end-of-turn) as the domain's action (``valid=False``: the no-op)."""
        ids = list(ids)
        if end_id in ids:
            ids = ids[: ids.index(end_id)]
        pad = llm_tokenizer.pad_token_id
        while ids and ids[-1] == pad:
            ids.pop()
        tokenizer = self.action_tokenizer
        if isinstance(tokenizer, CodeTokenizer):
            text = llm_tokenizer.decode(ids, skip_special_tokens=False)
            try:
                result = tokenizer.decode_ids(ids)
            except (ActionDecodeError, ValueError) as err:
                result = ActionDecodeError(ids, str(err)) if not isinstance(err, ActionDecodeError) else err
        else:
            text = llm_tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            result = tokenizer.try_decode(text)
        if isinstance(result, ActionDecodeError):
            return Decoded(self.fallback(), text, False, str(result))
        return Decoded(result, text, True)

    def fallback(self) -> Action:
        """The no-op an undecodable answer becomes (only possible without constraints)."""
        tokenizer = self.action_tokenizer
        space = getattr(tokenizer, "space", None)
        if space is not None and hasattr(space, "names") and not hasattr(space, "low"):
            return DiscreteAction(space.names[0])
        names = getattr(tokenizer, "names", None) or next(iter(getattr(tokenizer, "embodiments", {}).values()), None)
        if names:
            return ContinuousAction(tuple(0.0 for _ in names), tuple(names))
        return Wait()

    def answer_ids(self, action: Action, llm_tokenizer: Any, end_id: int) -> list[int]:
        """The answer's token ids for ``action``: through the domain's tokenizer, then end-of-turn
        (what training teaches and what ``Agent.score`` scores)."""
        tokenizer = self.action_tokenizer
        if isinstance(tokenizer, CodeTokenizer):
            ids = tokenizer.encode_ids(action)
        else:
            ids = llm_tokenizer(tokenizer.encode(action), add_special_tokens=False)["input_ids"]
        return list(ids) + [end_id]

    # -- distribution ----------------------------------------------------------------------
    def distribution(self, logits: torch.Tensor, answers: Sequence[Sequence[int]], grammar: Any) -> TokenSequence:
        """The answers' distribution from the model's ``logits`` ``(B, T, V)`` at their steps
        (``logits[:, t]`` predicts answer token ``t``), the grammar replayed along each answer for
        its masks."""
        from ..agent.constraints import RowState

        allowed = torch.zeros(logits.shape, dtype=torch.bool)
        for row, ids in enumerate(answers):
            state = RowState(grammar)
            for t, token in enumerate(ids):
                mask = grammar.allowed(state.text, state.count)[: logits.shape[-1]]
                allowed[row, t, : mask.numel()] = mask
                state.write(int(token))
        return TokenSequence(logits, allowed.to(logits.device), [len(ids) for ids in answers])

    def describe(self, action: Action) -> str:
        return format_action(action)


class PointerAnswer(TokenAnswer):
    """``output: pointer``: a ``gui_location`` answer whose ``<loc_i>`` cells an image pointer scores
    over the screenshot's patches (``models.pointer``). The pointer lives in the model and only
    changes the logits, so acting, decoding and the distribution are the token answer's."""

    output: ClassVar[str] = "pointer"

    def check(self) -> None:
        from ..actions.tokenizers.gui_location import GuiLocationTokenizer

        if not isinstance(self.action_tokenizer, GuiLocationTokenizer):
            raise ValueError(f"the image pointer scores <loc_i> cells, and the {type(self.action_tokenizer).__name__} "
                             "has none (action_tokenizer: {name: gui_location})")

    def model_part(self, llm_tokenizer: Any) -> dict[str, Any]:
        """The pointer's cells: the ``<loc_i>`` token ids of the grid."""
        cells = [f"<loc_{i}>" for i in range(self.action_tokenizer.grid**2)]
        return {"pointer": {"loc_token_ids": [int(i) for i in llm_tokenizer.convert_tokens_to_ids(cells)],
                            "grid": self.action_tokenizer.grid}}
