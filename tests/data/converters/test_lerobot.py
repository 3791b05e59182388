"""LeRobot v3: episodes found through metadata, frames from MP4 (PyAV) or parquet images, names, space."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from omniactor.data import DatasetReader, load_manifest, validate_dataset
from omniactor.data.converters import SourceError, convert
from omniactor.data.converters.lerobot import LeRobotOptions

pytest.importorskip("pyarrow")

NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


def test_video_dataset(lerobot_video_src, tmp_path):
    out = tmp_path / "out"
    summary = convert("lerobot", lerobot_video_src.path, out, LeRobotOptions(source_name="so100"))
    assert summary.episodes_converted == 3 and summary.steps_written == lerobot_video_src.steps
    assert validate_dataset(out).ok
    reader = DatasetReader(out)
    samples = list(reader)
    actions = lerobot_video_src.extra["actions"]
    for i, sample in enumerate(samples):
        assert sample.action.names == NAMES
        # shortest decimals of the float32 values: the same float32 once read back, and short text
        assert np.array_equal(np.float32(sample.action.values), actions[i])
        assert "0000000" not in sample.answer
        frame = np.asarray(reader.load_images(sample)[0], dtype=float)
        expected = lerobot_video_src.extra["frames"][sample.episode][sample.step].astype(float)
        assert abs(frame.mean() - expected.mean()) < 3  # the right frame, through lossy H.264
    assert [s.meta["instruction"] for s in samples[:: 6]] == ["pick the cube", "open the drawer", "pick the cube"]
    assert len(samples[0].meta["state"]) == 6
    space = load_manifest(out).action_space("so100")
    assert space.names == NAMES and space.low == tuple(float(str(v)) for v in actions.min(0))
    assert "shoulder_pan in [" in samples[0].system


def test_image_features_pass_through(lerobot_image_src, tmp_path):
    out = tmp_path / "out"
    options = LeRobotOptions(action_names=("a", "b", "c", "d", "e", "f"), state_key=None)
    summary = convert("lerobot", lerobot_image_src.path, out, options)
    assert summary.steps_written == lerobot_image_src.steps and validate_dataset(out).ok
    reader = DatasetReader(out)
    sample = next(iter(reader))
    assert sample.action.names == ("a", "b", "c", "d", "e", "f") and "state" not in sample.meta
    image = np.asarray(reader.load_images(sample)[0])
    np.testing.assert_array_equal(image, lerobot_image_src.extra["frames"]["0"][0])  # PNG bytes kept as stored


def test_space_from_data_without_stats_and_errors(lerobot_image_src, tmp_path):
    src = tmp_path / "copy"
    shutil.copytree(lerobot_image_src.path, src)
    (src / "meta" / "stats.json").unlink()
    convert("lerobot", src, tmp_path / "out")
    actions = lerobot_image_src.extra["actions"]
    assert load_manifest(tmp_path / "out").action_space("lerobot").high == tuple(float(str(v)) for v in actions.max(0))

    info = json.loads((src / "meta" / "info.json").read_text())
    with pytest.raises(SourceError, match="no feature 'observation.velocity'"):
        convert("lerobot", src, tmp_path / "x", LeRobotOptions(state_key="observation.velocity"))
    info["codebase_version"] = "v2.1"
    (src / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(SourceError, match="v3.0"):
        convert("lerobot", src, tmp_path / "y")


def test_missing_video_file_skips_episodes(lerobot_video_src, tmp_path):
    src = tmp_path / "copy"
    shutil.copytree(lerobot_video_src.path, src)
    next((src / "videos").rglob("*.mp4")).unlink()
    summary = convert("lerobot", src, tmp_path / "out")
    assert summary.skipped == {"missing_file": 3} and summary.episodes_converted == 0
