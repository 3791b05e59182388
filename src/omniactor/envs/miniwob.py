"""MiniWoB++ (``miniwob``): web tasks in headless Chromium, driven by screen points and keys.

- Chromium: Debian's ``chromium`` + ``chromium-driver``; ``MINIWOB_CHROME_BINARY`` and
  ``MINIWOB_CHROMEDRIVER`` are pointed at them (when unset) so nothing downloads a driver.
- Observations: ``images["screen"]`` the 160x210 task area ``(210, 160, 3)`` (optionally
  resized), the utterance as ``instruction``; ``extra["dom"]`` lists the visible DOM
  elements (``Element``: box in screen pixels, tag, text, value, ...) for scripted experts.
- Actions (typed GUI actions, points normalised to the task area):
  ``Click`` -> click at the point; ``LongPress`` -> press, hold, release; ``TypeText`` ->
  keystrokes into the focused element; ``PressKey`` -> that key; ``Scroll`` up/down ->
  mouse wheel at the point (screen centre by default); ``Swipe`` -> drag (press at
  start, move, release at end); ``Wait`` -> nothing. Element-reference actions are never used.
- The per-episode wall-clock limit (``core.EPISODE_MAX_TIME``, 10 s in most tasks) is
  raised to ``episode_max_time`` seconds (default one hour) so slow models are not cut off.
- Success: the task's raw reward is positive when the episode ends.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..actions import Action, Click, LongPress, Point, PressKey, Scroll, Swipe, Terminate, TypeText, Wait
from .base import Env, EnvError, Observation, StepResult, parse_image_size, resize_image

TASK_WIDTH, TASK_HEIGHT = 160, 210

#: Our key names -> MiniWoB / WebDriver key names.
KEY_MAP = {
    "enter": "<Enter>",
    "tab": "<Tab>",
    "escape": "<Escape>",
    "backspace": "<Backspace>",
    "delete": "<Delete>",
    "space": "<Space>",
    "up": "<ArrowUp>",
    "down": "<ArrowDown>",
    "left": "<ArrowLeft>",
    "right": "<ArrowRight>",
    "page_up": "<PageUp>",
    "page_down": "<PageDown>",
}


@dataclass(frozen=True)
class Element:
    """One visible DOM element, its box in task-area pixels (x right, y down)."""

    ref: int
    parent: int
    left: float
    top: float
    width: float
    height: float
    tag: str
    text: str
    value: str
    id: str
    classes: str
    focused: bool
    is_leaf: bool

    @property
    def center(self) -> tuple[float, float]:
        return self.left + self.width / 2, self.top + self.height / 2

    def point(self, fx: float = 0.5, fy: float = 0.5) -> Point:
        """The normalised screen point at fraction ``(fx, fy)`` of the box (clipped to the task area)."""
        px = self.left + fx * self.width
        py = self.top + fy * self.height
        return Point.from_pixels(px, py, TASK_WIDTH, TASK_HEIGHT, clip=True)


def _element(raw: dict[str, Any]) -> Element:
    flags = raw["flags"]
    return Element(
        ref=int(raw["ref"]),
        parent=int(raw["parent"]),
        left=float(raw["left"][0]),
        top=float(raw["top"][0]),
        width=float(raw["width"][0]),
        height=float(raw["height"][0]),
        tag=str(raw["tag"]),
        text=str(raw["text"]),
        value=str(raw["value"]),
        id=str(raw["id"]),
        classes=str(raw["classes"]),
        focused=bool(flags[0]),
        is_leaf=bool(flags[3]),
    )


def _html_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("miniwob")
    if spec is None or spec.origin is None:
        raise ImportError("miniwob is not installed: pip install 'omniactor[envs]'")
    return Path(spec.origin).parent / "html" / "miniwob"


def tasks() -> list[str]:
    """Every MiniWoB++ task (the HTML pages the ``miniwob`` package ships)."""
    return sorted(p.stem for p in _html_dir().glob("*.html"))


def task_sets() -> dict[str, list[str]]:
    from .experts.miniwob import SOLVERS

    return {"solved": sorted(SOLVERS)}


def resolve_task(name: str) -> str:
    """``click-test`` / ``miniwob/click-test-v1`` -> ``click-test``."""
    names = tasks()
    bare = name.removeprefix("miniwob/")
    if bare.endswith("-v1"):
        bare = bare[:-3]
    if bare in names:
        return bare
    import difflib

    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise KeyError(f"unknown MiniWoB++ task {name!r}{hint} (`omniactor envs list` shows all)")


def configure_chromium() -> None:
    """Point miniwob at Debian's chromium and chromedriver (unless the variables are already set)."""
    if os.environ.get("MINIWOB_CHROME_BINARY") and os.environ.get("MINIWOB_CHROMEDRIVER"):
        return
    browser = next(
        (shutil.which(p) for p in ("chromium", "chromium-browser", "google-chrome") if shutil.which(p)), None
    )
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        from .base import DependencyNotInstalled

        raise DependencyNotInstalled(
            "MiniWoB++ needs chromium and chromedriver: bash scripts/install_system_deps.sh "
            "(apt-get install chromium chromium-driver)"
        )
    os.environ["MINIWOB_CHROME_BINARY"] = browser
    os.environ["MINIWOB_CHROMEDRIVER"] = driver


