"""The protocol every action adapter follows, and the record of one act.

An adapter is one domain's way from the model's output to its action. Two kinds:

- **answers** (``writes_answer = True``: ``tokens``, ``pointer``): the model writes the action
  as tokens under the tokenizer's grammar. The Agent generates all such rows of a batch in
  one ``generate`` call; the adapter gives the grammar, decodes the ids and, for RL, the
  ``TokenSequence`` distribution of recorded answers.
- **heads** (``writes_answer = False``: ``regression_head``, ``classification_head``): an MLP
  on the final hidden state at the answer position (and the standardised state) gives the
  action's distribution. The Agent runs one forward pass over all such rows; the adapter
  turns the hidden states into a distribution, and a value of it into the typed action.
  Training adds the head's loss (``head_loss``) on the target ``head_target`` gives.

``Decoded`` is one act's result: the typed action, its text, and what RL needs to score the
same action again (``ActRecord``: the prompt's token ids and model inputs, the answer's ids or
the head's value, and its log-probability under the distribution the act drew from).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..actions import Action


@dataclass
class ActRecord:
    """Token in, token out: what one act saw and produced, enough to score it again without the
    chat template (``Agent.score``).

    ``inputs``: this row's model inputs, unpadded (``input_ids``, ``attention_mask``, the image
    tensors); ``state``: its state input row (or None). For an answer: ``ids`` the generated ids
    (end-of-turn included) and ``step_log_probs`` each one's log-probability under the
    constraint's mask at temperature 1. For a head: ``value`` the head's choice (a class index,
    or the normalised action in ``[-1, 1]``). ``log_prob``: the act's total log-probability."""

    domain: str
    inputs: dict[str, torch.Tensor]
    state: torch.Tensor | None = None
    ids: list[int] = field(default_factory=list)
    step_log_probs: list[float] = field(default_factory=list)
    value: torch.Tensor | None = None
    log_prob: float = 0.0


@dataclass
class Decoded:
    """One answer: the action, the raw text and whether it decoded without the fallback."""

    action: Action
    text: str
    valid: bool
    error: str | None = None
    record: ActRecord | None = None


class ActionAdapter:
    """One domain's adapter (see the module docstring); built by ``action_adapters.build_adapter``."""

    #: the block's ``output`` this adapter implements
    output: ClassVar[str]
    #: True: the model writes the action as an answer (generation); False: a head reads the final state
    writes_answer: ClassVar[bool]
    #: the key of the encoded sample's head target (heads only)
    target_key: ClassVar[str | None] = None

    def __init__(self, domain: str, action_tokenizer: Any):
        self.domain = domain
        self.action_tokenizer = action_tokenizer

    # -- building --------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse a fitted tokenizer this adapter cannot work with (``ValueError`` saying why)."""

    def restrict(self, actions: Any) -> None:
        """Let the policy take only ``actions`` (names of the domain's discrete actions); the others get
        probability 0 when it acts and when RL scores its acts. ``None``: the whole action set."""
        if actions is not None:
            raise ValueError(f"domain {self.domain!r}: only a classification head's policy can be restricted to "
                             f"some of its actions, and this domain answers by its {self.output} adapter")

    def model_part(self, llm_tokenizer: Any) -> dict[str, Any]:
        """What the model needs for this adapter, as ``models.chat.add_adapters`` keyword arguments
        (a head's width, the image pointer's cells); ``{}`` for none."""
        return {}

    # -- training ------------------------------------------------------------------------
    #: the metric name of the head's loss (``loss/<name>/<domain>``)
    loss_name: ClassVar[str] = ""

    def head_target(self, sample: Any) -> torch.Tensor | None:
        """The head's training target for one record (None for answers)."""
        return None

    def head_loss(self, model: Any, final_states: torch.Tensor, state: torch.Tensor | None,
                  target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"the {self.output} adapter has no head")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.domain!r})"
