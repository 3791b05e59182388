import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from omniactor.actions import EEF_DELTA_GRIPPER, ActionNormalizer, ActionValueError, ContinuousAction, ContinuousSpace


def test_space_checks_names_and_bounds():
    space = ContinuousSpace.symmetric(EEF_DELTA_GRIPPER)
    assert space.dim == 7
    assert space.violations(ContinuousAction((0,) * 7, EEF_DELTA_GRIPPER)) == []
    out = space.violations(ContinuousAction((0, 0, 0, 0, 0, 0, 1.5), EEF_DELTA_GRIPPER))
    assert out == ["gripper=1.5 is outside [-1.0, 1.0]"]
    assert "do not match" in space.violations(ContinuousAction((0.0,), ("x",)))[0]
    with pytest.raises(ActionValueError):
        ContinuousSpace(("x",), (1.0,), (0.0,))
    with pytest.raises(ActionValueError):
        ContinuousSpace(("x", "x"), (0, 0), (1, 1))
    assert ContinuousSpace.from_json(space.to_json()) == space


@pytest.mark.parametrize("names", [("X",), ("if",), ("a-b",), ("",)])
def test_dimension_names_must_be_identifiers(names):
    with pytest.raises(ActionValueError):
        ContinuousAction((0.0,), names)


def test_non_finite_values_are_refused():
    with pytest.raises(ActionValueError, match="non-finite"):
        ContinuousAction((float("nan"),), ("x",))


@given(arrays(np.float64, st.tuples(st.integers(2, 50), st.integers(1, 8)), elements=st.floats(-100, 100)))
def test_minmax_normalizer_maps_data_into_unit_range_and_back(data):
    norm = ActionNormalizer.fit(data, "minmax")
    unit = norm.normalize(data)
    assert unit.min() >= -1 and unit.max() <= 1
    back = norm.unnormalize(unit)
    span = data.max(axis=0) - data.min(axis=0)
    live = span > 1e-12
    np.testing.assert_allclose(back[:, live], data[:, live], atol=1e-9 * (1 + np.abs(data).max()))
    np.testing.assert_allclose(back[:, ~live], data[:, ~live], atol=1e-12)  # constant dims come back as their constant


def test_quantile_mode_is_robust_to_outliers_and_clips():
    rng = np.random.default_rng(0)
    data = rng.uniform(-1, 1, size=(10_000, 2))
    data[0] = [1000, -1000]
    norm = ActionNormalizer.fit(data, "quantile")
    assert norm.high[0] < 1.0 and norm.low[1] > -1.0
    assert norm.normalize(data[:1]).tolist() == [[1.0, -1.0]]
    assert ActionNormalizer.from_json(norm.to_json()) == norm
    with pytest.raises(ActionValueError):
        ActionNormalizer.fit(data, "zscore")
