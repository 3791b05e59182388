"""Feature similarity: do GUI and embodied inputs look alike to the model, layer by layer?

The paper's second study. For a few samples of each domain, the prompt the agent sees
(system prompt, image, instruction with history, as the record stores it) goes through a
checkpoint; at each chosen decoder layer every sample becomes one vector (its hidden states
averaged over the prompt's tokens, or the last token's, which predicts the first action
token). Then per layer:

- the ``(N, N)`` cosine matrix of all samples, domains in blocks (the heatmaps);
- (``center=True``) the mean vector over all samples subtracted first: raw hidden states of
  a transformer share a large common component, which puts every cosine near 1; centred,
  the cosines show how the samples differ;
- the mean cosine between the samples of two domains (``gui~embodied``) and within one
  domain (``gui~gui``, off-diagonal): shallow layers that mix the domains give a cross mean
  close to the within means; layers that tell them apart give a lower one.

Layer ``i`` is the output of decoder layer ``i`` (``hidden_states[i + 1]`` in transformers;
the last one after the final norm, as transformers returns it). Several checkpoints (a base,
a dense mixed run, an OmniActor run) are measured on the same samples, so their curves compare.
A converted checkpoint routes each sample by its domain, as in training and inference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from .domain_data import resolve_domain

POOLS: tuple[str, ...] = ("mean", "last")


@dataclass
class FeatureStudy:
    """Similarity matrices and means per checkpoint and layer, for one set of samples."""

    layers: list[int]
    domains: list[str]
    """the data labels, in order"""
    sample_domains: list[str]
    """the label of each sample (rows and columns of the matrices)"""
    centered: bool = False
    """the mean feature over all samples was subtracted before the cosines"""
    similarity: dict[str, dict[int, Any]] = field(default_factory=dict)
    """checkpoint -> layer -> ``(N, N)`` numpy array of cosines"""
    means: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    """checkpoint -> layer -> {"gui~embodied": mean, "gui~gui": mean, ...}"""

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return list(combinations(self.domains, 2))

    def to_json(self) -> dict[str, Any]:
        return {"layers": self.layers, "domains": self.domains, "sample_domains": self.sample_domains,
                "centered": self.centered,
                "means": {c: {str(layer): m for layer, m in per.items()} for c, per in self.means.items()}}


def parse_layers(text: str | None, num_layers: int) -> list[int]:
    """``"0,3,7"`` / ``"all"`` / None -> sorted layer indices, checked against the model's depth."""
    if text is None or text.strip() == "all":
        return list(range(num_layers))
    try:
        layers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--layers: {text!r} must be comma-separated layer numbers (e.g. 0,3,7) or 'all'") from None
    bad = [layer for layer in layers if not 0 <= layer < num_layers]
    if bad or not layers:
        raise ValueError(f"--layers: {bad or text!r} outside 0..{num_layers - 1} (the model has {num_layers} layers)")
    return layers


def select_samples(data: Mapping[str, str], per_domain: int) -> list[tuple[str, Any, Any]]:
    """``per_domain`` records of each label's domain, evenly spread over its records: ``(label, reader, sample)``."""
    from ..data import DatasetReader

    if per_domain < 2:
        raise ValueError(f"samples per domain must be >= 2 (a within-domain mean needs two), got {per_domain}")
    chosen = []
    for label, root in data.items():
        domain = resolve_domain(label, root)
        reader = DatasetReader(root)
        total = sum(1 for s in reader if s.domain == domain)  # two passes: only the chosen samples stay in memory
        if total < per_domain:
            raise ValueError(f"{label}={root}: {total} record(s) of domain {domain!r}, fewer than the "
                             f"{per_domain} asked for; lower --samples")
        wanted = {int(i * total / per_domain) for i in range(per_domain)}
        members = (s for s in reader if s.domain == domain)
        chosen += [(label, reader, sample) for index, sample in enumerate(members) if index in wanted]
    return chosen


def load_checkpoint(directory: str | Path) -> tuple[Any, Any]:
    """``(model, processor)`` of a base (plain) or an omniactor checkpoint folder, in float32, eval mode."""
    from transformers import AutoConfig, AutoProcessor

    from ..models.checkpoint import load_pretrained
    from ..models.local_tokenizer import allow_processors_without_torchvision
    from ..models.presets import load_model

    config = AutoConfig.from_pretrained(directory, local_files_only=True)
    if getattr(config, "omniactor", None) is None:
        return load_model(directory, dtype="float32")
    allow_processors_without_torchvision()
    return load_pretrained(directory).float().eval(), AutoProcessor.from_pretrained(directory, local_files_only=True)


def prompt_inputs(processor: Any, sample: Any, images: list, image_size: int | None, system_prompt: str) -> dict:
    """The model inputs of a record's prompt (no answer), as training builds them."""
    from ..data.sample import IMAGE_MARKER
    from ..models.chat import chat_inputs

    text = sample.prompt.replace(IMAGE_MARKER, "").strip()
    system = {"sample": sample.system, "none": ""}.get(system_prompt, system_prompt)
    return dict(chat_inputs(processor, [(system, text, images)], image_size))


