"""Meta-World v3 (``metaworld``, MuJoCo): 50 Sawyer-arm manipulation tasks, MT10 and MT50.

- Rendering: ``MUJOCO_GL=egl`` (set here when unset; Debian ``libegl1`` + ``libgl1-mesa-dri``),
  one ``mujoco.Renderer``; ``cheap_render`` (default) turns shadows, reflections and
  multisampling off, about 10x faster in software GL at 224 px with near-identical images
  (``cheap_render=False`` restores them). The ``corner*`` cameras are mounted upside
  down; their images are rotated 180 degrees so the table is at the bottom.
- Observations: ``images[camera]`` ``(H, W, 3)``, ``state`` the 39-D Meta-World vector
  (hand, gripper, objects, previous frame, goal), ``proprio`` hand xyz + gripper opening.
- Actions: ``ContinuousAction`` over ``XYZ_GRIPPER`` in ``[-1, 1]`` (hand delta, gripper effort).
- Episodes: the seed fixes the object and goal positions; the episode ends on success
  (``terminate_on_success``) or after ``max_steps`` (the benchmark's 500).
- Each task has a one-sentence instruction (``INSTRUCTIONS``), written for this toolkit.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..actions import XYZ_GRIPPER, Action, ContinuousAction, ContinuousSpace
from .base import Env, EnvError, Observation, StepResult, parse_image_size

ACTION_SPACE = ContinuousSpace.symmetric(XYZ_GRIPPER)
CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")
UPSIDE_DOWN = frozenset({"corner", "corner2", "corner3", "corner4"})
MAX_PATH_LENGTH = 500

#: One instruction per task (the benchmark ships none).
INSTRUCTIONS: dict[str, str] = {
    "assembly-v3": "pick up the nut and place it onto the peg",
    "basketball-v3": "pick up the basketball and dunk it into the hoop",
    "bin-picking-v3": "pick up the puck from one bin and place it into the other bin",
    "box-close-v3": "grasp the lid and close the box with it",
    "button-press-topdown-v3": "press the button from the top",
    "button-press-topdown-wall-v3": "press the button from the top, reaching past the wall",
    "button-press-v3": "press the button that faces you",
    "button-press-wall-v3": "press the button behind the wall",
    "coffee-button-v3": "push the button on the coffee machine",
    "coffee-pull-v3": "pull the mug out from under the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "rotate the dial 180 degrees",
    "disassemble-v3": "pick the nut up off the peg",
    "door-close-v3": "close the door",
    "door-lock-v3": "lock the door by turning the lock down",
    "door-open-v3": "open the door with a revolving joint",
    "door-unlock-v3": "unlock the door by turning the lock",
    "hand-insert-v3": "insert the gripper into the hole",
    "drawer-close-v3": "push the drawer closed",
    "drawer-open-v3": "pull the drawer open",
    "faucet-open-v3": "turn the faucet handle to open it",
    "faucet-close-v3": "turn the faucet handle to close it",
    "hammer-v3": "hammer the nail into the wall with the hammer",
    "handle-press-side-v3": "press the handle down from the side",
    "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up from the side",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever up",
    "pick-place-wall-v3": "pick up the puck and place it at the goal behind the wall",
    "pick-out-of-hole-v3": "pick the puck up out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "plate-slide-v3": "slide the plate into the cabinet",
    "plate-slide-side-v3": "slide the plate sideways into the cabinet",
    "plate-slide-back-v3": "slide the plate back out of the cabinet",
    "plate-slide-back-side-v3": "slide the plate sideways back out of the cabinet",
    "peg-insert-side-v3": "insert the peg into the hole from the side",
    "peg-unplug-side-v3": "unplug the peg from the side",
    "soccer-v3": "kick the soccer ball into the goal",
    "stick-push-v3": "grasp the stick and push the box with it",
    "stick-pull-v3": "grasp the stick and pull the box with it",
    "push-v3": "push the puck to the goal",
    "push-wall-v3": "push the puck past the wall to the goal",
    "push-back-v3": "push the puck backwards to the goal",
    "reach-v3": "reach the goal position with the gripper",
    "reach-wall-v3": "reach the goal position behind the wall with the gripper",
    "shelf-place-v3": "pick up the puck and place it onto the shelf",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the table",
    "window-open-v3": "slide the window open",
    "window-close-v3": "slide the window closed",
}

MT10 = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)


def tasks() -> list[str]:
    """The 50 Meta-World v3 task names (``reach-v3``, ...)."""
    return list(INSTRUCTIONS)


def task_sets() -> dict[str, list[str]]:
    return {"MT10": list(MT10), "MT50": tasks()}


def resolve_task(name: str) -> str:
    """``reach`` / ``reach-v3`` -> ``reach-v3``."""
    if name in INSTRUCTIONS:
        return name
    if f"{name}-v3" in INSTRUCTIONS:
        return f"{name}-v3"
    import difflib

    close = difflib.get_close_matches(name, list(INSTRUCTIONS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise KeyError(f"unknown Meta-World task {name!r}{hint} (`omniactor envs list` shows all 50)")


class MetaWorldEnv(Env):
    """One Meta-World v3 task with the goal observable in the state vector."""

    name = "metaworld"
    domain = "embodied"

    def __init__(
        self,
        task: str,
        cameras: Sequence[str] | str = ("corner",),
        image_size: int | str | tuple[int, int] | None = 224,
        cheap_render: bool = True,
        terminate_on_success: bool = True,
        max_steps: int = MAX_PATH_LENGTH,
    ):
        os.environ.setdefault("MUJOCO_GL", "egl")
        super().__init__(task, min(int(max_steps), MAX_PATH_LENGTH))
        self.cameras = (cameras,) if isinstance(cameras, str) else tuple(cameras)
        bad = [c for c in self.cameras if c not in CAMERAS]
        if bad:  # no camera at all is allowed: state-only episodes (fast expert checks)
            raise ValueError(f"Meta-World cameras must be among {CAMERAS}, got {self.cameras}")
        self.image_size = parse_image_size(image_size) or (224, 224)
        self.cheap_render = bool(cheap_render)
        self.terminate_on_success = bool(terminate_on_success)
        self.instruction = INSTRUCTIONS[task]

        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"]()
        self.env._freeze_rand_vec = False
        self.env.seeded_rand_vec = True  # object and goal positions come from the seed
        self._renderer: Any = None
        self._obs: np.ndarray | None = None
        self._success = False

    @property
    def action_space(self) -> ContinuousSpace:
        return ACTION_SPACE

    def config(self) -> dict[str, Any]:
        return {
            "cameras": list(self.cameras),
            "image_size": list(self.image_size),
            "cheap_render": self.cheap_render,
            "terminate_on_success": self.terminate_on_success,
            "max_steps": self.max_steps,
        }

    def _render(self, camera: str) -> np.ndarray:
        if self._renderer is None:
            import mujoco

            height, width = self.image_size
            visual = self.env.model.vis.global_
            visual.offwidth, visual.offheight = max(visual.offwidth, width), max(visual.offheight, height)
            if self.cheap_render:
                self.env.model.vis.quality.offsamples = 0  # no multisampling: 2-5x faster in software GL
            self._renderer = mujoco.Renderer(self.env.model, height, width)
            if self.cheap_render:
                self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
                self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._renderer.update_scene(self.env.data, camera=camera)
        image = self._renderer.render()
        return np.ascontiguousarray(image[::-1, ::-1]) if camera in UPSIDE_DOWN else image.copy()

    def observe(self) -> Observation:
        if self._obs is None:
            raise RuntimeError("call reset(seed) first")
        state = self._obs.astype(np.float32)
        return Observation(
            images={camera: self._render(camera) for camera in self.cameras},
            instruction=self.instruction,
            domain=self.domain,
            step=self.steps,
            state=state,
            proprio=state[:4].copy(),
            extra={"obs": self._obs},
        )

    def _reset(self, seed: int) -> Observation:
        try:
            self.env.seed(seed)
            self._obs, _ = self.env.reset()
            import mujoco

            # the reset moves the goal and objects without updating the derived positions the
            # renderer draws: the first frame showed the previous episode's goal
            mujoco.mj_forward(self.env.model, self.env.data)
        except Exception as err:  # MuJoCo errors are not one type
            raise EnvError(f"Meta-World {self.task} reset failed: {err}") from err
        self._success = False
        return self.observe()

    def _step(self, action: Action) -> StepResult:
        if not isinstance(action, ContinuousAction) or action.names != XYZ_GRIPPER:
            raise TypeError(f"Meta-World takes continuous actions over {XYZ_GRIPPER}, got {action!r}")
        values = np.clip(np.asarray(action.values, dtype=np.float32), -1.0, 1.0)
        try:
            self._obs, reward, _, truncated, info = self.env.step(values)
        except ValueError as err:
            raise EnvError(f"Meta-World {self.task} step failed: {err}") from err
        info = dict(info)
        info["success"] = bool(info.get("success", 0.0))
        self._success = self._success or info["success"]
        terminated = bool(info["success"] and self.terminate_on_success)
        return StepResult(self.observe(), float(reward), terminated, bool(truncated), info)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.env.close()


ENV_CLASS = MetaWorldEnv


def make_expert(env: Env | None = None):
    from .experts.metaworld import MetaWorldExpert

    if env is None:
        raise ValueError("the Meta-World expert needs the env (its policy depends on the task)")
    return MetaWorldExpert(env.task)
