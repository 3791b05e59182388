"""The analysis figures, drawn with matplotlib's object API (no pyplot state, no display needed).

- ``plot_projections``: similarity per layer of each projection in a group, one panel per
  pair of runs (the paper's two figures: FFN projections, attention projections);
- ``plot_layer_curve``: the attention / FFN / whole-layer aggregates with the rule's
  threshold and the proposed K;
- ``plot_pair_matrices``: with three or more runs, the pairwise matrix of every layer;
- ``plot_feature_heatmaps`` / ``plot_feature_means``: the feature-similarity study.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .features import FeatureStudy
    from .split_rule import SplitProposal
    from .update_similarity import UpdateSimilarity


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the analysis plots need matplotlib: pip install 'omniactor[plot]'") from None
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _mark_split(axes: Any, proposal: SplitProposal | None, alternatives: bool = False) -> None:
    """A vertical line between layer K-1 and K (none for K = 0); the other rules' K, lighter, on request."""
    if proposal is None:
        return
    marks = [(proposal.rule, proposal.shared_layers, "black")]
    if alternatives:
        marks += [(rule, k, "silver") for rule, k in proposal.alternatives.items()]
    for rule, k, colour in marks:
        if 0 < k <= proposal.num_layers:
            axes.axvline(k - 0.5, color=colour, linestyle=":", linewidth=1.5, label=f"{rule} rule: K = {k}")


