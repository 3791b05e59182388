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
