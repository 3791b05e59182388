"""Action-space adapters beside the language head, and the state-vector input.

From "Grounding MLLMs in Actions": instead of emitting action tokens through the LM
head, a model can predict actions with a dedicated head on its final hidden state:

- ``RegressionHead`` (continuous "Pred"): an MLP -> ``tanh`` -> D values in ``[-1, 1]``
  (normalised actions), trained with MSE;
- ``ClassificationHead`` (discrete "Pred"): an MLP -> logits over the action set,
  trained with cross-entropy.

Both read the final hidden state of the last prompt token. Either may also read the
standardised state vector beside it (``AdapterConfig.regression_state``, for both kinds): a
skip around the language model, so the head can map the state to an action directly while
the model supplies the task (``predict_action``).

``StateProjector`` feeds a low-dimensional state vector (proprioception, object poses,
Meta-World's 39-D observation) into the sequence: the input embedding of each ``<state>``
placeholder token is replaced by ``MLP(state)``. It hooks the input embedding layer, so it
works for any family and for generation (the placeholder sits in the prompt).

Adapters attach to a model with ``attach_adapters`` (recorded in the model config under
``omniactor_adapters`` so ``load_pretrained`` rebuilds them before loading weights).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

ADAPTERS_KEY = "omniactor_adapters"


def last_token_states(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """``(B, T, D)`` -> ``(B, D)``: the state of each row's last attended token (right padding)."""
    if attention_mask is None:
        return hidden_states[:, -1]
    last = attention_mask.long().sum(dim=1) - 1
    return hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), last.clamp(min=0)]


class _ActionHead(nn.Module):
    """An MLP on the final hidden state ``(B, H)``, and the standardised state ``(B, S)`` beside
    it when ``state_dim`` (``layers`` linear layers, GELU between)."""

    def __init__(self, hidden_size: int, outputs: int, width: int = 256, layers: int = 2, state_dim: int = 0):
        super().__init__()
        self.state_dim = state_dim
        blocks: list[nn.Module] = []
        size = hidden_size + state_dim
        for _ in range(layers - 1):
            blocks += [nn.Linear(size, width), nn.GELU()]
            size = width
        blocks.append(nn.Linear(size, outputs))
        self.net = nn.Sequential(*blocks)

    def raw(self, states: torch.Tensor) -> torch.Tensor:
        return self.net(states.to(self.net[0].weight.dtype))


#: the regression head's starting spread as a policy: std 0.1 in the normalised [-1, 1] units
INITIAL_LOG_STD = math.log(0.1)


class RegressionHead(_ActionHead):
    """-> normalised continuous action ``(B, D)`` in ``[-1, 1]``; trained with MSE.

    ``log_std`` ``(D,)`` is the spread of the head as a Gaussian policy (``action_adapters.
    distributions.SquashedGaussian``): state-independent and learned by RL; SFT leaves it at
    ``INITIAL_LOG_STD`` (a checkpoint written before it existed loads with that value)."""

    def __init__(self, hidden_size: int, outputs: int, width: int = 256, layers: int = 2, state_dim: int = 0):
        super().__init__(hidden_size, outputs, width, layers, state_dim)
        self.log_std = nn.Parameter(torch.full((outputs,), INITIAL_LOG_STD))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.raw(states))

    @staticmethod
    def loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(predicted.float(), target.float())


class ClassificationHead(_ActionHead):
    """-> logits ``(B, N)`` over a domain's ``N`` discrete actions; trained with cross-entropy."""

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.raw(states)

    @staticmethod
    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), target.long().reshape(-1))


class ValueHead(_ActionHead):
    """PPO's critic: the same MLP on the final hidden state at the answer position (the token
    before the first action token), and the state beside it, giving one value per row."""

    def __init__(self, hidden_size: int, width: int = 256, layers: int = 2, state_dim: int = 0):
        super().__init__(hidden_size, 1, width, layers, state_dim)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """``(B, H [+ S])`` -> ``(B,)`` values (float32)."""
        return self.raw(states).float().squeeze(-1)


