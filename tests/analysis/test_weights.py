"""Reading real checkpoints: Qwen2-VL key names, OmniActor experts as each domain's dense path."""

import copy

import pytest
import torch

from omniactor.analysis.update_similarity import compute_update_similarity
from omniactor.analysis.weights import CheckpointSource, WeightsError, layer_matrices
from omniactor.models.checkpoint import save_pretrained
from omniactor.models.heterogeneity import HeterogeneityConfig, convert

from ..models.tiny import tiny_qwen2_vl


def moved(model, seed: int):
    """``model`` with every parameter moved by independent noise."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1e-2 * torch.randn(param.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    base = tiny_qwen2_vl(layers=4)
    save_pretrained(base, root / "base")
    omni = moved(convert(copy.deepcopy(base), HeterogeneityConfig("omniactor", shared_layers=2)), seed=1)
    save_pretrained(omni, root / "omni")
    router = convert(copy.deepcopy(base), HeterogeneityConfig("router", shared_layers=2))
    save_pretrained(router, root / "router")
    return root


def test_qwen2_vl_layers_are_found_by_name_and_the_vision_tower_is_skipped(checkpoints):
    matrices = layer_matrices(CheckpointSource(checkpoints / "base"))
    assert {m.key.rsplit(".layers.", 1)[0] for m in matrices} == {"model.language_model"}
    assert sorted({m.layer for m in matrices}) == [0, 1, 2, 3]
    assert [m.name for m in matrices if m.layer == 0] == ["q", "k", "v", "o", "gate", "up", "down"]


def test_an_omniactor_checkpoint_reads_as_each_domains_dense_path(checkpoints):
    base = CheckpointSource(checkpoints / "base")
    gui = CheckpointSource(checkpoints / "omni", domain="gui")
    embodied = CheckpointSource(checkpoints / "omni", domain="embodied")
    key = "model.language_model.layers.3.mlp.up_proj.weight"
    assert gui.shape(key) == base.shape(key)
    assert not torch.equal(gui.rows(key, 0, 5), embodied.rows(key, 0, 5))  # two experts, two tensors
    result = compute_update_similarity(base, {"gui": gui, "embodied": embodied}, progress=False)
    curve = result.curve("layer")
    assert curve[:2] == pytest.approx([1.0, 1.0])  # shared layers: one tensor, one delta
    assert all(abs(v) < 0.1 for v in curve[2:])  # separate experts moved independently


def test_checkpoints_without_one_path_per_domain_are_refused(checkpoints):
    with pytest.raises(WeightsError, match=r"experts \['embodied', 'gui'\]; name the run after the domain"):
        CheckpointSource(checkpoints / "omni", domain="robot")
    with pytest.raises(WeightsError, match="routes tokens, not domains"):
        CheckpointSource(checkpoints / "router", domain="gui")
