"""A checkpoint's decoder-layer projection matrices, read a block of rows at a time.

Parameter-update similarity compares, matrix by matrix, three checkpoints of one
architecture (the base and two fine-tunes). For a 7B model each holds ~15 GB, so nothing is
loaded whole: ``CheckpointSource`` opens the safetensors files memory-mapped and hands out
row ranges of one tensor (``rows(key, start, stop)``), and ``layer_matrices`` finds the
matrices to compare from the tensor names and shapes alone (the header, no data).

Which tensors count: every 2-D ``*.weight`` under the language model's decoder layers
(``<...>.layers.<N>.<module>.weight``), grouped as attention (``self_attn`` ...), FFN
(``mlp`` ...) or other, and named by their last part without ``_proj`` (q, k, v, o, gate,
up, down for Qwen/LLaMA-style families). Biases and norms (1-D) and the embeddings and
output head (whose rows grow with the action vocabulary) are not projections and are left
out by construction; the vision tower's layers are skipped by name.

Checkpoints of one architecture may name the stack differently (a hub checkpoint's
``model.layers.N`` and omniactor's ``model.language_model.layers.N`` for Qwen2-VL in
transformers 5): matrices are matched by layer index and module path inside the layer.

An OmniActor checkpoint (``omniactor``/``hard`` variant) holds per-domain experts
(``...q_proj.experts.gui.weight``); ``CheckpointSource(domain="gui")`` reads it as the dense
model of that domain's path, the same view ``omniactor export`` writes. A ``router``
checkpoint has no per-domain path and is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import OmniactorError

if TYPE_CHECKING:  # pragma: no cover
    import torch

ATTENTION_MODULES = frozenset({"self_attn", "attn", "self_attention", "attention"})
FFN_MODULES = frozenset({"mlp", "feed_forward", "ffn"})
VISION_PARTS = frozenset({"visual", "vision_tower", "vision_model", "vision", "multi_modal_projector"})
GROUPS: tuple[str, ...] = ("attention", "ffn", "other")
_CANONICAL_ORDER = ("q", "k", "v", "o", "qkv", "gate", "up", "gate_up", "down")
_LAYER_KEY = re.compile(r"^(?P<prefix>(?:.+\.)?layers)\.(?P<index>\d+)\.(?P<rest>.+)\.weight$")
_EXPERT_KEY = re.compile(r"\.experts\.(?P<domain>[^.]+)\.")
WEIGHTS_INDEX = "model.safetensors.index.json"
WEIGHTS_FILE = "model.safetensors"


class WeightsError(OmniactorError, ValueError):
    """A checkpoint cannot be read as the analysis needs (the message names the file and the fix)."""


@dataclass(frozen=True)
class LayerMatrix:
    """One projection matrix of one decoder layer."""

    layer: int
    """decoder layer index, 0-based"""
    group: str
    """attention | ffn | other"""
    name: str
    """short name (q, k, v, o, gate, up, down), or the module path inside the layer when ambiguous"""
    module: str
    """the module path inside the layer (``self_attn.q_proj``): with ``layer``, what identifies the
    matrix across checkpoints whose stacks are named differently"""
    key: str
    """the tensor's name in the dense model of this checkpoint"""


class TensorSource(Protocol):
    """Where tensors come from: a checkpoint folder (streamed) or a state dict (in memory)."""

    name: str

    def names(self) -> Iterable[str]: ...

    def shape(self, key: str) -> tuple[int, ...]: ...

    def rows(self, key: str, start: int, stop: int) -> torch.Tensor: ...


class StateDictSource:
    """Tensors already in memory (small models, tests, the reference computation)."""

    def __init__(self, state: Mapping[str, torch.Tensor], name: str = "state dict"):
        self.state, self.name = state, name

    def names(self) -> Iterable[str]:
        return self.state.keys()

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.state[key].shape)

    def rows(self, key: str, start: int, stop: int) -> torch.Tensor:
        return self.state[key][start:stop]


