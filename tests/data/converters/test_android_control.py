"""AndroidControl: actions, points, scroll convention, target boxes, splits, corrupt records."""

from __future__ import annotations

import gzip
import json

import pytest

from omniactor.actions import Click, LongPress, OpenApp, PressKey, Scroll, TypeText, Wait, action_from_json
from omniactor.data import load_manifest, validate_dataset
from omniactor.data.converters import Skip, SourceError, convert
from omniactor.data.converters.android_control import AndroidControlConverter, AndroidControlOptions
from omniactor.data.converters.fake_sources import android_control_episode
from omniactor.data.converters.tfrecord import encode_example, frame_record, write_records


def test_converts_every_step_and_validates(android_control_src, tmp_path, read_records):
    out = tmp_path / "out"
    summary = convert("android_control", android_control_src.path, out)
    assert summary.episodes_converted == len(android_control_src.episodes)
    assert summary.steps_written == android_control_src.steps and summary.episodes_skipped == 0
    report = validate_dataset(out)
    assert report.ok, report.issues[:3]
    rows = read_records(out)
    assert {r["meta"]["episode"] for r in rows} == set(android_control_src.episodes)
    assert load_manifest(out).sources["android_control"].domain == "gui"
    first = rows[0]
    assert first["meta"]["goal"] == "Fake goal number 1000" and first["meta"]["screen"] == [108, 240]
    assert first["conversations"][0]["value"].startswith("<image>\nTask: Fake goal number 1000")
    assert first["images"][0].endswith(".png")


def test_action_mapping():
    converter = AndroidControlConverter("unused")
    cases = [
        ({"action_type": "click", "x": 540, "y": 1200}, Click, {"x": 0.5, "y": 0.5}),
        ({"action_type": "long_press", "x": 108, "y": 2400}, LongPress, {"x": 0.1, "y": 1.0}),
        ({"action_type": "scroll", "direction": "down"}, Scroll, {"direction": "down"}),
        ({"action_type": "open_app", "app_name": "Gmail"}, OpenApp, {"name": "Gmail"}),
        ({"action_type": "input_text", "text": "hello"}, TypeText, {"text": "hello"}),
        ({"action_type": "type", "text": "hi", "x": 10, "y": 20}, TypeText, {"text": "hi"}),
        ({"action_type": "navigate_back"}, PressKey, {"key": "back"}),
        ({"action_type": "navigate_home"}, PressKey, {"key": "home"}),
        ({"action_type": "wait"}, Wait, {}),
    ]
    for raw, cls, fields in cases:
        action, _ = converter._action(raw, 1080, 2400)
        assert isinstance(action, cls), raw
        for name, value in fields.items():
            got = getattr(action.point, name) if name in "xy" else getattr(action, name)
            assert got == value, (raw, name)
    with pytest.raises(Skip, match="unknown_action"):
        converter._action({"action_type": "double_tap", "x": 1, "y": 1}, 1080, 2400)
    with pytest.raises(Skip, match="bad_action"):
        converter._action({"action_type": "scroll", "direction": "sideways"}, 1080, 2400)
    action, _ = converter._action({"action_type": "click", "x": 1100, "y": 5}, 1080, 2400)  # just off screen
    assert action.point.x == 1.0 and converter.counters["points off the screen moved onto its edge"] == 1


def test_scroll_convention():
    view = AndroidControlConverter("unused")
    content = AndroidControlConverter("unused", AndroidControlOptions(scroll_convention="content"))
    for direction, flipped in [("down", "up"), ("up", "down"), ("left", "right"), ("right", "left")]:
        raw = {"action_type": "scroll", "direction": direction}
        assert view._action(raw, 100, 100)[0] == Scroll(direction)
        assert content._action(raw, 100, 100)[0] == Scroll(flipped)


def test_target_box_from_accessibility_tree(android_control_src, tmp_path, read_records):
    out = tmp_path / "out"
    convert("android_control", android_control_src.path, out)
    clicks = [r for r in read_records(out) if r["action"]["type"] in ("click", "long_press")]
    assert clicks
    for record in clicks:
        x1, y1, x2, y2 = record["meta"]["target_box"]
        action = action_from_json(record["action"])
        assert x1 <= action.point.x <= x2 and y1 <= action.point.y <= y2
        assert (x2 - x1) < 1 and (y2 - y1) < 0.2  # the button, not the full-screen root
        assert record["meta"]["target_text"] in {"Search", "Settings", "Compose", "Send"}
    out2 = tmp_path / "no_boxes"
    convert("android_control", android_control_src.path, out2, AndroidControlOptions(target_boxes=False))
    assert not any("target_box" in r["meta"] for r in read_records(out2))


