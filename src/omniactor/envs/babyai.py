"""BabyAI (``minigrid``): grid-world levels whose goal is a language mission.

Observations are RGB renders: the agent's egocentric 7x7 view (``agent``), the whole
grid with the agent's field of view highlighted (``full``), or both, ``tile_size`` pixels
per cell (optionally resized to ``image_size``). ``state`` is the symbolic 7x7x3 view
(object, colour, state per cell) flattened, plus the agent's direction: ``(148,)``.
Actions are ``DiscreteAction`` over ``BABYAI_ACTIONS`` (left, right, forward, pickup,
drop, toggle, done), in MiniGrid's own order. The expert is ``minigrid``'s ``BabyAIBot``.

Level generation prints "Sampling rejected: ..." while it rejection-samples; that noise
is swallowed here.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..actions import BABYAI_ACTIONS, Action, DiscreteAction, DiscreteSpace
from .base import Env, Observation, StepResult, parse_image_size, resize_image

VIEWS = ("agent", "full")
ACTION_SPACE = DiscreteSpace(BABYAI_ACTIONS)

#: Levels the BabyAI bot cannot solve (minigrid's own documentation).
BOT_UNSOLVABLE = (
    "BabyAI-PutNextS5N2Carrying-v0",
    "BabyAI-PutNextS6N3Carrying-v0",
    "BabyAI-PutNextS7N4Carrying-v0",
    "BabyAI-KeyInBox-v0",
)


def _registry() -> list[str]:
    import gymnasium
    import minigrid  # noqa: F401  (registers the BabyAI levels)

    return [name for name in gymnasium.registry if name.startswith("BabyAI-")]


def tasks() -> list[str]:
    """Every BabyAI level id registered by ``minigrid`` (``BabyAI-GoToLocal-v0``, ...)."""
    return _registry()


def task_sets() -> dict[str, list[str]]:
    names = tasks()
    return {"bot-solvable": [n for n in names if n not in BOT_UNSOLVABLE]}


def resolve_task(name: str) -> str:
    """``GoToLocal`` / ``BabyAI-GoToLocal`` / ``BabyAI-GoToLocal-v0`` -> ``BabyAI-GoToLocal-v0``."""
    names = tasks()
    if name in names:
        return name
    short = name.removeprefix("BabyAI-")
    for candidate in names:
        bare = candidate.removeprefix("BabyAI-").rsplit("-v", 1)[0]
        if short == bare or short == candidate.removeprefix("BabyAI-"):
            return candidate
    import difflib

    bare = {candidate.removeprefix("BabyAI-").rsplit("-v", 1)[0]: candidate for candidate in names}
    close = difflib.get_close_matches(short, list(bare), n=1)
    hint = f"; did you mean {bare[close[0]]!r}?" if close else ""
    raise KeyError(f"unknown BabyAI level {name!r}{hint} (`omniactor envs list` shows all)")


@contextlib.contextmanager
def quiet() -> Any:
    """Swallow the "Sampling rejected" prints of level generation."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class BabyAIEnv(Env):
    """One BabyAI level. ``views``: ``agent`` and/or ``full``; ``tile_size`` pixels per cell."""

    name = "babyai"
    domain = "discrete"

    def __init__(
        self,
        task: str,
        views: Sequence[str] | str = ("agent",),
        tile_size: int = 16,
        image_size: int | str | tuple[int, int] | None = None,
        max_steps: int | None = None,
    ):
        import gymnasium

        with quiet():
            self.env = gymnasium.make(task).unwrapped
        # a level sets its own step limit on reset; ``max_steps`` overrides it
        super().__init__(task, max_steps or 0)
        self._max_steps_override = max_steps
        self.views = (views,) if isinstance(views, str) else tuple(views)
        bad = [v for v in self.views if v not in VIEWS]
        if bad or not self.views:
            raise ValueError(f"BabyAI views must be among {VIEWS}, got {self.views}")
        self.tile_size = int(tile_size)
        self.image_size = parse_image_size(image_size)
        self._symbolic: np.ndarray | None = None

    @property
    def action_space(self) -> DiscreteSpace:
        return ACTION_SPACE

    def config(self) -> dict[str, Any]:
        return {
            "views": list(self.views),
            "tile_size": self.tile_size,
            "image_size": list(self.image_size) if self.image_size else None,
            "max_steps": self._max_steps_override,
        }

    def _render_view(self, view: str) -> np.ndarray:
        if view == "agent":
            image = self.env.get_pov_render(self.tile_size)
        else:
            image = self.env.get_full_render(True, self.tile_size)
        return resize_image(np.ascontiguousarray(image, dtype=np.uint8), self.image_size)

    def observe(self) -> Observation:
        state = None
        if self._symbolic is not None:
            state = np.concatenate([self._symbolic.reshape(-1), [self.env.agent_dir]]).astype(np.float32)
        return Observation(
            images={view: self._render_view(view) for view in self.views},
            instruction=self.instruction,
            domain=self.domain,
            step=self.steps,
            state=state,
            extra={"env": self.env},
        )

    def _reset(self, seed: int) -> Observation:
        with quiet():
            obs, _ = self.env.reset(seed=seed)
        if not self._max_steps_override:
            self.max_steps = int(self.env.max_steps)
        self._symbolic = obs["image"]
        self.instruction = self.env.mission
        return self.observe()

    def _step(self, action: Action) -> StepResult:
        if not isinstance(action, DiscreteAction):
            raise TypeError(f"BabyAI takes discrete actions, got {action!r}")
        obs, reward, terminated, truncated, info = self.env.step(ACTION_SPACE.index(action))
        self._symbolic = obs["image"]
        info = dict(info)
        info["success"] = bool(terminated and reward > 0)
        return StepResult(self.observe(), float(reward), bool(terminated), bool(truncated), info)

    def close(self) -> None:
        self.env.close()


ENV_CLASS = BabyAIEnv


def make_expert(env: Env | None = None):
    from .experts.babyai import BabyAIBotExpert

    return BabyAIBotExpert()
