"""Reading the split depth K off a per-layer similarity curve (``docs/analysis.md`` §The rule).

``curve[i]`` is layer ``i``'s update similarity (the lowest over domain pairs). K is the
number of leading layers to share: layers ``0..K-1`` shared, ``K..L-1`` separated.

**threshold** (the default): the shallow level ``r`` is the median similarity of the first
``m = max(2, ceil(L / 8))`` layers (4 of Qwen2-VL-7B's 28, 2 of the tiny preset's 8);
K is the index of the first layer whose similarity falls below ``fraction x r`` (default
0.5), i.e. the deepest layer still at least half as aligned as the shallow ones is the
last shared one. No layer below: K = L (the data do not ask for a split). ``r`` below
``min_level`` (default 0.1; the shallow layers' updates are unrelated too, so nothing in
the measurement supports sharing): K = 0, said so in the reason.

**changepoint**: the step function with one level before K and one after that fits the
curve with the least squared error (K in 1..L-1); K = L when the best step goes up, not down.

Both are always computed; the one not chosen is reported as an alternative, so a reader
sees when they disagree (a gradual slope rather than a clear drop).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RULES: tuple[str, ...] = ("threshold", "changepoint")
DEFAULT_FRACTION = 0.5
DEFAULT_MIN_LEVEL = 0.1


@dataclass(frozen=True)
class SplitProposal:
    """A proposed K with what it was read from."""

    shared_layers: int
    """K: layers 0..K-1 shared"""
    rule: str
    curve: list[float]
    reason: str
    """one sentence: why this K"""
    reference: float | None = None
    """threshold rule: the shallow level r"""
    threshold: float | None = None
    """threshold rule: fraction x r"""
    levels: tuple[float, float] | None = None
    """changepoint rule: mean similarity before and after K"""
    alternatives: dict[str, int] = field(default_factory=dict)
    """K by the other rule(s)"""

    @property
    def num_layers(self) -> int:
        return len(self.curve)

    def evidence(self, width: int = 30) -> str:
        """The curve as a text table, each layer marked shared or separated, the rule's line under it."""
        lines = [f"{'layer':>5}  {'similarity':>10}  {'':{width}}  split"]
        for layer, value in enumerate(self.curve):
            bar = "#" * max(0, round(max(0.0, min(1.0, value)) * width))
            mark = "shared" if layer < self.shared_layers else "separate"
            if layer == self.shared_layers:
                mark += "   <- K"
            lines.append(f"{layer:>5}  {value:>10.4f}  {bar:{width}}  {mark}")
        lines.append(f"proposed K = {self.shared_layers} of {self.num_layers} ({self.rule} rule): {self.reason}")
        for rule, k in self.alternatives.items():
            lines.append(f"the {rule} rule gives K = {k}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _check(curve: Sequence[float]) -> list[float]:
    values = [float(v) for v in curve]
    if not values:
        raise ValueError("the similarity curve is empty: no layers were compared")
    missing = [i for i, v in enumerate(values) if math.isnan(v)]
    if missing:
        raise ValueError(f"no similarity for layer(s) {missing}: a run left them unchanged (frozen layers? "
                         "unmerged LoRA?); the rule needs every layer's value")
    return values


def reference_layer_count(num_layers: int) -> int:
    """How many leading layers define the shallow level: ``max(2, ceil(L / 8))``, at most L."""
    return min(num_layers, max(2, math.ceil(num_layers / 8)))


def threshold_split(curve: Sequence[float], fraction: float = DEFAULT_FRACTION,
                    reference_layers: int | None = None, min_level: float = DEFAULT_MIN_LEVEL) -> SplitProposal:
    """K = the first layer below ``fraction`` x the median of the first ``reference_layers`` layers."""
    values = _check(curve)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    m = reference_layer_count(len(values)) if reference_layers is None else reference_layers
    if not 1 <= m <= len(values):
        raise ValueError(f"reference_layers must be in 1..{len(values)}, got {m}")
    reference = statistics.median(values[:m])
    if reference < min_level:
        return SplitProposal(0, "threshold", values, f"the first {m} layers do not agree either (median similarity "
                             f"{reference:.3f} < min_level {min_level:g}): nothing supports sharing", reference, None)
    threshold = fraction * reference
    below = next((i for i, v in enumerate(values) if v < threshold), None)
    if below is None:
        return SplitProposal(len(values), "threshold", values, f"no layer falls below {threshold:.3f} "
                             f"({fraction:g} x shallow level {reference:.3f}): the data ask for no split",
                             reference, threshold)
    return SplitProposal(below, "threshold", values, f"layer {below} is the first below {threshold:.3f} "
                         f"({fraction:g} x the median {reference:.3f} of layers 0..{m - 1})", reference, threshold)


def changepoint_split(curve: Sequence[float]) -> SplitProposal:
    """K of the least-squares two-level step fit (a high level before K, a low one from K on)."""
    values = _check(curve)
    if len(values) < 2:
        return SplitProposal(len(values), "changepoint", values, "one layer: nothing to split")

    def sse(part: list[float]) -> float:
        mean = sum(part) / len(part)
        return sum((v - mean) ** 2 for v in part)

    best = min(range(1, len(values)), key=lambda k: (sse(values[:k]) + sse(values[k:]), k))
    before = sum(values[:best]) / best
    after = sum(values[best:]) / (len(values) - best)
    if before <= after:
        return SplitProposal(len(values), "changepoint", values, f"the best step goes up at layer {best} "
                             f"({before:.3f} -> {after:.3f}): no drop to split at", levels=(before, after))
    return SplitProposal(best, "changepoint", values, f"the best two-level fit drops at layer {best} "
                         f"(mean {before:.3f} before, {after:.3f} from there on)", levels=(before, after))


def propose_split(curve: Sequence[float], rule: str = "threshold", fraction: float = DEFAULT_FRACTION,
                  reference_layers: int | None = None, min_level: float = DEFAULT_MIN_LEVEL) -> SplitProposal:
    """K by ``rule``, with the other rule's K as an alternative."""
    if rule not in RULES:
        raise ValueError(f"unknown split rule {rule!r}; choose one of {', '.join(RULES)}")
    results = {"threshold": threshold_split(curve, fraction, reference_layers, min_level),
               "changepoint": changepoint_split(curve)}
    chosen = results[rule]
    others = {name: r.shared_layers for name, r in results.items() if name != rule}
    return SplitProposal(**{**asdict(chosen), "alternatives": others})


def split_config_text(proposal: SplitProposal, source: str = "") -> str:
    """A YAML run config for ``omniactor train --config`` (or to copy into one): the variant and K."""
    origin = f" from {source}" if source else ""
    return (f"# proposed by `omniactor analyze update-similarity`{origin}\n"
            f"# {proposal.rule} rule: {proposal.reason}\n"
            f"# alternatives: {proposal.alternatives or 'none'}; override with shared_layers=N\n"
            f"variant: omniactor\n"
            f"shared_layers: {proposal.shared_layers}\n")


def write_split_config(proposal: SplitProposal, path: str | Path, source: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(split_config_text(proposal, source))
    return path
