"""BabyAI through the real ``minigrid`` package: adapter and bot."""

from __future__ import annotations

import numpy as np
import pytest

from omniactor.actions import BABYAI_ACTIONS, DiscreteAction
from omniactor.envs import make_env, make_expert
from tests.envs.conftest import require

pytestmark = pytest.mark.env


@pytest.fixture(scope="module")
def env():
    require("babyai")
    env = make_env("babyai", "GoToLocal", views=("agent", "full"), tile_size=8)
    yield env
    env.close()


def test_reset_step_render(env):
    obs = env.reset(3)
    assert env.task == "BabyAI-GoToLocal-v0" and obs.domain == "discrete" and obs.step == 0
    assert obs.instruction.startswith("go to ")
    assert list(obs.images) == ["agent", "full"]
    assert obs.images["agent"].shape == (56, 56, 3) and obs.images["agent"].dtype == np.uint8
    assert obs.state.shape == (148,)
    assert env.action_space.names == BABYAI_ACTIONS
    result = env.step(DiscreteAction("left"))
    assert result.observation.step == 1 and not result.done and result.info["success"] is False
    assert env.render().shape == (56, 56, 3)


def test_same_seed_same_episode(env):
    first = env.reset(11)
    again = env.reset(11)
    other = env.reset(12)
    assert first.instruction == again.instruction
    assert np.array_equal(first.images["full"], again.images["full"])
    assert not np.array_equal(first.images["full"], other.images["full"])


def test_one_hot_state_matches_the_codes():
    require("babyai")
    codes = make_env("babyai", "GoToLocal", tile_size=4)
    onehot = make_env("babyai", "GoToLocal", tile_size=4, state_format="onehot")
    for seed in (0, 5):
        grid = codes.reset(seed).state[:-1].reshape(7, 7, 3).astype(int)
        direction = int(codes.reset(seed).state[-1])
        vector = onehot.reset(seed).state
        assert vector.shape == (7 * 7 * 21 + 4,) and set(np.unique(vector)) == {0.0, 1.0}
        cells = vector[:-4].reshape(49, 21)
        # each cell: one object, one colour, one state; at the codes' positions
        assert (cells.sum(axis=1) == 3).all()
        flat = grid.reshape(49, 3)
        assert (cells[:, :11].argmax(1) == flat[:, 0]).all()
        assert (cells[:, 11:17].argmax(1) == flat[:, 1]).all()
        assert (cells[:, 17:].argmax(1) == flat[:, 2]).all()
        assert vector[-4:].argmax() == direction
    assert onehot.config()["state_format"] == "onehot"


def test_frames_stack_the_views_newest_first():
    require("babyai")
    one = make_env("babyai", "GoToLocal", tile_size=4, state_format="onehot")
    three = make_env("babyai", "GoToLocal", tile_size=4, state_format="onehot", frames=3)
    width = 7 * 7 * 21 + 4
    views = [one.reset(4).state]
    stacked = [three.reset(4).state]
    for name in ("left", "forward", "right"):
        views.append(one.step(DiscreteAction(name)).observation.state)
        stacked.append(three.step(DiscreteAction(name)).observation.state)
    assert all(s.shape == (3 * width,) for s in stacked) and three.config()["frames"] == 3
    # before the episode's first step: zeros
    assert np.array_equal(stacked[0][:width], views[0]) and not stacked[0][width:].any()
    assert np.array_equal(stacked[1], np.concatenate([views[1], views[0], np.zeros(width)]))
    assert np.array_equal(stacked[3], np.concatenate([views[3], views[2], views[1]]))
    # a new episode forgets the last one's views
    assert np.array_equal(three.reset(5).state, np.concatenate([one.reset(5).state, np.zeros(2 * width)]))
    with pytest.raises(ValueError, match="frames must be a whole number"):
        make_env("babyai", "GoToLocal", frames=0)


def test_full_state_marks_the_agent():
    require("babyai")
    from minigrid.core.constants import OBJECT_TO_IDX

    env = make_env("babyai", "GoToLocal", tile_size=4, state="full")
    obs = env.reset(2)
    grid = obs.state[:-1].reshape(8, 8, 3)
    x, y = env.env.agent_pos
    assert obs.state.shape == (8 * 8 * 3 + 1,)
    assert grid[x, y, 0] == OBJECT_TO_IDX["agent"] and grid[x, y, 2] == env.env.agent_dir
    assert (grid[:, :, 0] == OBJECT_TO_IDX["agent"]).sum() == 1
    # the mission's object is somewhere in the room, seen or not
    kind = obs.instruction.split()[-1]
    assert (grid[:, :, 0] == OBJECT_TO_IDX[kind]).any()


def test_bad_state_settings_are_refused():
    require("babyai")
    with pytest.raises(ValueError, match="state_format must be one of"):
        make_env("babyai", "GoToLocal", state_format="bits")
    with pytest.raises(ValueError, match="state must be one of"):
        make_env("babyai", "GoToLocal", state="room")


@pytest.mark.parametrize("task", ["GoToLocal", "PickupLoc", "PutNextLocal", "GoToObjMaze"])
def test_bot_solves_levels(task, capsys):
    require("babyai")
    env = make_env("babyai", task, image_size=32)
    expert = make_expert("babyai", env)
    for seed in range(3):
        obs = env.reset(seed)
        expert.reset(env, obs)
        while True:
            result = env.step(expert.act(obs))
            obs = result.observation
            if result.done:
                break
        assert result.success, (task, seed)
        assert obs.image.shape == (32, 32, 3)
    env.close()
    assert "Sampling rejected" not in capsys.readouterr().out


def test_unknown_level():
    require("babyai")
    with pytest.raises(KeyError, match="did you mean"):
        make_env("babyai", "GoToLocl")


def test_check_experts_cli(cli_parser, capsys):
    require("babyai")
    from tests.envs.conftest import run_cli

    assert (
        run_cli(
            cli_parser,
            ["envs", "check-experts", "--env", "babyai", "--tasks", "GoToLocal,PickupLoc", "--episodes", "3", "--json"],
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "BabyAI-GoToLocal-v0: 3/3 (100.0%)" in out and "tasks below 95%: none" in out
    import json

    data = json.loads(out.strip().splitlines()[-1])
    assert [t["rate"] for t in data["tasks"]] == [1.0, 1.0]
