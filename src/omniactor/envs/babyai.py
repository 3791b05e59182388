"""BabyAI (``minigrid``): grid-world levels whose goal is a language mission.

Observations are RGB renders: the agent's egocentric 7x7 view (``agent``), the whole
grid with the agent's field of view highlighted (``full``), or both, ``tile_size`` pixels
per cell (optionally resized to ``image_size``). ``state`` is symbolic (object, colour,
state per cell), flattened, plus the agent's direction: with ``state="agent"`` the egocentric
7x7x3 view (``(148,)``); with ``state="full"`` the whole grid with the agent marked in its cell
as ``minigrid``'s ``FullyObsWrapper`` does (``(W*H*3 + 1,)``: ``(193,)`` for the one-room
levels). A policy that sees the whole room needs no memory; one that sees 7x7 cells ahead of
it must remember where it has looked. ``state_format="onehot"`` writes each cell as one-hot
object, colour and state (11 + 6 + 4 values) and the direction as one-hot 4: ``(1033,)`` for
the agent's view. The codes are categories, and a network reads "a red ball in this cell"
from one-hot inputs with one weight, where from codes it must carve it out of a number line.
``frames=k`` gives the state a memory of views: the current one and the k - 1 before it,
newest first, each as wide as one (zeros before the episode's first step).
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
STATES = ("agent", "full")
STATE_FORMATS = ("codes", "onehot")
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
    """One BabyAI level. ``views``: ``agent`` and/or ``full``; ``tile_size`` pixels per cell;
    ``state``: the symbolic view, ``agent`` (egocentric 7x7) or ``full`` (the whole grid)."""

    name = "babyai"
    domain = "discrete"

    def __init__(
        self,
        task: str,
        views: Sequence[str] | str = ("agent",),
        tile_size: int = 16,
        image_size: int | str | tuple[int, int] | None = None,
        max_steps: int | None = None,
        state: str = "agent",
        state_format: str = "codes",
        frames: int = 1,
    ):
        import gymnasium

        if state not in STATES:
            raise ValueError(f"BabyAI state must be one of {STATES}, got {state!r}")
        if state_format not in STATE_FORMATS:
            raise ValueError(f"BabyAI state_format must be one of {STATE_FORMATS}, got {state_format!r}")
        if int(frames) != frames or frames < 1:
            raise ValueError(f"BabyAI frames must be a whole number >= 1 (views in the state), got {frames!r}")
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
        self.state = state
        self.state_format = state_format
        self.frames = int(frames)
        self._symbolic: np.ndarray | None = None
        self._recent: list[np.ndarray] = []  # the state vectors of the last `frames` views, newest first

    @property
    def action_space(self) -> DiscreteSpace:
        return ACTION_SPACE

    def config(self) -> dict[str, Any]:
        return {
            "views": list(self.views),
            "tile_size": self.tile_size,
            "image_size": list(self.image_size) if self.image_size else None,
            "max_steps": self._max_steps_override,
            "state": self.state,
            "state_format": self.state_format,
            "frames": self.frames,
        }

    def _render_view(self, view: str) -> np.ndarray:
        if view == "agent":
            image = self.env.get_pov_render(self.tile_size)
        else:
            image = self.env.get_full_render(True, self.tile_size)
        return resize_image(np.ascontiguousarray(image, dtype=np.uint8), self.image_size)

    def _full_symbolic(self) -> np.ndarray:
        """The whole grid encoded cell by cell, the agent in its cell as (agent, red, direction)."""
        from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

        grid = self.env.grid.encode()
        x, y = self.env.agent_pos
        grid[x, y] = (OBJECT_TO_IDX["agent"], COLOR_TO_IDX["red"], self.env.agent_dir)
        return grid

    def _observe_symbolic(self, egocentric: np.ndarray, first: bool = False) -> None:
        self._symbolic = self._full_symbolic() if self.state == "full" else egocentric
        if first:
            self._recent = []
        self._recent = [self._view_vector(), *self._recent][: self.frames]

    def _view_vector(self) -> np.ndarray:
        if self.state_format == "codes":
            return np.concatenate([self._symbolic.reshape(-1), [self.env.agent_dir]]).astype(np.float32)
        return one_hot_symbolic(self._symbolic, self.env.agent_dir)

    def _state_vector(self) -> np.ndarray:
        blank = [np.zeros_like(self._recent[0])] * (self.frames - len(self._recent))
        return np.concatenate([*self._recent, *blank])

    def observe(self) -> Observation:
        state = None if self._symbolic is None else self._state_vector()
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
        self._observe_symbolic(obs["image"], first=True)
        self.instruction = self.env.mission
        return self.observe()

    def _step(self, action: Action) -> StepResult:
        if not isinstance(action, DiscreteAction):
            raise TypeError(f"BabyAI takes discrete actions, got {action!r}")
        obs, reward, terminated, truncated, info = self.env.step(ACTION_SPACE.index(action))
        self._observe_symbolic(obs["image"])
        info = dict(info)
        info["success"] = bool(terminated and reward > 0)
        return StepResult(self.observe(), float(reward), bool(terminated), bool(truncated), info)

    def close(self) -> None:
        self.env.close()


def one_hot_symbolic(grid: np.ndarray, direction: int) -> np.ndarray:
    """``(W, H, 3)`` codes (object, colour, state) and a direction -> one flat 0/1 vector:
    per cell one-hot object, colour and state, then the direction one-hot."""
    from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

    # the full grid's agent cell carries its direction (0-3) in the state channel
    sizes = (len(OBJECT_TO_IDX), len(COLOR_TO_IDX), max(len(STATE_TO_IDX), 4))
    cells = grid.reshape(-1, 3).astype(np.int64)
    parts = [np.eye(size, dtype=np.float32)[cells[:, channel]] for channel, size in enumerate(sizes)]
    return np.concatenate([np.concatenate(parts, axis=1).reshape(-1), np.eye(4, dtype=np.float32)[direction]])


ENV_CLASS = BabyAIEnv


def make_expert(env: Env | None = None):
    from .experts.babyai import BabyAIBotExpert

    return BabyAIBotExpert()
