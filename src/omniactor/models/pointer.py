"""An image pointer: the scores of a GUI domain's ``<loc_i>`` tokens come from the image itself.

A model trained from scratch that must name a screen cell with one of G x G output rows
learns, at our budget, where things usually are rather than where they are in this
screenshot (docs/demo.md: the same cell for a real and a noise image). A pointer ties each
cell's score to the image content at that cell (in the project's early runs a small network whose
output names the image cell reached 1.00 / 0.52 / 1.00 on click-test / click-button /
focus-text where x/y classes reached 0.72 / 0.44 / 0.06):

    score(t, cell) = <q(h_t), k_lm(z_token(cell)) + k_patch(v_cell)> / sqrt(d) + bias_cell

- ``h_t``: the final hidden state where the answer's next token is predicted (the query);
- ``z_token(cell)``: the final hidden state of the image token that covers the cell (the
  language model has read the task there, so "the OK button" can light up the right tokens);
- ``v_cell``: the vision encoder's feature of the cell's own patch, before the 2x2 merge, so
  cells are one patch (14 px of the resized image) rather than one merged token (28 px);
- ``bias_cell``: a learned prior per cell.

The scores replace the logits of the ``<loc_i>`` rows; everything else (the answer text,
constrained decoding, the Agent) is unchanged. Cell ``i = row * G + col`` of the action
tokenizer's grid maps to the patch under its centre, so G equal to the patch grid (16 at
224 px) gives one patch per cell. The current screenshot is each sample's last image; rows
of a batch may hold images of different sizes, and a row without an image scores by the
prior alone.

It hooks the model (top-level forward, the vision merger, the language model), so it works
for training and for ``generate`` (the image keys of the prompt are kept for the decoding
steps). Supported: Qwen2-VL (its patch order before the merge is known; Qwen2.5-VL's
windowed vision encoder reorders patches, and other families do not merge 2x2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..errors import OmniactorError


class PointerError(OmniactorError, ValueError):
    """The pointer cannot be attached to, or run on, this model or input."""


@dataclass(frozen=True)
class PointerConfig:
    """Which tokens the pointer scores, on which grid."""

    loc_token_ids: list[int]
    """the ids of ``<loc_0>`` .. ``<loc_{G*G-1}>``, in cell order"""
    grid: int
    """G, the action tokenizer's grid"""
    dim: int = 128
    """width of the query and keys"""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _find(model: nn.Module, suffix: str) -> nn.Module:
    for name, module in model.named_modules():
        if name == suffix or name.endswith("." + suffix):
            return module
    raise PointerError(f"the image pointer needs a module named *{suffix} (Qwen2-VL); this model has none")


