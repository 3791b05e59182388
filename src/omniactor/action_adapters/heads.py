"""What the two action heads share: the head's input at the answer position.

A head reads the final hidden state of the last prompt token (the position the answer is
predicted from) and, when the model has a state input, the standardised state beside it
(``models.adapters.predict_action``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from .base import ActionAdapter


def prompt_end_states(hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(B, T, H)`` -> ``(B, H)``: each row's final hidden state at its last prompt token, the
    position the answer is predicted from (right before the first label)."""
    first_label = (labels != -100).int().argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), (first_label - 1).clamp(min=0)]


class HeadAdapter(ActionAdapter):
    """An action head on the final hidden state (``models.adapters``)."""

    writes_answer: ClassVar[bool] = False

    def head(self, model: Any) -> Any:
        from ..models.adapters import action_head

        return action_head(model, self.domain)

    def head_inputs(self, model: Any, final_states: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        """The head's input ``(B, H [+ S])``: the final states, and the standardised state for a head
        that reads it."""
        from ..models.adapters import head_inputs

        return head_inputs(model, self.domain, final_states, state)

    def head_target(self, sample: Any) -> torch.Tensor:
        return self.action_target(sample.action)

    def action_target(self, action: Any) -> torch.Tensor:
        """The head's training target ``(1, ...)`` for ``action``."""
        raise NotImplementedError

    def head_loss(self, model: Any, final_states: torch.Tensor, state: torch.Tensor | None,
                  target: torch.Tensor) -> torch.Tensor:
        from ..models.adapters import predict_action

        predicted = predict_action(model, self.domain, final_states, state)
        return self.head(model).loss(predicted, target.to(predicted.device))
