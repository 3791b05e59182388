"""Manifest: streaming action statistics, normalisers, merging, JSON round-trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omniactor.actions import ActionNormalizer, ContinuousSpace, DiscreteSpace
from omniactor.data import Manifest, ManifestError, SourceInfo, load_manifest
from omniactor.data.manifest import ActionStatsAccumulator, save_manifest

NAMES = ("x", "y", "gripper")


def accumulate(array: np.ndarray, capacity: int = 1000):
    acc = ActionStatsAccumulator(NAMES, capacity=capacity)
    for row in array:
        acc.add(row)
    return acc.result()


def test_statistics_are_exact_below_capacity():
    rng = np.random.default_rng(1)
    array = rng.normal(size=(300, 3)) * [1.0, 0.1, 2.0] + [0.0, 5.0, -1.0]
    stats = accumulate(array)
    np.testing.assert_allclose(stats.mean, array.mean(0))
    np.testing.assert_allclose(stats.std, array.std(0))
    assert stats.min == array.min(0).tolist() and stats.max == array.max(0).tolist()
    assert stats.quantiles_exact
    fitted = ActionNormalizer.fit(array, mode="quantile")
    np.testing.assert_allclose(stats.normalizer("quantile").low, fitted.low)
    np.testing.assert_allclose(stats.normalizer("quantile").high, fitted.high)
    assert stats.normalizer("minmax") == ActionNormalizer(tuple(array.min(0)), tuple(array.max(0)), "minmax", NAMES)


def test_reservoir_keeps_memory_bounded_and_quantiles_close():
    array = np.random.default_rng(2).uniform(-1, 1, size=(20_000, 3))
    stats = accumulate(array, capacity=2_000)
    assert not stats.quantiles_exact
    np.testing.assert_allclose(stats.q01, np.quantile(array, 0.01, axis=0), atol=0.02)
    np.testing.assert_allclose(stats.q99, np.quantile(array, 0.99, axis=0), atol=0.02)
    np.testing.assert_allclose(stats.mean, array.mean(0))  # moments stay exact


def test_merge_is_exact_for_moments_and_range():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 3)), rng.normal(2.0, 3.0, size=(150, 3))
    merged = accumulate(a).merge(accumulate(b))
    both = np.concatenate([a, b])
    assert merged.count == 200
    np.testing.assert_allclose(merged.mean, both.mean(0))
    np.testing.assert_allclose(merged.std, both.std(0))
    assert merged.min == both.min(0).tolist() and merged.max == both.max(0).tolist()
    assert not merged.quantiles_exact  # count-weighted average of the parts' quantiles


def test_json_round_trip(tmp_path):
    space = ContinuousSpace.symmetric(NAMES)
    stats = accumulate(np.arange(30.0).reshape(10, 3))
    manifest = Manifest(
        domains={"navigation": "discrete"},
        sources={
            "arm": SourceInfo("embodied", 10, {"continuous": 10}, space, stats),
            "grid": SourceInfo("discrete", 4, {"discrete": 4}, DiscreteSpace(("left", "right"))),
        },
        shards={"shards/shard-00000.jsonl": 14},
    )
    save_manifest(tmp_path, manifest)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["format"] == "omniactor-sharegpt" and data["version"] == 1 and data["records"] == 14
    assert data["counts"]["domain"] == {"discrete": 4, "embodied": 10}
    assert data["sources"]["arm"]["normalization"]["minmax"]["low"] == [0.0, 1.0, 2.0]
    again = load_manifest(tmp_path)
    assert again.domains == {"navigation": "discrete"}
    assert again.action_space("arm") == space and again.action_space("grid") == DiscreteSpace(("left", "right"))
    np.testing.assert_allclose(again.sources["arm"].action_stats.std, stats.std)
    assert again.normalizer("arm", "minmax") == stats.normalizer("minmax")
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away


def test_merge_refuses_conflicts():
    one = Manifest(sources={"s": SourceInfo("gui", 1)})
    with pytest.raises(ManifestError, match="one domain"):
        one.merge(Manifest(sources={"s": SourceInfo("embodied", 1)}))
    a = Manifest(sources={"s": SourceInfo("discrete", 1, action_space=DiscreteSpace(("a",)))})
    with pytest.raises(ManifestError, match="two action spaces"):
        a.merge(Manifest(sources={"s": SourceInfo("discrete", 1, action_space=DiscreteSpace(("b",)))}))
    with pytest.raises(ManifestError, match="listed by two writers"):
        Manifest(shards={"x": 1}).merge(Manifest(shards={"x": 2}))


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "not an omniactor dataset manifest"),
        ('{"format": "omniactor-sharegpt", "version": 99}', "newer"),
        ('{"format": "omniactor-sharegpt", "version": 1, "sources": {"s": {}}}', "malformed"),
        ('{"format": "omniactor-sharegpt", "version": 1, "domains": {"gui": "discrete"}}', "built in"),
    ],
)
def test_bad_manifests_say_why(tmp_path, content, words):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises((ManifestError, ValueError), match=words):
        load_manifest(tmp_path)
