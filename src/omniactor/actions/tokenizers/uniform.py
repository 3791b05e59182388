"""Uniform per-dimension binning of continuous actions (OmniActor, RT-2, OpenVLA).

Each dimension, normalised to ``[-1, 1]``, is cut into ``num_bins`` equal bins; one
action of D dimensions becomes D codes, code ``b`` meaning bin ``b``. The same K codes
serve every dimension (the paper's shared vocabulary).

Bins and edges, worked through for ``num_bins = 4`` (width ``w = 2 / 4 = 0.5``)::

    edges:    -1.0    -0.5     0.0     0.5     1.0
    bins:       |  0   |   1   |   2   |   3   |
    centres:     -0.75   -0.25    0.25    0.75

- ``code = floor((v + 1) / w)``, so each bin holds its lower edge: ``-0.5 -> 1``, ``0.0 -> 2``.
- The top edge ``v = 1.0`` would be bin 4, which does not exist: it goes to the last bin (3).
  (This is the off-by-one that OpenVLA's ``np.digitize`` over ``num_bins`` edges handles by
  having only ``num_bins - 1`` usable bins; here all ``num_bins`` bins are used.)
- Values outside ``[-1, 1]`` are clipped into the edge bins first.
- Decoding returns the bin centre ``-1 + (code + 0.5) * w``: for any ``v`` in ``[-1, 1]`` the
  error is at most half a bin, ``1 / num_bins`` (in normalised units).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..continuous import ActionNormalizer, ContinuousAction, NormalizationMode
from ..errors import ActionDecodeError, ActionValueError
from .base import CodeTokenizer, VocabularyPlacement
from .continuous_common import actions_to_array, check_names, from_unit, make_normalizer, to_unit


class UniformBinTokenizer(CodeTokenizer):
    """Continuous action -> one bin code per dimension."""

    name: ClassVar[str] = "uniform"

    def __init__(
        self,
        num_bins: int = 256,
        names: Sequence[str] = (),
        normalizer: ActionNormalizer | dict | None = None,
        normalization: NormalizationMode | None = "minmax",
        placement: VocabularyPlacement | dict | None = None,
    ):
        """``normalization`` is the mode ``fit`` uses (None: actions are already in [-1, 1])."""
        super().__init__(placement)
        if num_bins < 2:
            raise ActionValueError(f"num_bins must be at least 2, got {num_bins}")
        self.num_bins = int(num_bins)
        self.names = tuple(names)
        self.normalizer = make_normalizer(normalizer)
        self.normalization = normalization
        self.placement.check(self.num_bins)

    @property
    def num_codes(self) -> int:
        return self.num_bins

    @property
    def codes_per_action(self) -> int:
        if not self.names:
            raise ActionValueError("codes_per_action is known after fit (or with names=...)")
        return len(self.names)

    def fit(self, actions: Any) -> UniformBinTokenizer:
        array, names = actions_to_array(actions)
        self.names = names or tuple(f"a{i}" for i in range(array.shape[1]))
        if self.normalization is not None:
            self.normalizer = ActionNormalizer.fit(array, self.normalization)
            self.normalizer = ActionNormalizer(self.normalizer.low, self.normalizer.high, self.normalization, self.names)
        return self

    # -- array API (N, D) <-> (N, D) codes ------------------------------------------------
    def bin_array(self, values: np.ndarray) -> np.ndarray:
        """Environment units ``(N, D)`` -> int64 codes ``(N, D)``."""
        unit = np.clip(to_unit(values, self.normalizer), -1.0, 1.0)
        codes = np.floor((unit + 1.0) * (self.num_bins / 2.0)).astype(np.int64)
        return np.minimum(codes, self.num_bins - 1)  # the top edge v = 1.0 joins the last bin

    def unbin_array(self, codes: np.ndarray) -> np.ndarray:
        """Codes ``(N, D)`` -> bin centres in environment units ``(N, D)``."""
        centres = -1.0 + (np.asarray(codes, dtype=np.float64) + 0.5) * (2.0 / self.num_bins)
        return from_unit(centres, self.normalizer)

    # -- protocol -------------------------------------------------------------------------
    def encode(self, action: ContinuousAction) -> list[int]:
        if not isinstance(action, ContinuousAction):
            raise ActionValueError(f"uniform bins encode continuous actions, got {type(action).__name__}")
        check_names(action, self.names)
        if self.names and len(action.values) != len(self.names):
            raise ActionValueError(f"expected {len(self.names)} values, got {len(action.values)}")
        return self.bin_array(action.as_array()[None])[0].tolist()

    def decode(self, encoded: Sequence[int]) -> ContinuousAction:
        if isinstance(encoded, str):
            raise ActionDecodeError(encoded, "uniform bins decode codes, not text")
        codes = self.check_codes(encoded)
        return ContinuousAction(tuple(self.unbin_array(np.asarray(codes)[None])[0]), self.names)

    def config(self) -> dict[str, Any]:
        return {
            "num_bins": self.num_bins,
            "names": list(self.names),
            "normalizer": self.normalizer.to_json() if self.normalizer else None,
            "normalization": self.normalization,
            "placement": self.placement.to_json(),
        }