def _save(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def plot_projections(result: UpdateSimilarity, group: str, title: str, path: str | Path,
                     proposal: SplitProposal | None = None) -> Path:
    """One line per projection of ``group`` (attention | ffn), x = layer, y = cosine; a panel per pair."""
    pairs = result.pairs
    shown = result.names(group)
    if not shown:
        raise ValueError(f"this comparison has no {group} matrices")
    columns = min(len(pairs), 3)
    figure = _figure(4.2 * columns, 3.2 * math.ceil(len(pairs) / columns))
    grid = figure.subplots(math.ceil(len(pairs) / columns), columns, squeeze=False)
    layers = list(range(result.num_layers))
    for index, pair in enumerate(pairs):
        axes = grid[index // columns][index % columns]
        for name in shown:
            axes.plot(layers, result.curve("matrix", name, pair), marker="o", markersize=3, label=name)
        _mark_split(axes, proposal)
        axes.axhline(0, color="grey", linewidth=0.5)
        axes.set(xlabel="decoder layer", ylabel="cosine of updates", title=f"{title}: {pair[0]} vs {pair[1]}",
                 ylim=(min(-0.1, axes.get_ylim()[0]), 1.05))
        axes.legend(fontsize=7)
    for index in range(len(pairs), grid.size):
        grid[index // columns][index % columns].set_visible(False)
    return _save(figure, path)


def plot_layer_curve(result: UpdateSimilarity, path: str | Path, proposal: SplitProposal | None = None) -> Path:
    """Attention, FFN and whole-layer similarity (lowest over pairs), the threshold and K."""
    figure = _figure(5.5, 3.8)
    axes = figure.subplots()
    layers = list(range(result.num_layers))
    scopes = sorted({r.scope for r in result.rows if r.scope != "matrix"}, key=["layer", "attention", "ffn",
                                                                                 "other"].index)
    for scope in scopes:
        axes.plot(layers, result.curve(scope), marker="o", markersize=3, linewidth=2 if scope == "layer" else 1,
                  label="whole layer" if scope == "layer" else scope)
    if proposal is not None and proposal.reference is not None:
        axes.axhline(proposal.reference, color="grey", linestyle="--", linewidth=1,
                     label=f"shallow level {proposal.reference:.2f}")
    if proposal is not None and proposal.threshold is not None:
        axes.axhline(proposal.threshold, color="red", linestyle="--", linewidth=1,
                     label=f"threshold {proposal.threshold:.2f}")
    _mark_split(axes, proposal, alternatives=True)
    axes.axhline(0, color="grey", linewidth=0.5)
    pairs = "lowest pair" if len(result.pairs) > 1 else f"{result.runs[0]} vs {result.runs[1]}"
    title = f"update similarity per layer ({pairs})"
    if proposal is not None:
        title += f"\nproposed K = {proposal.shared_layers} of {proposal.num_layers} ({proposal.rule} rule)"
    axes.set(xlabel="decoder layer", ylabel="cosine of updates", title=title,
             ylim=(min(-0.1, axes.get_ylim()[0]), 1.05))
    axes.legend(fontsize=7)
    return _save(figure, path)


def _heatmap(axes: Any, matrix: Sequence[Sequence[float]], labels: Sequence[str], title: str,
             vmin: float = -1.0) -> Any:
    image = axes.imshow(matrix, vmin=vmin, vmax=1, cmap="viridis")
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    axes.set_yticks(range(len(labels)), labels, fontsize=6)
    axes.set_title(title, fontsize=8)
    return image


def plot_pair_matrices(result: UpdateSimilarity, path: str | Path, scope: str = "layer") -> Path:
    """The ``(R, R)`` pairwise similarity of every layer, one small heatmap per layer."""
    columns = min(result.num_layers, 7)
    rows = math.ceil(result.num_layers / columns)
    figure = _figure(1.9 * columns + 1, 1.9 * rows + 0.3)
    grid = figure.subplots(rows, columns, squeeze=False)
    image = None
    for layer in range(rows * columns):
        axes = grid[layer // columns][layer % columns]
        if layer >= result.num_layers:
            axes.set_visible(False)
            continue
        image = _heatmap(axes, result.pair_matrix(layer, scope), result.runs, f"layer {layer}")
        for i, row in enumerate(result.pair_matrix(layer, scope)):
            for j, value in enumerate(row):
                if i != j:
                    axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color="white")
    figure.colorbar(image, ax=grid, shrink=0.6, label="cosine of updates")
    return _save(figure, path)


def plot_feature_heatmaps(study: FeatureStudy, path: str | Path) -> Path:
    """Sample-by-sample feature cosine at each chosen layer (rows: checkpoints), domains in blocks."""
    labels = [f"{d}" for d in study.sample_domains]
    checkpoints = list(study.similarity)
    columns = len(study.layers)
    figure = _figure(2.4 * columns + 1, 2.5 * len(checkpoints) + 0.3)
    grid = figure.subplots(len(checkpoints), columns, squeeze=False)
    image = None
    ticks = [i for i, d in enumerate(labels) if i == 0 or labels[i - 1] != d]
    for row, checkpoint in enumerate(checkpoints):
        for column, layer in enumerate(study.layers):
            axes = grid[row][column]
            image = axes.imshow(study.similarity[checkpoint][layer], vmin=-1, vmax=1, cmap="viridis")
            axes.set_xticks(ticks, [labels[i] for i in ticks], fontsize=6)
            axes.set_yticks(ticks, [labels[i] for i in ticks], fontsize=6)
            axes.set_title(f"{checkpoint}: layer {layer}", fontsize=7)
    figure.colorbar(image, ax=grid, shrink=0.6, label="feature cosine")
    return _save(figure, path)


def plot_feature_means(study: FeatureStudy, path: str | Path) -> Path:
    """Mean cross-domain feature cosine per layer, one line per checkpoint and domain pair."""
    figure = _figure(5.5, 3.6)
    axes = figure.subplots()
    for checkpoint, per_layer in study.means.items():
        for pair in study.pairs:
            key = f"{pair[0]}~{pair[1]}"
            axes.plot(study.layers, [per_layer[layer][key] for layer in study.layers], marker="o", markersize=3,
                      label=f"{checkpoint}: {pair[0]} vs {pair[1]}")
    axes.set(xlabel="decoder layer", ylabel="mean feature cosine", title="feature similarity across domains")
    axes.legend(fontsize=7)
    return _save(figure, path)
