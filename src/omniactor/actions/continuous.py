"""Continuous (embodied) actions: a vector of named dimensions with bounds.

A ``ContinuousSpace`` names the dimensions and their bounds in environment units (for
example LIBERO's 6-DoF end-effector delta + gripper, or Meta-World's xyz + gripper). A
``ContinuousAction`` holds one vector in those units. Models see actions normalised to
``[-1, 1]`` by an ``ActionNormalizer`` fitted on dataset statistics: ``minmax`` uses the
observed range, ``quantile`` the 1st..99th percentile (robust to outliers; values
beyond it are clipped to ``[-1, 1]`` on the way in).
"""

from __future__ import annotations

import keyword
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from .errors import ActionValueError

NormalizationMode = Literal["minmax", "quantile"]

_DIMENSION_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def check_dimension_names(names: Sequence[str]) -> tuple[str, ...]:
    """Dimension names must be unique lower_snake_case identifiers (they appear in action text)."""
    names = tuple(names)
    if len(set(names)) != len(names):
        raise ActionValueError(f"dimension names must be unique, got {names}")
    for name in names:
        if not isinstance(name, str) or not _DIMENSION_NAME.match(name) or keyword.iskeyword(name):
            raise ActionValueError(
                f"dimension name {name!r} must be a lower_snake_case identifier (not a Python keyword)"
            )
    return names

#: Dimension names of the common 7-D end-effector delta + gripper action (LIBERO, OpenVLA).
EEF_DELTA_GRIPPER = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
#: Meta-World: xyz delta of the hand + gripper effort.
XYZ_GRIPPER = ("x", "y", "z", "gripper")


@dataclass(frozen=True)
class ContinuousSpace:
    """Named dimensions and their bounds (inclusive), in environment units."""

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", check_dimension_names(self.names))
        object.__setattr__(self, "low", tuple(float(v) for v in self.low))
        object.__setattr__(self, "high", tuple(float(v) for v in self.high))
        if not self.names:
            raise ActionValueError("a continuous space needs at least one dimension")
        if not (len(self.low) == len(self.high) == len(self.names)):
            raise ActionValueError(
                f"{len(self.names)} names but {len(self.low)} low and {len(self.high)} high bounds"
            )
        for name, lo, hi in zip(self.names, self.low, self.high):
            if not lo < hi:
                raise ActionValueError(f"dimension {name!r}: low {lo} must be below high {hi}")

    @classmethod
    def symmetric(cls, names: Sequence[str], bound: float = 1.0) -> ContinuousSpace:
        return cls(tuple(names), tuple(-bound for _ in names), tuple(bound for _ in names))

    @property
    def dim(self) -> int:
        return len(self.names)

    def violations(self, action: ContinuousAction, tolerance: float = 1e-6) -> list[str]:
        """Why ``action`` is not in this space (empty list when it is)."""
        if action.names != self.names:
            return [f"dimensions {list(action.names)} do not match the space's {list(self.names)}"]
        problems = []
        for name, value, lo, hi in zip(self.names, action.values, self.low, self.high):
            if not lo - tolerance <= value <= hi + tolerance:
                problems.append(f"{name}={value} is outside [{lo}, {hi}]")
        return problems

    def to_json(self) -> dict[str, Any]:
        return {"kind": "continuous", "names": list(self.names), "low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContinuousSpace:
        return cls(tuple(data["names"]), tuple(data["low"]), tuple(data["high"]))


@dataclass(frozen=True)
class ContinuousAction:
    """One action vector with named dimensions, in environment units."""

    type: ClassVar[str] = "continuous"
    values: tuple[float, ...]
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        raw = self.values.reshape(-1).tolist() if isinstance(self.values, np.ndarray) else list(self.values)
        wrong = [v for v in raw if isinstance(v, bool) or not isinstance(v, numbers.Real)]
        if wrong:
            raise ActionValueError(f"continuous values must be numbers, got {wrong[0]!r}")
        values = tuple(float(v) for v in raw)
        names = tuple(self.names) if self.names else tuple(f"a{i}" for i in range(len(values)))
        if not values:
            raise ActionValueError("a continuous action needs at least one value")
        if len(names) != len(values):
            raise ActionValueError(f"{len(values)} values but {len(names)} dimension names {names}")
        check_dimension_names(names)
        bad = [n for n, v in zip(names, values) if not math.isfinite(v)]
        if bad:
            raise ActionValueError(f"non-finite value in dimension(s) {', '.join(bad)}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "names", names)

    def as_array(self) -> np.ndarray:
        return np.asarray(self.values, dtype=np.float64)


@dataclass(frozen=True)
class ActionNormalizer:
    """Affine map between environment units and ``[-1, 1]``, fitted per dimension.

    ``normalize`` maps ``low -> -1`` and ``high -> +1`` and clips to ``[-1, 1]``;
    ``unnormalize`` is its inverse on ``[-1, 1]``. Dimensions whose range is empty
    (constant in the data) map to 0 and back to their constant value.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    mode: str = "minmax"
    names: tuple[str, ...] = ()

    @classmethod
    def fit(
        cls,
        actions: np.ndarray | Sequence[ContinuousAction],
        mode: NormalizationMode = "minmax",
        quantiles: tuple[float, float] = (0.01, 0.99),
    ) -> ActionNormalizer:
        names: tuple[str, ...] = ()
        if len(actions) and isinstance(actions[0], ContinuousAction):
            names = actions[0].names
            array = np.stack([a.as_array() for a in actions])
        else:
            array = np.asarray(actions, dtype=np.float64)
        if array.ndim != 2 or array.shape[0] == 0:
            raise ActionValueError(f"fit needs a non-empty (N, D) array of actions, got shape {array.shape}")
        if mode == "minmax":
            low, high = array.min(axis=0), array.max(axis=0)
        elif mode == "quantile":
            low, high = np.quantile(array, quantiles[0], axis=0), np.quantile(array, quantiles[1], axis=0)
        else:
            raise ActionValueError(f"normalization mode {mode!r} is not one of minmax, quantile")
        return cls(tuple(map(float, low)), tuple(map(float, high)), mode, names)

    def _bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        low, high = np.asarray(self.low), np.asarray(self.high)
        span = high - low
        return low, span, span > 1e-12

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Environment units ``(..., D)`` -> ``[-1, 1]`` ``(..., D)``."""
        low, span, live = self._bounds()
        values = np.asarray(values, dtype=np.float64)
        out = np.where(live, 2.0 * (values - low) / np.where(live, span, 1.0) - 1.0, 0.0)
        return np.clip(out, -1.0, 1.0)

    def unnormalize(self, values: np.ndarray) -> np.ndarray:
        """``[-1, 1]`` ``(..., D)`` -> environment units ``(..., D)``."""
        low, span, live = self._bounds()
        values = np.clip(np.asarray(values, dtype=np.float64), -1.0, 1.0)
        return np.where(live, low + (values + 1.0) / 2.0 * span, low)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "low": list(self.low), "high": list(self.high), "names": list(self.names)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActionNormalizer:
        return cls(tuple(data["low"]), tuple(data["high"]), data.get("mode", "minmax"), tuple(data.get("names", ())))
