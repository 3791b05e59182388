"""Parameter-update similarity: did two fine-tunes move each weight matrix the same way?

For a base ``W0`` and runs ``W_a``, ``W_b`` fine-tuned from it on different domains, the
similarity of a matrix is ``cos(W_a - W0, W_b - W0)`` over all its entries (OmniActor,
DESIGN.md §1). High in shallow layers and low in deep ones says: share the shallow layers,
separate the deep ones. Per layer three aggregates are reported, each the cosine of the
concatenated deltas (so a group is one vector, its big matrices weighing more):
``attention`` (q, k, v, o), ``ffn`` (gate, up, down) and ``layer`` (every matrix of the
layer); ``mean`` beside them is the plain mean of the matrices' cosines.

How it stays within memory: for each matrix, rows are read in blocks of about
``chunk_elements`` numbers from each checkpoint (memory-mapped), the deltas of all runs for
that block stacked ``(R, n)`` in float64 and their Gram matrix ``D @ D.T`` accumulated.
Every pairwise dot product and squared norm comes out of the ``(R, R)`` sums, so any
number of runs costs one pass, and memory is ``(R + 1) x`` one block, whatever the model size.
``reference_cosines`` is the direct computation on whole state dicts, kept to check it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any

from .weights import GROUPS, LayerMatrix, TensorSource, WeightsError, layer_matrices

if TYPE_CHECKING:  # pragma: no cover
    import torch

CHUNK_ELEMENTS = 1 << 22  # ~4M numbers per run and block: 32 MB in float64
SCOPES: tuple[str, ...] = ("matrix", *GROUPS, "layer")


@dataclass(frozen=True)
class SimilarityRow:
    """The similarity of one matrix (or one aggregate) of one layer for one pair of runs."""

    layer: int
    scope: str
    """matrix | attention | ffn | other | layer"""
    group: str
    """the matrix's group (attention | ffn | other); for aggregates the scope again"""
    name: str
    """the matrix's short name (q, k, ..., down); the scope again for aggregates"""
    run_a: str
    run_b: str
    cosine: float
    """cos(delta_a, delta_b); NaN when either delta is zero (that run did not change it)"""
    mean: float
    """aggregates: mean of the member matrices' cosines; matrices: the cosine again"""
    norm_a: float
    """Frobenius norm of run_a's delta"""
    norm_b: float
    numel: int
    """entries compared"""


@dataclass
class UpdateSimilarity:
    """Every row of one comparison, and how to read curves and pairwise matrices off them."""

    base: str
    runs: list[str]
    num_layers: int
    rows: list[SimilarityRow]
    unchanged: list[str] = field(default_factory=list)
    """``run: layer N name`` of each matrix a run left exactly as the base had it"""

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return list(combinations(self.runs, 2))

    def _select(self, scope: str, name: str | None) -> list[SimilarityRow]:
        name = scope if name is None else name
        found = [r for r in self.rows if r.scope == scope and r.name == name]
        if not found:
            names = sorted({r.name for r in self.rows if r.scope == scope})
            raise KeyError(f"no rows for scope={scope!r} name={name!r} (this scope has {names})")
        return found

    def curve(self, scope: str = "layer", name: str | None = None,
              pair: tuple[str, str] | None = None) -> list[float]:
        """Per layer: the similarity of one pair, or with ``pair=None`` the lowest over all pairs.

        The lowest, because a layer can be shared by all domains only if every pair agrees.
        Layers without such a matrix get NaN.
        """
        values: list[list[float]] = [[] for _ in range(self.num_layers)]
        for row in self._select(scope, name):
            if pair is None or (row.run_a, row.run_b) == pair:
                values[row.layer].append(row.cosine)
        return [min(v) if v and not any(math.isnan(x) for x in v) else math.nan for v in values]

    def names(self, group: str) -> list[str]:
        """The matrix names of one group, in the order they were compared (q, k, v, o; gate, up, down)."""
        return list(dict.fromkeys(r.name for r in self.rows if r.scope == "matrix" and r.group == group))

    def pair_matrix(self, layer: int, scope: str = "layer", name: str | None = None) -> list[list[float]]:
        """``(R, R)`` pairwise similarities of one layer (1 on the diagonal), runs in ``self.runs`` order."""
        index = {run: i for i, run in enumerate(self.runs)}
        out = [[1.0 if i == j else math.nan for j in range(len(self.runs))] for i in range(len(self.runs))]
        for row in self._select(scope, name):
            if row.layer == layer:
                a, b = index[row.run_a], index[row.run_b]
                out[a][b] = out[b][a] = row.cosine
        return out

    def lookup(self) -> dict[tuple[int, str, str, str, str], float]:
        """``{(layer, scope, name, run_a, run_b): cosine}``."""
        return {(r.layer, r.scope, r.name, r.run_a, r.run_b): r.cosine for r in self.rows}

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base, "runs": self.runs, "num_layers": self.num_layers,
                "unchanged": self.unchanged, "rows": [asdict(r) for r in self.rows]}


