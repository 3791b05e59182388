"""What ``Agent.act`` accepts as an observation, turned into the images and state a prompt needs.

Accepted, so that a camera frame or a screenshot needs no wrapping:

- an ``envs.base.Observation`` (the toolkit's environments);
- a PIL image (converted to RGB);
- an ``(H, W, 3)`` ``uint8`` array;
- a dict ``{"image": <image>}`` or ``{"images": [<image>, ...] | {view: <image>}}``, with an
  optional ``"state": [...]`` (the low-dimensional state a ``state: true`` domain reads).

Anything else is an ``AgentError`` that says what was given and what is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import OmniactorError

ACCEPTED = ("an Observation, a PIL image, an (H, W, 3) uint8 array, or a dict "
            "{'image' or 'images': ..., 'state': [...]}")


class ObservationError(OmniactorError, TypeError):
    """An observation ``Agent.act`` cannot read (the Agent raises it as its own ``AgentError``)."""


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def as_image(value: Any, where: str) -> np.ndarray:
    """One image as an ``(H, W, 3)`` uint8 array."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL comes with the processors
        Image = None
    if Image is not None and isinstance(value, Image.Image):
        return np.asarray(value.convert("RGB"))
    if isinstance(value, np.ndarray):
        if value.ndim == 3 and value.shape[2] == 3 and value.dtype == np.uint8:
            return value
        raise ObservationError(f"{where}: {_describe(value)}; an image array must be (H, W, 3) uint8 "
                               "(convert it: np.asarray(img, dtype=np.uint8), drop an alpha channel)")
    raise ObservationError(f"{where}: {_describe(value)} is not an image; give a PIL image or an (H, W, 3) "
                           "uint8 array")


def _state(value: Any, where: str) -> np.ndarray | None:
    if value is None:
        return None
    try:
        state = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ObservationError(f"{where}.state: {_describe(value)} is not a list of numbers") from None
    if state.ndim != 1 or not np.isfinite(state).all():
        raise ObservationError(f"{where}.state: must be a flat list of finite numbers, got shape {state.shape}")
    return state


def observation_inputs(value: Any, where: str = "observation") -> tuple[list[np.ndarray], np.ndarray | None]:
    """``(images, state)`` of one observation in any accepted form (``ACCEPTED``)."""
    images = getattr(value, "images", None)
    if isinstance(images, Mapping) and hasattr(value, "instruction"):  # an Observation
        return list(images.values()), getattr(value, "state", None)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"image", "images", "state"})
        if unknown or ("image" in value) == ("images" in value):
            raise ObservationError(f"{where}: a dict observation takes exactly one of 'image' or 'images', and "
                                   f"optionally 'state'; got the keys {sorted(value)}")
        if "image" in value:
            shown = [as_image(value["image"], f"{where}.image")]
        else:
            given = value["images"]
            if isinstance(given, Mapping):
                given = list(given.values())
            if not isinstance(given, Sequence) or isinstance(given, str | bytes) or not given:
                raise ObservationError(f"{where}.images: {_describe(given)}; give a non-empty list of images")
            shown = [as_image(image, f"{where}.images[{i}]") for i, image in enumerate(given)]
        return shown, _state(value.get("state"), where)
    if isinstance(value, np.ndarray) or hasattr(value, "convert"):  # an image: its own message when it is wrong
        return [as_image(value, where)], None
    raise ObservationError(f"{where}: {_describe(value)} is not an observation; give {ACCEPTED}")
