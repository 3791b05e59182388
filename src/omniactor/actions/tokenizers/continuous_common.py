"""Helpers shared by the tokenizers of continuous actions (uniform bins, VQ/RVQ)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..continuous import ActionNormalizer, ContinuousAction
from ..errors import ActionValueError


def actions_to_array(actions: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(N, D)`` float64 array and dimension names of a list of actions or an array.

    Arrays get no names (``()``); every ``ContinuousAction`` must share the same names.
    """
    if isinstance(actions, np.ndarray) or (len(actions) and not isinstance(actions[0], ContinuousAction)):
        array = np.asarray(actions, dtype=np.float64)
        if array.ndim != 2:
            raise ActionValueError(f"expected an (N, D) array of actions, got shape {array.shape}")
        return array, ()
    if not len(actions):
        raise ActionValueError("no actions given")
    names = actions[0].names
    for i, action in enumerate(actions):
        if action.names != names:
            raise ActionValueError(f"action {i} has dimensions {action.names}, expected {names}")
    return np.stack([a.as_array() for a in actions]), names


def make_normalizer(
    normalizer: ActionNormalizer | dict | None,
) -> ActionNormalizer | None:
    if isinstance(normalizer, dict):
        return ActionNormalizer.from_json(normalizer)
    return normalizer


def to_unit(values: np.ndarray, normalizer: ActionNormalizer | None) -> np.ndarray:
    """Environment units -> ``[-1, 1]`` (values already in ``[-1, 1]`` when no normalizer)."""
    return normalizer.normalize(values) if normalizer is not None else np.asarray(values, dtype=np.float64)


def from_unit(values: np.ndarray, normalizer: ActionNormalizer | None) -> np.ndarray:
    return normalizer.unnormalize(values) if normalizer is not None else np.asarray(values, dtype=np.float64)


def check_names(action: ContinuousAction, names: Sequence[str]) -> None:
    if names and action.names != tuple(names):
        raise ActionValueError(f"action dimensions {action.names} do not match the tokenizer's {tuple(names)}")
