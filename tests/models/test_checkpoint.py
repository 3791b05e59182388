import copy

import pytest
import torch

from omniactor.models.checkpoint import export_dense, load_pretrained, save_pretrained
from omniactor.models.heterogeneity import HeterogeneityConfig, convert, heterogeneity_config

from .test_heterogeneity import perturb_experts
from .tiny import image_batch


@pytest.mark.parametrize("variant", ["dense", "omniactor", "hard", "router"])
def test_save_load_gives_identical_outputs(tmp_path, dense_model, variant):
    config = HeterogeneityConfig(variant=variant, shared_layers=2, domains=("gui", "embodied", "discrete"))
    model = convert(copy.deepcopy(dense_model), config)
    perturb_experts(model)
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path)
    assert heterogeneity_config(loaded) == config
    batch = image_batch(3)
    with torch.no_grad():
        for domains in (["gui"] * 3, ["embodied", "discrete", "gui"]):
            assert torch.equal(model(**batch, domain_ids=domains).logits, loaded(**batch, domain_ids=domains).logits)


@pytest.mark.parametrize("variant", ["omniactor", "hard"])
def test_exported_dense_view_gives_the_domain_logits_in_plain_transformers(tmp_path, dense_model, variant):
    from transformers import AutoModelForImageTextToText

    model = convert(copy.deepcopy(dense_model), HeterogeneityConfig(variant=variant, shared_layers=2))
    perturb_experts(model)
    save_pretrained(model, tmp_path / "ckpt")
    batch = image_batch(2)
    for domain in ("gui", "embodied"):
        out = export_dense(tmp_path / "ckpt", domain, tmp_path / domain)
        plain = AutoModelForImageTextToText.from_pretrained(out, local_files_only=True).eval()
        assert type(plain).__name__ == "Qwen2VLForConditionalGeneration"
        with torch.no_grad():
            assert torch.allclose(plain(**batch).logits, model(**batch, domain=domain).logits, atol=1e-5)


def test_export_refuses_router_and_unknown_domains(tmp_path, dense_model):
    router = convert(copy.deepcopy(dense_model), HeterogeneityConfig(variant="router", shared_layers=2))
    with pytest.raises(ValueError, match="router"):
        export_dense(router, "gui", tmp_path / "r")
    model = convert(copy.deepcopy(dense_model), HeterogeneityConfig(shared_layers=2))
    with pytest.raises(ValueError, match="unknown domain 'web'"):
        export_dense(model, "web", tmp_path / "w")


def test_loading_a_folder_without_safetensors_says_so(tmp_path, dense_model):
    dense_model.config.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_pretrained(tmp_path)


def test_export_command_writes_a_plain_checkpoint_and_reports_bad_domains(tmp_path, dense_model, capsys):
    from omniactor.cli import main

    model = convert(copy.deepcopy(dense_model), HeterogeneityConfig(shared_layers=2))
    save_pretrained(model, tmp_path / "ckpt")
    assert main(["export", str(tmp_path / "ckpt"), str(tmp_path / "gui"), "--domain", "gui"]) == 0
    assert (tmp_path / "gui" / "config.json").exists()
    assert main(["export", str(tmp_path / "ckpt"), str(tmp_path / "x"), "--domain", "web"]) == 2  # could not run
    assert "unknown domain 'web'" in capsys.readouterr().err
