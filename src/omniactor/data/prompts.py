"""Default prompts, and ``build_sample``: the one way collectors and converters make a Sample.

The system prompt of each domain describes its action space in the canonical text form
(``click(x=0.5, y=0.5)``, ``continuous(x=0.1, ..., gripper=1.0)``, ``discrete(name="left")``),
so a model trained on the samples answers in text ``parse_action`` reads. The human turn
is ``<image>`` marker(s), the task instruction and, optionally, the previous actions::

    <image>
    Task: open the settings and turn on wifi
    Previous actions:
    1. click(x=0.52, y=0.31)
    2. scroll(direction="down")
    What is the next action?
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..actions import (
    BABYAI_ACTIONS,
    EEF_DELTA_GRIPPER,
    KEYS,
    Action,
    ContinuousSpace,
    DiscreteSpace,
    format_action,
)
from .domains import action_kind, known_domains
from .sample import GPT, HUMAN, IMAGE_MARKER, Sample

GUI_SYSTEM_PROMPT = (
    "You are a GUI agent. You see a screenshot of a phone or a web page and a task, and you "
    "reply with exactly one action that moves the task forward, in one of these forms:\n"
    "click(x=0.5, y=0.5)\n"
    "long_press(x=0.5, y=0.5)\n"
    'type(text="hello")\n'
    'scroll(direction="down")  (up, down, left or right; optionally with x=, y=)\n'
    "swipe(x1=0.5, y1=0.8, x2=0.5, y2=0.2)\n"
    'press_key(key="back")  (one of: ' + ", ".join(KEYS) + ")\n"
    'open_app(name="Settings")\n'
    "wait()\n"
    'terminate(status="success")  (or "failure" when the task cannot be done)\n'
    "Coordinates are fractions of the screen in [0, 1]: x from the left edge, y from the top."
)


def embodied_system_prompt(space: ContinuousSpace | None = None) -> str:
    """Describe a continuous action space; the default is the 7-D end-effector delta + gripper in [-1, 1]."""
    space = space or ContinuousSpace.symmetric(EEF_DELTA_GRIPPER)
    example = ", ".join(f"{name}=0.0" for name in space.names)
    bounds = "; ".join(f"{n} in [{lo:g}, {hi:g}]" for n, lo, hi in zip(space.names, space.low, space.high, strict=True))
    return (
        "You are a robot control agent. You see the camera image and a task, and you reply with "
        f"exactly one action: the next motion command, as continuous({example}).\n"
        f"Dimensions and their ranges: {bounds}."
    )


def discrete_system_prompt(space: DiscreteSpace | None = None) -> str:
    """Describe a discrete action set; the default is BabyAI's seven actions."""
    space = space or DiscreteSpace(BABYAI_ACTIONS)
    return (
        "You are an agent in a grid world. You see the current view and a task, and you reply "
        f'with exactly one action, as discrete(name="..."), where name is one of: {", ".join(space.names)}.'
    )


def system_prompt(
    domain: str,
    space: ContinuousSpace | DiscreteSpace | None = None,
    declared_domains: Mapping[str, str | None] | None = None,
) -> str:
    """The default system prompt of ``domain`` (a declared domain uses the prompt of its action kind)."""
    kind = known_domains(declared_domains).get(domain, "missing")
    if kind == "missing":
        raise ValueError(f"domain {domain!r} is not known; declare it or pass system= explicitly")
    if kind is None:  # a declared domain that accepts any action: the space says which
        kind = {ContinuousSpace: "continuous", DiscreteSpace: "discrete"}.get(type(space))
    if kind == "gui":
        return GUI_SYSTEM_PROMPT
    if kind == "continuous":
        return embodied_system_prompt(space if isinstance(space, ContinuousSpace) else None)
    if kind == "discrete":
        return discrete_system_prompt(space if isinstance(space, DiscreteSpace) else None)
    raise ValueError(f"domain {domain!r} accepts any action kind; pass system= explicitly")


def prompt_for_action(action: Action, space: ContinuousSpace | DiscreteSpace | None = None) -> str:
    """The default system prompt for samples whose actions are of ``action``'s kind (any domain)."""
    kind = action_kind(action)
    if kind == "gui":
        return GUI_SYSTEM_PROMPT
    if kind == "continuous":
        return embodied_system_prompt(space if isinstance(space, ContinuousSpace) else None)
    return discrete_system_prompt(space if isinstance(space, DiscreteSpace) else None)


def human_turn(instruction: str, num_images: int = 1, history: Sequence[Action | str] = ()) -> str:
    """``<image>`` markers, the task, the previous actions (canonical text) and the question."""
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    lines = [IMAGE_MARKER * num_images] if num_images else []
    lines.append(f"Task: {instruction.strip()}")
    if history:
        lines.append("Previous actions:")
        for i, past in enumerate(history, 1):
            lines.append(f"{i}. {past if isinstance(past, str) else format_action(past)}")
    lines.append("What is the next action?")
    return "\n".join(lines)


def answer_text(action: Action, thought: str | None = None) -> str:
    """The gpt turn: the canonical action text, or OmniActor's ``Action: ...`` / ``Operation: ...`` pair."""
    text = format_action(action)
    if thought is None:
        return text
    thought = " ".join(thought.split())
    return f"Action: {thought}\nOperation: {text}"


def build_sample(
    *,
    domain: str,
    instruction: str,
    action: Action,
    source: str,
    episode: str | int,
    step: int,
    num_images: int = 1,
    images: Sequence[str] = (),
    history: Sequence[Action | str] = (),
    system: str | None = None,
    space: ContinuousSpace | DiscreteSpace | None = None,
    thought: str | None = None,
    **extra_meta: Any,
) -> Sample:
    """One sample from the parts a collector or converter has at hand.

    ``images`` are paths already inside the dataset folder; usually leave them empty and
    pass the pixels to ``DatasetWriter.write(sample, images=[...])``, which saves them and
    fills the paths in. ``num_images`` is the number of ``<image>`` markers (defaults to
    ``len(images)`` when paths are given). ``system`` defaults to the prompt describing
    ``space`` (or the default space) of the action's kind; ``thought`` adds an
    ``Action: <thought>`` line before the operation; ``extra_meta`` lands in ``meta`` next
    to source, episode and step. The domain is checked when the sample is written.
    """
    if images:
        num_images = len(images)
    if system is None:
        system = prompt_for_action(action, space)
    return Sample(
        system=system,
        conversations=[
            {"from": HUMAN, "value": human_turn(instruction, num_images, history)},
            {"from": GPT, "value": answer_text(action, thought)},
        ],
        images=list(images),
        domain=domain,
        action=action,
        # the raw instruction lets training re-render the prompt (another history length, ...)
        meta={"source": source, "episode": episode, "step": step, "instruction": instruction, **extra_meta},
    )
