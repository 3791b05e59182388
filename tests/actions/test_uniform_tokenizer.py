import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniactor.actions import ActionDecodeError, ActionValueError, ContinuousAction, ContinuousSpace
from omniactor.actions.tokenizers import VocabularyPlacement, load_action_tokenizer
from omniactor.actions.tokenizers.uniform import UniformBinTokenizer

from .strategies import continuous_actions


def unit_tokenizer(num_bins: int, dims: int = 3) -> UniformBinTokenizer:
    """A tokenizer for actions already in [-1, 1] (no normalisation)."""
    return UniformBinTokenizer(num_bins, names=[f"a{i}" for i in range(dims)], normalization=None)


@given(st.sampled_from([2, 3, 64, 256, 1024]), continuous_actions(dims=3, low=-1.0, high=1.0))
def test_decoded_value_lies_within_half_a_bin(num_bins, action):
    tok = unit_tokenizer(num_bins)
    codes = tok.encode(action)
    assert all(0 <= c < num_bins for c in codes)
    decoded = tok.decode(codes)
    half_bin = 1.0 / num_bins
    assert np.all(np.abs(decoded.as_array() - action.as_array()) <= half_bin + 1e-12)
    assert tok.encode(decoded) == codes  # a bin centre encodes to its own bin


def test_edge_bins_worked_example_from_the_docstring():
    tok = unit_tokenizer(4, dims=1)
    values = np.array([[-1.0], [-0.75], [-0.5], [-1e-9], [0.0], [0.5], [0.999], [1.0], [1.7], [-3.0]])
    assert tok.bin_array(values)[:, 0].tolist() == [0, 0, 1, 1, 2, 3, 3, 3, 3, 0]
    assert tok.unbin_array(np.arange(4)[:, None])[:, 0].tolist() == [-0.75, -0.25, 0.25, 0.75]


@given(continuous_actions(dims=4, low=-50.0, high=50.0))
def test_fitted_normalizer_keeps_error_within_half_a_bin_in_environment_units(action):
    rng = np.random.default_rng(0)
    data = rng.uniform(-50, 50, size=(1000, 4))
    data[0], data[1] = -50, 50  # the range covers every generated action
    tok = UniformBinTokenizer(256).fit(data)
    err = np.abs(tok.decode(tok.encode(action)).as_array() - action.as_array())
    half_bin_env = (np.asarray(tok.normalizer.high) - np.asarray(tok.normalizer.low)) / 256 / 2
    assert np.all(err <= half_bin_env + 1e-9)


def test_fit_on_named_actions_keeps_names_and_space():
    space = ContinuousSpace(("x", "y", "gripper"), (-2, -2, 0), (2, 2, 1))
    actions = [ContinuousAction((-2, 0, 0), space.names), ContinuousAction((2, 1, 1), space.names)]
    tok = UniformBinTokenizer(16).fit(actions)
    assert tok.codes_per_action == 3
    out = tok.decode(tok.encode(ContinuousAction((0.1, 0.5, 1), space.names)))
    assert out.names == space.names and space.violations(out) == []
    with pytest.raises(ActionValueError, match="do not match"):
        tok.encode(ContinuousAction((0, 0, 0), ("a", "b", "c")))


@pytest.mark.parametrize("bad", [[1, 2], [1, 2, 3, 4], [0, 0, 256], [0, -1, 0], ["a", 0, 0], "<act_1>"])
def test_bad_code_sequences_raise_a_typed_error(bad):
    tok = unit_tokenizer(256)
    with pytest.raises(ActionDecodeError):
        tok.decode(bad)
    assert isinstance(tok.try_decode(bad), ActionDecodeError)


def test_three_placements_in_the_llm_vocabulary():
    action = ContinuousAction((-1.0, 0.0, 1.0), ("a0", "a1", "a2"))
    new = unit_tokenizer(8)
    assert new.tokens() == [f"<act_{i}>" for i in range(8)]
    assert new.encode_text(action) == "<act_0><act_4><act_7>"

    reuse = UniformBinTokenizer(8, names=["a0", "a1", "a2"], normalization=None,
                                placement=VocabularyPlacement("reuse", ids=list(range(100, 108))))
    assert reuse.tokens() == []
    assert reuse.encode_ids(action) == [100, 104, 107]
    assert reuse.decode_ids([100, 104, 107]) == new.decode([0, 4, 7])
    with pytest.raises(ActionDecodeError):
        reuse.decode_ids([100, 104, 99])

    last = UniformBinTokenizer(8, names=["a0", "a1", "a2"], normalization=None,
                               placement=VocabularyPlacement("last", vocab_size=1000))
    assert last.encode_ids(action) == [999, 995, 992]  # OpenVLA: id = vocab_size - 1 - bin
    assert last.decode_ids([999, 995, 992]) == new.decode([0, 4, 7])
    with pytest.raises(ActionDecodeError):
        last.decode_ids([999, 995, 500])  # below the last 8 ids

    with pytest.raises(ActionValueError):
        UniformBinTokenizer(8, placement=VocabularyPlacement("reuse", ids=[1, 2]))


def test_save_load_gives_identical_codes(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(500, 7))
    tok = UniformBinTokenizer(128, normalization="quantile").fit(data)
    tok.save(tmp_path / "tok")
    loaded = load_action_tokenizer(tmp_path / "tok")
    assert isinstance(loaded, UniformBinTokenizer)
    np.testing.assert_array_equal(loaded.bin_array(data), tok.bin_array(data))
    np.testing.assert_array_equal(loaded.unbin_array(tok.bin_array(data)), tok.unbin_array(tok.bin_array(data)))