def test_level_history_terminate_and_split(android_control_src, tmp_path, read_records):
    options = AndroidControlOptions(level="low", history=2, add_terminate=True, split="test")
    summary = convert("android_control", android_control_src.path, tmp_path / "out", options)
    rows = read_records(tmp_path / "out")
    ids = sorted(android_control_src.episodes)
    test_ids = set(ids[len(ids) // 2:])
    assert {r["meta"]["episode"] for r in rows} == test_ids
    assert summary.notes == {"episodes outside split 'test'": len(ids) - len(test_ids)}
    assert len(rows) == sum(android_control_src.episodes[e] + 1 for e in test_ids)  # + terminate per episode
    by_episode: dict[str, list] = {}
    for r in rows:
        by_episode.setdefault(r["meta"]["episode"], []).append(r)
    for steps in by_episode.values():
        assert steps[-1]["action"] == {"type": "terminate", "status": "success"}
        prompt = steps[1]["conversations"][0]["value"]
        assert "\nStep instruction: do step 1" in prompt and "Previous actions:\n1. " in prompt
        assert "3. " not in steps[-1]["conversations"][0]["value"]  # history of 2


def test_corrupt_record_is_skipped_and_counted(tmp_path, read_records):
    src = tmp_path / "ac"
    src.mkdir()
    records = [encode_example(android_control_episode(7000 + i, i)) for i in range(3)]
    framed = bytearray(b"".join(frame_record(r) for r in records))
    framed[len(frame_record(records[0])) + 40] ^= 0x55  # inside the second record's data
    (src / "android_control-00000-of-00001").write_bytes(gzip.compress(bytes(framed)))
    out = tmp_path / "out"
    summary = convert("android_control", src, out)
    assert summary.episodes_converted == 2 and summary.skipped == {"corrupt_record": 1}
    assert "android_control-00000-of-00001#1" in summary.examples["corrupt_record"][0]
    assert "checksum" in summary.format()
    assert {r["meta"]["episode"] for r in read_records(out)} == {"7000", "7002"}
    assert validate_dataset(out).ok
    saved = json.loads((out / ".convert" / "android_control" / "summary.json").read_text())
    assert saved["skipped"] == {"corrupt_record": 1}


def test_bad_episode_is_skipped_whole(tmp_path, read_records):
    src = tmp_path / "ac"
    src.mkdir()
    good = android_control_episode(1, 1)
    bad = android_control_episode(2, 2)
    bad["actions"][-1] = json.dumps({"action_type": "teleport"})
    write_records(src / "android_control-00000-of-00001", [encode_example(good), encode_example(bad)])
    summary = convert("android_control", src, tmp_path / "out")
    assert summary.skipped == {"unknown_action": 1} and "teleport" in summary.examples["unknown_action"][0]
    assert {r["meta"]["episode"] for r in read_records(tmp_path / "out")} == {"1"}


def test_source_errors(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        convert("android_control", tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no TFRecord files"):
        convert("android_control", tmp_path / "empty", tmp_path / "out")
    write_records(tmp_path / "empty" / "android_control-00000-of-00001", [])
    with pytest.raises(SourceError, match="splits file"):
        convert("android_control", tmp_path / "empty", tmp_path / "out", AndroidControlOptions(split="train"))


def test_scroll_direction_kept_end_to_end(android_control_src, tmp_path, read_records):
    """AndroidControl's ``direction`` is what comes into view (AndroidWorld executes ``scroll down`` as a
    swipe from the centre to the top), which is our ``Scroll`` meaning: every converted scroll keeps it."""
    from omniactor.data.converters.tfrecord import parse_example
    from omniactor.data.converters.tfrecord import read_records as read_tfrecords

    source: dict[tuple[str, int], str] = {}
    for path in sorted(android_control_src.path.glob("android_control-*")):
        for record in read_tfrecords(path):
            features = parse_example(record)
            for step, raw in enumerate(features["actions"]):
                action = json.loads(raw)
                if action["action_type"] == "scroll":
                    source[(str(features["episode_id"][0]), step)] = action["direction"]
    assert len(set(source.values())) >= 2  # the fake covers more than one direction
    out = tmp_path / "out"
    convert("android_control", android_control_src.path, out)
    scrolls = {(r["meta"]["episode"], r["meta"]["step"]): r["action"] for r in read_records(out)
               if r["action"]["type"] == "scroll"}
    assert {key: action["direction"] for key, action in scrolls.items()} == source