def _run_keys(base: TensorSource, runs: Mapping[str, TensorSource], matrices: list[LayerMatrix],
              layers_prefix: str | None) -> list[dict[tuple[int, str], str]]:
    """Per run, ``{(layer, module): tensor name}``: exactly the base's layer matrices, with the base's shapes."""
    wanted = {(m.layer, m.module): m for m in matrices}
    out = []
    for label, source in runs.items():
        keys = {(m.layer, m.module): m.key for m in layer_matrices(source, layers_prefix)}
        missing, extra = sorted(set(wanted) - set(keys)), sorted(set(keys) - set(wanted))
        if missing:
            raise WeightsError(f"run {label} ({source.name}) lacks {len(missing)} layer matri(x/ces) of the base, "
                               f"e.g. {missing[:3]} (layer, module): is it a fine-tune of this base?")
        if extra:
            raise WeightsError(f"run {label} ({source.name}) has {len(extra)} layer matri(x/ces) the base lacks, "
                               f"e.g. {extra[:3]} (layer, module): unmerged LoRA adapters? (omniactor train "
                               "merges them into final/)")
        for where, matrix in wanted.items():
            shape, theirs = base.shape(matrix.key), source.shape(keys[where])
            if theirs != shape:
                raise WeightsError(f"run {label} ({source.name}): {keys[where]} has shape {list(theirs)}, the "
                                   f"base's {matrix.key} {list(shape)}: not a fine-tune of this base")
        out.append(keys)
    return out


