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


@pytest.mark.parametrize("row_group_episodes", [None, 1, 2])
def test_data_file_read_in_batches_one_episode_at_a_time(tmp_path, row_group_episodes):
    """Episodes come out whole across batch and row-group boundaries, in order or not, without
    reading the file whole (``_DataFile`` keeps a batch of a few rows here)."""
    import pyarrow.parquet as pq

    from omniactor.data.converters.fake_sources import write_lerobot
    from omniactor.data.converters.lerobot import _DataFile

    src = write_lerobot(tmp_path / "ds", episodes=5, steps=7, video=False, row_group_episodes=row_group_episodes,
                        keep_frames=False)
    path = src.path / "data" / "chunk-000" / "file-000.parquet"
    whole = pq.read_table(path)
    data = _DataFile(path, ["action", "frame_index", "observation.images.front"], batch_bytes=1)
    assert data.batch_rows == 4  # smaller than an episode: every episode spans batches
    assert data.file.metadata.num_row_groups == {None: 1, 1: 5, 2: 3}[row_group_episodes]
    for episode in [0, 1, 2, 4, 3, 3, 0]:  # forward, a skipped one, then backwards (restarts)
        rows = data.episode(episode)
        expected = whole.filter(whole["episode_index"].to_numpy() == episode)
        assert rows.column_names == ["episode_index", "action", "frame_index", "observation.images.front"]
        assert rows["frame_index"].to_pylist() == list(range(7))
        assert rows["action"].to_pylist() == expected["action"].to_pylist()
        assert rows["observation.images.front"].to_pylist() == expected["observation.images.front"].to_pylist()
    assert data.episode(9).num_rows == 0
    if row_group_episodes == 1:  # row-group statistics: episode 3 starts reading at row group 3
        assert data._first_row_group(3) == 3 and data._first_row_group(99) == 5


def test_row_groups_do_not_change_the_conversion(tmp_path, read_records):
    from omniactor.data.converters.fake_sources import write_lerobot

    outputs = []
    for layout in (None, 1):
        src = write_lerobot(tmp_path / f"ds{layout}", episodes=4, steps=5, video=False, row_group_episodes=layout)
        summary = convert("lerobot", src.path, tmp_path / f"out{layout}")
        assert summary.steps_written == 20 and summary.episodes_skipped == 0
        outputs.append([(r["meta"]["episode"], r["meta"]["step"], r["action"]) for r in read_records(summary.out)])
    assert outputs[0] == outputs[1]


def test_rows_out_of_episode_order_are_counted_not_lost_silently(tmp_path, monkeypatch):
    """v3 writes an episode's rows together; a file that does not is read in one pass all the same,
    and an episode whose rows the pass misses is skipped as length_mismatch (not cut short)."""
    import functools

    import pyarrow as pa
    import pyarrow.parquet as pq

    from omniactor.data.converters import lerobot
    from omniactor.data.converters.fake_sources import write_lerobot

    src = write_lerobot(tmp_path / "ds", episodes=3, steps=4, video=False)
    path = src.path / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    order = [0, 1, 4, 5, 6, 7, 2, 3, 8, 9, 10, 11]  # episode 0's last two rows after episode 1
    pq.write_table(table.take(pa.array(order)), path)
    whole_batch = convert("lerobot", src.path, tmp_path / "out")  # one batch holds the file: all found
    assert whole_batch.episodes_skipped == 0 and whole_batch.steps_written == 12
    monkeypatch.setattr(lerobot._DataFile, "__init__",
                        functools.partialmethod(lerobot._DataFile.__init__, batch_bytes=1))  # 4-row batches
    summary = convert("lerobot", src.path, tmp_path / "small_batches")
    assert summary.skipped == {"length_mismatch": 1} and summary.episodes_converted == 2
    assert "metadata says 4 frames, data has 2" in summary.examples["length_mismatch"][0]