# Chromium blinks the text caret, so a screenshot taken while a field has focus
# depends on the wall clock: the same episode gave different pixels in two runs.
# A transparent caret makes a screenshot a function of the page alone; the field
# still shows its focus ring.
_HIDE_CARET = """
if (!document.getElementById('omniactor-hide-caret')) {
  const style = document.createElement('style');
  style.id = 'omniactor-hide-caret';
  style.textContent = '* { caret-color: transparent !important; }';
  document.head.appendChild(style);
}
"""


class MiniWoBEnv(Env):
    """One MiniWoB++ task in its own headless Chromium."""

    name = "miniwob"
    domain = "gui"

    def __init__(
        self,
        task: str,
        image_size: int | str | tuple[int, int] | None = None,
        max_steps: int = 30,
        episode_max_time: float = 3600.0,
    ):
        super().__init__(task, max_steps)
        self.image_size = parse_image_size(image_size)
        self.episode_max_time = float(episode_max_time)
        configure_chromium()
        from miniwob.action import ActionSpaceConfig, ActionTypes
        from miniwob.environment import MiniWoBEnvironment

        self._types = ActionTypes
        self._keys = tuple(KEY_MAP.values())
        config = ActionSpaceConfig(
            action_types=[
                ActionTypes.NONE,
                ActionTypes.MOVE_COORDS,
                ActionTypes.CLICK_COORDS,
                ActionTypes.MOUSEDOWN_COORDS,
                ActionTypes.MOUSEUP_COORDS,
                ActionTypes.SCROLL_UP_COORDS,
                ActionTypes.SCROLL_DOWN_COORDS,
                ActionTypes.PRESS_KEY,
                ActionTypes.TYPE_TEXT,
            ],
            allowed_keys=self._keys,
            text_max_len=256,
        )
        try:
            self.env = MiniWoBEnvironment(subdomain=task, action_space_config=config)
        except Exception as err:
            raise EnvError(f"could not start Chromium for MiniWoB++ {task}: {err}") from err
        self._obs: dict[str, Any] | None = None
        self._done = False

    def config(self) -> dict[str, Any]:
        return {
            "image_size": list(self.image_size) if self.image_size else None,
            "max_steps": self.max_steps,
            "episode_max_time": self.episode_max_time,
        }

    @property
    def driver(self) -> Any:
        return self.env.instance.driver

    def browser_pids(self) -> list[int]:
        """Process ids of chromedriver and the Chromium processes it started (for tests that kill them)."""
        root = self.driver.service.process.pid
        pids, frontier = [root], [root]
        while frontier:
            parent = frontier.pop()
            for child in Path("/proc").glob("[0-9]*"):
                try:
                    stat = (child / "stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == parent:
                    pids.append(int(child.name))
                    frontier.append(int(child.name))
        return pids

    # -- observation

    def observe(self) -> Observation:
        if self._obs is None:
            raise RuntimeError("call reset(seed) first")
        obs = self._obs
        screen = resize_image(np.ascontiguousarray(obs["screenshot"], dtype=np.uint8), self.image_size)
        return Observation(
            images={"screen": screen},
            instruction=self.instruction,
            domain=self.domain,
            step=self.steps,
            extra={"dom": [_element(raw) for raw in obs["dom_elements"]], "fields": list(obs["fields"])},
        )

    def _reset(self, seed: int) -> Observation:
        try:
            self.driver.execute_script(f"core.EPISODE_MAX_TIME = {int(self.episode_max_time * 1000)};")
            self.driver.execute_script(_HIDE_CARET)
            self._obs, _ = self.env.reset(seed=seed)
            self.driver.execute_script(_HIDE_CARET)  # again, in case miniwob reloaded the page
        except Exception as err:  # selenium raises many types when the browser is gone
            raise EnvError(f"MiniWoB++ {self.task} reset failed (browser died?): {type(err).__name__}: {err}") from err
        self.instruction = str(self._obs["utterance"])
        self._done = False
        return self.observe()

    # -- actions

    def _coords(self, point: Point | None) -> np.ndarray:
        point = point or Point(0.5, 0.5)
        return np.array([point.x * TASK_WIDTH, point.y * TASK_HEIGHT], dtype=np.float32)

    def _commands(self, action: Action) -> list[dict[str, Any]]:
        """The MiniWoB actions that carry out ``action``, in order."""
        types = self._types
        order = self.env.action_space_config.action_types

        def make(kind: Any, **fields: Any) -> dict[str, Any]:
            return {"action_type": order.index(kind), **fields}

        if isinstance(action, Click):
            return [make(types.CLICK_COORDS, coords=self._coords(action.point))]
        if isinstance(action, LongPress):
            coords = self._coords(action.point)
            return [make(types.MOUSEDOWN_COORDS, coords=coords), make(types.MOUSEUP_COORDS, coords=coords)]
        if isinstance(action, TypeText):
            return [make(types.TYPE_TEXT, text=action.text)]
        if isinstance(action, PressKey):
            if action.key not in KEY_MAP:
                raise ValueError(f"key {action.key!r} has no meaning on a web page (known: {', '.join(KEY_MAP)})")
            return [make(types.PRESS_KEY, key=self._keys.index(KEY_MAP[action.key]))]
        if isinstance(action, Scroll):
            if action.direction not in ("up", "down"):
                raise ValueError(f"MiniWoB++ scrolls up or down only, not {action.direction!r}")
            kind = types.SCROLL_UP_COORDS if action.direction == "up" else types.SCROLL_DOWN_COORDS
            return [make(kind, coords=self._coords(action.point))]
        if isinstance(action, Swipe):
            start, end = self._coords(action.start), self._coords(action.end)
            middle = (start + end) / 2
            return [
                make(types.MOUSEDOWN_COORDS, coords=start),
                make(types.MOVE_COORDS, coords=middle),
                make(types.MOUSEUP_COORDS, coords=end),
            ]
        if isinstance(action, (Wait, Terminate)):
            return [make(types.NONE)]
        raise TypeError(f"MiniWoB++ cannot carry out {action!r}")

    def _step(self, action: Action) -> StepResult:
        if self._obs is None:
            raise RuntimeError("call reset(seed) first")
        commands = self._commands(action)
        try:
            instance = self.env.instance
            for command in commands[:-1]:
                instance.perform(command, self.env.action_space_config)
            obs, reward, done, _, info = self.env.step(commands[-1])
        except Exception as err:
            raise EnvError(f"MiniWoB++ {self.task} step failed (browser died?): {type(err).__name__}: {err}") from err
        if not done:
            self._obs = obs
        # after the end the page shows nothing useful: keep the last real screenshot
        info = {k: v for k, v in info.items() if k != "root_dom"}
        info["success"] = bool(done and float(info.get("raw_reward", reward)) > 0)
        terminated = bool(done) or isinstance(action, Terminate)
        return StepResult(self.observe(), float(reward), terminated, False, info)

    def close(self) -> None:
        try:
            self.env.close()
        except Exception:  # the browser may already be gone
            pass


ENV_CLASS = MiniWoBEnv


def make_expert(env: Env | None = None):
    from .experts.miniwob import MiniWoBSolver

    if env is None:
        raise ValueError("the MiniWoB++ expert needs the env (one solver per task)")
    return MiniWoBSolver(env.task)