def cell_patches(grid: int, h: int, w: int, merge: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each cell ``row * grid + col`` of the action grid: the index of the merged image token
    and of the patch (Qwen2-VL's merge-window order: windows row-major, then the patches inside
    each window row-major) under the cell's centre, on an ``h`` x ``w`` patch grid."""
    rows = (torch.arange(grid) * 2 + 1) * h // (2 * grid)
    cols = (torch.arange(grid) * 2 + 1) * w // (2 * grid)
    r, c = rows[:, None].expand(grid, grid).reshape(-1), cols[None, :].expand(grid, grid).reshape(-1)
    token = (r // merge) * (w // merge) + (c // merge)
    return token, token * merge * merge + (r % merge) * merge + (c % merge)


class ImagePointer(nn.Module):
    """The pointer's weights (see the module docstring); ``attach_pointer`` wires it in."""

    def __init__(self, hidden_size: int, vision_size: int, config: PointerConfig):
        super().__init__()
        self.config = config
        self.query = nn.Linear(hidden_size, config.dim)
        self.key_token = nn.Linear(hidden_size, config.dim)
        self.key_patch = nn.Linear(vision_size, config.dim)
        self.bias = nn.Parameter(torch.zeros(config.grid * config.grid))
        self.register_buffer("loc_ids", torch.tensor(config.loc_token_ids, dtype=torch.long), persistent=False)

    def cell_keys(self, token_states: torch.Tensor, patches: torch.Tensor, grid_hw: tuple[int, int],
                  merge: int) -> torch.Tensor:
        """``(B, N, H)`` image-token states and ``(B, N * merge², V)`` patch features (merge-window
        order) -> keys ``(B, G * G, dim)`` of the action grid's cells."""
        token, patch = cell_patches(self.config.grid, *grid_hw, merge)
        token, patch = token.to(patches.device), patch.to(patches.device)
        dtype = self.key_token.weight.dtype
        return self.key_token(token_states[:, token].to(dtype)) + self.key_patch(patches[:, patch].to(dtype))

    def scores(self, hidden: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``(B, T, H)`` queries and ``(B, C, dim)`` keys -> ``(B, T, C)`` cell logits."""
        query = self.query(hidden.to(self.query.weight.dtype))
        return torch.einsum("btd,bcd->btc", query, keys) / math.sqrt(self.config.dim) + self.bias


class _PointerHooks:
    """What one forward call needs across the hooks: the inputs, the patch features, the keys."""

    def __init__(self, pointer: ImagePointer, image_token_id: int, merge: int):
        self.pointer = pointer
        self.image_token_id, self.merge = image_token_id, merge
        self.input_ids: torch.Tensor | None = None
        self.grid_thw: torch.Tensor | None = None
        self.patches: torch.Tensor | None = None
        self.hidden: torch.Tensor | None = None
        self.keys: torch.Tensor | None = None  # kept from the prompt for generate's decoding steps

    def before_model(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.input_ids = kwargs.get("input_ids", args[0] if args else None)
        self.hidden = None

    def before_vision(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        # the vision encoder may run before the model's forward (generate pre-encodes images)
        self.grid_thw = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)

    def before_merger(self, module: nn.Module, args: tuple) -> None:
        self.patches = args[0]

    def after_language_model(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
        self.hidden = hidden
        if self.input_ids is not None and bool((self.input_ids == self.image_token_id).any()):
            if self.patches is None or self.grid_thw is None:
                raise PointerError("the prompt has image tokens but the vision encoder did not run")
            self.keys = self._keys(hidden)  # a prompt: new keys, kept for the decoding steps after it
            self.patches = None

    def _keys(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(B, G * G, dim)``: each row's cell keys from its last image (zeros for a row without one)."""
        grids = [tuple(x) for x in self.grid_thw.tolist()]
        if any(t != 1 for t, _, _ in grids):
            raise PointerError("the image pointer works on images, not videos")
        sizes = [h * w for _, h, w in grids]
        patch_starts = [0]
        for size in sizes:
            patch_starts.append(patch_starts[-1] + size)
        merged = [size // (self.merge * self.merge) for size in sizes]
        where = self.input_ids == self.image_token_id
        cells = self.pointer.config.grid ** 2
        rows, image = [], 0
        for row in range(hidden.shape[0]):
            positions = where[row].nonzero(as_tuple=True)[0]
            taken, last = 0, None
            while taken < len(positions):  # the row's images, in order
                last, taken, image = image, taken + merged[image], image + 1
            if last is None:
                rows.append(hidden.new_zeros(cells, self.pointer.config.dim))
                continue
            _, h, w = grids[last]
            token_states = hidden[row, positions[-merged[last]:]]
            patches = self.patches[patch_starts[last]:patch_starts[last + 1]]
            rows.append(self.pointer.cell_keys(token_states[None], patches[None], (h, w), self.merge)[0])
        return torch.stack(rows)

    def after_model(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        logits = getattr(output, "logits", None)
        if logits is None or self.hidden is None or self.keys is None:
            return output
        hidden = self.hidden[:, -logits.shape[1]:]  # logits_to_keep: the last positions only
        if self.keys.shape[0] != hidden.shape[0]:
            raise PointerError(f"{hidden.shape[0]} rows but image keys of {self.keys.shape[0]}; the pointer "
                               "follows one batch from its prompt through its decoding steps")
        scores = self.pointer.scores(hidden, self.keys).to(logits.dtype)
        logits = logits.clone()
        logits[..., self.pointer.loc_ids] = scores
        output.logits = logits
        self.hidden = None
        return output


def attach_pointer(model: nn.Module, pointer: ImagePointer) -> None:
    """Register ``pointer``'s hooks on ``model`` (a Qwen2-VL; refused with the reason otherwise)."""
    vision = getattr(model.config, "vision_config", None)
    if getattr(model.config, "model_type", "") != "qwen2_vl" or vision is None:
        raise PointerError(f"the image pointer supports Qwen2-VL models; this is {model.config.model_type!r} "
                           "(drop image_pointer from the training config)")
    visual, merger = _find(model, "visual"), _find(model, "visual.merger")
    language_model = _find(model, "language_model")
    hooks = _PointerHooks(pointer, int(model.config.image_token_id), int(vision.spatial_merge_size))
    model.register_forward_pre_hook(hooks.before_model, with_kwargs=True)
    visual.register_forward_pre_hook(hooks.before_vision, with_kwargs=True)
    merger.register_forward_pre_hook(hooks.before_merger)
    language_model.register_forward_hook(hooks.after_language_model, with_kwargs=True)
    model.register_forward_hook(hooks.after_model, with_kwargs=True)
    model.omniactor_pointer_hooks = hooks


def vision_feature_size(model: nn.Module) -> int:
    vision = model.config.vision_config
    return int(getattr(vision, "embed_dim", None) or vision.hidden_size)
