"""GUI Odyssey: grid points, keys, scroll direction vs the finger's path, sam2_bbox, splits."""

from __future__ import annotations

import json
import shutil

import pytest

from omniactor.actions import Click, LongPress, PressKey, Scroll, Swipe, Terminate, TypeText
from omniactor.data import validate_dataset
from omniactor.data.converters import Skip, convert
from omniactor.data.converters.gui_odyssey import GuiOdysseyConverter, GuiOdysseyOptions


def test_converts_and_validates(gui_odyssey_src, tmp_path, read_records):
    out = tmp_path / "out"
    summary = convert("gui_odyssey", gui_odyssey_src.path, out)
    assert summary.episodes_converted == len(gui_odyssey_src.episodes) and summary.episodes_skipped == 0
    assert summary.steps_written == gui_odyssey_src.steps
    assert validate_dataset(out).ok
    rows = read_records(out)
    assert rows[0]["meta"]["apps"] == ["Chrome", "Notes"] and rows[0]["meta"]["device"] == "Small Phone"
    assert all(r["meta"]["step_instruction"].startswith("low level") for r in rows)
    ends = [r for r in rows if r["action"]["type"] == "terminate"]
    assert len(ends) == len(gui_odyssey_src.episodes)


def test_sam2_box_kept_for_clicks(gui_odyssey_src, tmp_path, read_records):
    out = tmp_path / "out"
    convert("gui_odyssey", gui_odyssey_src.path, out)
    boxed = [r for r in read_records(out) if "sam2_bbox" in r["meta"]]
    assert boxed and all(r["action"]["type"] in ("click", "long_press") for r in boxed)
    for r in boxed:
        grid = r["meta"]["sam2_bbox"]
        assert r["meta"]["target_box"] == [round(v / 1000, 4) for v in grid]
        x1, y1, x2, y2 = r["meta"]["target_box"]
        assert x1 <= r["action"]["x"] <= x2 and y1 <= r["action"]["y"] <= y2


def test_action_mapping():
    converter = GuiOdysseyConverter("unused")

    def act(kind, info):
        return converter._action({"step": 0, "action": kind, "info": info})

    action, _ = act("CLICK", [[500, 250]])
    assert isinstance(action, Click) and (action.point.x, action.point.y) == (0.5, 0.25)
    assert isinstance(act("LONG_PRESS", [[1, 999]])[0], LongPress)
    assert act("CLICK", "KEY_HOME")[0] == PressKey("home")
    assert act("CLICK", "KEY_BACK")[0] == PressKey("back")
    assert act("CLICK", "KEY_APPSELECT")[0] == PressKey("app_switch")
    assert act("TEXT", "hello")[0] == TypeText("hello")
    assert act("COMPLETE", "")[0] == Terminate("success")
    assert act("INCOMPLETE", "")[0] == Terminate("failure")
    with pytest.raises(Skip, match="unknown_action"):
        act("SHAKE", "")


@pytest.mark.parametrize(
    "path, finger, view",
    [
        ([[500, 800], [500, 200]], "up", "down"),  # finger moves up: what lies below comes into view
        ([[500, 200], [500, 800]], "down", "up"),
        ([[800, 500], [200, 500]], "left", "right"),
        ([[200, 500], [800, 500]], "right", "left"),
    ],
)
def test_scroll_direction_is_what_comes_into_view(path, finger, view):
    action, meta = GuiOdysseyConverter("unused")._action({"step": 3, "action": "SCROLL", "info": path})
    assert action.direction == view and meta["gesture_direction"] == finger
    assert (action.point.x, action.point.y) == (path[0][0] / 1000, path[0][1] / 1000)
    swipe, _ = GuiOdysseyConverter("unused", GuiOdysseyOptions(scroll_as="swipe"))._action(
        {"step": 3, "action": "SCROLL", "info": path})
    assert isinstance(swipe, Swipe) and (swipe.end.x, swipe.end.y) == (path[1][0] / 1000, path[1][1] / 1000)
    assert isinstance(action, Scroll)


def test_split_and_missing_screenshot(gui_odyssey_src, tmp_path, read_records):
    options = GuiOdysseyOptions(split_file="splits/random_split.json", split="test")
    summary = convert("gui_odyssey", gui_odyssey_src.path, tmp_path / "test", options)
    split = json.loads((gui_odyssey_src.path / "splits" / "random_split.json").read_text())
    assert {r["meta"]["episode"] for r in read_records(tmp_path / "test")} == {n[:-5] for n in split["test"]}
    assert summary.notes == {"episodes outside split 'test'": len(split["train"])}

    src = tmp_path / "copy"
    shutil.copytree(gui_odyssey_src.path, src)
    nested = src / "screenshots" / "part1"
    nested.mkdir()
    shots = sorted((src / "screenshots").glob("*.png"))
    for shot in shots[:3]:  # the download's sub-folders, before its reindex script ran
        shot.rename(nested / shot.name)
    shots[-1].unlink()
    summary = convert("gui_odyssey", src, tmp_path / "out")
    assert summary.skipped == {"missing_screenshot": 1}
    assert summary.episodes_converted == len(gui_odyssey_src.episodes) - 1
    assert validate_dataset(tmp_path / "out").ok


def test_scroll_direction_end_to_end(gui_odyssey_src, tmp_path, read_records):
    """Every SCROLL of the source becomes the scroll that reveals the side opposite the finger's motion."""
    opposite = {"up": "down", "down": "up", "left": "right", "right": "left"}
    expected = {}
    for path in sorted((gui_odyssey_src.path / "annotations").glob("*.json")):
        data = json.loads(path.read_text())
        for index, step in enumerate(data["steps"]):
            if step["action"] == "SCROLL":
                (x1, y1), (x2, y2) = step["info"]
                finger = ("left" if x2 < x1 else "right") if abs(x2 - x1) > abs(y2 - y1) else (
                    "up" if y2 < y1 else "down")
                expected[(data["episode_id"], index)] = (opposite[finger], finger)
    assert len({view for view, _ in expected.values()}) >= 2
    out = tmp_path / "out"
    convert("gui_odyssey", gui_odyssey_src.path, out)
    got = {(r["meta"]["episode"], r["meta"]["step"]): (r["action"]["direction"], r["meta"]["gesture_direction"])
           for r in read_records(out) if r["action"]["type"] == "scroll"}
    assert got == expected


def test_scroll_without_motion_is_skipped_not_guessed():
    with pytest.raises(Skip, match="bad_action.*starts and ends at the same point"):
        GuiOdysseyConverter("unused")._action({"step": 2, "action": "SCROLL", "info": [[500, 500], [500, 500]]})