def read_model_config(directory: Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint folder as a dict (empty when the folder has none)."""
    path = directory / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _tensor_files(directory: Path) -> dict[str, str]:
    """``{tensor name: file name}`` of a single-file or sharded safetensors checkpoint."""
    index = directory / WEIGHTS_INDEX
    if index.exists():
        files = dict(json.loads(index.read_text())["weight_map"])
        missing = sorted({name for name in files.values() if not (directory / name).is_file()})
        if missing:
            raise WeightsError(f"{directory}: safetensors shard(s) listed in {WEIGHTS_INDEX} are missing: "
                               f"{', '.join(missing[:5])}; copy the whole checkpoint folder again")
        return files
    if (directory / WEIGHTS_FILE).exists():
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(directory / WEIGHTS_FILE), framework="pt") as handle:
                return dict.fromkeys(handle.keys(), WEIGHTS_FILE)
        except SafetensorError as err:
            raise WeightsError(f"{directory / WEIGHTS_FILE}: cannot be read as safetensors ({err}); the file is "
                               "damaged or cut short: copy the checkpoint again") from None
    if not directory.is_dir():
        raise WeightsError(f"{directory}: not a folder; give a checkpoint folder (config.json + safetensors)")
    raise WeightsError(f"{directory}: no {WEIGHTS_FILE} or {WEIGHTS_INDEX} (only safetensors checkpoints are read)")


class CheckpointSource:
    """The tensors of a checkpoint folder, memory-mapped; experts of ``domain`` seen as dense tensors."""

    def __init__(self, directory: str | Path, domain: str | None = None, name: str | None = None):
        self.directory = Path(directory)
        self.name = name or str(directory)
        self.config = read_model_config(self.directory)
        files = _tensor_files(self.directory)
        omniactor = self.config.get("omniactor")
        if isinstance(omniactor, str):
            omniactor = json.loads(omniactor)
        self.variant: str | None = (omniactor or {}).get("variant")
        expert_domains = sorted({m["domain"] for key in files if (m := _EXPERT_KEY.search(key))})
        if expert_domains and self.variant == "router":
            raise WeightsError(f"{self.name}: a 'router' checkpoint routes tokens, not domains, so it has no single "
                               "dense path to compare; compare dense fine-tunes (variant: dense)")
        if expert_domains and domain not in expert_domains:
            raise WeightsError(
                f"{self.name}: an OmniActor '{self.variant}' checkpoint with per-domain experts {expert_domains}; "
                f"name the run after the domain whose path to compare (e.g. {expert_domains[0]}=DIR), or compare "
                "dense fine-tunes (variant: dense), as the paper does")
        # dense name -> (stored name, file)
        self._where: dict[str, tuple[str, str]] = {}
        for key, file in files.items():
            match = _EXPERT_KEY.search(key)
            if match is None:
                self._where[key] = (key, file)
            elif match["domain"] == domain:
                self._where[key[:match.start()] + "." + key[match.end():]] = (key, file)
        self.expert_domains = tuple(expert_domains)
        self._handles: dict[str, Any] = {}

    def names(self) -> Iterable[str]:
        return self._where.keys()

    def _slice(self, key: str) -> Any:
        from safetensors import SafetensorError, safe_open

        try:
            stored, file = self._where[key]
        except KeyError:
            raise WeightsError(f"{self.name}: no tensor {key!r}") from None
        if file not in self._handles:
            try:
                self._handles[file] = safe_open(str(self.directory / file), framework="pt")
            except SafetensorError as err:
                raise WeightsError(f"{self.directory / file}: cannot be read as safetensors ({err}); the file is "
                                   "damaged or cut short: copy the checkpoint again") from None
        return self._handles[file].get_slice(stored)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._slice(key).get_shape())

    def rows(self, key: str, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of a tensor: only they are read from disk."""
        return self._slice(key)[start:stop]


def _short_name(rest: str) -> str:
    leaf = rest.split(".")[-1]
    return leaf.removesuffix("_proj")


def _group(rest: str) -> str:
    head = rest.split(".")[0]
    if head in ATTENTION_MODULES:
        return "attention"
    return "ffn" if head in FFN_MODULES else "other"


def _order(matrix: LayerMatrix) -> tuple[int, int, int, str]:
    rank = _CANONICAL_ORDER.index(matrix.name) if matrix.name in _CANONICAL_ORDER else len(_CANONICAL_ORDER)
    return matrix.layer, GROUPS.index(matrix.group), rank, matrix.name


def layer_matrices(source: TensorSource, layers_prefix: str | None = None) -> list[LayerMatrix]:
    """Every 2-D weight of the language model's decoder layers, by layer, group, canonical order.

    ``layers_prefix`` (e.g. ``model.language_model.layers``) picks the stack when a model has
    several that are not vision towers; by default the one non-vision stack is used.
    """
    stacks: dict[str, list[tuple[int, str, str]]] = {}
    for key in source.names():
        match = _LAYER_KEY.match(key)
        if match is None:
            continue
        prefix = match["prefix"]
        if layers_prefix is not None and prefix != layers_prefix:
            continue
        if layers_prefix is None and VISION_PARTS & set(prefix.split(".")):
            continue
        if len(source.shape(key)) != 2:
            continue
        stacks.setdefault(prefix, []).append((int(match["index"]), match["rest"], key))
    if not stacks:
        where = f"under {layers_prefix!r}" if layers_prefix else "(keys like '<prefix>.layers.<N>.<module>.weight')"
        raise WeightsError(f"{source.name}: no decoder-layer weight matrices {where}")
    if len(stacks) > 1:
        raise WeightsError(f"{source.name}: several layer stacks {sorted(stacks)}; pick one with layers_prefix")
    (prefix, found), = stacks.items()
    matrices = []
    for index, rest, key in found:
        short = _short_name(rest)
        clash = sum(1 for i, r, _ in found if i == index and _short_name(r) == short) > 1
        matrices.append(LayerMatrix(index, _group(rest), rest if clash else short, rest, key))
    return sorted(matrices, key=_order)
