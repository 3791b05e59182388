import pytest

from omniactor.data.example import write_example_dataset

# the settings of a fast CPU fine-tune of the tiny preset (the probe's train overrides)
TINY_TRAIN = ["batch_size=2", "image_size=56", "history=1", "system_prompt=none", "learning_rate=1e-3",
              "log_every=1", "action_tokenizers.gui.name=gui_location", "action_tokenizers.gui.args={grid: 8}",
              "action_tokenizers.embodied.args={num_bins: 16}"]


@pytest.fixture(scope="session")
def example_data(tmp_path_factory):
    """A small dataset of all three domains in one folder."""
    root = tmp_path_factory.mktemp("analysis-data") / "example"
    write_example_dataset(root, episodes_per_domain=2, seed=0)
    return root


@pytest.fixture(scope="session")
def probe_run(tmp_path_factory, example_data):
    """``omniactor analyze update-similarity --probe`` on the tiny preset: (output folder, its stdout)."""
    import contextlib
    import io

    import torch

    from omniactor.cli import main

    out = tmp_path_factory.mktemp("probe") / "out"
    data = f"gui={example_data},embodied={example_data}"
    stdout = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only contend on a busy 2-core machine
    try:
        with contextlib.redirect_stdout(stdout):
            code = main(["analyze", "update-similarity", "--probe", "--base", "tiny", "--data", data, "--out",
                         str(out), "--steps", "3", "--no-progress", *TINY_TRAIN])
    finally:
        torch.set_num_threads(threads)
    assert code == 0, stdout.getvalue()
    return out, stdout.getvalue()