def hidden_features(model: Any, processor: Any, samples: Sequence[tuple[str, Any, Any]], layers: Sequence[int],
                    pool: str = "mean", image_size: int | None = 112, system_prompt: str = "sample",
                    progress: bool = True) -> dict[int, Any]:
    """``{layer: (N, D) float tensor}``: one pooled hidden vector per sample and layer."""
    import torch
    from tqdm.auto import tqdm

    from ..models.heterogeneity import heterogeneity_config

    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    het = heterogeneity_config(model)
    routed = het is not None and het.variant != "dense"
    rows: dict[int, list] = {layer: [] for layer in layers}
    for label, reader, sample in tqdm(samples, desc="features", unit="sample", disable=not progress):
        inputs = prompt_inputs(processor, sample, reader.load_images(sample), image_size, system_prompt)
        kwargs: dict[str, Any] = {}
        if routed:
            if sample.domain not in het.domains:
                raise ValueError(f"{label}: samples of domain {sample.domain!r}, but the checkpoint's experts are "
                                 f"{list(het.domains)}")
            kwargs["domain"] = sample.domain
        with torch.no_grad():
            states = model(**inputs, **kwargs, output_hidden_states=True).hidden_states
        for layer in layers:
            hidden = states[layer + 1][0].float()
            rows[layer].append(hidden.mean(dim=0) if pool == "mean" else hidden[-1])
    return {layer: torch.stack(vectors) for layer, vectors in rows.items()}


def _block_means(matrix: Any, labels: Sequence[str], domains: Sequence[str]) -> dict[str, float]:
    import numpy as np

    labels = np.asarray(labels)
    out = {}
    for i, a in enumerate(domains):
        for b in domains[i:]:
            block = matrix[np.ix_(labels == a, labels == b)]
            if a == b:  # the diagonal is 1 by definition: leave it out
                block = block[~np.eye(len(block), dtype=bool)]
            out[f"{a}~{b}"] = float(block.mean())
    return out


def feature_study(checkpoints: Mapping[str, str | Path], data: Mapping[str, str], layers: str | None = None,
                  per_domain: int = 16, pool: str = "mean", image_size: int | None = 112,
                  system_prompt: str = "sample", center: bool = False, progress: bool = True) -> FeatureStudy:
    """Measure every checkpoint (name -> folder) on the same samples of ``data`` (label -> folder)."""
    import torch

    if not checkpoints:
        raise ValueError("give at least one checkpoint folder")
    samples = select_samples(data, per_domain)
    labels = [label for label, _, _ in samples]
    domains = list(data)
    study = FeatureStudy([], domains, labels, centered=center)
    for name, directory in checkpoints.items():
        model, processor = load_checkpoint(directory)
        depth = model.config.get_text_config().num_hidden_layers
        chosen = parse_layers(layers, depth)
        if not study.similarity:
            study.layers = chosen
        elif chosen != study.layers:
            raise ValueError(f"checkpoint {name} has {depth} layers; the layers {study.layers} of the first "
                             "checkpoint do not all exist in it: compare checkpoints of one architecture")
        features = hidden_features(model, processor, samples, chosen, pool, image_size, system_prompt, progress)
        study.similarity[name], study.means[name] = {}, {}
        for layer, vectors in features.items():
            if center:
                vectors = vectors - vectors.mean(dim=0, keepdim=True)
            unit = torch.nn.functional.normalize(vectors.double(), dim=1)
            matrix = (unit @ unit.T).numpy()
            study.similarity[name][layer] = matrix
            study.means[name][layer] = _block_means(matrix, labels, domains)
        del model
    return study


def write_feature_report(study: FeatureStudy, out_dir: str | Path) -> dict[str, Path]:
    """``features.json`` / ``features.csv`` (means), ``features.npz`` (matrices) and the two figures."""
    import csv

    import numpy as np

    from .plots import plot_feature_heatmaps, plot_feature_means

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": out / "features.json", "csv": out / "features.csv", "npz": out / "features.npz"}
    written["json"].write_text(json.dumps(study.to_json(), indent=1))
    with written["csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["checkpoint", "layer", "pair", "mean_cosine"])
        for checkpoint, per_layer in study.means.items():
            for layer, means in per_layer.items():
                writer.writerows([checkpoint, layer, pair, f"{value:.6g}"] for pair, value in means.items())
    np.savez_compressed(written["npz"], **{f"{c}/layer{layer}": m for c, per in study.similarity.items()
                                           for layer, m in per.items()})
    written["plot_heatmaps"] = plot_feature_heatmaps(study, out / "features_heatmaps.png")
    written["plot_means"] = plot_feature_means(study, out / "features_mean.png")
    return written
