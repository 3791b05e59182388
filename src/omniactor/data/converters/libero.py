"""LIBERO demonstrations (Liu et al., 2023): robomimic-style HDF5 files, one per task.

Layout of one file (``SRC`` is such a file or a folder searched recursively for ``*.hdf5``)::

    data/                      attrs: problem_info (JSON with language_instruction), env_args (JSON), ...
    data/demo_0/actions        (T, 7) float: end-effector delta xyz, rotation delta (axis-angle), gripper
    data/demo_0/obs/agentview_rgb     (T, H, W, 3) uint8   third-person camera (rendered upside down)
    data/demo_0/obs/eye_in_hand_rgb   (T, H, W, 3) uint8   wrist camera
    data/demo_0/obs/ee_states (T, 6), gripper_states (T, 2), joint_states (T, 7)

Every step becomes one ``embodied`` sample with the 7-D action in the declared space
(the OSC controller's normalised input, [-1, 1], by default
``ContinuousSpace.symmetric(EEF_DELTA_GRIPPER)``); the manifest then holds the per-dimension
statistics and the ``minmax`` / ``quantile`` normalisers fitted on them. The robot state
(``state_keys`` concatenated; by default ``ee_states`` + ``gripper_states`` = 8 numbers,
as OpenVLA and openpi feed LIBERO policies) goes into ``meta.state`` for state-input models.

Images: rotated 180 degrees by default (LIBERO renders upside down; the evaluation protocol
rotates too, DESIGN.md §4), then, with ``image_size``, resized to exactly that size (``448``
= 448x448, the paper's input; ``HxW`` for other shapes; aspect ratio not kept, filter
``resize_filter``). ``image_size`` and ``max_side`` exclude each other.

Gripper. LIBERO stores the gripper command as -1 = open, +1 = close (robosuite's
convention, what ``env.step`` takes). Policies trained in other conventions need it mapped;
``gripper`` picks one, and the action space names it, so the manifest records it and an
evaluation can invert it (``to_env_action(values, space.names)``)::

    gripper       written value v              dimension name    bounds     back to LIBERO
    keep          v = g  (default)             gripper           [-1, 1]    g = v
    binary        v = +1 if g > 0 else -1      gripper           [-1, 1]    g = v
    open1close0   v = (1 - g) / 2  (OpenVLA)   gripper_open      [0, 1]     g = 1 - 2v
    open0close1   v = (1 + g) / 2              gripper_closed    [0, 1]     g = 2v - 1

(``open1close0`` equals OpenVLA's RLDS transform, ``1 - clip(g, 0, 1)``, on LIBERO's
+-1 commands, and unlike it stays invertible for values in between.) No-op detection
(``drop_noops``) and clipping look at the stored command, before the mapping.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from ...actions import EEF_DELTA_GRIPPER, ContinuousAction, ContinuousSpace
from ..prompts import build_sample
from .base import (
    BaseOptions,
    Converter,
    PendingEpisode,
    Skip,
    SkippedEpisode,
    SourceError,
    Step,
    Unit,
    option,
    parse_image_size,
    prepare_image,
    require,
    resize_exact,
    rounded_list,
)


@dataclass(frozen=True)
class GripperMap:
    """One gripper convention: the written dimension's name and bounds, and the maps both ways
    between LIBERO's command ``g`` (-1 open, +1 close) and the written value ``v``."""

    dimension: str
    low: float
    high: float
    scale: float  # v = offset + scale * g (binary: after snapping g to -1 / +1)
    offset: float
    binarize: bool = False

    def forward(self, g: np.ndarray) -> np.ndarray:
        g = np.where(g > 0, 1.0, -1.0) if self.binarize else g
        return self.offset + self.scale * g

    def inverse(self, v: np.ndarray) -> np.ndarray:
        return (v - self.offset) / self.scale


GRIPPER_MAPS: dict[str, GripperMap] = {
    "keep": GripperMap("gripper", -1.0, 1.0, 1.0, 0.0),
    "binary": GripperMap("gripper", -1.0, 1.0, 1.0, 0.0, binarize=True),
    "open1close0": GripperMap("gripper_open", 0.0, 1.0, -0.5, 0.5),
    "open0close1": GripperMap("gripper_closed", 0.0, 1.0, 0.5, 0.5),
}
# Written dimension name -> the map to undo (keep and binary both write ``gripper`` in LIBERO's own convention).
_BY_DIMENSION = {m.dimension: m for m in GRIPPER_MAPS.values() if not m.binarize}


def action_space(gripper: str = "keep") -> ContinuousSpace:
    """The declared space of converted LIBERO actions under the gripper mapping ``gripper``."""
    mapping = GRIPPER_MAPS[gripper]
    names = (*EEF_DELTA_GRIPPER[:6], mapping.dimension)
    return ContinuousSpace(names, (-1.0,) * 6 + (mapping.low,), (1.0,) * 6 + (mapping.high,))


SPACE = action_space("keep")  # == ContinuousSpace.symmetric(EEF_DELTA_GRIPPER)