def delta_gram(base: TensorSource, key: str, runs: list[TensorSource], run_keys: list[str],
               chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """``(R, R)`` float64 Gram matrix of the runs' deltas ``W_r - W0`` of one matrix, streamed by row blocks.

    ``key`` names the matrix in the base, ``run_keys[r]`` in run ``r``.
    """
    import torch

    shape = base.shape(key)
    row_size = math.prod(shape[1:])
    step = max(1, chunk_elements // max(row_size, 1))
    gram = torch.zeros(len(runs), len(runs), dtype=torch.float64)
    for start in range(0, shape[0], step):
        stop = min(start + step, shape[0])
        w0 = base.rows(key, start, stop).to(torch.float64)
        deltas = torch.stack([(run.rows(run_key, start, stop).to(torch.float64) - w0).reshape(-1)
                              for run, run_key in zip(runs, run_keys, strict=True)])
        gram += deltas @ deltas.T
    return gram


def _cosine(gram: torch.Tensor, a: int, b: int) -> float:
    norm = math.sqrt(float(gram[a, a]) * float(gram[b, b]))
    return float(gram[a, b]) / norm if norm > 0 else math.nan


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def compute_update_similarity(base: TensorSource, runs: Mapping[str, TensorSource], *,
                              layers_prefix: str | None = None, chunk_elements: int = CHUNK_ELEMENTS,
                              progress: bool = True) -> UpdateSimilarity:
    """Similarity of every layer matrix and aggregate, for every pair of ``runs`` (label -> source)."""
    import torch
    from tqdm.auto import tqdm

    if len(runs) < 2:
        raise ValueError(f"update similarity compares at least two runs, got {list(runs)}")
    matrices = layer_matrices(base, layers_prefix)
    run_keys = _run_keys(base, runs, matrices, layers_prefix)
    labels, sources = list(runs), list(runs.values())
    pair_index = list(combinations(range(len(labels)), 2))
    by_layer: dict[int, list[LayerMatrix]] = {}
    for matrix in matrices:
        by_layer.setdefault(matrix.layer, []).append(matrix)
    num_layers = max(by_layer) + 1
    rows: list[SimilarityRow] = []
    unchanged: list[str] = []
    for layer in tqdm(sorted(by_layer), desc="update similarity", unit="layer", disable=not progress):
        sums: dict[str, torch.Tensor] = {}
        members: dict[str, list[tuple[torch.Tensor, int]]] = {}
        for matrix in by_layer[layer]:
            where = (matrix.layer, matrix.module)
            gram = delta_gram(base, matrix.key, sources, [keys[where] for keys in run_keys], chunk_elements)
            numel = math.prod(base.shape(matrix.key))
            unchanged += [f"{labels[r]}: layer {layer} {matrix.name}" for r in range(len(labels)) if gram[r, r] == 0]
            for scope in (matrix.group, "layer"):
                sums[scope] = sums.get(scope, torch.zeros_like(gram)) + gram
                members.setdefault(scope, []).append((gram, numel))
            rows += [SimilarityRow(layer, "matrix", matrix.group, matrix.name, labels[a], labels[b], _cosine(gram, a, b),
                                   _cosine(gram, a, b), math.sqrt(float(gram[a, a])), math.sqrt(float(gram[b, b])),
                                   numel) for a, b in pair_index]
        for scope in (*GROUPS, "layer"):
            if scope not in sums:
                continue
            gram, parts = sums[scope], members[scope]
            numel = sum(n for _, n in parts)
            rows += [SimilarityRow(layer, scope, scope, scope, labels[a], labels[b], _cosine(gram, a, b),
                                   _nanmean([_cosine(g, a, b) for g, _ in parts]), math.sqrt(float(gram[a, a])),
                                   math.sqrt(float(gram[b, b])), numel) for a, b in pair_index]
    return UpdateSimilarity(base.name, labels, num_layers, rows, unchanged)


def reference_cosines(base: Mapping[str, torch.Tensor], runs: Mapping[str, Mapping[str, torch.Tensor]],
                      layers_prefix: str | None = None) -> dict[tuple[int, str, str, str, str], float]:
    """The direct computation on whole state dicts (``torch.cat`` of full deltas, one cosine each).

    Same keys as ``UpdateSimilarity.lookup()``; it needs every tensor in memory at once,
    which is what the streamed computation avoids. Kept to check the streamed numbers.
    """
    import torch

    from .weights import StateDictSource

    matrices = layer_matrices(StateDictSource(base), layers_prefix)
    out: dict[tuple[int, str, str, str, str], float] = {}
    for a, b in combinations(list(runs), 2):
        groups: dict[tuple[int, str, str], list[LayerMatrix]] = {}
        for m in matrices:
            groups.setdefault((m.layer, "matrix", m.name), []).append(m)
            groups.setdefault((m.layer, m.group, m.group), []).append(m)
            groups.setdefault((m.layer, "layer", "layer"), []).append(m)
        for (layer, scope, name), members in groups.items():
            delta_a = torch.cat([(runs[a][m.key].double() - base[m.key].double()).flatten() for m in members])
            delta_b = torch.cat([(runs[b][m.key].double() - base[m.key].double()).flatten() for m in members])
            if not delta_a.any() or not delta_b.any():
                out[(layer, scope, name, a, b)] = math.nan
                continue
            out[(layer, scope, name, a, b)] = float(torch.nn.functional.cosine_similarity(delta_a, delta_b, dim=0))
    return out
