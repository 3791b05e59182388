import pytest

from omniactor.data.example import write_example_dataset


@pytest.fixture(scope="session")
def example_data(tmp_path_factory):
    """A small dataset of all three domains (GUI, embodied, discrete)."""
    root = tmp_path_factory.mktemp("data") / "example"
    write_example_dataset(root, episodes_per_domain=3, seed=0)
    return root


def tiny_overrides(data, out, **extra) -> list[str]:
    """Overrides for a fast CPU run of the tiny preset on ``data``."""
    settings = {"data": f"[{data}]", "output_dir": str(out), "max_steps": 4, "batch_size": 4, "save_every": 2,
                "log_every": 1, "learning_rate": 1e-3, "image_size": 56, "history": 2,
                "cache_dir": str(out.parent / "cache"), "action_tokenizers.gui.name": "gui_location",
                "action_tokenizers.gui.args": "{grid: 8}", "action_tokenizers.embodied.args": "{num_bins: 16}"}
    settings.update(extra)
    return [f"{k}={v}" for k, v in settings.items()]
