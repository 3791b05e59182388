from pathlib import Path

import pytest

from omniactor.training.config import load_config

ROOT = Path(__file__).resolve().parents[2].joinpath("configs")
#: the training configs (configs/rl/ holds `omniactor rl`'s, loaded by tests/rl)
CONFIGS = sorted(p for p in ROOT.rglob("*.yaml") if p.parent.name != "rl")


def test_there_are_configs_for_every_variant_of_the_paper():
    names = {p.stem for p in CONFIGS}
    assert {"omniactor", "dense-mixed", "gui-only", "ea-only", "hard", "router"} <= names
    assert any("qwen2-vl-7b" in n for n in names) and any("qwen2.5-vl-7b" in n for n in names)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_loads_and_its_model_builds(path):
    import torch

    from omniactor.models.heterogeneity import HeterogeneityConfig, convert
    from omniactor.models.presets import build_model, get_preset

    config = load_config(path)
    preset = get_preset(config.model)
    device = None if preset.is_tiny else "meta"  # a 7B is built without memory
    model, _ = build_model(preset, random_init=not preset.is_tiny or None, device=device)
    k = config.resolved_shared_layers(preset.shared_layers)
    convert(model, HeterogeneityConfig(config.variant, shared_layers=k, domains=tuple(config.domains)))
    assert sum(p.numel() for p in model.parameters()) > 0
    if config.deepspeed:
        assert (path.parents[2] / config.deepspeed).exists() or Path(config.deepspeed).exists()
    assert isinstance(torch.tensor(0), torch.Tensor)


def test_overrides_and_typos():
    config = load_config(None, ["variant=hard", "max_steps=7", "action_tokenizers.embodied.name=rvq",
                                "data=[a, {path: b, weight: 5}]"])
    assert config.variant == "hard" and config.max_steps == 7
    assert config.blocks["embodied"].action_tokenizer.name == "rvq"  # the flat key, turned into the block
    assert config.blocks["gui"].action_tokenizer.name == "gui_text"  # other domains keep their defaults
    assert [s.path for s in config.data] == ["a", "b"] and config.data[1].weight == 5
    with pytest.raises(ValueError, match="did you mean 'max_steps'"):
        load_config(None, ["max_step=3"])
    assert load_config(None, ["learning_rate=3e-3"]).learning_rate == 0.003  # YAML 1.1 reads 3e-3 as text
    with pytest.raises(ValueError, match="not a whole number"):
        load_config(None, ["max_steps=ten"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["variant"])
    with pytest.raises(ValueError, match="cache_images: 'png' is not one of pixels, tensors"):
        load_config(None, ["cache_images=png"])


def test_a_block_is_overridden_by_dotted_keys_and_written_back_as_blocks(tmp_path):
    from omniactor.training.config import save_config

    path = tmp_path / "run.yaml"
    path.write_text("domains:\n  gui: {action_tokenizer: {name: gui_location, grid: 16}, output: pointer}\n"
                    "  embodied: {action_tokenizer: {name: uniform, num_bins: 64}, output: regression_head}\n")
    config = load_config(path, ["domains.gui.history=2", "domains.embodied.action_tokenizer.num_bins=32"])
    assert config.blocks["gui"].history == 2 and config.blocks["gui"].output == "pointer"
    assert config.blocks["embodied"].action_tokenizer.args == {"num_bins": 32}
    save_config(config, tmp_path / "saved.yaml")
    saved = (tmp_path / "saved.yaml").read_text()
    assert "regression_heads" not in saved and "image_pointer" not in saved  # no flat keys written
    assert load_config(tmp_path / "saved.yaml") == config
