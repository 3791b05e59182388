"""`omniactor data ...` handlers: output and exit codes."""

from __future__ import annotations

import argparse
import json

import pytest

from omniactor.data.cli import add_data_commands, main


def test_registers_on_a_top_level_parser():
    parser = argparse.ArgumentParser(prog="omniactor")
    sub = parser.add_subparsers(dest="command")
    add_data_commands(sub)
    args = parser.parse_args(["data", "stats", "somewhere", "--json"])
    assert args.dir == "somewhere" and args.json and callable(args.handler)


def test_validate_exit_codes(tmp_path, capsys):
    assert main(["data", "example", "--out", str(tmp_path / "good")]) == 0
    assert main(["data", "example", "--out", str(tmp_path / "bad"), "--faults"]) == 0
    planted = [line for line in capsys.readouterr().out.splitlines() if line.startswith("planted")]
    assert len(planted) == 4

    assert main(["data", "validate", str(tmp_path / "good")]) == 0
    assert "all valid" in capsys.readouterr().out

    assert main(["data", "validate", str(tmp_path / "bad")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and lines[-1].startswith("4 bad record(s) of 38")
    assert all(f"{tmp_path / 'bad'}/shards/shard-" in line for line in lines[:4])

    assert main(["data", "validate", str(tmp_path / "nothing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["data", "validate", str(tmp_path / "empty")]) == 2


def test_stats_and_export(tmp_path, capsys):
    main(["data", "example", "--out", str(tmp_path / "good"), "--episodes", "1"])
    capsys.readouterr()
    assert main(["data", "stats", str(tmp_path / "good"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 18
    assert main(["data", "stats", str(tmp_path / "good")]) == 0
    assert "continuous actions of example_embodied" in capsys.readouterr().out
    assert main(["data", "stats", str(tmp_path / "nothing")]) == 2
    pytest.importorskip("datasets")
    assert main(["data", "export-hf", str(tmp_path / "good"), "--out", str(tmp_path / "hf")]) == 0
    capsys.readouterr()
    assert main(["data", "export-hf", str(tmp_path / "good"), "--out", str(tmp_path / "hf")]) == 2  # could not run
    assert "exists and is not empty" in capsys.readouterr().err


def test_example_refuses_an_existing_dataset(tmp_path, capsys):
    assert main(["data", "example", "--out", str(tmp_path / "x")]) == 0
    assert main(["data", "example", "--out", str(tmp_path / "x")]) == 2
    assert "error:" in (err := capsys.readouterr().err) and "append=True" in err
