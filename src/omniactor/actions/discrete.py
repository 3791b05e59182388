"""Discrete actions: one choice from a named, ordered action set (BabyAI, games, planners)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import ActionValueError

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: BabyAI / MiniGrid's actions in the environment's own order (index = action id).
BABYAI_ACTIONS = ("left", "right", "forward", "pickup", "drop", "toggle", "done")


@dataclass(frozen=True)
class DiscreteAction:
    """One named action. Its index is given by the ``DiscreteSpace`` it belongs to."""

    type: ClassVar[str] = "discrete"
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ActionValueError(
                f"discrete action name {self.name!r} must be lower_snake_case (letters, digits, _)"
            )


@dataclass(frozen=True)
class DiscreteSpace:
    """A named, ordered action set; the order fixes each action's integer id."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        names = tuple(self.names)
        if not names:
            raise ActionValueError("a discrete space needs at least one action")
        if len(set(names)) != len(names):
            raise ActionValueError(f"discrete action names must be unique, got {names}")
        for name in names:
            DiscreteAction(name)  # validates the spelling
        object.__setattr__(self, "names", names)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, action: DiscreteAction | str) -> int:
        name = action.name if isinstance(action, DiscreteAction) else action
        try:
            return self.names.index(name)
        except ValueError:
            raise ActionValueError(f"{name!r} is not in the action set {list(self.names)}") from None

    def action(self, index: int) -> DiscreteAction:
        if not 0 <= index < len(self.names):
            raise ActionValueError(f"action id {index} is outside 0..{len(self.names) - 1}")
        return DiscreteAction(self.names[index])

    def violations(self, action: DiscreteAction) -> list[str]:
        if action.name in self.names:
            return []
        return [f"{action.name!r} is not in the action set {list(self.names)}"]

    def to_json(self) -> dict[str, Any]:
        return {"kind": "discrete", "names": list(self.names)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DiscreteSpace:
        return cls(tuple(data["names"]))

    @classmethod
    def of(cls, names: Sequence[str]) -> DiscreteSpace:
        return cls(tuple(names))