class StateProjector(nn.Module):
    """State vector ``(B, S)`` -> one embedding ``(B, H)`` per ``<state>`` placeholder token.

    The state is standardised first with the training data's per-dimension mean and
    standard deviation (buffers, saved with the weights): raw simulator states vary by a
    few centimetres around fixed offsets, and unscaled they reach the network as near
    constants (a tiny model trained on Meta-World ignored its raw state entirely).
    """

    def __init__(self, state_dim: int, hidden_size: int, width: int = 256):
        super().__init__()
        self.state_dim = state_dim
        self.net = nn.Sequential(nn.Linear(state_dim, width), nn.GELU(), nn.Linear(width, hidden_size))
        self.register_buffer("mean", torch.zeros(state_dim))
        self.register_buffer("scale", torch.ones(state_dim))

    def set_statistics(self, mean: Any, std: Any) -> None:
        """Standardise with ``mean`` / ``std`` (dimensions that never vary keep scale 1)."""
        std = torch.as_tensor(std, dtype=torch.float32)
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.scale.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def standardise(self, state: torch.Tensor) -> torch.Tensor:
        return (state.float() - self.mean) / self.scale

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardise(state).to(self.net[0].weight.dtype))


@dataclass(frozen=True)
class AdapterConfig:
    """Which adapters a model carries (all optional)."""

    regression_dims: dict[str, int] | None = None
    """per domain: width of a continuous regression head (e.g. {"embodied": 7})"""
    classification_sizes: dict[str, int] | None = None
    """per domain: number of actions of a discrete classification head (e.g. {"discrete": 7})"""
    state_dim: int = 0
    """width of the state vector fed through the StateProjector (0: no state input)"""
    state_token_id: int | None = None
    """id of the ``<state>`` placeholder token whose embedding the projection replaces"""
    regression_state: bool = False
    """the action heads (regression and classification) also read the standardised state vector
    (needs ``state_dim``)"""
    regression_layers: int = 2
    """layers of each action head's MLP"""
    pointer: dict[str, Any] | None = None
    """an image pointer scoring a GUI domain's ``<loc_i>`` tokens (``models.pointer.PointerConfig``)"""
    copy: dict[str, Any] | None = None
    """copying from the prompt (``models.copy.CopyConfig``)"""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _StateInput:
    """The embedding hook: rows of ``<state>`` tokens get ``projector(state)``."""

    def __init__(self, model: nn.Module, token_id: int):
        self.model, self.token_id = model, token_id
        self.state: torch.Tensor | None = None

    def __call__(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        (input_ids,) = inputs[:1]
        where = input_ids == self.token_id
        if not bool(where.any()):
            return output
        if self.state is None:
            raise ValueError("the prompt has <state> tokens but no state= was given")
        counts = where.sum(dim=1)
        if bool((counts > 1).any()):
            raise ValueError("each sample may hold at most one <state> token")
        rows = counts.nonzero(as_tuple=True)[0]
        state = self.state
        if state.shape[0] != input_ids.shape[0] and input_ids.shape[0] % state.shape[0] == 0:
            state = state.repeat_interleave(input_ids.shape[0] // state.shape[0], dim=0)
        projected = self.model.omniactor_adapters["state"](state[rows]).to(output.dtype)
        output = output.clone()
        output[where] = projected
        return output


def attach_adapters(model: nn.Module, config: AdapterConfig) -> nn.Module:
    """Add the adapters of ``config`` to ``model`` (in place) and record them in its config."""
    hidden = model.config.get_text_config().hidden_size
    adapters = nn.ModuleDict()
    if config.regression_state and not config.state_dim:
        raise ValueError("regression_state needs a state input (state_dim > 0)")
    for domain, dim in (config.regression_dims or {}).items():
        adapters[f"regression_{domain}"] = RegressionHead(
            hidden, dim, layers=config.regression_layers, state_dim=config.state_dim if config.regression_state else 0)
    for domain, size in (config.classification_sizes or {}).items():
        adapters[f"classification_{domain}"] = ClassificationHead(
            hidden, size, layers=config.regression_layers, state_dim=config.state_dim if config.regression_state else 0)
    if config.state_dim:
        if config.state_token_id is None:
            raise ValueError("state input needs state_token_id (the id of the <state> placeholder token)")
        adapters["state"] = StateProjector(config.state_dim, hidden)
        hook = _StateInput(model, config.state_token_id)
        model.get_input_embeddings().register_forward_hook(hook)
        model.omniactor_state_input = hook
    if config.pointer:
        from .pointer import ImagePointer, PointerConfig, attach_pointer, vision_feature_size

        adapters["pointer"] = ImagePointer(hidden, vision_feature_size(model), PointerConfig(**config.pointer))
        attach_pointer(model, adapters["pointer"])
    if config.copy:  # after the pointer: the copy mixes the final logits
        from .copy import CopyConfig, PromptCopy, attach_copy

        adapters["copy"] = PromptCopy(hidden, CopyConfig(**config.copy))
        attach_copy(model, adapters["copy"])
    model.omniactor_adapters = adapters
    setattr(model.config, ADAPTERS_KEY, config.to_json())
    return model


def adapter_config(model_or_config: Any) -> AdapterConfig | None:
    config = getattr(model_or_config, "config", model_or_config)
    data = getattr(config, ADAPTERS_KEY, None)
    return AdapterConfig(**data) if data else None


def model_adapters(model: nn.Module) -> nn.ModuleDict:
    """The adapters of ``model``, found through wrappers (DDP, PEFT)."""
    found = next((m.omniactor_adapters for m in model.modules() if hasattr(m, "omniactor_adapters")), None)
    if found is None:
        raise ValueError("this model has no omniactor adapters (attach_adapters)")
    return found


#: the adapters' keys of the action heads start with these (``regression_embodied``, ...)
HEAD_PREFIXES = ("regression_", "classification_")


def action_head(model: nn.Module, domain: str) -> RegressionHead | ClassificationHead:
    """``domain``'s action head (regression or classification)."""
    adapters = model_adapters(model)
    for key in (prefix + domain for prefix in HEAD_PREFIXES):
        if key in adapters:
            return adapters[key]
    raise ValueError(f"the model has no action head for domain {domain!r}")


def predict_action(model: nn.Module, domain: str, final_states: torch.Tensor,
                   state: torch.Tensor | None = None) -> torch.Tensor:
    """``domain``'s action head on ``final_states`` ``(B, H)`` (the last prompt token's final
    hidden state) and, for a head that reads it, the raw state ``(B, S)``: a regression head's
    ``(B, D)`` in ``[-1, 1]``, a classification head's logits ``(B, N)``."""
    return action_head(model, domain)(head_inputs(model, domain, final_states, state))


def head_inputs(model: nn.Module, domain: str, final_states: torch.Tensor,
                state: torch.Tensor | None = None) -> torch.Tensor:
    """What ``domain``'s action head reads: ``final_states`` ``(B, H)``, and beside them the
    standardised state ``(B, S)`` for a head that reads it."""
    head = action_head(model, domain)
    if not head.state_dim:
        return final_states
    if state is None:
        raise ValueError(f"the action head of {domain!r} reads the state vector; none was given")
    standardised = model_adapters(model)["state"].standardise(state.to(final_states.device))
    return torch.cat([final_states.float(), standardised], dim=-1)


def set_state(model: nn.Module, state: torch.Tensor | None) -> None:
    """The state vectors ``(B, S)`` of the next forward calls (``None`` to clear); works through
    wrappers (DDP, PEFT), which may bypass the forward hook that reads ``state=``."""
    hook = next((m.omniactor_state_input for m in model.modules() if hasattr(m, "omniactor_state_input")), None)
    if hook is None:
        raise ValueError("this model has no state input (attach_adapters with state_dim > 0)")
    hook.state = state
