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


@pytest.mark.env
def test_quick_demo_collects_trains_evaluates_and_reports_end_to_end(tmp_path, capsys, monkeypatch):
    from omniactor.envs.registry import get_spec

    missing = {env: get_spec(env).missing() for env in ("miniwob", "metaworld", "babyai")}
    if any(missing.values()):
        pytest.skip(f"the demo needs its environments: {missing}; `make test` installs them")
    monkeypatch.setenv("MUJOCO_GL", "egl")
    assert main(["demo", "--out", str(tmp_path), "--quick", "--no-progress"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["domains"]) == {"gui", "embodied", "discrete"}
    for row in results["domains"].values():
        assert set(row) == {"trained", "untrained", "expert"} and row["expert"] == 1.0
    trained = results["results"]["trained"]
    assert {env: r["episodes"] for env, r in trained.items()} == {"miniwob": 4, "metaworld": 2, "babyai": 2}
    assert results["collected"]["miniwob"]["episodes"] == 8
    report = (tmp_path / "report.md").read_text()
    assert "| gui |" in report and "![success per task](success.png)" in report
    for picture in ("success.png", "domains.png", "training.png"):
        assert (tmp_path / picture).stat().st_size > 1000
    assert (tmp_path / "runs" / "omniactor" / "final" / "agent.json").exists()
    # a re-run reuses every stage (no new episode, no new training step) and adds the study and RL
    capsys.readouterr()
    assert main(["demo", "--out", str(tmp_path), "--quick", "--no-progress", "--study", "--seeds", "1", "--rl"]) == 0
    row = next(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("click-test "))
    assert row[1] == "4" and row[5] == "0"  # 4 episodes, none new
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["results"]["trained"]["babyai"]["episodes"] == 2
    assert set(results["study"]["table"]) == {"gui-only", "ea-only", "mixed-dense", "hard", "router", "omniactor"}
    assert set(results["study"]["table"]["gui-only"]) == {"gui"}
    assert "## Study" in (tmp_path / "report.md").read_text() and (tmp_path / "study.png").exists()
    # RL of every domain (a pointer answer in MiniWoB++, a regression head in Meta-World, a classification
    # head in BabyAI), evaluated again on the trained agent's test episodes
    after = results["results"]["after RL"]
    assert {env: r["episodes"] for env, r in after.items()} == {"miniwob": 4, "metaworld": 2, "babyai": 2}
    assert set(results["domains"]["gui"]) == {"trained", "untrained", "after RL", "expert"}
    metrics = [json.loads(line) for line in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert {"success/gui", "success/embodied", "success/discrete", "sft_loss"} <= set(metrics[0])  # GEA's SFT term
    assert "## Online RL" in (tmp_path / "report.md").read_text() and (tmp_path / "rl" / "rl.png").exists()
