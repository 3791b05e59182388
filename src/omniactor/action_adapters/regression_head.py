"""``output: regression_head``: continuous motions from an MLP on the final hidden state.

Trained with MSE between ``tanh(head)`` and the normalised action (the domain tokenizer's
normaliser, clipped to ``[-1, 1]``). As a policy it is a ``SquashedGaussian``: the head's
pre-``tanh`` output is the mean, a learned state-independent ``log_std`` per dimension the
spread (``models.adapters.RegressionHead.log_std``; SFT leaves it at its start value). The
mode, ``tanh(mean)``, is what acting takes unless the agent samples.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from ..actions import Action, ContinuousAction
from .distributions import SquashedGaussian
from .heads import HeadAdapter

#: the encoded sample's normalised continuous action ``(1, D)``, the target of a regression head
ACTION_TARGET = "action_target"


class RegressionHeadAdapter(HeadAdapter):
    output: ClassVar[str] = "regression_head"
    target_key: ClassVar[str] = ACTION_TARGET

    loss_name: ClassVar[str] = "head_mse"

    @property
    def width(self) -> int:
        return len(self.action_tokenizer.names)

    def check(self) -> None:
        if not hasattr(self.action_tokenizer, "normalizer") or not getattr(self.action_tokenizer, "names", None):
            raise ValueError(f"a regression head needs continuous actions of one width (uniform, vq), and the "
                             f"{type(self.action_tokenizer).__name__} has none")

    def model_part(self, llm_tokenizer: Any) -> dict[str, Any]:
        return {"regression_dims": {self.domain: self.width}}

    def action_target(self, action: Action) -> torch.Tensor:
        """The action in ``[-1, 1]`` per dimension, by the domain tokenizer's normaliser."""
        from ..actions.tokenizers.continuous_common import to_unit

        values = np.clip(to_unit(action.as_array(), self.action_tokenizer.normalizer), -1.0, 1.0)
        return torch.tensor([values.tolist()], dtype=torch.float32)

    def distribution(self, model: Any, final_states: torch.Tensor, state: torch.Tensor | None,
                     temperature: float = 1.0) -> SquashedGaussian:
        """The head's Gaussian policy (its spread is learned, not set by ``temperature``)."""
        head = self.head(model)
        mean = head.raw(self.head_inputs(model, final_states, state))
        return SquashedGaussian(mean, head.log_std)

    def to_action(self, unit: torch.Tensor) -> Action:
        """A normalised ``[-1, 1]`` value ``(D,)`` as the domain's motion."""
        from ..actions.tokenizers.continuous_common import from_unit

        values = from_unit(unit.float().cpu().numpy(), self.action_tokenizer.normalizer)
        return ContinuousAction(tuple(float(v) for v in values), tuple(self.action_tokenizer.names))

    def from_action(self, action: Action) -> torch.Tensor:
        """The motion as the normalised value ``(D,)`` the distribution scores."""
        from ..actions.tokenizers.continuous_common import to_unit

        return torch.tensor(to_unit(action.as_array(), self.action_tokenizer.normalizer), dtype=torch.float32)
