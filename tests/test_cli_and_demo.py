"""The `omniactor` command: every subcommand explains itself; the demo runs end to end."""

import json

import pytest

from omniactor.cli import build_parser, main


def subcommands(parser):
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            yield name, sub
            if sub._subparsers is not None:
                for inner, leaf in subcommands(sub):
                    yield f"{name} {inner}", leaf


@pytest.mark.parametrize("name", [n for n, _ in subcommands(build_parser())])
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*name.split(), "--help"])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out) > 100


def test_actions_commands(capsys):
    assert main(["actions", "parse", "pyautogui.click(634, 927)"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "click(x=0.634, y=0.927)"
    assert main(["actions", "parse", "click(x=0.5, y=500)"]) == 1
    assert "mixes an integer and a decimal" in capsys.readouterr().err
    assert main(["actions", "encode", "click(x=0.5, y=0.5)", "--tokenizer", "gui_location",
                 "--config", '{"grid": 4}']) == 0
    assert "click(<loc_10>)" in capsys.readouterr().out


def test_quick_demo_writes_a_report(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quick"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert {"gui", "embodied", "discrete"} <= set(results["tokenizers"])
    assert "## Action tokenizers" in (tmp_path / "report.md").read_text()
    assert main(["demo", "--out", str(tmp_path), "--quick"]) == 0  # a re-run reuses the dataset
    assert "reusing" in capsys.readouterr().out
