"""Shared test settings.

Property tests (hypothesis) are **derandomized** by default and under ``CI=true``: the
examples depend only on the code, never on luck or on an example database, so a red run
means the change broke something. ``make test-explore`` (``HYPOTHESIS_PROFILE=explore``)
runs them with random seeds and many more examples; pin each failure it finds with
``@example(...)`` beside the test.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("explore", max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "2000")),
                          deadline=None, derandomize=False, database=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import pytest  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    """The fault tests' counts (faults injected, results validated, records lost), when they ran."""
    import sys

    faults = sys.modules.get("tests.test_faults")
    if faults is not None and faults.COUNTS["faults"]:
        terminalreporter.write_line(faults.summary_line())


def pytest_collection_modifyitems(items):
    """Mark every hypothesis test ``property``, so ``pytest -m property`` selects them."""
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory):
    """A tiny OmniActor trained for 2 steps on the example dataset: its ``final/`` folder and its data."""
    from omniactor.data.example import write_example_dataset
    from omniactor.training.config import load_config
    from omniactor.training.loop import train

    root = tmp_path_factory.mktemp("trained")
    write_example_dataset(root / "data", episodes_per_domain=3, seed=0)
    overrides = {"data": f"[{root / 'data'}]", "output_dir": str(root / "run"), "max_steps": 2, "batch_size": 4,
                 "save_every": 2, "image_size": 56, "history": 2, "cache_dir": str(root / "cache"),
                 "action_tokenizers.gui.name": "gui_location", "action_tokenizers.gui.args": "{grid: 8}",
                 "action_tokenizers.embodied.args": "{num_bins: 16}"}
    train(load_config(None, [f"{k}={v}" for k, v in overrides.items()]), progress=False)
    return root / "run" / "final", root / "data"
