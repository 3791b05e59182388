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


def test_image_size_resizes_exactly_after_rotation(libero_src, tmp_path):
    from PIL import Image

    out = tmp_path / "square"
    summary = convert("libero", libero_src.path, out, LiberoOptions(image_size="48"))
    assert summary.episodes_skipped == 0 and validate_dataset(out).ok
    reader = DatasetReader(out)
    for sample in list(reader)[:3]:
        (image,) = (np.asarray(im) for im in reader.load_images(sample))
        frame = _demo_arrays(libero_src.path, sample.episode)["agentview_rgb"][sample.step]
        expected = np.asarray(Image.fromarray(np.ascontiguousarray(frame[::-1, ::-1])).resize((48, 48), Image.BICUBIC))
        assert image.shape == (48, 48, 3)
        np.testing.assert_array_equal(image, expected)
        assert image[-1, 24, 1] == 200 and image[0, 24, 1] == 0  # rotated first: the bright half is at the bottom

    out = tmp_path / "wide"
    convert("libero", libero_src.path, out, LiberoOptions(image_size="24x40", resize_filter="nearest", rotate_180=False))
    reader = DatasetReader(out)
    sample = next(iter(reader))
    (image,) = (np.asarray(im) for im in reader.load_images(sample))
    assert image.shape == (24, 40, 3)  # HxW: 24 rows, 40 columns
    assert image[0, 0, 1] == 200 and image[-1, 0, 1] == 0  # not rotated


@pytest.mark.parametrize("text", ["448x", "0", "x448", "448x224x3", "big", "-4"])
def test_image_size_errors_name_the_accepted_forms(text):
    with pytest.raises(ValueError, match=r"expected N \(an NxN square, e.g. 448\) or HxW"):
        LiberoOptions(image_size=text)


def test_image_size_and_max_side_exclude_each_other(libero_src, tmp_path, capsys):
    from omniactor.data.converters.cli import main

    with pytest.raises(ValueError, match="image_size and max_side both given"):
        LiberoOptions(image_size="448", max_side=256)
    args = ["convert", "libero", "--src", str(libero_src.path), "--out", str(tmp_path / "o")]
    assert main([*args, "--image-size", "448", "--max-side", "256"]) == 2
    assert "image_size and max_side both given" in capsys.readouterr().err
    assert main([*args, "--image-size", "44x"]) == 2
    assert "image size '44x'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "manifest.json").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "mapping, dimension, low, open_value, close_value",
    [
        ("keep", "gripper", -1.0, -1.0, 1.0),
        ("binary", "gripper", -1.0, -1.0, 1.0),
        ("open1close0", "gripper_open", 0.0, 1.0, 0.0),
        ("open0close1", "gripper_closed", 0.0, 0.0, 1.0),
    ],
)
def test_gripper_mapping_recorded_in_space_and_invertible(
    libero_src, tmp_path, read_records, mapping, dimension, low, open_value, close_value
):
    from omniactor.data.converters.libero import to_env_action

    out = tmp_path / mapping
    summary = convert("libero", libero_src.path, out, LiberoOptions(gripper=mapping))
    assert summary.episodes_skipped == 0 and validate_dataset(out).ok
    info = load_manifest(out).sources["libero"]
    names = (*EEF_DELTA_GRIPPER[:6], dimension)
    assert info.action_space == ContinuousSpace(names, (-1.0,) * 6 + (low,), (1.0,) * 7)
    assert info.action_stats.names == names
    rows = read_records(out)
    assert f"{dimension} in [{low:g}, 1]" in rows[0]["system"]
    for episode in libero_src.episodes:
        raw = _demo_arrays(libero_src.path, episode)["actions"]
        values = np.array([r["action"]["values"] for r in rows if r["meta"]["episode"] == episode])
        assert all(tuple(r["action"]["names"]) == names for r in rows)
        np.testing.assert_array_equal(values[:, :6], raw[:, :6])  # the arm is never touched
        expected = np.where(raw[:, 6] < 0, open_value, close_value)  # the fake stores -1 (open) then +1 (closed)
        np.testing.assert_array_equal(values[:, 6], expected)
        np.testing.assert_array_equal(to_env_action(values, info.action_space.names), raw)  # exact round trip


def test_gripper_binary_snaps_and_counts_and_intermediate_values_invert(tmp_path):
    from omniactor.data.converters.fake_sources import write_libero
    from omniactor.data.converters.libero import GRIPPER_MAPS, to_env_action

    path = tmp_path / "src" / "close_the_drawer_demo.hdf5"
    write_libero(path, demos=1, steps=6)
    with h5py.File(path, "a") as f:
        values = f["data/demo_0/actions"][()]
        values[:, 6] = [-1.0, -0.4, 0.0, 0.25, 1.0, 1.0]  # a teleoperator's analogue trigger
        f["data/demo_0/actions"][...] = values
    binary = convert("libero", path, tmp_path / "binary", LiberoOptions(gripper="binary"))
    assert binary.notes["gripper commands snapped to -1/+1"] == 3
    got = [s.action.values[6] for s in DatasetReader(tmp_path / "binary")]
    assert got == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]  # 0 (no command to close) counts as open
    convert("libero", path, tmp_path / "open", LiberoOptions(gripper="open1close0"))
    got = [s.action.values[6] for s in DatasetReader(tmp_path / "open")]
    assert got == [1.0, 0.7, 0.5, 0.375, 0.0, 0.0]
    assert GRIPPER_MAPS["open1close0"].dimension == "gripper_open"
    back = to_env_action([[0.0] * 6 + [v] for v in got], (*EEF_DELTA_GRIPPER[:6], "gripper_open"))
    np.testing.assert_allclose(back[:, 6], values[:, 6], atol=1e-12)


def test_to_env_action_refuses_other_spaces():
    from omniactor.data.converters.libero import to_env_action

    with pytest.raises(ValueError, match="not a converted LIBERO action space"):
        to_env_action([0.0] * 7, ("x", "y", "z", "roll", "pitch", "yaw", "grip"))
    with pytest.raises(ValueError, match="expected 7 values"):
        to_env_action([0.0] * 6, EEF_DELTA_GRIPPER)


def test_gripper_mapping_cannot_change_on_resume(libero_src, tmp_path):
    from omniactor.data.converters.runner import OptionsChanged

    out = tmp_path / "out"
    convert("libero", libero_src.path, out, LiberoOptions(gripper="open1close0"), limit=1)
    with pytest.raises(OptionsChanged, match="gripper: 'open1close0' -> 'keep'"):
        convert("libero", libero_src.path, out)