def to_env_action(values: Sequence[float] | np.ndarray, names: Sequence[str]) -> np.ndarray:
    """What LIBERO's ``env.step`` takes (7 numbers, gripper -1 open / +1 close) for ``values`` in a
    converted dataset's space with dimension ``names`` (the manifest's action space, or a
    ``ContinuousAction``'s ``names``): the gripper dimension's name says which mapping to undo.
    ``values`` may be a batch (``(..., 7)``). Raises ``ValueError`` for other dimensions.
    """
    names = tuple(names)
    if len(names) != 7 or names[:6] != EEF_DELTA_GRIPPER[:6] or names[6] not in _BY_DIMENSION:
        raise ValueError(
            f"not a converted LIBERO action space: dimensions {list(names)}; expected x, y, z, roll, pitch, yaw "
            f"and one of {', '.join(_BY_DIMENSION)}"
        )
    out = np.array(values, dtype=np.float64)
    if out.shape[-1:] != (7,):
        raise ValueError(f"expected 7 values per action, got shape {out.shape}")
    out[..., 6] = _BY_DIMENSION[names[6]].inverse(out[..., 6])
    return out


@dataclass(frozen=True)
class LiberoOptions(BaseOptions):
    cameras: tuple[str, ...] = option(("agentview_rgb",), "obs image keys, one image per step each, in this order")
    state_keys: tuple[str, ...] = option(
        ("ee_states", "gripper_states"), "obs keys concatenated into meta.state (none: no state)"
    )
    rotate_180: bool = option(True, "rotate images 180 degrees (LIBERO renders upside down; evaluation rotates too)")
    drop_noops: bool = option(False, "drop no-op steps (no arm motion, gripper command unchanged), as OpenVLA did")
    clip_actions: bool = option(True, "clip actions to [-1, 1] (counted); without it such episodes are skipped")
    image_size: str | None = option(
        None, "resize images, after rotation, to exactly N x N (e.g. 448, the paper's input) or HxW (e.g. 224x448)"
    )
    resize_filter: Literal["bicubic", "bilinear", "lanczos", "nearest"] = option(
        "bicubic", "resampling filter used by image_size"
    )
    gripper: Literal["keep", "binary", "open1close0", "open0close1"] = option(
        "keep", "gripper command convention: keep (-1 open, +1 close, as stored), binary (snapped to -1/+1), "
        "open1close0 (OpenVLA's: 1 open, 0 closed; dimension gripper_open), open0close1 (dimension gripper_closed)"
    )

    def __post_init__(self) -> None:
        if self.image_size is not None:
            parse_image_size(self.image_size)  # fail on a typo before converting anything
            if self.max_side is not None:
                raise ValueError("image_size and max_side both given: use one (image_size sets the exact size)")
        if self.gripper not in GRIPPER_MAPS:
            raise ValueError(f"gripper {self.gripper!r} is not one of {', '.join(GRIPPER_MAPS)}")


def instruction_from_filename(stem: str) -> str:
    """``KITCHEN_SCENE3_turn_on_the_stove_demo`` -> ``turn on the stove``."""
    words = stem.removesuffix("_demo").split("_")
    while words and (words[0].isupper() or re.fullmatch(r"[A-Z]+\d+", words[0])):
        words.pop(0)
    return " ".join(words)


def _demo_order(name: str) -> tuple[int, str]:
    match = re.search(r"(\d+)$", name)
    return (int(match.group(1)) if match else -1, name)


