"""``omniactor convert SOURCE --src PATH --out DIR``: registration, options from dataclasses, exit codes."""

from __future__ import annotations

import argparse
import json

import pytest

from omniactor.data.converters.cli import add_convert_command, main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omniactor")
    add_convert_command(parser.add_subparsers(dest="command", required=True))
    return parser


def test_registers_one_subcommand_per_converter_with_typed_options():
    args = _parser().parse_args([
        "convert", "android_control", "--src", "s", "--out", "o", "--workers", "2", "--level", "low",
        "--no-target-boxes", "--max-side", "512", "--scroll-convention", "content",
    ])
    assert (args.converter, args.src, args.out, args.workers) == ("android_control", "s", "o", 2)
    assert args.level == "low" and args.target_boxes is False and args.max_side == 512
    assert args.scroll_convention == "content" and args.verify_checksums is True and callable(args.handler)
    args = _parser().parse_args(["convert", "libero", "--src", "s", "--out", "o", "--cameras",
                                 "agentview_rgb,eye_in_hand_rgb", "--state-keys", "none"])
    assert args.cameras == ("agentview_rgb", "eye_in_hand_rgb") and args.state_keys == ()
    assert (args.image_size, args.gripper, args.resize_filter) == (None, "keep", "bicubic")
    args = _parser().parse_args(["convert", "libero", "--src", "s", "--out", "o", "--image-size", "448",
                                 "--gripper", "open1close0", "--resize-filter", "lanczos"])
    assert (args.image_size, args.gripper, args.resize_filter) == ("448", "open1close0", "lanczos")
    with pytest.raises(SystemExit):
        _parser().parse_args(["convert", "libero", "--src", "s", "--out", "o", "--gripper", "inverted"])
    args = _parser().parse_args(["convert", "lerobot", "--src", "s", "--out", "o", "--state-key", "none"])
    assert args.state_key is None
    with pytest.raises(SystemExit):
        _parser().parse_args(["convert", "android_control", "--src", "s", "--out", "o", "--level", "medium"])


def test_help_lists_sources_and_options(capsys):
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in ("android_control", "gui_odyssey", "libero", "lerobot"))
    with pytest.raises(SystemExit):
        main(["convert", "gui_odyssey", "--help"])
    text = capsys.readouterr().out
    assert "--scroll-as {scroll,swipe}" in text and "--history HISTORY" in text and "--src PATH" in text


def test_runs_and_reports(gui_odyssey_src, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", "gui_odyssey", "--src", str(gui_odyssey_src.path), "--out", str(out), "--validate"]) == 0
    text = capsys.readouterr().out
    assert f"converted {len(gui_odyssey_src.episodes)} episode(s)" in text and "all valid" in text
    assert main(["convert", "gui_odyssey", "--src", str(gui_odyssey_src.path), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes_already_done"] == len(gui_odyssey_src.episodes) and summary["episodes_converted"] == 0
    config = json.loads((out / ".convert" / "gui_odyssey" / "config.json").read_text())
    assert config["options"]["history"] == 4 and config["converter"] == "gui_odyssey"


def test_exit_codes(gui_odyssey_src, tmp_path, capsys):
    assert main(["convert", "libero", "--src", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad"
    (bad / "annotations").mkdir(parents=True)
    (bad / "screenshots").mkdir()
    (bad / "annotations" / "broken.json").write_text("{not json")
    args = ["convert", "gui_odyssey", "--src", str(bad), "--out", str(tmp_path / "o2")]
    assert main(args) == 0
    assert "unreadable_annotation: 1" in capsys.readouterr().out
    assert main([*args, "--strict"]) == 1
