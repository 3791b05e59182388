"""Give a model the vocabulary its action tokenizers need.

Two ways, chosen by the action tokenizer's ``VocabularyPlacement``:

- ``new``: add the tokenizer's tokens to the LLM tokenizer (atomic added tokens) and grow
  the input embeddings and the output head(s); new rows start at the **mean** of the
  existing rows, so a new token starts as an "average" token rather than noise.
- ``reuse`` / ``last``: no new rows; the action codes take existing ids (the paper reuses the
  least-frequent ids: ``least_frequent_ids``; OpenVLA the last ids).

Text tokenizers that need tokens (``gui_location``'s ``<loc_i>``) are handled like ``new``.
Resizing works before or after the heterogeneity conversion (per-domain heads all grow).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..actions.tokenizers.base import ActionTokenizer, CodeTokenizer
from .routing import DomainRouted


def _grow_rows(weight: torch.Tensor, new_rows: int) -> torch.Tensor:
    """``weight`` ``(V, D)`` with ``new_rows`` rows appended at the mean of the old rows."""
    mean = weight.detach().float().mean(dim=0, keepdim=True).to(weight.dtype)
    return torch.cat([weight.detach(), mean.expand(new_rows, -1)], dim=0)


def _head_linears(model: nn.Module) -> list[nn.Linear]:
    head = model.get_output_embeddings() if not isinstance(getattr(model, "lm_head", None), DomainRouted) else None
    if head is not None:
        return [head]
    return list(model.lm_head.experts.values())


def resize_vocabulary(model: nn.Module, vocab_size: int) -> None:
    """Grow the input embeddings and every output head to ``vocab_size`` rows (mean-initialised)."""
    embed = model.get_input_embeddings()
    old = embed.weight.shape[0]
    if vocab_size < old:
        raise ValueError(f"vocabulary can only grow here ({old} -> {vocab_size} requested)")
    if vocab_size == old:
        return
    heads = _head_linears(model)
    tied = any(h.weight is embed.weight for h in heads)
    embed.weight = nn.Parameter(_grow_rows(embed.weight, vocab_size - old))
    embed.num_embeddings = vocab_size
    for head in heads:
        if tied and head is heads[0] and len(heads) == 1:
            head.weight = embed.weight
        else:
            head.weight = nn.Parameter(_grow_rows(head.weight, vocab_size - old))
        if head.bias is not None:
            head.bias = nn.Parameter(torch.cat([head.bias.detach(), head.bias.detach().mean().expand(vocab_size - old)]))
        head.out_features = vocab_size
    for config in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        if hasattr(config, "vocab_size"):
            config.vocab_size = vocab_size


def add_action_vocabulary(model: nn.Module, llm_tokenizer: Any, action_tokenizer: ActionTokenizer) -> list[int]:
    """Make ``model`` and ``llm_tokenizer`` hold what ``action_tokenizer`` emits; returns new ids.

    Binds a code tokenizer's placement to the LLM tokenizer, so ``encode_ids`` works after.
    """
    from tokenizers import AddedToken

    strings = action_tokenizer.tokens()
    new_ids: list[int] = []
    if strings:
        missing = [s for s in strings if s not in llm_tokenizer.get_vocab()]
        llm_tokenizer.add_tokens([AddedToken(s, normalized=False, special=False) for s in missing])
        resize_vocabulary(model, max(len(llm_tokenizer), model.get_input_embeddings().weight.shape[0]))
        new_ids = llm_tokenizer.convert_tokens_to_ids(missing)
    if isinstance(action_tokenizer, CodeTokenizer):
        action_tokenizer.placement.bind(llm_tokenizer, action_tokenizer.num_codes)
    return new_ids


def least_frequent_ids(llm_tokenizer: Any, k: int, corpus: Iterable[str] | None = None) -> list[int]:
    """``k`` ordinary token ids that are rarest in ``corpus`` (the paper's reuse of rare ids).

    Special and added tokens are never chosen. Without a corpus, byte-level BPE's merge
    order stands in for frequency (later merges, i.e. higher ids, are rarer). Ties
    (including never-seen tokens) go to the highest ids first.
    """
    special = set(llm_tokenizer.all_special_ids) | set(getattr(llm_tokenizer, "added_tokens_decoder", {}))
    base = len(llm_tokenizer.get_vocab()) - len(getattr(llm_tokenizer, "added_tokens_decoder", {}))
    candidates = [i for i in range(base) if i not in special]
    counts: Counter[int] = Counter()
    if corpus is not None:
        for text in corpus:
            counts.update(llm_tokenizer(text, add_special_tokens=False)["input_ids"])
    ranked = sorted(candidates, key=lambda i: (counts[i], -i))
    if len(ranked) < k:
        raise ValueError(f"the tokenizer has only {len(ranked)} ordinary ids, {k} requested")
    return ranked[:k]
