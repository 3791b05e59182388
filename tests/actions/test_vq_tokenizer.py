"""Learned VQ / residual-VQ action tokenizers: precision, codes, embodiments, save/load, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("vector_quantize_pytorch")
pytest.importorskip("safetensors")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omniactor.actions.continuous import EEF_DELTA_GRIPPER, XYZ_GRIPPER, ContinuousAction
from omniactor.actions.errors import ActionDecodeError, ActionValueError
from omniactor.actions.tokenizers import get_tokenizer_class, load_action_tokenizer
from omniactor.actions.tokenizers.vq import ResidualVQTokenizer, VQTokenizer, warn_if_untested_library

#: small and fast: 3 levels of 64 codes, short runs of every fit phase (joint training included)
SMALL = dict(num_quantizers=3, codebook_size=64, hidden_sizes=(32,), steps=40, batch_size=256,
             kmeans_iters=5, refine_passes=2, decoder_steps=100, seed=0)
#: held-out mean |error| in normalised units that the small tokenizer must stay below: it
#: measures 0.008 here, 16 uniform bins per dimension give 0.036, and decoding 5% off scale 0.019
HELD_OUT_BOUND = 0.012


def smooth_actions(n: int, seed: int, dim: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Smooth correlated trajectories: 2 latent sinusoid signals mixed into ``dim - 1`` dims + a +-1 gripper."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(123).normal(size=(dim - 1, 2))
    rows, episodes, e = [], [], 0
    while sum(len(r) for r in rows) < n:
        t = np.linspace(0, 1, 100)[:, None]
        z = np.sin(2 * np.pi * rng.uniform(0.3, 2, 2) * t + rng.uniform(0, 6.3, 2)) * rng.uniform(0.3, 1, 2)
        arm = np.tanh(z @ mix.T) * 0.8 + 0.002 * rng.normal(size=(100, dim - 1))
        gripper = np.where(np.arange(100) < rng.integers(20, 80), -1.0, 1.0)[:, None]
        rows.append(np.concatenate([arm, gripper], axis=1))
        episodes.append(np.full(100, e))
        e += 1
    return np.concatenate(rows)[:n], np.concatenate(episodes)[:n]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    values, episodes = smooth_actions(4000, seed=1)
    held = episodes % 5 == 0  # held-out episodes
    return values[~held], values[held]


@pytest.fixture(scope="module")
def tok(data) -> ResidualVQTokenizer:
    train, _ = data
    return ResidualVQTokenizer(**SMALL).fit([ContinuousAction(tuple(v), EEF_DELTA_GRIPPER) for v in train])


def unit_error(tok: ResidualVQTokenizer, values: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    norm = tok.normalizers[tok.embodiment_of(EEF_DELTA_GRIPPER)]
    half = (np.asarray(norm.high) - np.asarray(norm.low)) / 2
    return np.abs(values - decoded) / half


def test_registry_and_sizes(tok):
    assert get_tokenizer_class("rvq") is ResidualVQTokenizer
    assert get_tokenizer_class("vq") is VQTokenizer
    assert tok.num_codes == 3 * 64 and tok.codes_per_action == 3
    vq = VQTokenizer(codebook_size=32)
    assert vq.num_codes == 32 and vq.codes_per_action == 1 and vq.name == "vq"
    json.dumps(tok.config())  # JSON-serialisable


def test_held_out_error_below_bound(tok, data):
    _, held = data
    codes = tok.encode_array(held)
    assert codes.shape == (len(held), 3) and codes.dtype == np.int64
    err = unit_error(tok, held, tok.decode_array(codes))
    assert err.mean() < HELD_OUT_BOUND, err.mean()
    # the gripper (+-1) comes back (almost) exactly
    assert err[:, -1].max() < 0.05


def test_a_library_version_that_fits_differently_is_named_in_a_warning():
    with pytest.warns(UserWarning, match=r"vector-quantize-pytorch 1\.34\.1 fits codebooks differently"):
        warn_if_untested_library("1.34.1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_untested_library("1.32.0")
        warn_if_untested_library("1.32.0.post1")


def test_more_levels_lower_error(data):
    train, held = data
    errors = []
    for q in (1, 3):
        t = ResidualVQTokenizer(**{**SMALL, "num_quantizers": q, "hidden_sizes": ()}).fit(train)
        errors.append(np.abs(t.decode_array(t.encode_array(held)) - held).mean())
    assert errors[1] < errors[0] / 2, errors


def test_narrow_latent_and_progress(data, capsys):
    train, held = data
    tok = ResidualVQTokenizer(**{**SMALL, "latent_dim": 3, "hidden_sizes": (), "steps": 0}).fit(train, progress=True)
    assert "fit rvq" in capsys.readouterr().err  # the tqdm bar
    err = np.abs(tok.decode_array(tok.encode_array(held)) - held).mean()
    assert err < 2 * HELD_OUT_BOUND, err  # 2 latent signals + gripper fit a 3-D latent (PCA start)


def test_fit_is_deterministic(data):
    train, held = data
    small = {**SMALL, "steps": 10}
    a = ResidualVQTokenizer(**small).fit(train[:1500])
    b = ResidualVQTokenizer(**small).fit(train[:1500])
    np.testing.assert_array_equal(a.encode_array(held), b.encode_array(held))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=6, max_size=6), st.sampled_from([-1.0, 1.0]))
def test_round_trip_property(tok, data, arm, gripper):
    norm = tok.normalizers[tok.embodiment_of(EEF_DELTA_GRIPPER)]
    low, high = np.asarray(norm.low), np.asarray(norm.high)
    values = low + (np.asarray([*arm, gripper]) + 1) / 2 * (high - low)  # anywhere in the fitted box
    action = ContinuousAction(tuple(values), EEF_DELTA_GRIPPER)
    codes = tok.encode(action)
    assert len(codes) == 3
    for level, code in enumerate(codes):
        assert level * 64 <= code < (level + 1) * 64
    decoded = tok.decode(codes)
    assert isinstance(decoded, ContinuousAction) and decoded.names == EEF_DELTA_GRIPPER
    assert np.all(np.asarray(decoded.values) >= low - 1e-9) and np.all(np.asarray(decoded.values) <= high + 1e-9)
    # encoding the decoded action again is stable or close
    again = tok.decode(tok.encode(decoded))
    drift = unit_error(tok, np.asarray(decoded.values)[None], np.asarray(again.values)[None])
    assert drift.max() < 0.25, (codes, tok.encode(decoded))


def test_multi_embodiment_padding_and_truncation():
    arm7, _ = smooth_actions(1500, seed=2, dim=7)
    arm4, _ = smooth_actions(1500, seed=3, dim=4)
    actions = [ContinuousAction(tuple(v), EEF_DELTA_GRIPPER) for v in arm7]
    actions += [ContinuousAction(tuple(v), XYZ_GRIPPER) for v in arm4]
    tok = ResidualVQTokenizer(**SMALL).fit(actions)
    assert sorted(len(n) for n in tok.embodiments.values()) == [4, 7] and tok.width == 7
    small = tok.embodiment_of(XYZ_GRIPPER)
    codes = tok.encode_array(arm4[:200], small)
    out = tok.decode_array(codes, small)
    assert out.shape == (200, 4)
    assert np.abs(out - arm4[:200]).mean() < 0.05
    action = tok.decode(tok.encode(actions[-1]), embodiment=small)
    assert action.names == XYZ_GRIPPER and len(action.values) == 4
    # default decode: the first fitted embodiment (the 7-D one here)
    assert tok.decode(codes[0].tolist()).names == EEF_DELTA_GRIPPER
    with pytest.raises(ActionValueError):
        tok.decode(codes[0].tolist(), embodiment="nope")
    with pytest.raises(ActionValueError):
        tok.encode(ContinuousAction((0.1, 0.2), ("u", "v")))  # not a fitted embodiment

    # {embodiment: array}: named embodiments, widths padded the same way
    named = ResidualVQTokenizer(**{**SMALL, "steps": 5}).fit({"libero": arm7, "metaworld": arm4})
    assert list(named.embodiments) == ["libero", "metaworld"] and named.width == 7
    assert named.decode_array(named.encode_array(arm4[:5], "metaworld"), "metaworld").shape == (5, 4)


def test_save_load_identical(tok, data, tmp_path):
    _, held = data
    tok.save(tmp_path / "rvq")
    assert (tmp_path / "rvq" / "tokenizer.json").exists() and (tmp_path / "rvq" / "vq.safetensors").exists()
    loaded = load_action_tokenizer(tmp_path / "rvq")
    assert type(loaded) is ResidualVQTokenizer and loaded.config() == tok.config()
    codes = tok.encode_array(held)
    np.testing.assert_array_equal(loaded.encode_array(held), codes)
    np.testing.assert_array_equal(loaded.decode_array(codes), tok.decode_array(codes))
    action = ContinuousAction(tuple(held[0]), EEF_DELTA_GRIPPER)
    assert loaded.encode(action) == tok.encode(action)
    assert loaded.decode(tok.encode(action)) == tok.decode(tok.encode(action))


def test_bad_codes_raise_decode_error(tok):
    good = tok.encode(ContinuousAction((0.0,) * 6 + (1.0,), EEF_DELTA_GRIPPER))
    bad_sequences = [
        good[:2],                      # too few
        good + [good[-1]],             # too many
        [tok.num_codes, *good[1:]],    # out of range
        [-1, *good[1:]],               # negative
        [good[1], good[1], good[2]],   # level 1's code in level 0's place
        [good[0], good[1], good[1]],   # level 1's code in level 2's place
        "<act_0><act_64><act_128>",    # text, not codes
        ["a", "b", "c"],               # not integers
    ]
    for codes in bad_sequences:
        with pytest.raises(ActionDecodeError):
            tok.decode(codes)
        assert isinstance(tok.try_decode(codes), ActionDecodeError)
    assert isinstance(tok.try_decode(good), ContinuousAction)


def test_tokens_new_placement(tok):
    tokens = tok.tokens()
    assert len(tokens) == tok.num_codes == 192 and len(set(tokens)) == 192
    assert tokens[0] == "<act_0>" and tokens[-1] == "<act_191>"
    assert tok.placement.mode == "new"
    text = tok.encode_text(ContinuousAction((0.0,) * 6 + (1.0,), EEF_DELTA_GRIPPER))
    assert text.count("<act_") == 3


def test_unfitted_and_bad_inputs():
    tok = ResidualVQTokenizer(codebook_size=16)
    with pytest.raises(ActionValueError):
        tok.encode_array(np.zeros((1, 7)))
    with pytest.raises(ActionValueError):
        ResidualVQTokenizer(num_quantizers=0)
    with pytest.raises(ActionValueError):
        ResidualVQTokenizer(embodiments={"a": ["x", "y"], "b": ["x", "y"]})


def test_import_actions_stays_free_of_torch():
    code = ("import sys, omniactor.actions, omniactor.actions.tokenizers; "
            "assert 'torch' not in sys.modules and 'vector_quantize_pytorch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
