"""Copying from the prompt: a pointer-generator output (See et al., 2017) for text the task gives.

GUI tasks often say what to type: 'Enter "Cierra" into the text field', 'search for
"pizza"'. A model trained from scratch on a hundred such demonstrations memorises the names
it saw instead of copying the one it is given (docs/demo.md: it typed "Kasie" for every
task). With a copy distribution over the prompt's tokens, writing the given name is a
matter of pointing at it:

    P(w) = g * softmax(logits)(w) + (1 - g) * sum_{j : x_j = w} softmax_j(<q(h_t), k(h_j)> / sqrt(d))
    g    = sigmoid(w_g . h_t + b_g)

``h_t`` is the final hidden state where the next token is predicted, ``h_j`` those of the
prompt's text tokens (the human turn: before the last ``<|im_start|>``, image and special
tokens excluded). The model's logits become ``log P(w)`` from the answer's turn on (the prompt's
own positions keep the model's logits: no loss is taken there), so the loss, greedy decoding
and the answer constraints see one distribution. Like ``models.pointer``, it hooks the model's forward
and the language model, and keeps the prompt's keys for ``generate``'s decoding steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class CopyConfig:
    """Which prompt tokens may be copied."""

    turn_start_id: int
    """the token that opens a turn (``<|im_start|>``): the prompt ends at the last one"""
    excluded_ids: list[int]
    """tokens never copied (image placeholders, special tokens)"""
    dim: int = 64
    """width of the query and keys"""
    domains: list[str] | None = None
    """the domains whose rows copy (by the model's routing, ``models.heterogeneity``); None: every row"""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class PromptCopy(nn.Module):
    """The copy distribution's weights; ``attach_copy`` wires it in."""

    def __init__(self, hidden_size: int, config: CopyConfig):
        super().__init__()
        self.config = config
        self.query = nn.Linear(hidden_size, config.dim)
        self.key = nn.Linear(hidden_size, config.dim)
        # "copy the token after the one just written": the query also sees the token it stands on,
        # each source key the token before it (an induction head, given rather than learned)
        self.query_token = nn.Linear(hidden_size, config.dim, bias=False)
        self.key_previous = nn.Linear(hidden_size, config.dim, bias=False)
        self.gate = nn.Linear(hidden_size, 1)
        nn.init.constant_(self.gate.bias, 2.0)  # start mostly generating
        self.register_buffer("excluded", torch.tensor(sorted(set(config.excluded_ids)), dtype=torch.long),
                             persistent=False)

    def sources(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` bool: the prompt text tokens that may be copied."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        starts = torch.where(input_ids == self.config.turn_start_id, positions, -1)
        last_start = starts.max(dim=1, keepdim=True).values  # the assistant's turn opens here
        allowed = ~torch.isin(input_ids, self.excluded.to(input_ids.device))
        return allowed & (positions[None] < last_start)

    def keys(self, hidden: torch.Tensor, previous_embeddings: torch.Tensor) -> torch.Tensor:
        """``(B, S, dim)`` source keys from the final states and the embeddings of the tokens before."""
        dtype = self.key.weight.dtype
        return self.key(hidden.to(dtype)) + self.key_previous(previous_embeddings.to(dtype))

    def mix(self, logits: torch.Tensor, hidden: torch.Tensor, token_embeddings: torch.Tensor, keys: torch.Tensor,
            source_ids: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        """``log P(w)`` ``(B, T, V)`` from the model's ``logits``, the queries' states ``hidden`` and
        input token embeddings ``(B, T, H)``, and the prompt's keys ``(B, S, dim)`` / token ids / mask ``(B, S)``."""
        dtype = self.query.weight.dtype
        query = self.query(hidden.to(dtype)) + self.query_token(token_embeddings.to(dtype))
        scores = torch.einsum("btd,bsd->bts", query, keys) / math.sqrt(self.config.dim)
        scores = scores.float().masked_fill(~source_mask[:, None, :], float("-inf"))
        has_source = source_mask.any(dim=1)[:, None, None]
        attention = torch.softmax(torch.where(has_source, scores, torch.zeros_like(scores)), dim=-1)
        copy = torch.zeros(logits.shape, dtype=torch.float32, device=logits.device)
        copy.scatter_add_(2, source_ids[:, None, :].expand(-1, logits.shape[1], -1),
                          attention * source_mask[:, None, :])
        gate = torch.sigmoid(self.gate(hidden.to(dtype)).float())
        gate = torch.where(has_source, gate, torch.ones_like(gate))
        generated = torch.log_softmax(logits.float(), dim=-1) + torch.log(gate)
        copied = torch.log(copy.clamp(min=1e-30)) + torch.log1p(-gate.clamp(max=1 - 1e-6))
        return torch.logaddexp(generated, copied).to(logits.dtype)


class _CopyHooks:
    def __init__(self, copy: PromptCopy, embeddings: nn.Module):
        self.copy, self.embeddings = copy, embeddings
        self.input_ids: torch.Tensor | None = None
        self.hidden: torch.Tensor | None = None
        self.keys: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # kept for decoding steps

    def before_model(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.input_ids = kwargs.get("input_ids", args[0] if args else None)
        self.hidden = None

    def after_language_model(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        self.hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
        ids = self.input_ids
        if ids is not None and bool((ids == self.copy.config.turn_start_id).any()):  # a prompt: new sources
            mask = self.copy.sources(ids)
            previous = torch.nn.functional.pad(ids[:, :-1], (1, 0), value=self.copy.config.turn_start_id)
            self.keys = (self.copy.keys(self.hidden, self._embed(previous)), ids, mask)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        # the weights alone: the embedding's own hooks (the state input) are for the model's input
        return torch.nn.functional.embedding(ids, self.embeddings.weight)

    def after_model(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        logits = getattr(output, "logits", None)
        if logits is None or self.hidden is None or self.keys is None or self.input_ids is None:
            return output
        keys, ids, mask = self.keys
        if keys.shape[0] != logits.shape[0]:
            raise ValueError(f"{logits.shape[0]} rows but prompt keys of {keys.shape[0]}; the copy follows "
                             "one batch from its prompt through its decoding steps")
        hidden = self.hidden[:, -logits.shape[1]:]
        # only the answer's positions need the mixture (training sees whole sequences): from the
        # earliest row's last turn start on, the rest keeps the model's logits
        first = 0
        if logits.shape[1] == ids.shape[1]:
            positions = torch.arange(ids.shape[1], device=ids.device)
            starts = torch.where(ids == self.copy.config.turn_start_id, positions, -1).max(dim=1).values
            first = int(starts.clamp(min=0).min())
        tokens = self._embed(self.input_ids[:, -logits.shape[1]:][:, first:])
        mixed = self.copy.mix(logits[:, first:], hidden[:, first:], tokens, keys, ids, mask)
        rows = self._copying_rows(module, logits.shape[0])
        if rows is not None:  # the other domains' rows keep the model's own logits
            mixed = torch.where(rows[:, None, None], mixed, logits[:, first:])
        output.logits = torch.cat([logits[:, :first], mixed], dim=1) if first else mixed
        self.hidden = None
        return output


    def _copying_rows(self, model: nn.Module, batch_size: int) -> torch.Tensor | None:
        """``(B,)`` bool: the rows of the domains that copy (None: every row copies)."""
        if self.copy.config.domains is None:
            return None
        from .heterogeneity import routing_context

        context = routing_context(model)
        domain_ids = context.rows(batch_size)
        return torch.isin(domain_ids, context.ids_for(self.copy.config.domains, domain_ids.device))


def attach_copy(model: nn.Module, copy: PromptCopy) -> None:
    """Register ``copy``'s hooks on ``model`` (after any hook that rewrites logits, e.g. the pointer)."""
    language_model = next((m for n, m in model.named_modules() if n.endswith("language_model")), None)
    if language_model is None:
        raise ValueError("copying from the prompt needs the model's language_model module")
    hooks = _CopyHooks(copy, model.get_input_embeddings())
    model.register_forward_pre_hook(hooks.before_model, with_kwargs=True)
    language_model.register_forward_hook(hooks.after_language_model, with_kwargs=True)
    model.register_forward_hook(hooks.after_model, with_kwargs=True)
    model.omniactor_copy_hooks = hooks
