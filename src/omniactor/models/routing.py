"""Domain routing: one module per domain, chosen per sample (or per token, with a router).

The layer-heterogeneity MoE is built from one small idea: replace a module ``m`` of a
decoder layer (a projection, an MLP, a norm) by ``DomainRouted({"gui": m_gui, "embodied":
m_rob, ...})``. Its forward reads the current batch's routing from a shared
``RoutingContext`` and sends each row (sample) to its domain's module:

- a domain-homogeneous batch calls exactly one module on the whole batch: the same cost
  as the dense model;
- a mixed batch calls each domain's module on its rows and scatters the results back.

Because routing happens inside the projections, attention still runs once over the whole
batch, so the KV cache, masks and position ids of the host model work unchanged.

With a learned router (the paper's "router" variant) the context holds a per-token
assignment ``(B, T)`` for the current layer instead of per-sample domain ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import OmniactorError


class RoutingError(OmniactorError, ValueError):
    """Routing information is missing or does not fit the batch."""


@dataclass
class RoutingContext:
    """The routing of the batch being run, shared by every routed module of one model.

    ``domain_ids``: ``(B,)`` long tensor, the domain of each sample (index into ``domains``);
    setting it also records ``uniform``, the one domain of a domain-homogeneous batch (else
    None), so routed modules choose their expert without a tensor operation per call.
    ``token_assignment``: ``(B, T)`` long tensor set by a layer's router for its modules.
    ``aux_losses``: load-balancing losses the routers produced in this forward pass.
    """

    domains: tuple[str, ...]
    token_assignment: torch.Tensor | None = None
    gate_scale: torch.Tensor | None = None
    aux_losses: list[torch.Tensor] = field(default_factory=list)
    uniform: int | None = field(default=None, init=False)
    _domain_ids: torch.Tensor | None = field(default=None, init=False, repr=False)

    @property
    def domain_ids(self) -> torch.Tensor | None:
        return self._domain_ids

    @domain_ids.setter
    def domain_ids(self, ids: torch.Tensor | None) -> None:
        self._domain_ids = ids
        self.uniform = None
        if ids is not None and ids.numel() and bool((ids == ids[0]).all()):
            self.uniform = int(ids[0])

    def __deepcopy__(self, memo: dict) -> RoutingContext:
        # shared routing state, never copied: wrappers that deep-copy modules (PEFT's
        # modules_to_save, ...) must keep reading the model's one context
        return self

    def domain_index(self, name: str) -> int:
        try:
            return self.domains.index(name)
        except ValueError:
            raise RoutingError(f"unknown domain {name!r}; this model has domains {list(self.domains)}") from None

    def ids_for(self, domains: Sequence[str] | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
        """``(B,)`` domain ids from names (or checked ids)."""
        if isinstance(domains, torch.Tensor):
            ids = domains.long()
            if ids.numel() and (ids.min() < 0 or ids.max() >= len(self.domains)):
                raise RoutingError(f"domain ids must be in 0..{len(self.domains) - 1}, got {ids.tolist()}")
            return ids.to(device) if device is not None else ids
        return torch.tensor([self.domain_index(d) for d in domains], dtype=torch.long, device=device)

    def rows(self, batch_size: int) -> torch.Tensor:
        """Domain ids for a batch of ``batch_size`` rows (expanded when generation repeats rows)."""
        if self.domain_ids is None:
            raise RoutingError(
                "no domain set for this batch: pass domain=... (or domain_ids=...) to the model's forward/generate"
            )
        ids = self.domain_ids
        if ids.shape[0] == batch_size:
            return ids
        if batch_size % ids.shape[0] == 0:  # generate(num_return_sequences / num_beams) repeats each row
            return ids.repeat_interleave(batch_size // ids.shape[0])
        raise RoutingError(f"{ids.shape[0]} domain ids for a batch of {batch_size} rows")


class DomainRouted(nn.Module):
    """Per-domain copies of one module, chosen per row (sample) or per token.

    ``experts[d]`` handles domain ``d``; all experts map ``(B, T, D_in) -> (B, T, D_out)``
    (or any shape with the batch first). ``None`` in ``layer_router`` means per-sample
    routing by ``context.domain_ids``; otherwise the tokens follow
    ``context.token_assignment`` set by that layer's router.
    """

    def __init__(self, experts: dict[str, nn.Module], context: RoutingContext, per_token: bool = False):
        super().__init__()
        missing = [d for d in context.domains if d not in experts]
        if missing:
            raise RoutingError(f"no expert for domain(s) {missing}")
        self.experts = nn.ModuleDict({d: experts[d] for d in context.domains})
        self.per_token = per_token
        self.scale_output = False  # per-token only: multiply by the router's straight-through gate
        self.context = context  # shared by every routed module of the model (a plain object)

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(self.experts.keys())

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        experts = list(self.experts.values())
        if self.per_token:
            assignment = self.context.token_assignment
            if assignment is None:
                raise RoutingError("token routing needs the layer's router to run first")
            out = _scatter(experts, x, assignment.reshape(-1), flat=True, args=args, kwargs=kwargs)
            return out * self.context.gate_scale if self.scale_output else out
        uniform = self.context.uniform
        if uniform is not None and x.shape[0] % self.context.domain_ids.shape[0] == 0:
            return experts[uniform](x, *args, **kwargs)  # domain-homogeneous batch: the dense model's cost
        return _scatter(experts, x, self.context.rows(x.shape[0]), flat=False, args=args, kwargs=kwargs)

    def extra_repr(self) -> str:
        return f"domains={list(self.domains)}, per_token={self.per_token}"


def _scatter(experts: list[nn.Module], x: torch.Tensor, index: torch.Tensor, flat: bool, args, kwargs) -> torch.Tensor:
    """Run ``experts[index[i]]`` on row i (``flat``: on token i of ``x`` viewed as ``(B*T, ...)``)."""
    source = x.reshape(-1, *x.shape[2:]) if flat else x
    out = None
    for e, expert in enumerate(experts):
        rows = (index == e).nonzero(as_tuple=True)[0]
        if rows.numel() == 0:
            continue
        y = expert(source.index_select(0, rows), *args, **kwargs)
        if out is None:
            out = y.new_zeros((source.shape[0], *y.shape[1:]))
        out = out.index_copy(0, rows, y)
    if out is None:  # an empty batch
        return experts[0](x, *args, **kwargs)
    return out.reshape(*x.shape[:2], *out.shape[1:]) if flat else out


class TokenRouter(nn.Module):
    """A learned top-1 router in front of one layer (the paper's "router" variant).

    It sets ``context.token_assignment`` ``(B, T)`` from the layer's input and records the
    switch-transformer load-balancing loss ``n * sum_e f_e * p_e``. Initialised to zero, so
    every token starts at expert 0 with uniform probabilities; the layer's routed modules
    scale their output by ``p / p.detach()`` (value 1), so right after conversion the model
    computes exactly what the dense model does while the router still receives gradients.
    """

    def __init__(self, hidden_size: int, context: RoutingContext):
        super().__init__()
        self.gate = nn.Linear(hidden_size, len(context.domains), bias=False)
        nn.init.zeros_(self.gate.weight)
        self.context = context

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Route ``(B, T, D)`` tokens; returns the ``(B, T, 1)`` straight-through gate scale."""
        logits = self.gate(hidden_states.to(self.gate.weight.dtype)).float()
        probs = logits.softmax(dim=-1)
        choice = probs.argmax(dim=-1)
        self.context.token_assignment = choice
        if self.training:
            n = probs.shape[-1]
            fraction = torch.nn.functional.one_hot(choice, n).float().mean(dim=(0, 1))
            self.context.aux_losses.append(n * (fraction * probs.mean(dim=(0, 1))).sum())
        chosen = probs.gather(-1, choice.unsqueeze(-1))
        return (chosen / chosen.detach()).to(hidden_states.dtype)
