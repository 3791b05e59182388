"""``output: classification_head``: one of a discrete action set from an MLP on the final hidden state.

Trained with cross-entropy against the action's index in the domain's action set. As a
policy it is a ``Categorical`` over the head's logits (at the agent's temperature); greedy
acting takes the highest logit, sampled acting draws from the whole set, or from the actions
the policy is restricted to (``restrict``: the others' logits are ``-inf``, at act and score
time alike; invalid-action masking, Huang & Ontanon 2022).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..actions import Action
from .distributions import Categorical
from .heads import HeadAdapter

#: the encoded sample's discrete action as its index in the domain's action set ``(1,)``
ACTION_CLASS = "action_class"


class ClassificationHeadAdapter(HeadAdapter):
    output: ClassVar[str] = "classification_head"
    target_key: ClassVar[str] = ACTION_CLASS

    loss_name: ClassVar[str] = "head_ce"

    #: ``(N,)`` True where the policy may act (None: everywhere)
    allowed: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return len(self.action_tokenizer.space.names)

    def check(self) -> None:
        from ..actions import DiscreteSpace

        if not isinstance(getattr(self.action_tokenizer, "space", None), DiscreteSpace):
            raise ValueError(f"a classification head needs a discrete action set (discrete_semlang, discrete_lang, "
                             f"discrete_token), and the {type(self.action_tokenizer).__name__} has none")

    def restrict(self, actions: Any) -> None:
        if actions is None:
            self.allowed = None
            return
        names = self.action_tokenizer.space.names
        unknown = [a for a in actions if a not in names]
        if unknown or not actions:
            raise ValueError(f"domain {self.domain!r}: actions {list(actions)} must be a non-empty list of its "
                             f"action set {list(names)}" + (f"; unknown: {unknown}" if unknown else ""))
        self.allowed = torch.tensor([name in actions for name in names])

    def model_part(self, llm_tokenizer: Any) -> dict[str, Any]:
        return {"classification_sizes": {self.domain: self.size}}

    def action_target(self, action: Action) -> torch.Tensor:
        return torch.tensor([self.action_tokenizer.space.index(action)])

    def distribution(self, model: Any, final_states: torch.Tensor, state: torch.Tensor | None,
                     temperature: float = 1.0) -> Categorical:
        logits = self.head(model).raw(self.head_inputs(model, final_states, state))
        if self.allowed is not None:
            logits = logits.masked_fill(~self.allowed.to(logits.device), float("-inf"))
        return Categorical(logits, temperature)

    def to_action(self, index: torch.Tensor) -> Action:
        return self.action_tokenizer.space.action(int(index))

    def from_action(self, action: Action) -> torch.Tensor:
        return torch.tensor(self.action_tokenizer.space.index(action))
