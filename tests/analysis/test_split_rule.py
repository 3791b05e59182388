"""The rule that reads K off the curve, on curves whose answer is known."""

import math

import pytest
import yaml

from omniactor.analysis.split_rule import (
    changepoint_split,
    propose_split,
    reference_layer_count,
    split_config_text,
    threshold_split,
)


def test_a_clear_drop_gives_the_same_k_by_both_rules():
    curve = [0.95, 0.9, 0.92, 0.88, 0.2, 0.1, 0.05, 0.0]
    proposal = propose_split(curve)
    assert proposal.shared_layers == 4
    assert proposal.reference == pytest.approx(0.925) and proposal.threshold == pytest.approx(0.4625)
    assert proposal.alternatives == {"changepoint": 4}
    assert "layer 4 is the first below 0.463" in proposal.reason
    evidence = proposal.evidence()
    assert "proposed K = 4 of 8 (threshold rule)" in evidence and "<- K" in evidence


def test_the_threshold_is_a_fraction_of_the_shallow_level():
    curve = [0.8, 0.8, 0.7, 0.5, 0.3, 0.1]
    assert threshold_split(curve, fraction=0.5).shared_layers == 4  # 0.3 < 0.4
    assert threshold_split(curve, fraction=0.8).shared_layers == 3  # 0.5 < 0.64
    assert threshold_split(curve, fraction=0.1).shared_layers == 6  # never below 0.08: no split
    assert threshold_split(curve, fraction=0.5, reference_layers=4).reference == pytest.approx(0.75)


def test_no_shallow_agreement_shares_nothing():
    proposal = threshold_split([-0.1, 0.0, 0.4, 0.5])
    assert proposal.shared_layers == 0 and "nothing supports sharing" in proposal.reason
    flat_and_low = [0.05, 0.04, 0.01, 0.0]  # a drop, but at noise level
    assert threshold_split(flat_and_low).shared_layers == 0
    assert threshold_split(flat_and_low, min_level=0.01).shared_layers == 2


def test_changepoint_fits_the_best_step_and_refuses_rising_curves():
    assert changepoint_split([1.0, 0.9, 0.8, 0.1, 0.0]).shared_layers == 3
    assert changepoint_split([1.0, 0.9, 0.8, 0.1, 0.0]).levels == pytest.approx((0.9, 0.05))
    rising = changepoint_split([0.0, 0.1, 0.9, 1.0])
    assert rising.shared_layers == 4 and "goes up" in rising.reason


def test_a_gradual_slope_shows_the_rules_disagreeing():
    curve = [1 - i / 10 for i in range(10)]
    proposal = propose_split(curve, rule="changepoint")
    assert proposal.alternatives["threshold"] != proposal.shared_layers


def test_reference_layers_scale_with_depth():
    assert [reference_layer_count(n) for n in (1, 2, 8, 28, 36)] == [1, 2, 2, 4, 5]


def test_bad_curves_and_settings_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"layer\(s\) \[2\]"):
        propose_split([1.0, 0.5, math.nan])
    with pytest.raises(ValueError, match="empty"):
        propose_split([])
    with pytest.raises(ValueError, match="fraction"):
        threshold_split([1.0, 0.5], fraction=1.5)
    with pytest.raises(ValueError, match="unknown split rule 'elbow'"):
        propose_split([1.0, 0.5], rule="elbow")


def test_the_config_snippet_is_yaml_with_k():
    text = split_config_text(propose_split([0.9, 0.9, 0.1, 0.1]), "runs/x")
    assert yaml.safe_load(text) == {"variant": "omniactor", "shared_layers": 2}
