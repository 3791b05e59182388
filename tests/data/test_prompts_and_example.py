"""Default prompts, the human turn, and the example dataset."""

from __future__ import annotations

import pytest

from omniactor.actions import ContinuousSpace, DiscreteAction, DiscreteSpace, parse_action
from omniactor.data import DatasetReader, dataset_stats, human_turn, system_prompt, validate_dataset
from omniactor.data.example import write_example_dataset


def test_human_turn_layout():
    text = human_turn("open settings", num_images=2, history=[DiscreteAction("left"), 'type(text="a")'])
    assert text == (
        "<image><image>\nTask: open settings\nPrevious actions:\n"
        '1. discrete(name="left")\n2. type(text="a")\nWhat is the next action?'
    )
    assert human_turn("x", num_images=0) == "Task: x\nWhat is the next action?"


def test_system_prompts_describe_each_action_space():
    gui = system_prompt("gui")
    for form in ("click(x=0.5, y=0.5)", 'type(text="hello")', "swipe(", 'terminate(status="success")'):
        assert form in gui
    arm = system_prompt("embodied", ContinuousSpace(("x", "gripper"), (-0.5, 0.0), (0.5, 1.0)))
    assert "continuous(x=0.0, gripper=0.0)" in arm and "gripper in [0, 1]" in arm
    parse_action("continuous(x=0.0, gripper=0.0)")  # the example form in the prompt is itself valid
    grid = system_prompt("discrete", DiscreteSpace(("up", "down")))
    assert 'discrete(name="...")' in grid and "up, down" in grid
    assert "pickup" in system_prompt("discrete")  # BabyAI's actions by default
    assert system_prompt("navigation", declared_domains={"navigation": "discrete"}) == system_prompt("discrete")
    with pytest.raises(ValueError, match="not known"):
        system_prompt("cooking")


@pytest.mark.parametrize("episodes, seed", [(1, 0), (3, 7)])
def test_example_is_valid_and_covers_every_domain(tmp_path, episodes, seed):
    example = write_example_dataset(tmp_path / "ex", episodes_per_domain=episodes, seed=seed, shard_size=5)
    report = validate_dataset(example.root, images="decode")
    assert report.ok and report.checked == example.records
    stats = dataset_stats(example.root)
    assert set(stats["domains"]) == {"gui", "embodied", "discrete"}
    assert stats["episodes"] == 3 * episodes
    assert {"click", "type", "scroll", "terminate"} <= set(stats["action_types"])
    assert stats["continuous"]["example_embodied"]["names"] == ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
    assert stats["discrete"]["example_babyai"]["done"] == episodes


def test_example_is_deterministic(tmp_path):
    first = write_example_dataset(tmp_path / "a", seed=3)
    second = write_example_dataset(tmp_path / "b", seed=3)
    assert [s.to_json() for s in DatasetReader(first.root)] == [s.to_json() for s in DatasetReader(second.root)]
    images_a = sorted((first.root / "images").rglob("*.png"))
    images_b = sorted((second.root / "images").rglob("*.png"))
    assert [p.relative_to(first.root) for p in images_a] == [p.relative_to(second.root) for p in images_b]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(images_a, images_b, strict=True))
