"""The one environment interface: ``reset(seed) -> Observation``, ``step(action) -> StepResult``.

Every adapter (MiniWoB++, Meta-World, BabyAI, ...) speaks the same language:

- an ``Observation`` holds the image(s) ``{view name: (H, W, 3) uint8}``, the task
  ``instruction``, the ``domain`` (``gui``, ``embodied`` or ``discrete``), the ``step``
  index and, where the world has one, a ``state`` vector and ``proprio`` (robot's own
  state); ``extra`` carries privileged, adapter-specific data experts may read (the DOM
  of a web page, the simulator's 39-D observation) and that is never written to datasets;
- actions are the typed actions of ``omniactor.actions`` (``Click``, ``TypeText``,
  ``ContinuousAction``, ``DiscreteAction``, ...);
- ``step`` returns Gymnasium's 5-tuple (observation, reward, terminated, truncated, info)
  as a named tuple; ``info["success"]`` says whether the task is done.

Episodes are reproducible: ``reset(seed)`` with the same seed gives the same episode.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..actions import Action, ContinuousSpace, DiscreteSpace
from ..errors import OmniactorError


class EnvError(OmniactorError, RuntimeError):
    """The environment (a browser, a simulator) failed; the episode in progress is lost."""


class DependencyNotInstalled(OmniactorError, ImportError):
    """An optional dependency of an environment is missing; the message says how to install it."""


@dataclass
class Observation:
    """What the agent sees at one step.

    ``images``: view name -> ``(H, W, 3)`` uint8 array, in a fixed order (the first is the main view).
    ``state``: the world's low-dimensional state ``(D,)`` when it has one (Meta-World's 39-D vector).
    ``proprio``: the agent's own state ``(P,)`` (Meta-World: hand xyz + gripper opening).
    ``extra``: privileged data for experts (DOM elements, simulator handles); never saved.
    """

    images: dict[str, np.ndarray]
    instruction: str
    domain: str
    step: int
    state: np.ndarray | None = None
    proprio: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def image(self) -> np.ndarray:
        """The main view ``(H, W, 3)``."""
        return next(iter(self.images.values()))


class StepResult(NamedTuple):
    """Gymnasium's ``(observation, reward, terminated, truncated, info)``; ``info["success"]`` is a bool."""

    observation: Observation
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated

    @property
    def success(self) -> bool:
        return bool(self.info.get("success", False))


ActionSpace = ContinuousSpace | DiscreteSpace | None


class Env(abc.ABC):
    """One task of one environment. Subclasses set ``name`` and ``domain`` and implement
    ``_reset`` / ``_step`` / ``render`` / ``close``; ``reset`` and ``step`` keep the step count.

    ``action_space`` is the ``ContinuousSpace`` / ``DiscreteSpace`` of the actions (None for
    GUI environments, whose actions are the typed GUI actions). ``max_steps`` truncates
    an episode.
    """

    name: ClassVar[str] = ""
    domain: ClassVar[str] = ""

    def __init__(self, task: str, max_steps: int):
        self.task = task
        self.max_steps = int(max_steps)
        self.steps = 0
        self.instruction = ""

    @property
    def action_space(self) -> ActionSpace:
        return None

    def config(self) -> dict[str, Any]:
        """The settings that change what the episodes look like (written next to collected data)."""
        return {"max_steps": self.max_steps}

    def reset(self, seed: int) -> Observation:
        """Start the episode of ``seed`` (the same seed gives the same episode)."""
        self.steps = 0
        return self._reset(int(seed))

    def step(self, action: Action) -> StepResult:
        """Apply ``action``; the episode is truncated after ``max_steps`` steps."""
        result = self._step(action)
        self.steps += 1
        result.observation.step = self.steps
        if not result.terminated and self.steps >= self.max_steps:
            result = result._replace(truncated=True)
        return result

    def render(self) -> np.ndarray:
        """The current main view ``(H, W, 3)`` uint8."""
        return self.observe().image

    @abc.abstractmethod
    def observe(self) -> Observation:
        """The current observation (without stepping)."""

    @abc.abstractmethod
    def _reset(self, seed: int) -> Observation: ...

    @abc.abstractmethod
    def _step(self, action: Action) -> StepResult: ...

    def close(self) -> None:
        """Release the browser / simulator / renderer."""

    def __enter__(self) -> Env:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Expert(abc.ABC):
    """A scripted policy that may read privileged state (``observation.extra``, the env itself).

    ``reset(env, observation)`` at the start of each episode; ``act(observation)`` per step.
    An expert may also label the states another policy reaches (online RL's ``expert_coef``,
    DAgger): after each of that policy's steps it is told what was done (``follows``) and, while
    it can go on, asked again.
    """

    @abc.abstractmethod
    def reset(self, env: Env, observation: Observation) -> None: ...

    @abc.abstractmethod
    def act(self, observation: Observation) -> Action: ...

    def follows(self, taken: Action, suggested: Action) -> bool:
        """The policy it advises took ``taken`` where it suggested ``suggested``: whether its
        suggestions for the states that follow still hold. By default only while the policy did
        what it suggested (a scripted plan assumes its own steps were taken)."""
        from ..actions import format_action

        return format_action(taken) == format_action(suggested)


def resize_image(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """``image`` resized to ``size = (height, width)`` (bilinear); unchanged when None or equal."""
    if size is None or tuple(image.shape[:2]) == tuple(size):
        return image
    from PIL import Image

    out = Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(out)


def parse_image_size(value: str | int | tuple[int, int] | None) -> tuple[int, int] | None:
    """``224`` / ``"224"`` -> ``(224, 224)``; ``"210x160"`` -> ``(210, 160)`` (height x width)."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        size = (value, value)
    elif isinstance(value, (tuple, list)):
        size = (int(value[0]), int(value[1]))
    else:
        parts = str(value).lower().replace(",", "x").split("x")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"image size {value!r} must be N or HxW, e.g. 224 or 210x160") from None
        if len(numbers) == 1:
            size = (numbers[0], numbers[0])
        elif len(numbers) == 2:
            size = (numbers[0], numbers[1])
        else:
            raise ValueError(f"image size {value!r} must be N or HxW, e.g. 224 or 210x160")
    if min(size) < 8 or max(size) > 4096:
        raise ValueError(f"image size {size} must be between 8 and 4096 pixels")
    return size
