"""Feature similarity: block means on known features; the CLI on the probe's checkpoints."""

import json

import numpy as np
import pytest
import torch

from omniactor.analysis.features import _block_means, parse_layers
from omniactor.cli import main


def test_block_means_separate_cross_and_within_domain_similarity():
    labels = ["gui", "gui", "gui", "embodied", "embodied"]
    vectors = torch.tensor([[1.0, 0.0], [2.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    unit = torch.nn.functional.normalize(vectors, dim=1)
    means = _block_means((unit @ unit.T).numpy(), labels, ["gui", "embodied"])
    assert means["embodied~embodied"] == pytest.approx(1.0)
    assert means["gui~gui"] == pytest.approx((1 + 2 / np.hypot(1, 0.1)) / 3)
    assert means["gui~embodied"] == pytest.approx(0.1 / np.hypot(1, 0.1) / 3)


def test_layers_are_parsed_and_checked():
    assert parse_layers(None, 4) == [0, 1, 2, 3] and parse_layers("3,0,3", 4) == [0, 3]
    with pytest.raises(ValueError, match=r"\[8\] outside 0..7"):
        parse_layers("0,8", 8)
    with pytest.raises(ValueError, match="comma-separated"):
        parse_layers("first", 8)


def test_features_of_several_checkpoints_are_written_and_an_upcycled_model_matches_its_base(
        probe_run, example_data, tmp_path, capsys):
    from omniactor.models.checkpoint import save_pretrained
    from omniactor.models.heterogeneity import HeterogeneityConfig, convert
    from omniactor.models.presets import load_model

    out, _ = probe_run
    model, processor = load_model(out / "base", dtype="float32")
    convert(model, HeterogeneityConfig("omniactor", shared_layers=2, domains=("gui", "embodied")))
    save_pretrained(model, tmp_path / "omni", processor)  # upcycled: each domain's path is the base
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["analyze", "features", "--checkpoint", f"base={out / 'base'}", "--checkpoint",
                     str(out / "runs" / "gui" / "final"), "--checkpoint", f"omni={tmp_path / 'omni'}",
                     "--data", f"gui={example_data},embodied={example_data}", "--layers", "0,7", "--samples", "3",
                     "--image-size", "56", "--center", "--out", str(tmp_path / "features"), "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "features" / "features.json").read_text())
    assert report["sample_domains"] == ["gui"] * 3 + ["embodied"] * 3 and report["centered"]
    means = report["means"]
    assert set(means) == {"base", "gui", "omni"} and set(means["base"]) == {"0", "7"}
    assert set(means["base"]["7"]) == {"gui~gui", "gui~embodied", "embodied~embodied"}
    assert means["omni"]["7"] == pytest.approx(means["base"]["7"], abs=1e-6)
    assert means["gui"]["7"] != pytest.approx(means["base"]["7"], abs=1e-6)  # fine-tuning changed the features
    matrices = np.load(tmp_path / "features" / "features.npz")
    matrix = matrices["base/layer7"]
    assert matrix.shape == (6, 6) and np.allclose(matrix, matrix.T) and np.allclose(np.diag(matrix), 1)
    for name in ("features_heatmaps.png", "features_mean.png"):
        assert (tmp_path / "features" / name).read_bytes()[:4] == b"\x89PNG"
    assert "gui~embodied" in capsys.readouterr().out