class LiberoConverter(Converter):
    name = "libero"
    domain = "embodied"
    summary = "LIBERO demonstration HDF5 files (7-D end-effector actions, cameras, robot state) -> embodied samples"
    layout = "SRC: a LIBERO .hdf5 file or a folder of them (data/demo_N/actions, data/demo_N/obs/...)"
    Options = LiberoOptions
    options: LiberoOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._open: tuple[str, Any] | None = None
        self._gripper = GRIPPER_MAPS[self.options.gripper]
        self._space = action_space(self.options.gripper)
        self._size = parse_image_size(self.options.image_size) if self.options.image_size else None

    def _files(self) -> list[Path]:
        if self.src.is_file():
            return [self.src]
        return sorted(p for p in self.src.rglob("*.hdf5") if p.is_file())

    def check_source(self) -> None:
        require("h5py")
        if not self.src.exists():
            raise SourceError(f"{self.src}: no such file or folder ({self.layout})")
        if not self._files():
            raise SourceError(f"{self.src}: no .hdf5 files found ({self.layout})")

    def action_spaces(self) -> dict[str, ContinuousSpace]:
        return {self.source: self._space}

    def _file(self, path: str) -> Any:
        if self._open is None or self._open[0] != path:
            h5py = require("h5py")
            if self._open is not None:
                self._open[1].close()
            self._open = (path, h5py.File(path, "r"))
        return self._open[1]

    def units(self) -> list[Unit]:
        h5py = require("h5py")
        units = []
        base = self.src if self.src.is_dir() else self.src.parent
        for path in self._files():
            rel = path.relative_to(base).with_suffix("").as_posix()
            try:
                with h5py.File(path, "r") as f:
                    demos = sorted(f["data"].keys(), key=_demo_order) if "data" in f else []
                    sizes = [int(f["data"][d]["actions"].shape[0]) if "actions" in f["data"][d] else 1 for d in demos]
            except OSError as err:
                units.append(Unit(f"{path}#", 1, (str(path), None, rel, f"cannot open: {err}")))
                continue
            if not demos:
                units.append(Unit(f"{path}#", 1, (str(path), None, rel, "no data/demo_* groups")))
            units += [Unit(f"{path}#{d}", n, (str(path), d, rel, None)) for d, n in zip(demos, sizes)]
        return units

    def episodes(self, unit: Unit) -> Iterator[PendingEpisode | SkippedEpisode]:
        path, demo, rel, problem = unit.data
        if demo is None:
            yield SkippedEpisode(rel, "unreadable_file", f"{path}: {problem}")
            return
        episode = f"{rel}/{demo}"
        yield PendingEpisode(episode, lambda: self._steps(episode, path, demo))

    def _instruction(self, f: Any, path: str) -> str:
        raw = f["data"].attrs.get("problem_info")
        if raw is not None:
            try:
                text = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw)).get("language_instruction")
                if isinstance(text, list):
                    text = " ".join(map(str, text))
                if isinstance(text, str) and text.strip():
                    return text.strip()
            except (json.JSONDecodeError, AttributeError):
                pass
        self.note("instructions taken from file names (no problem_info)")
        return instruction_from_filename(Path(path).stem)

    def _steps(self, episode: str, path: str, demo: str) -> list[Step]:
        opts = self.options
        f = self._file(path)
        group = f["data"][demo]
        if "actions" not in group or "obs" not in group:
            raise Skip("missing_field", f"{demo} lacks actions or obs")
        actions = np.asarray(group["actions"][()], dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != 7:
            raise Skip("bad_shape", f"actions have shape {actions.shape}, expected (T, 7)")
        length = len(actions)
        obs = group["obs"]
        frames = []
        for camera in opts.cameras:
            if camera not in obs:
                raise Skip("missing_camera", f"obs/{camera} not in {demo} (it has: {', '.join(sorted(obs))})")
            frames.append(obs[camera][()])
        states = []
        for key in opts.state_keys:
            if key not in obs:
                raise Skip("missing_state", f"obs/{key} not in {demo}")
            value = np.asarray(obs[key][()], dtype=np.float64)
            states.append(value.reshape(len(value), -1))
        for name, array in [*zip(opts.cameras, frames), *zip(opts.state_keys, states)]:
            if len(array) != length:
                raise Skip("length_mismatch", f"obs/{name} has {len(array)} steps, actions {length}")
        if not np.isfinite(actions).all():
            raise Skip("non_finite_action", f"{demo} has NaN or infinite actions")
        if opts.clip_actions and np.abs(actions).max(initial=0.0) > 1.0:
            self.note("action values clipped to [-1, 1]", int((np.abs(actions) > 1.0).sum()))
            actions = np.clip(actions, -1.0, 1.0)
        state = np.concatenate(states, axis=1) if states else None
        instruction = self._instruction(f, path)
        written = actions.copy()
        written[:, 6] = self._gripper.forward(actions[:, 6])
        if self._gripper.binarize:
            self.note("gripper commands snapped to -1/+1", int((written[:, 6] != actions[:, 6]).sum()))
        names = self._space.names
        steps: list[Step] = []
        previous: np.ndarray | None = None
        for t in range(length):
            action = actions[t]
            noop = np.linalg.norm(action[:6]) < 1e-4 and (previous is None or action[6] == previous[6])
            previous = action
            if opts.drop_noops and noop:
                self.note("no-op steps dropped")
                continue
            images = [prepare_image(self._frame(frame[t]), opts) for frame in frames]
            meta: dict[str, Any] = {"frame": t}
            if state is not None:
                meta["state"] = rounded_list(state[t])
            sample = build_sample(
                domain="embodied",
                instruction=instruction,
                action=ContinuousAction(tuple(written[t].tolist()), names),
                source=self.source,
                episode=episode,
                step=len(steps),
                num_images=len(images),
                space=self._space,
                **meta,
            )
            steps.append(Step(sample, images))
        return steps

    def _frame(self, frame: np.ndarray) -> np.ndarray | Image.Image:
        """One camera frame as written: rotated, then resized to ``image_size``."""
        if self.options.rotate_180:
            frame = np.rot90(frame, 2)
        if self._size is not None:
            return resize_exact(frame, self._size, self.options.resize_filter)
        return frame

    def __del__(self) -> None:
        if getattr(self, "_open", None) is not None:
            with contextlib.suppress(Exception):  # at interpreter shutdown h5py may be gone already
                self._open[1].close()

