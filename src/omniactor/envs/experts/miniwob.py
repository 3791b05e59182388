"""Scripted MiniWoB++ solvers: they read the DOM, but act only through screen points and keys.

Every action a solver emits is a typed GUI action (``Click`` at a normalised screen point,
``TypeText``, ``PressKey``, ``Swipe``, ``Wait``), never an element reference, so each
episode is a valid pixel-level demonstration: a model that sees only the screenshot
could have produced the same actions.

A solver is a generator: it receives the current ``Observation`` and yields the next
action; ``obs = yield action`` gives it the observation after that action. One solver per
task in ``SOLVERS``. Points are chosen inside the target's box, away from any element
drawn on top of it (``clear_point``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable

from ...actions import Action, Click, Point, PressKey, TypeText, Wait
from ..base import Env, Expert, Observation
from ..miniwob import TASK_HEIGHT, TASK_WIDTH, Element

Solver = Callable[[Observation], Generator[Action, Observation, None]]
SOLVERS: dict[str, Solver] = {}


def solver(*names: str) -> Callable[[Solver], Solver]:
    def register(fn: Solver) -> Solver:
        for name in names:
            SOLVERS[name] = fn
        return fn

    return register


# ---------------------------------------------------------------------------- DOM helpers


def dom(obs: Observation) -> list[Element]:
    return obs.extra["dom"]


def field(obs: Observation, key: str) -> str:
    for k, v in obs.extra.get("fields", []):
        if k == key:
            return str(v)
    raise KeyError(f"no field {key!r} in {obs.extra.get('fields')} ({obs.instruction!r})")


def quoted(obs: Observation) -> list[str]:
    """The double-quoted strings of the instruction, in order."""
    return re.findall(r'"([^"]*)"', obs.instruction)


def norm(text: str) -> str:
    return re.sub(r"[^\w ]", "", text).strip().lower()


def on_screen(el: Element) -> bool:
    return el.width > 0 and el.height > 0 and el.left < TASK_WIDTH and el.top < TASK_HEIGHT and el.left + el.width > 0


def find_all(obs: Observation, tag: str | None = None, text: str | None = None, **attrs: str) -> list[Element]:
    """Visible elements matching ``tag``, ``text`` and attributes (``id``, one of ``classes``).

    Text matches exactly (after stripping) when any element does, else case- and punctuation-blind."""
    out = []
    for el in dom(obs):
        if not on_screen(el) or (tag is not None and el.tag != tag):
            continue
        if "id" in attrs and el.id != attrs["id"]:
            continue
        if "classes" in attrs and attrs["classes"] not in el.classes.split():
            continue
        out.append(el)
    if text is None:
        return out
    exact = [el for el in out if el.text.strip() == text.strip()]
    return exact or [el for el in out if norm(el.text) == norm(text)]


def find(obs: Observation, tag: str | None = None, text: str | None = None, **attrs: str) -> Element:
    found = find_all(obs, tag, text, **attrs)
    if not found:
        raise LookupError(f"no visible {tag or 'element'} with text={text!r} {attrs} ({obs.instruction!r})")
    return found[0]


def _ancestors(el: Element, by_ref: dict[int, Element]) -> set[int]:
    out, ref = set(), el.parent
    while ref in by_ref and ref not in out:
        out.add(ref)
        ref = by_ref[ref].parent
    return out


def clear_point(obs: Observation, target: Element) -> Point:
    """A point inside ``target`` (nearest its centre) not covered by an element that follows it in
    the DOM (drawn on top) and is neither its ancestor nor its descendant."""
    elements = dom(obs)
    by_ref = {el.ref: el for el in elements}
    mine = _ancestors(target, by_ref)
    later = False
    covers = []
    for el in elements:
        if el.ref == target.ref:
            later = True
            continue
        if not later or el.ref in mine or target.ref in _ancestors(el, by_ref) or el.tag == "t":
            continue
        covers.append(el)
    cx, cy = target.center
    best = None
    steps = 9
    for i in range(steps):
        for j in range(steps):
            px = target.left + (i + 0.5) / steps * target.width
            py = target.top + (j + 0.5) / steps * target.height
            if not (0 <= px < TASK_WIDTH and 0 <= py < TASK_HEIGHT):
                continue
            if any(c.left <= px <= c.left + c.width and c.top <= py <= c.top + c.height for c in covers):
                continue
            d = (px - cx) ** 2 + (py - cy) ** 2
            if best is None or d < best[0]:
                best = (d, px, py)
    if best is None:
        return target.point()
    return Point.from_pixels(best[1], best[2], TASK_WIDTH, TASK_HEIGHT, clip=True)


def element_at(obs: Observation, point: Point) -> Element | None:
    """The element drawn on top at ``point``: the last visible one in DOM order whose box holds it
    (text runs aside), or None."""
    px, py = point.x * TASK_WIDTH, point.y * TASK_HEIGHT
    hit = None
    for el in dom(obs):
        if el.tag != "t" and on_screen(el) and el.left <= px <= el.left + el.width and el.top <= py <= el.top + el.height:
            hit = el
    return hit


def click(obs: Observation, target: Element) -> Click:
    return Click(clear_point(obs, target))


def label_control(obs: Observation, label_text: str, control_tag: str) -> Element:
    """The checkbox / radio button whose label reads ``label_text``."""
    elements = dom(obs)
    for el in elements:
        if el.tag == "t" and norm(el.text) == norm(label_text):
            for other in elements:
                if other.parent == el.parent and other.tag == control_tag:
                    return other
    for el in elements:  # a label element holding the text itself
        if el.tag == "label" and norm(el.text) == norm(label_text):
            for other in elements:
                if other.parent == el.ref and other.tag == control_tag:
                    return other
    raise LookupError(f"no {control_tag} labelled {label_text!r} ({obs.instruction!r})")


def submit_button(obs: Observation, text: str | None = None) -> Element:
    if text is not None:
        found = find_all(obs, "button", text)
        if found:
            return found[0]
    found = find_all(obs, "button", id="subbtn") or find_all(obs, "button", "submit")
    if not found:
        raise LookupError(f"no submit button ({obs.instruction!r})")
    return found[0]


def type_into(obs: Observation, target: Element, text: str) -> Generator[Action, Observation, Observation]:
    """Click ``target`` (unless it has focus), then type ``text``; returns the latest observation."""
    if not target.focused:
        obs = yield click(obs, target)
    obs = yield TypeText(text)
    return obs


# ---------------------------------------------------------------------------- solvers


@solver("click-test", "click-test-transfer")
def click_test(obs):
    yield click(obs, find(obs, "button"))


@solver("click-test-2", "click-button")
def click_named_button(obs):
    yield click(obs, find(obs, "button", field(obs, "target")))


@solver("click-button-sequence")
def click_button_sequence(obs):
    obs = yield click(obs, find(obs, "button", "ONE"))
    yield click(obs, find(obs, "button", "TWO"))


@solver("click-link")
def click_link(obs):
    yield click(obs, find(obs, "span", field(obs, "target"), classes="alink"))


def _dialog_close(obs: Observation) -> Element:
    bars = find_all(obs, "div", classes="ui-dialog-titlebar")
    for el in dom(obs):
        if el.tag == "button" and bars and el.parent == bars[0].ref and on_screen(el):
            return el
    raise LookupError("no dialog close button")


@solver("click-dialog")
def click_dialog(obs):
    yield click(obs, _dialog_close(obs))


@solver("click-dialog-2")
def click_dialog_2(obs):
    target = field(obs, "target")
    if norm(target) in ("x", ""):
        yield click(obs, _dialog_close(obs))
    else:
        yield click(obs, find(obs, "button", target))


@solver("click-checkboxes")
def click_checkboxes(obs):
    targets = [v for k, v in obs.extra["fields"] if k.startswith("target")]
    for text in targets:
        box = label_control(obs, text, "input_checkbox")
        if box.value != "True":
            obs = yield click(obs, box)
    yield click(obs, submit_button(obs))


@solver("click-option")
def click_option(obs):
    obs = yield click(obs, label_control(obs, field(obs, "target"), "input_radio"))
    yield click(obs, submit_button(obs))


@solver("click-tab")
def click_tab(obs):
    yield click(obs, find(obs, "a", f"Tab #{field(obs, 'target')}"))


@solver("focus-text")
def focus_text(obs):
    yield click(obs, find(obs, "input_text"))


@solver("focus-text-2")
def focus_text_2(obs):
    fields = sorted(find_all(obs, "input_text"), key=lambda el: el.id)
    yield click(obs, fields[int(field(obs, "target")) - 1])


@solver("enter-text")
def enter_text(obs):
    obs = yield from type_into(obs, find(obs, "input_text"), field(obs, "target"))
    yield click(obs, submit_button(obs))


@solver("enter-text-2")
def enter_text_2(obs):
    text = field(obs, "text")
    text = text.lower() if field(obs, "case") == "lower" else text.upper()
    obs = yield from type_into(obs, find(obs, "input_text"), text)
    yield click(obs, submit_button(obs))


@solver("enter-password")
def enter_password(obs):
    password = field(obs, "target")
    obs = yield from type_into(obs, find(obs, "input_password", id="password"), password)
    obs = yield from type_into(obs, find(obs, "input_password", id="verify"), password)
    yield click(obs, submit_button(obs))


@solver("login-user")
def login_user(obs):
    obs = yield from type_into(obs, find(obs, "input_text", id="username"), field(obs, "username"))
    obs = yield from type_into(obs, find(obs, "input_password", id="password"), field(obs, "password"))
    yield click(obs, submit_button(obs))


def _arithmetic(problem: str) -> int:
    match = re.match(r"\s*(-?\d+)\s*([-+x*/])\s*(-?\d+)\s*=", problem)
    if not match:
        raise LookupError(f"cannot read the math problem {problem!r}")
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    return {"+": a + b, "-": a - b, "x": a * b, "*": a * b, "/": a // b if b else 0}[op]


@solver("simple-arithmetic")
def simple_arithmetic(obs):
    answer = _arithmetic(find(obs, id="math-problem").text)
    obs = yield from type_into(obs, find(obs, "input_text", id="math-answer"), str(answer))
    yield click(obs, submit_button(obs))


@solver("choose-list")
def choose_list(obs):
    target = field(obs, "target")
    obs = yield click(obs, find(obs, "select", id="options"))
    obs = yield TypeText(target)  # the list's type-ahead selects the option
    obs = yield PressKey("enter")  # close the list
    yield click(obs, submit_button(obs))


def _stable(before: Element, after: Element) -> bool:
    return (before.left, before.top, before.width, before.height) == (after.left, after.top, after.width, after.height)


@solver("click-collapsible", "click-collapsible-nodelay")
def click_collapsible(obs):
    obs = yield click(obs, find(obs, "h3", classes="ui-accordion-header"))
    previous = None
    for _ in range(10):  # the section slides open: wait until the button stops moving
        found = find_all(obs, "button", id="subbtn")
        area = find(obs, id="area")
        if (
            found
            and previous is not None
            and _stable(previous, area)
            and found[0].top + found[0].height < area.top + area.height
        ):
            break
        previous = area
        obs = yield Wait()
    yield click(obs, submit_button(obs))


def _slider_value(obs: Observation) -> int:
    return int(find(obs, id="val").text)


@solver("use-slider")
def use_slider(obs):
    """Probe two points of the track to learn its value scale, click where the target lies,
    then fix the last units with the arrow keys (the handle has focus after a click)."""
    target = int(field(obs, "target"))
    track = find(obs, id="slider")
    horizontal = track.width > track.height
    inset = 2.0  # pixels inside the track's ends, so the click lands on it

    def at(fraction: float) -> Click:
        # fraction 0 = the minimum end (left, or bottom when vertical), 1 = the maximum end
        length = (track.width if horizontal else track.height) - 2 * inset
        offset = inset + min(max(fraction, 0.0), 1.0) * length
        if horizontal:
            px, py = track.left + offset, track.top + track.height / 2
        else:
            px, py = track.left + track.width / 2, track.top + track.height - offset
        return Click(Point.from_pixels(px, py, TASK_WIDTH, TASK_HEIGHT, clip=True))

    obs = yield at(0.0)
    low = _slider_value(obs)
    obs = yield at(1.0)
    high = _slider_value(obs)
    if high != low:
        obs = yield at((target - low) / (high - low))
    for _ in range(12):
        value = _slider_value(obs)
        if value == target:
            break
        obs = yield PressKey("up" if value < target else "down")
    yield click(obs, submit_button(obs))


# ---------------------------------------------------------------------------- the expert


class MiniWoBSolver(Expert):
    """Runs the task's solver; when it has nothing left to do it waits (the episode then times out)."""

    def __init__(self, task: str):
        if task not in SOLVERS:
            raise KeyError(
                f"no scripted solver for MiniWoB++ task {task!r}; solved tasks: {', '.join(sorted(SOLVERS))}"
            )
        self.task = task
        self._gen: Generator[Action, Observation, None] | None = None
        self._started = False
        self._seen: Observation | None = None  # the observation of the last suggestion

    def reset(self, env: Env, observation: Observation) -> None:
        self._gen = SOLVERS[self.task](observation)
        self._started = False
        self._seen = None

    def follows(self, taken: Action, suggested: Action) -> bool:
        """A click on the element the solver would have clicked (anywhere in it) is its click; any
        other action must equal the suggestion."""
        if isinstance(taken, Click) and isinstance(suggested, Click) and self._seen is not None:
            target = element_at(self._seen, suggested.point)
            hit = element_at(self._seen, taken.point)
            return target is not None and hit is not None and hit.ref == target.ref
        return super().follows(taken, suggested)

    def act(self, observation: Observation) -> Action:
        self._seen = observation
        if self._gen is None:
            if self._started:
                return Wait()  # the solver is done; the episode should have ended
            raise RuntimeError("call reset(env, observation) before act()")
        try:
            if not self._started:
                self._started = True
                return next(self._gen)
            return self._gen.send(observation)
        except StopIteration:
            self._gen = None
            return Wait()


def solved_tasks() -> Iterable[str]:
    return sorted(SOLVERS)
