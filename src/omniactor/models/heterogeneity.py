"""Turn a dense Hugging Face vision-language model into an OmniActor variant, in place.

Variants (``HeterogeneityConfig.variant``), all built from one dense model:

- ``dense``: unchanged (the paper's GUI-only, EA-only and EA&GUI runs); domain ids are
  accepted and ignored, so the same training code runs every variant.
- ``omniactor``: decoder layers ``0..K-1`` shared; in layers ``K..L-1`` every domain gets its
  own attention projections, FFN and norms; each domain its own final norm and output head.
- ``hard``: the same with ``K = 0`` (every layer and the head separated).
- ``router``: in layers ``K..L-1`` a learned top-1 router per layer sends each token to a
  domain expert; load-balancing losses are collected for the trainer (``aux_loss``).

New domain parameters start as exact copies of the dense ones (upcycling), so right after
conversion every variant computes exactly what the dense model computes, for every domain.

How a layer is separated, family-agnostically: every child module of a decoder layer that
holds parameters (norms, MLP, ...) is wrapped in ``DomainRouted``; the attention module is
kept and its own children (q/k/v/o projections, q/k norms) are wrapped instead, so the
attention computation, the KV cache and the masks stay the host model's.

Routing: call the model with ``domain_ids=`` (``(B,)`` tensor or a list of domain names) or
``domain=`` (one name for the whole batch), or wrap calls in ``with use_domains(model, ...)``
(needed for ``generate``, which refuses unknown keyword arguments).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from .routing import DomainRouted, RoutingContext, RoutingError, TokenRouter

Variant = Literal["dense", "omniactor", "hard", "router"]
VARIANTS: tuple[str, ...] = ("dense", "omniactor", "hard", "router")
DEFAULT_DOMAINS: tuple[str, ...] = ("gui", "embodied")
CONFIG_KEY = "omniactor"  # the heterogeneity config is stored under this key of the HF config


@dataclass(frozen=True)
class HeterogeneityConfig:
    """Which variant to build and where to split."""

    variant: str = "omniactor"
    """dense | omniactor | hard | router"""
    shared_layers: int = 8
    """K: decoder layers 0..K-1 are shared by all domains (ignored by hard, which uses 0)"""
    domains: tuple[str, ...] = DEFAULT_DOMAINS
    """domain names, in the order of their ids"""
    separate_heads: bool | None = None
    """a final norm and output head per domain (default: yes for omniactor/hard, no for router)"""

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", tuple(self.domains))
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r} is not one of {', '.join(VARIANTS)}")
        if not self.domains or len(set(self.domains)) != len(self.domains):
            raise ValueError(f"domains must be distinct and non-empty, got {self.domains}")
        if self.shared_layers < 0:
            raise ValueError(f"shared_layers must be >= 0, got {self.shared_layers}")

    @property
    def split_at(self) -> int:
        return 0 if self.variant == "hard" else self.shared_layers

    @property
    def heads_separated(self) -> bool:
        if self.variant == "dense":
            return False
        return self.separate_heads if self.separate_heads is not None else self.variant != "router"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["domains"] = list(self.domains)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HeterogeneityConfig:
        return cls(**{k: (tuple(v) if k == "domains" else v) for k, v in data.items()})


@dataclass
class ModelLayout:
    """Where the parts the conversion touches live in a host model."""

    layers_path: str
    layers: nn.ModuleList
    norm_path: str | None
    head_path: str = "lm_head"
    extras: dict[str, Any] = field(default_factory=dict)


def _get(root: nn.Module, path: str) -> Any:
    for part in path.split("."):
        root = getattr(root, part)
    return root


def _set(root: nn.Module, path: str, value: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(_get(root, parent) if parent else root, name, value)


def find_layout(model: nn.Module) -> ModelLayout:
    """Locate the decoder layers, the final norm and the head of a supported HF VLM."""
    from .presets import family_of

    spec = family_of(model)  # raises with the list of supported families
    layers = _get(model, spec.layers_path)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise ValueError(f"{type(model).__name__}: {spec.layers_path} holds no decoder layers")
    return ModelLayout(spec.layers_path, layers, spec.final_norm_path, spec.head_path)


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _route(module: nn.Module, context: RoutingContext, per_token: bool = False) -> DomainRouted:
    """Upcycle: the first domain keeps the module, the others get exact copies."""
    experts = {d: (module if i == 0 else copy.deepcopy(module)) for i, d in enumerate(context.domains)}
    return DomainRouted(experts, context, per_token=per_token)


def _separate_layer(layer: nn.Module, context: RoutingContext, per_token: bool) -> None:
    for name, child in list(layer.named_children()):
        if not _has_parameters(child):
            continue
        if name in ("self_attn", "attn", "self_attention"):
            for sub_name, sub in list(child.named_children()):
                if _has_parameters(sub):
                    setattr(child, sub_name, _route(sub, context, per_token))
        else:
            routed = _route(child, context, per_token)
            routed.scale_output = per_token and name == "mlp"  # the router's straight-through gate
            setattr(layer, name, routed)


def _router_pre_hook(layer: nn.Module, args: tuple, kwargs: dict) -> None:
    hidden = args[0] if args else kwargs["hidden_states"]
    layer.omniactor_context.gate_scale = layer.omniactor_router(hidden)


def _domain_pre_hook(model: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Take ``domain_ids`` / ``domain`` (and ``state``) out of the forward call into the model's context."""
    context: RoutingContext = model.omniactor_context
    state = kwargs.pop("state", None)
    if state is not None:  # the state vectors of a model with a state input (adapters.py)
        from .adapters import set_state

        set_state(model, state)
    domain_ids = kwargs.pop("domain_ids", None)
    domain = kwargs.pop("domain", None)
    if domain_ids is not None and domain is not None:
        raise RoutingError("pass either domain_ids= or domain=, not both")
    if domain is not None:
        batch = _batch_size(args, kwargs)
        domain_ids = [domain] * batch
    if domain_ids is not None:
        device = next(model.parameters()).device
        context.domain_ids = context.ids_for(domain_ids, device)
    context.aux_losses.clear()
    return args, kwargs


