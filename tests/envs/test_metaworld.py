"""Meta-World v3 through the real simulator (MuJoCo, EGL): adapter and scripted experts."""

from __future__ import annotations

import numpy as np
import pytest

from omniactor.actions import XYZ_GRIPPER, ContinuousAction
from omniactor.envs import make_env, make_expert
from tests.envs.conftest import require

pytestmark = pytest.mark.env


@pytest.fixture(scope="module")
def env():
    require("metaworld")
    env = make_env("metaworld", "reach", image_size=48)
    yield env
    env.close()


def test_reset_step_render(env):
    obs = env.reset(0)
    assert env.task == "reach-v3" and obs.domain == "embodied"
    assert obs.instruction == "reach the goal position with the gripper"
    assert obs.image.shape == (48, 48, 3) and obs.image.dtype == np.uint8 and obs.image.std() > 5
    assert obs.state.shape == (39,) and obs.proprio.shape == (4,)
    assert env.action_space.names == XYZ_GRIPPER
    result = env.step(ContinuousAction((0.0, 0.0, 1.0, -1.0), XYZ_GRIPPER))
    assert result.observation.step == 1 and "success" in result.info and not result.done
    assert result.observation.state[2] > obs.state[2]  # the hand went up


def test_corner_camera_is_turned_right_way_up(env):
    import mujoco

    env.reset(0)
    image = env.render()
    raw = mujoco.Renderer(env.env.model, 48, 48)
    raw.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
    raw.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
    raw.update_scene(env.env.data, camera="corner")
    assert np.array_equal(image, raw.render()[::-1, ::-1])
    raw.close()


def test_same_seed_same_episode(env):
    a = env.reset(5).state
    b = env.reset(5).state
    c = env.reset(6).state
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_every_task_has_an_expert_and_instruction():
    require("metaworld")
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS, MT10_V3
    from metaworld.policies import ENV_POLICY_MAP

    from omniactor.envs.metaworld import INSTRUCTIONS, task_sets

    assert set(INSTRUCTIONS) == set(ALL_V3_ENVIRONMENTS) == set(ENV_POLICY_MAP)
    assert task_sets()["MT10"] == list(MT10_V3)


@pytest.mark.parametrize("task", ["reach-v3", "drawer-close-v3"])
def test_expert_succeeds(task):
    require("metaworld")
    env = make_env("metaworld", task, image_size=32)
    expert = make_expert("metaworld", env)
    for seed in range(2):
        obs = env.reset(seed)
        expert.reset(env, obs)
        while True:
            action = expert.act(obs)
            assert action.names == XYZ_GRIPPER and all(-1 <= v <= 1 for v in action.values)
            result = env.step(action)
            obs = result.observation
            if result.done:
                break
        assert result.success and result.terminated, (task, seed, env.steps)
    env.close()


def test_the_first_frame_does_not_depend_on_the_episode_before():
    """The reset moves goal and objects; the first frame must show them there, not where the
    previous episode of the process left them (which worker ran what then changed the data)."""
    require("metaworld")
    from omniactor.data.collect import Job, run_episode

    fresh = make_env("metaworld", "push", image_size=64)
    used = make_env("metaworld", "push", image_size=64)
    try:
        # the expert moves the puck
        assert run_episode(used, make_expert("metaworld", used), Job("push-v3", 0, 3, "train")).success
        assert np.array_equal(fresh.reset(5).image, used.reset(5).image)
    finally:
        fresh.close()
        used.close()
