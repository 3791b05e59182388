"""What an update-similarity comparison leaves on disk, in one place.

``<out>/update_similarity.csv``   one row per (layer, matrix or aggregate, pair of runs)
``<out>/update_similarity.json``  the same rows, the per-layer curves, the pairwise matrices
                                  per layer, and the proposed split with its evidence
``<out>/update_similarity_ffn.png``, ``..._attention.png``  the paper's two figures
``<out>/update_similarity_layers.png``  aggregates, the rule's threshold and K
``<out>/update_similarity_pairs.png``   three or more runs: every layer's pairwise matrix
``<out>/split.yaml``              ``variant: omniactor`` + ``shared_layers: K`` for ``omniactor train``
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from .plots import plot_layer_curve, plot_pair_matrices, plot_projections
from .split_rule import SplitProposal, write_split_config
from .update_similarity import SimilarityRow, UpdateSimilarity

CSV_NAME = "update_similarity.csv"
JSON_NAME = "update_similarity.json"
SPLIT_NAME = "split.yaml"


def _finite(value: Any) -> Any:
    """JSON has no NaN: write null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_csv(result: UpdateSimilarity, path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(SimilarityRow)])
        writer.writeheader()
        for row in result.rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in asdict(row).items()})
    return path


def write_update_report(result: UpdateSimilarity, proposal: SplitProposal, out_dir: str | Path,
                        curve_scope: str = "layer") -> dict[str, Path]:
    """Write the tables, figures and split config of one comparison; returns ``{what: path}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"csv": write_csv(result, out / CSV_NAME)}
    scopes = sorted({r.scope for r in result.rows if r.scope != "matrix"})
    document = {
        **result.to_json(),
        "curves": {scope: result.curve(scope) for scope in scopes},
        "curve_used_for_split": curve_scope,
        "pairwise": {scope: [result.pair_matrix(layer, scope) for layer in range(result.num_layers)]
                     for scope in scopes},
        "split": {**proposal.to_json(), "evidence": proposal.evidence()},
    }
    written["json"] = out / JSON_NAME
    written["json"].write_text(json.dumps(_finite(document), indent=1))
    for group, title in (("ffn", "FFN projections"), ("attention", "attention projections")):
        if result.names(group):
            written[f"plot_{group}"] = plot_projections(result, group, title, out / f"update_similarity_{group}.png",
                                                        proposal)
    written["plot_layers"] = plot_layer_curve(result, out / "update_similarity_layers.png", proposal)
    if len(result.runs) > 2:
        written["plot_pairs"] = plot_pair_matrices(result, out / "update_similarity_pairs.png", curve_scope)
    written["split"] = write_split_config(proposal, out / SPLIT_NAME, f"{result.base} vs {', '.join(result.runs)}")
    return written


def analyze_checkpoints(base: str | Path, runs: dict[str, str | Path], out_dir: str | Path, *,
                        rule: str = "threshold", fraction: float = 0.5, reference_layers: int | None = None,
                        min_level: float = 0.1, curve_scope: str = "layer", layers_prefix: str | None = None,
                        progress: bool = True) -> tuple[UpdateSimilarity, SplitProposal, dict[str, Path]]:
    """Compare checkpoint folders (``runs``: label -> folder), propose K, write the report.

    A run that is an OmniActor checkpoint is read as the dense path of the domain named by
    its label (``gui=DIR`` compares the GUI experts); see ``weights.CheckpointSource``.
    """
    from .split_rule import propose_split
    from .update_similarity import compute_update_similarity
    from .weights import CheckpointSource, WeightsError

    try:
        base_source = CheckpointSource(base, name=f"base {base}")
    except WeightsError as err:
        raise WeightsError(f"{err} (the base must be the dense model the runs were fine-tuned from)") from None
    sources = {label: CheckpointSource(path, domain=label, name=f"{label}={path}") for label, path in runs.items()}
    result = compute_update_similarity(base_source, sources, layers_prefix=layers_prefix, progress=progress)
    proposal = propose_split(result.curve(curve_scope), rule, fraction, reference_layers, min_level)
    return result, proposal, write_update_report(result, proposal, out_dir, curve_scope)
