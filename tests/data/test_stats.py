"""dataset_stats on a folder whose numbers are known by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omniactor.actions import ContinuousAction, DiscreteAction, Point, TypeText
from omniactor.actions.gui import Click
from omniactor.data import DatasetWriter, build_sample, dataset_stats, format_stats

ARM = np.array([[0.0, 0.0, -1.0], [1.0, 2.0, -1.0], [2.0, 4.0, 1.0], [3.0, 6.0, 1.0], [4.0, 8.0, 1.0]])


@pytest.fixture
def known(tmp_path):
    root = tmp_path / "known"
    image = np.zeros((4, 4, 3), np.uint8)
    with DatasetWriter(root, shard_size=4) as writer:
        for i, values in enumerate(ARM):
            episode, step = ("a", i) if i < 3 else ("b", i - 3)
            writer.write(
                build_sample(
                    domain="embodied",
                    instruction="go",
                    source="arm",
                    episode=episode,
                    step=step,
                    action=ContinuousAction(tuple(values), ("x", "y", "gripper")),
                ),
                images=[image],
            )
        for step, name in enumerate(["left", "left", "forward"]):
            writer.write(
                build_sample(
                    domain="discrete",
                    instruction="go",
                    source="grid",
                    episode="c",
                    step=step,
                    action=DiscreteAction(name),
                ),
                images=[image],
            )
        writer.write(
            build_sample(
                domain="gui", instruction="t", source="web", episode="d", step=0, action=Click(Point(0.5, 0.5))
            ),
            images=[image],
        )
        writer.write(
            build_sample(
                domain="gui", instruction="t", source="web", episode="d", step=1, num_images=0, action=TypeText("hi")
            ),
            images=[],
        )
    return root


def test_counts_and_episodes(known):
    stats = dataset_stats(known)
    assert stats["records"] == 10 and stats["unreadable"] == 0 and stats["images"] == 9
    assert stats["domains"] == {"discrete": 3, "embodied": 5, "gui": 2}
    assert stats["sources"] == {"arm": 5, "grid": 3, "web": 2}
    assert stats["action_types"] == {"click": 1, "continuous": 5, "discrete": 3, "type": 1}
    assert stats["episodes"] == 4 and stats["episodes_per_source"] == {"arm": 2, "grid": 1, "web": 1}
    assert stats["steps_per_episode"] == {"mean": 2.5, "min": 2, "median": 2.5, "max": 3}
    assert stats["discrete"] == {"grid": {"left": 2, "forward": 1}}
    json.dumps(stats)  # machine-readable as is


def test_continuous_statistics(known):
    arm = dataset_stats(known)["continuous"]["arm"]
    assert arm["names"] == ["x", "y", "gripper"] and arm["count"] == 5 and arm["quantiles_exact"]
    np.testing.assert_allclose(arm["mean"], [2.0, 4.0, 0.2])
    np.testing.assert_allclose(arm["std"], ARM.std(0))
    assert arm["min"] == [0.0, 0.0, -1.0] and arm["max"] == [4.0, 8.0, 1.0]
    np.testing.assert_allclose(arm["p01"], [0.04, 0.08, -1.0])
    np.testing.assert_allclose(arm["p99"], [3.96, 7.92, 1.0])


def test_unreadable_records_are_counted_not_hidden(known):
    shard = known / "shards/shard-00000.jsonl"
    shard.write_text(shard.read_text() + "{oops\n")
    stats = dataset_stats(known)
    assert stats["records"] == 10 and stats["unreadable"] == 1
    text = format_stats(stats)
    assert "1 unreadable record(s)" in text and "shard-00000.jsonl:5" in text


def test_text_summary(known):
    text = format_stats(dataset_stats(known))
    assert "10 records, 4 episodes, 9 images" in text
    assert "continuous actions of arm (5):" in text and "gripper" in text
    assert "discrete actions of grid:" in text and "left" in text