def _batch_size(args: tuple, kwargs: dict) -> int:
    for key in ("input_ids", "inputs_embeds"):
        if kwargs.get(key) is not None:
            return kwargs[key].shape[0]
    if args and isinstance(args[0], torch.Tensor):
        return args[0].shape[0]
    raise RoutingError("cannot infer the batch size to apply domain=...; pass domain_ids=")


def convert(model: nn.Module, config: HeterogeneityConfig) -> nn.Module:
    """Make ``model`` the ``config.variant`` of itself, in place; returns it."""
    if getattr(model, "omniactor_config", None) is not None:
        raise ValueError("model is already converted")
    layout = find_layout(model)
    num_layers = len(layout.layers)
    if config.variant in ("omniactor", "router") and not 0 <= config.shared_layers <= num_layers:
        raise ValueError(f"shared_layers={config.shared_layers} but the model has {num_layers} decoder layers")
    context = RoutingContext(config.domains)
    model.omniactor_context = context
    model.omniactor_config = config
    model.omniactor_layout = layout
    model.register_forward_pre_hook(_domain_pre_hook, with_kwargs=True)
    if config.variant == "dense":
        _record(model, config)
        return model

    per_token = config.variant == "router"
    for index in range(config.split_at, num_layers):
        layer = layout.layers[index]
        _separate_layer(layer, context, per_token)
        if per_token:
            hidden = model.config.get_text_config().hidden_size
            layer.omniactor_router = TokenRouter(hidden, context)
            object.__setattr__(layer, "omniactor_context", context)
            layer.register_forward_pre_hook(_router_pre_hook, with_kwargs=True)
    if config.heads_separated:
        if layout.norm_path is not None:
            _set(model, layout.norm_path, _route(_get(model, layout.norm_path), context))
        _untie_head(model, layout.head_path)
        _set(model, layout.head_path, _route(_get(model, layout.head_path), context))
    _record(model, config)
    return model


def _untie_head(model: nn.Module, head_path: str) -> None:
    """Give the head its own weight: per-domain heads cannot stay tied to the embeddings."""
    head = _get(model, head_path)
    embed = model.get_input_embeddings()
    if head.weight is embed.weight:
        head.weight = nn.Parameter(embed.weight.detach().clone())
    for cfg in (model.config, model.config.get_text_config()):
        if getattr(cfg, "tie_word_embeddings", False):
            cfg.tie_word_embeddings = False
    model._tied_weights_keys = {}


def _record(model: nn.Module, config: HeterogeneityConfig) -> None:
    setattr(model.config, CONFIG_KEY, config.to_json())


def routing_context(model: nn.Module) -> RoutingContext:
    """The routing context of a converted model, also through DDP / PEFT / DeepSpeed wrappers."""
    for module in model.modules():
        context = getattr(module, "omniactor_context", None)
        if isinstance(context, RoutingContext):
            return context
    raise RoutingError("this model was not converted (omniactor.models.heterogeneity.convert)")


def set_domains(model: nn.Module, domains: Sequence[str] | torch.Tensor) -> None:
    """Route the next forward calls by ``domains`` (works where wrappers bypass forward hooks, e.g. PEFT)."""
    context = routing_context(model)
    device = next(model.parameters()).device
    context.domain_ids = context.ids_for(domains, device)
    context.aux_losses.clear()


def aux_loss(model: nn.Module) -> torch.Tensor | None:
    """Mean load-balancing loss of the routers in the last forward pass (router variant)."""
    losses = routing_context(model).aux_losses
    return torch.stack(losses).mean() if losses else None


@contextmanager
def use_domains(model: nn.Module, domains: Sequence[str] | torch.Tensor | str) -> Iterator[None]:
    """Route every forward call inside the block (``generate`` included) by ``domains``."""
    context: RoutingContext = model.omniactor_context
    if isinstance(domains, str):
        domains = [domains]
    previous = context.domain_ids
    context.domain_ids = context.ids_for(domains, next(model.parameters()).device)
    try:
        yield
    finally:
        context.domain_ids = previous


def heterogeneity_config(model: nn.Module) -> HeterogeneityConfig | None:
    """The variant a model (or its HF config) was converted to, if any."""
    config = getattr(model, "config", model)
    data = getattr(config, CONFIG_KEY, None)
    if data is None:
        return None
    return HeterogeneityConfig.from_json(json.loads(data) if isinstance(data, str) else data)


def domain_parameters(model: nn.Module, domain: str) -> dict[str, nn.Parameter]:
    """Parameters that belong to ``domain`` only (its experts)."""
    marker = f".experts.{domain}."
    return {n: p for n, p in model.named_parameters() if marker in n}


def shared_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Parameters every domain uses (not inside any expert)."""
    return {n: p for n, p in model.named_parameters() if ".experts." not in n}
