"""Learned vector-quantised action tokenizers: residual VQ (GEA) and plain VQ.

An MLP encoder maps an action, normalised to ``[-1, 1]`` and zero-padded to the widest
action space of all embodiments, to a latent vector; a residual vector quantiser
(``vector_quantize_pytorch.ResidualVQ``: k-means initialised, EMA codebooks, dead codes
replaced) turns it into one code per level; an MLP decoder maps the summed code vectors
back, and decoding keeps the embodiment's own dimensions (truncation)::

    action (D_e) -> normalise -> pad to W -> encoder -> z -> RVQ -> (c_0, ..., c_{Q-1})
    codes -> sum of code vectors -> decoder -> W values -> first D_e -> unnormalise -> action

Codes in the LLM vocabulary: level ``l``'s code ``c`` is ``l * codebook_size + c``, so
``num_codes = num_quantizers * codebook_size`` and one action is ``num_quantizers`` codes,
code ``i`` in level ``i``'s range (``decode`` rejects anything else).

``fit`` in four phases (all optional but the k-means one)::

    1. joint training, GEA style (``steps`` > 0): encoder + RVQ + decoder, MSE reconstruction
       (on each embodiment's real dimensions only) + commitment loss, Adam, cosine decay
    2. codebooks refitted to the (final) encoder: k-means per level on a sample
    3. ``refine_passes`` Lloyd steps: networks frozen, EMA decay 0, whole training set per pass
    4. decoder fitting (``decoder_steps``): codes frozen, the decoder learns code sum -> action (MSE)

Precision, measured on smooth 7-D trajectories (``benchmarks/bench_action_tokenizers.py``):
encoder and decoder are an identity-initialised linear map plus a residual MLP whose last
layer starts at zero, so an untrained encoder is exactly the identity and RVQ runs on the
normalised actions, where squared error in latent space *is* the reconstruction error.
Joint gradient training (phase 1) moves the encoder off that metric and raised the held-out
error (7 x 512 codes: 0.00026 -> 0.00037 with a linear encoder, 0.00053 with the MLP), so it
is off by default (``steps=0``). What pays: k-means + Lloyd passes on the identity latent
(0.00026; after joint training the Lloyd passes alone took 0.00066 to 0.00049) and the MLP
decoder fitted on frozen codes (0.00026 -> 0.00024). A latent narrower than the actions
starts as their principal components. ``beam_size`` > 1 encodes with a beam search over the
levels (beam 4: mean error -20%, max error /3, encoding 25x slower).

Training runs on CPU and is deterministic given ``seed``. ``VQTokenizer`` is the same with
one codebook. Needs ``pip install 'omniactor[vq]'`` (torch, vector-quantize-pytorch,
safetensors).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..continuous import ActionNormalizer, ContinuousAction, NormalizationMode, check_dimension_names
from ..errors import ActionDecodeError, ActionValueError
from .base import CodeTokenizer, VocabularyPlacement
from .continuous_common import from_unit, make_normalizer, to_unit

try:
    import torch
    from safetensors.torch import load_file, save_file
    from torch import nn
    from vector_quantize_pytorch import ResidualVQ
except ImportError as _err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"the VQ/RVQ action tokenizers need torch, vector-quantize-pytorch and safetensors ({_err}); "
        "install them with: pip install 'omniactor[vq]'"
    ) from _err

WEIGHTS_FILE = "vq.safetensors"

#: vector-quantize-pytorch from this version on initialises, updates and re-seeds codebooks
#: differently, and the same fit loses precision (pyproject.toml pins the extra below it)
UNTESTED_LIBRARY_FROM = (1, 33)


def warn_if_untested_library(installed: str | None = None) -> None:
    """Warn when the installed vector-quantize-pytorch fits codebooks differently from the tested one."""
    if installed is None:
        from importlib.metadata import version

        installed = version("vector-quantize-pytorch")
    try:
        major_minor = tuple(int(part) for part in installed.split(".")[:2])
    except ValueError:
        return
    if major_minor >= UNTESTED_LIBRARY_FROM:
        warnings.warn(
            f"vector-quantize-pytorch {installed} fits codebooks differently from the tested versions "
            "(held-out error 0.0079 -> 0.0106 in tests/actions/test_vq_tokenizer.py); for the tested fit: "
            "pip install 'vector-quantize-pytorch<1.33'. Saved tokenizers load and encode the same under either.",
            stacklevel=3,
        )


# -- the network ------------------------------------------------------------------------------
class _SkipMLP(nn.Module):
    """``linear(x) + mlp(x)``: identity-initialised linear path plus a residual MLP (last layer zero)."""

    def __init__(self, d_in: int, d_out: int, hidden: Sequence[int]):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        with torch.no_grad():
            self.linear.weight.zero_()
            k = min(d_in, d_out)
            self.linear.weight[:k, :k] = torch.eye(k)
            self.linear.bias.zero_()
        self.mlp: nn.Module | None = None
        if hidden:
            layers: list[nn.Module] = []
            width = d_in
            for h in hidden:
                layers += [nn.Linear(width, h), nn.GELU()]
                width = h
            last = nn.Linear(width, d_out)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.mlp = nn.Sequential(*layers, last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out + self.mlp(x) if self.mlp is not None else out


class _ActionRVQ(nn.Module):
    def __init__(
        self, width: int, latent_dim: int, hidden: Sequence[int], num_quantizers: int, codebook_size: int,
        commitment_weight: float, ema_decay: float, kmeans_iters: int, dead_code_threshold: float,
    ):
        super().__init__()
        self.encoder = _SkipMLP(width, latent_dim, hidden)
        self.rvq = ResidualVQ(
            dim=latent_dim, num_quantizers=num_quantizers, codebook_size=codebook_size,
            kmeans_init=True, kmeans_iters=kmeans_iters, decay=ema_decay,
            threshold_ema_dead_code=dead_code_threshold, commitment_weight=commitment_weight,
        )
        self.decoder = _SkipMLP(latent_dim, width, tuple(reversed(tuple(hidden))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        quantized, _, commit = self.rvq(self.encoder(x))
        return self.decoder(quantized), commit.sum()

    def set_decay(self, decay: float) -> None:
        for layer in self.rvq.layers:
            layer._codebook.decay = decay

    @torch.no_grad()
    def codes(self, x: torch.Tensor, beam_size: int = 1) -> torch.Tensor:
        z = self.encoder(x)
        if beam_size > 1:
            _, indices, _ = self.rvq(z, beam_size=beam_size)
        else:
            _, indices, _ = self.rvq(z)
        return indices

    @torch.no_grad()
    def values(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.rvq.get_output_from_indices(indices))


def _cosine(steps: int) -> Any:
    """Learning-rate factor: linear warm-up over 5% of ``steps``, then cosine decay to 0."""
    warmup = max(1, steps // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return factor


# -- the tokenizer ----------------------------------------------------------------------------
class ResidualVQTokenizer(CodeTokenizer):
    """Continuous action of any embodiment -> ``num_quantizers`` residual-VQ codes."""

    name: ClassVar[str] = "rvq"

    def __init__(
        self,
        num_quantizers: int = 2,
        codebook_size: int = 512,
        latent_dim: int | None = None,
        hidden_sizes: Sequence[int] = (256, 256),
        embodiments: Mapping[str, Sequence[str]] | None = None,
        normalizers: Mapping[str, ActionNormalizer | dict | None] | None = None,
        normalization: NormalizationMode | None = "minmax",
        steps: int = 0,
        batch_size: int = 1024,
        lr: float = 1e-3,
        commitment_weight: float = 0.25,
        ema_decay: float = 0.95,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 1.0,
        refine_passes: int = 8,
        decoder_steps: int = 2000,
        beam_size: int = 1,
        seed: int = 0,
        default_embodiment: str | None = None,
        placement: VocabularyPlacement | dict | None = None,
        fitted: bool = False,
    ):
        """``latent_dim`` None: the widest action space; ``hidden_sizes=()``: linear encoder/decoder.

        ``embodiments`` maps an embodiment name to its dimension names (declared ones count
        for the padded width even if ``fit`` sees none of their actions); ``normalizers``
        maps it to its ``ActionNormalizer`` (refitted by ``fit`` unless ``normalization`` is
        None, in which case actions must already be in ``[-1, 1]``). ``fit`` runs ``steps``
        joint (GEA-style) training steps of ``batch_size`` at ``lr`` (``commitment_weight``,
        ``ema_decay``), k-means (``kmeans_iters``), ``refine_passes`` Lloyd passes and
        ``decoder_steps`` decoder steps, seeded by ``seed``; ``dead_code_threshold``: codes
        used less (EMA count) are re-seeded. ``beam_size`` steers encoding.
        ``default_embodiment``: what ``decode`` returns when not told (None: the first one
        ``fit`` sees). ``fitted`` is set in saved configs (``from_config`` loads the weights).
        """
        super().__init__(placement)
        if num_quantizers < 1:
            raise ActionValueError(f"num_quantizers must be at least 1, got {num_quantizers}")
        if codebook_size < 2:
            raise ActionValueError(f"codebook_size must be at least 2, got {codebook_size}")
        if normalization not in (None, "minmax", "quantile"):
            raise ActionValueError(f"normalization {normalization!r} is not one of minmax, quantile, None")
        self.num_quantizers = int(num_quantizers)
        self.codebook_size = int(codebook_size)
        self.latent_dim = None if latent_dim is None else int(latent_dim)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        if any(h < 1 for h in self.hidden_sizes) or (self.latent_dim is not None and self.latent_dim < 1):
            raise ActionValueError("latent_dim and hidden sizes must be positive")
        self.embodiments: dict[str, tuple[str, ...]] = {}
        for emb, names in (embodiments or {}).items():
            self._add_embodiment(emb, names)
        self.normalizers: dict[str, ActionNormalizer | None] = {
            emb: make_normalizer(n) for emb, n in (normalizers or {}).items()
        }
        unknown = set(self.normalizers) - set(self.embodiments)
        if unknown:
            raise ActionValueError(f"normalizers given for undeclared embodiment(s) {sorted(unknown)}")
        self.normalization = normalization
        self.steps = int(steps)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.commitment_weight = float(commitment_weight)
        self.ema_decay = float(ema_decay)
        self.kmeans_iters = int(kmeans_iters)
        self.dead_code_threshold = float(dead_code_threshold)
        self.refine_passes = int(refine_passes)
        self.decoder_steps = int(decoder_steps)
        self.beam_size = int(beam_size)
        self.seed = int(seed)
        if min(self.steps, self.refine_passes, self.decoder_steps) < 0 or min(self.batch_size, self.beam_size) < 1:
            raise ActionValueError("steps, refine_passes and decoder_steps must be >= 0; batch_size, beam_size >= 1")
        if default_embodiment is not None and default_embodiment not in self.embodiments:
            raise ActionValueError(f"default embodiment {default_embodiment!r} is not declared")
        self.default_embodiment = default_embodiment
        self._model: _ActionRVQ | None = None
        self._width = 0
        self.placement.check(self.num_codes)
        if fitted:  # weights follow (from_config); until then the tokenizer is unfitted
            self._build_model()

    # -- sizes ------------------------------------------------------------------------------
    @property
    def num_codes(self) -> int:
        return self.num_quantizers * self.codebook_size

    def code_choices(self, position: int) -> range:
        """Level ``position``'s codes: ``position * codebook_size`` onwards."""
        return range(position * self.codebook_size, (position + 1) * self.codebook_size)

    @property
    def codes_per_action(self) -> int:
        return self.num_quantizers

    @property
    def width(self) -> int:
        """The padded action width: the widest declared embodiment."""
        return max((len(n) for n in self.embodiments.values()), default=0)

    @property
    def fitted(self) -> bool:
        return self._model is not None

    def _add_embodiment(self, emb: str, names: Sequence[str]) -> None:
        names = check_dimension_names(tuple(names))
        if not isinstance(emb, str) or not emb:
            raise ActionValueError(f"embodiment names must be non-empty strings, got {emb!r}")
        if not names:
            raise ActionValueError(f"embodiment {emb!r} needs at least one dimension")
        for other, other_names in self.embodiments.items():
            if other != emb and other_names == names:
                raise ActionValueError(f"embodiments {other!r} and {emb!r} have the same dimensions {names}")
        self.embodiments[emb] = names

    def _new_embodiment_name(self) -> str:
        i = len(self.embodiments)
        while f"embodiment_{i}" in self.embodiments:
            i += 1
        return f"embodiment_{i}"

    def embodiment_of(self, names: Sequence[str]) -> str:
        """The embodiment whose dimensions are ``names`` (``ActionValueError`` if none)."""
        names = tuple(names)
        for emb, emb_names in self.embodiments.items():
            if emb_names == names:
                return emb
        raise ActionValueError(f"no embodiment has dimensions {names}; known: {self.embodiments}")

    def _resolve(self, embodiment: str | None) -> str:
        if embodiment is None:
            if not self.embodiments:
                raise ActionValueError("the tokenizer has no embodiment yet: fit it first")
            return self.default_embodiment or next(iter(self.embodiments))
        if embodiment not in self.embodiments:
            raise ActionValueError(f"unknown embodiment {embodiment!r}; known: {list(self.embodiments)}")
        return embodiment

    # -- fit --------------------------------------------------------------------------------
    def _group(self, actions: Any) -> dict[str, np.ndarray]:
        """Actions (list, array or {embodiment: list | array}) -> {embodiment: (N, D) array}."""
        groups: dict[str, list[np.ndarray]] = {}

        def add(emb: str | None, names: tuple[str, ...] | None, array: np.ndarray) -> None:
            if array.ndim != 2 or array.shape[0] == 0:
                raise ActionValueError(f"expected a non-empty (N, D) array of actions, got shape {array.shape}")
            if not np.all(np.isfinite(array)):
                raise ActionValueError("actions contain non-finite values")
            if emb is None:  # find the embodiment by names, or by width for a bare array
                if names is not None:
                    try:
                        emb = self.embodiment_of(names)
                    except ActionValueError:
                        emb = self._new_embodiment_name()
                        self._add_embodiment(emb, names)
                else:
                    same = [e for e, n in self.embodiments.items() if len(n) == array.shape[1]]
                    if len(same) > 1:
                        raise ActionValueError(f"embodiments {same} all have {array.shape[1]} dimensions: "
                                               "pass {embodiment: array} to say which")
                    if same:
                        emb = same[0]
                    else:
                        emb = "default" if "default" not in self.embodiments else self._new_embodiment_name()
                        self._add_embodiment(emb, [f"a{i}" for i in range(array.shape[1])])
            elif emb not in self.embodiments:
                self._add_embodiment(emb, names or [f"a{i}" for i in range(array.shape[1])])
            if names is not None and names != self.embodiments[emb]:
                raise ActionValueError(f"actions of {emb!r} have dimensions {names}, expected {self.embodiments[emb]}")
            if array.shape[1] != len(self.embodiments[emb]):
                raise ActionValueError(
                    f"embodiment {emb!r} has {len(self.embodiments[emb])} dimensions, got {array.shape[1]} values"
                )
            groups.setdefault(emb, []).append(array)

        def add_list(emb: str | None, items: Sequence[Any]) -> None:
            if not len(items):
                raise ActionValueError("no actions given")
            if isinstance(items, np.ndarray) or not isinstance(items[0], ContinuousAction):
                add(emb, None, np.asarray(items, dtype=np.float64))
                return
            by_names: dict[tuple[str, ...], list[np.ndarray]] = {}
            for i, action in enumerate(items):
                if not isinstance(action, ContinuousAction):
                    raise ActionValueError(f"item {i} is a {type(action).__name__}, not a ContinuousAction")
                by_names.setdefault(action.names, []).append(action.as_array())
            if emb is not None and len(by_names) > 1:
                raise ActionValueError(f"actions given for {emb!r} have several dimension sets {list(by_names)}")
            for names, rows in by_names.items():
                add(emb, names, np.stack(rows))

        if isinstance(actions, Mapping):
            if not actions:
                raise ActionValueError("no actions given")
            for emb, items in actions.items():
                add_list(str(emb), items)
        else:
            add_list(None, actions)
        return {emb: np.concatenate(parts) for emb, parts in groups.items()}

    def fit(self, actions: Any, progress: bool = False) -> ResidualVQTokenizer:
        """Learn normalizers, encoder, codebooks and decoder from example actions.

        ``actions``: a list of ``ContinuousAction`` (several embodiments allowed, told apart
        by their dimension names; unknown names become a new embodiment), an ``(N, D)``
        array (one embodiment), or ``{embodiment: list | array}``. ``progress`` shows a bar.
        """
        warn_if_untested_library()
        groups = self._group(actions)
        if self.default_embodiment is None:
            self.default_embodiment = next(iter(groups))
        for emb, array in groups.items():
            if self.normalization is not None:
                fitted = ActionNormalizer.fit(array, self.normalization)
                self.normalizers[emb] = ActionNormalizer(fitted.low, fitted.high, self.normalization,
                                                         self.embodiments[emb])
        width = self.width
        units, masks = [], []
        for emb, array in groups.items():
            unit = to_unit(array, self.normalizers.get(emb))
            pad = np.zeros((len(unit), width))
            pad[:, : unit.shape[1]] = unit
            mask = np.zeros((len(unit), width))
            mask[:, : unit.shape[1]] = 1.0
            units.append(pad)
            masks.append(mask)
        data = torch.from_numpy(np.concatenate(units)).float()
        mask = torch.from_numpy(np.concatenate(masks)).float()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._build_model()
            self._train(data, mask, progress)
        return self

    def _build_model(self) -> None:
        width = self.width
        if width == 0:
            raise ActionValueError("the tokenizer has no embodiment: fit it or declare embodiments")
        self._width = width
        self._model = _ActionRVQ(
            width, self.latent_dim or width, self.hidden_sizes, self.num_quantizers, self.codebook_size,
            self.commitment_weight, self.ema_decay, self.kmeans_iters, self.dead_code_threshold,
        )
        self._model.eval()

    def _train(self, data: torch.Tensor, mask: torch.Tensor, progress: bool) -> None:
        """Networks + codebooks by gradient descent, then codebooks refitted to the final encoder."""
        model = self._model
        assert model is not None
        n = len(data)
        gen = torch.Generator().manual_seed(self.seed)
        # the codebooks' final fit sees (up to) 65536 actions at once
        sample = data if n <= 65536 else data[torch.randperm(n, generator=gen)[:65536]]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            total = self.steps + 1 + self.refine_passes + self.decoder_steps
            bar = tqdm(total=total, desc=f"fit {self.name}", unit="step")
        if model.encoder.linear.out_features < model.encoder.linear.in_features:
            self._pca_init(sample)
        model.train()
        if self.steps > 0:
            self._kmeans_init(data[torch.randperm(n, generator=gen)[: self.codebook_size * 16]])
            self._gradient_steps(data, mask, gen, bar)
        # codebooks refitted on the final encoder's latents: k-means per level, then with the
        # networks frozen and EMA decay 0 each training-mode pass over the sample is one
        # Lloyd step of every level on the whole sample (dead codes are re-seeded from it)
        with torch.no_grad():
            self._kmeans_init(sample[torch.randperm(len(sample), generator=gen)[: self.codebook_size * 16]])
            if bar is not None:
                bar.update(1)
            model.set_decay(0.0)
            for _ in range(self.refine_passes):
                model.rvq(model.encoder(sample))
                if bar is not None:
                    bar.update(1)
            model.set_decay(self.ema_decay)
        model.eval()
        if self.decoder_steps > 0:
            self._fit_decoder(data, mask, gen, bar)
        if bar is not None:
            bar.close()

    def _pca_init(self, sample: torch.Tensor) -> None:
        """A latent narrower than the actions starts as their principal components (decoder: back)."""
        model = self._model
        assert model is not None
        latent = model.encoder.linear.out_features
        mean = sample.mean(dim=0)
        _, _, vh = torch.linalg.svd(sample - mean, full_matrices=False)
        basis = vh[:latent]  # (latent, width)
        with torch.no_grad():
            model.encoder.linear.weight.copy_(basis)
            model.encoder.linear.bias.copy_(-basis @ mean)
            model.decoder.linear.weight.copy_(basis.T)
            model.decoder.linear.bias.copy_(mean)

    def _kmeans_init(self, sample: torch.Tensor) -> None:
        """(Re)initialise every level by k-means on its residuals of ``sample`` (the library's)."""
        model = self._model
        assert model is not None
        for layer in model.rvq.layers:
            layer._codebook.initted.data.fill_(False)
        with torch.no_grad():
            model.rvq(model.encoder(sample))

    def _fit_decoder(self, data: torch.Tensor, mask: torch.Tensor, gen: torch.Generator, bar: Any) -> None:
        """Encoder and codebooks frozen: the decoder learns to map the codes' sum to the action (MSE)."""
        model = self._model
        assert model is not None
        with torch.no_grad():
            quantized = torch.cat([
                model.rvq.get_output_from_indices(model.codes(data[i: i + 16384]))
                for i in range(0, len(data), 16384)
            ])
        optimizer = torch.optim.Adam(model.decoder.parameters(), lr=self.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine(self.decoder_steps))
        batch = min(self.batch_size, len(data))
        model.decoder.train()
        for step in range(self.decoder_steps):
            index = torch.randint(0, len(data), (batch,), generator=gen)
            x, m = data[index], mask[index]
            loss = ((model.decoder(quantized[index]) - x) ** 2 * m).sum() / m.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if bar is not None:
                bar.update(1)
        model.eval()

    def _gradient_steps(self, data: torch.Tensor, mask: torch.Tensor, gen: torch.Generator, bar: Any) -> None:
        model = self._model
        assert model is not None
        n = len(data)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=self.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine(self.steps))
        batch = min(self.batch_size, n)
        for step in range(self.steps):
            index = torch.randint(0, n, (batch,), generator=gen)
            x, m = data[index], mask[index]
            recon, commit = model(x)
            loss = ((recon - x) ** 2 * m).sum() / m.sum() + commit
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if bar is not None:
                bar.update(1)
                if step % 50 == 0:
                    bar.set_postfix(loss=f"{loss.item():.2e}")

    # -- array API: (N, D) <-> (N, num_quantizers) codes ---------------------------------------
    def _require_model(self) -> _ActionRVQ:
        if self._model is None:
            raise ActionValueError(f"the {self.name} tokenizer is not fitted: call fit(actions) first")
        return self._model

    def encode_array(self, values: np.ndarray, embodiment: str | None = None) -> np.ndarray:
        """Environment units ``(N, D)`` of one embodiment -> int64 codes ``(N, num_quantizers)``.

        Codes are vocabulary codes: column ``l`` holds ``l * codebook_size + c``.
        """
        model = self._require_model()
        emb = self._resolve(embodiment)
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.embodiments[emb]):
            raise ActionValueError(f"expected (N, {len(self.embodiments[emb])}) values for {emb!r}, got {values.shape}")
        unit = to_unit(values, self.normalizers.get(emb))
        x = torch.zeros((len(unit), self._width), dtype=torch.float32)
        x[:, : unit.shape[1]] = torch.from_numpy(unit).float()
        indices = model.codes(x, self.beam_size).numpy().astype(np.int64)
        return indices + np.arange(self.num_quantizers, dtype=np.int64) * self.codebook_size

    def decode_array(self, codes: np.ndarray, embodiment: str | None = None) -> np.ndarray:
        """Codes ``(N, num_quantizers)`` -> environment units ``(N, D)`` of the embodiment."""
        model = self._require_model()
        emb = self._resolve(embodiment)
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[1] != self.num_quantizers:
            raise ActionValueError(f"expected (N, {self.num_quantizers}) codes, got shape {codes.shape}")
        local = codes - np.arange(self.num_quantizers, dtype=np.int64) * self.codebook_size
        if np.any((local < 0) | (local >= self.codebook_size)):
            raise ActionValueError(f"codes outside their level's range (level l holds l*{self.codebook_size}..)")
        out = model.values(torch.from_numpy(local)).double().numpy()
        unit = np.clip(out[:, : len(self.embodiments[emb])], -1.0, 1.0)
        return from_unit(unit, self.normalizers.get(emb))

    # -- protocol ---------------------------------------------------------------------------
    def encode(self, action: ContinuousAction) -> list[int]:
        if not isinstance(action, ContinuousAction):
            raise ActionValueError(f"{self.name} encodes continuous actions, got {type(action).__name__}")
        emb = self.embodiment_of(action.names)
        return self.encode_array(action.as_array()[None], emb)[0].tolist()

    def decode(self, encoded: Sequence[int], embodiment: str | None = None) -> ContinuousAction:
        """Codes -> action of ``embodiment`` (default: the first fitted one), environment units."""
        if isinstance(encoded, (str, bytes)):
            raise ActionDecodeError(encoded, f"{self.name} decodes codes, not text")
        codes = self.check_codes(encoded)
        for level, code in enumerate(codes):
            if not level * self.codebook_size <= code < (level + 1) * self.codebook_size:
                raise ActionDecodeError(
                    codes, f"code {level} is {code}, outside level {level}'s range "
                    f"{level * self.codebook_size}..{(level + 1) * self.codebook_size - 1}",
                )
        emb = self._resolve(embodiment)
        values = self.decode_array(np.asarray(codes, dtype=np.int64)[None], emb)[0]
        return ContinuousAction(tuple(values), self.embodiments[emb])

    # -- persistence ------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "num_quantizers": self.num_quantizers,
            "codebook_size": self.codebook_size,
            "latent_dim": self.latent_dim,
            "hidden_sizes": list(self.hidden_sizes),
            "embodiments": {emb: list(names) for emb, names in self.embodiments.items()},
            "normalizers": {emb: n.to_json() if n is not None else None for emb, n in self.normalizers.items()},
            "normalization": self.normalization,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "commitment_weight": self.commitment_weight,
            "ema_decay": self.ema_decay,
            "kmeans_iters": self.kmeans_iters,
            "dead_code_threshold": self.dead_code_threshold,
            "refine_passes": self.refine_passes,
            "decoder_steps": self.decoder_steps,
            "beam_size": self.beam_size,
            "seed": self.seed,
            "default_embodiment": self.default_embodiment,
            "placement": self.placement.to_json(),
            "fitted": self.fitted,
        }

    def _save_state(self, directory: Path) -> None:
        if self._model is None:
            return
        state = {k: v.detach().contiguous().clone() for k, v in self._model.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path | None = None) -> ResidualVQTokenizer:
        tokenizer = cls(**config)
        if tokenizer.fitted:
            if directory is None:
                raise FileNotFoundError(f"a fitted {cls.name} tokenizer loads its weights from a directory")
            path = Path(directory) / WEIGHTS_FILE
            if not path.exists():
                raise FileNotFoundError(f"{path} not found: the saved {cls.name} tokenizer has no weights")
            assert tokenizer._model is not None
            tokenizer._model.load_state_dict(load_file(str(path)))
            tokenizer._model.eval()
        return tokenizer


class VQTokenizer(ResidualVQTokenizer):
    """Plain vector quantisation: a residual VQ with a single codebook."""

    name: ClassVar[str] = "vq"

    def __init__(self, num_quantizers: int = 1, codebook_size: int = 512, **kwargs: Any):
        super().__init__(num_quantizers=num_quantizers, codebook_size=codebook_size, **kwargs)
