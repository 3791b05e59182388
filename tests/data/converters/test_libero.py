"""LIBERO HDF5: 7-D actions in the declared space, statistics in the manifest, state, cameras, rotation."""

from __future__ import annotations

import numpy as np
import pytest

from omniactor.actions import EEF_DELTA_GRIPPER, ContinuousSpace
from omniactor.data import DatasetReader, load_manifest, validate_dataset
from omniactor.data.converters import convert
from omniactor.data.converters.libero import LiberoOptions, instruction_from_filename

h5py = pytest.importorskip("h5py")


def _demo_arrays(src_root, episode):
    rel, demo = episode.rsplit("/", 1)
    path = src_root / f"{rel}.hdf5"
    with h5py.File(path, "r") as f:
        group = f["data"][demo]
        return {k: group[k][()] for k in ("actions",)} | {k: group["obs"][k][()] for k in group["obs"]}


def test_converts_with_space_stats_and_state(libero_src, tmp_path, read_records):
    out = tmp_path / "out"
    summary = convert("libero", libero_src.path, out)
    assert summary.episodes_converted == 5 and summary.steps_written == libero_src.steps
    assert validate_dataset(out).ok
    rows = read_records(out)
    assert {r["meta"]["episode"] for r in rows} == set(libero_src.episodes)
    info = load_manifest(out).sources["libero"]
    assert info.domain == "embodied" and info.action_space == ContinuousSpace.symmetric(EEF_DELTA_GRIPPER)
    everything = []
    for episode in sorted(libero_src.episodes):
        arrays = _demo_arrays(libero_src.path, episode)
        steps = [r for r in rows if r["meta"]["episode"] == episode]
        assert [r["action"]["values"] for r in steps] == arrays["actions"].tolist()  # exact float64
        state = np.concatenate([arrays["ee_states"], arrays["gripper_states"]], axis=1)
        np.testing.assert_allclose([r["meta"]["state"] for r in steps], state, atol=1e-6)
        everything.append(arrays["actions"])
    actions = np.concatenate(everything)
    stats = info.action_stats
    assert stats.names == EEF_DELTA_GRIPPER and stats.count == len(actions)
    np.testing.assert_allclose(stats.mean, actions.mean(0), atol=1e-12)
    np.testing.assert_allclose(stats.std, actions.std(0), atol=1e-9)
    np.testing.assert_allclose(stats.q01, np.quantile(actions, 0.01, axis=0), atol=1e-12)
    normalizer = load_manifest(out).normalizer("libero", "quantile")
    assert normalizer.names == EEF_DELTA_GRIPPER
    first = rows[0]
    assert first["conversations"][0]["value"].startswith("<image>\nTask: put the bowl on the plate")
    assert "gripper in [-1, 1]" in first["system"]


def test_images_are_rotated_and_cameras_chosen(libero_src, tmp_path):
    out = tmp_path / "out"
    convert("libero", libero_src.path, out, LiberoOptions(cameras=("agentview_rgb", "eye_in_hand_rgb")))
    reader = DatasetReader(out)
    sample = next(iter(reader))
    assert sample.prompt.startswith("<image><image>\nTask:") and len(sample.images) == 2
    front, wrist = (np.asarray(im) for im in reader.load_images(sample))
    arrays = _demo_arrays(libero_src.path, sample.episode)
    np.testing.assert_array_equal(front, arrays["agentview_rgb"][sample.step][::-1, ::-1])
    np.testing.assert_array_equal(wrist, arrays["eye_in_hand_rgb"][sample.step][::-1, ::-1])
    assert front[-1, 0, 1] == 200 and front[0, 0, 1] == 0  # the bright top half is now at the bottom

    plain = tmp_path / "plain"
    convert("libero", libero_src.path, plain, LiberoOptions(rotate_180=False, state_keys=()))
    reader = DatasetReader(plain)
    sample = next(iter(reader))
    np.testing.assert_array_equal(np.asarray(reader.load_images(sample)[0]), arrays["agentview_rgb"][sample.step])
    assert "state" not in sample.meta


def test_noops_dropped_and_actions_clipped(tmp_path):
    from omniactor.data.converters.fake_sources import write_libero

    path = tmp_path / "src" / "pick_up_the_cup_demo.hdf5"
    write_libero(path, demos=1, steps=6)
    with h5py.File(path, "a") as f:
        actions = f["data/demo_0/actions"]
        values = actions[()]
        values[1] = values[0]  # a second no-op with the same gripper command
        values[3, 0] = 1.7  # beyond the controller's range
        actions[...] = values
    summary = convert("libero", path, tmp_path / "out", LiberoOptions(drop_noops=True))
    assert summary.notes["no-op steps dropped"] == 2 and summary.notes["action values clipped to [-1, 1]"] == 1
    assert summary.steps_written == 4
    reader = DatasetReader(tmp_path / "out")
    assert [s.step for s in reader] == [0, 1, 2, 3] and validate_dataset(tmp_path / "out").ok
    assert max(max(abs(v) for v in s.action.values) for s in DatasetReader(tmp_path / "out")) == 1.0

    strict = convert("libero", path, tmp_path / "strict", LiberoOptions(clip_actions=False))
    assert strict.skipped == {"invalid_sample": 1} and "outside [-1.0, 1.0]" in strict.examples["invalid_sample"][0]


def test_instruction_from_filename_and_missing_camera(tmp_path):
    assert instruction_from_filename("KITCHEN_SCENE3_turn_on_the_stove_demo") == "turn on the stove"
    assert instruction_from_filename("pick_up_the_black_bowl_demo") == "pick up the black bowl"
    from omniactor.data.converters.fake_sources import write_libero

    path = tmp_path / "LIVING_ROOM_SCENE1_open_it_demo.hdf5"
    write_libero(path, demos=1, steps=3)
    with h5py.File(path, "a") as f:
        del f["data"].attrs["problem_info"]
    summary = convert("libero", path, tmp_path / "out", LiberoOptions(cameras=("agentview_rgb",)))
    assert next(iter(DatasetReader(tmp_path / "out"))).meta["instruction"] == "open it"
    assert summary.notes == {"instructions taken from file names (no problem_info)": 1}
    missing = convert("libero", path, tmp_path / "out2", LiberoOptions(cameras=("frontview_rgb",)))
    assert missing.skipped == {"missing_camera": 1}
