"""Action-space adapters: one per way of turning the model's output into a domain's action.

A domain's block (``spec.DomainConfig``) names its adapter by ``output``; each adapter, one
module here, gives what training, acting and online RL need of it (``base.ActionAdapter``):

==========================  =============================================================
``tokens`` (``tokens``)     the answer tokens under the tokenizer's grammar
``pointer`` (``tokens``)    the same, ``<loc_i>`` cells scored by an image pointer
``regression_head``         an MLP -> a normalised motion; a squashed Gaussian as a policy
``classification_head``     an MLP -> logits over the discrete actions; a categorical
==========================  =============================================================

``distributions`` holds their policies' distributions (``sample``, ``mode``, ``log_prob``,
``entropy``).
"""

from __future__ import annotations

from typing import Any

from .base import ActionAdapter, ActRecord, Decoded
from .spec import OUTPUTS, DomainConfig


def adapter_class(output: str) -> type[ActionAdapter]:
    """The adapter class of a block's ``output``."""
    if output in ("tokens", "pointer"):
        from .tokens import PointerAnswer, TokenAnswer

        return TokenAnswer if output == "tokens" else PointerAnswer
    if output == "regression_head":
        from .regression_head import RegressionHeadAdapter

        return RegressionHeadAdapter
    if output == "classification_head":
        from .classification_head import ClassificationHeadAdapter

        return ClassificationHeadAdapter
    raise ValueError(f"unknown output {output!r}; known: {', '.join(OUTPUTS)}")


def build_adapter(output: str, domain: str, action_tokenizer: Any) -> ActionAdapter:
    return adapter_class(output)(domain, action_tokenizer)


__all__ = ["OUTPUTS", "ActRecord", "ActionAdapter", "Decoded", "DomainConfig", "adapter_class", "build_adapter"]
