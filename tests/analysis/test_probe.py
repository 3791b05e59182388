"""``--probe`` end to end on the tiny preset: data -> two fine-tunes -> CSV, figures, K; resumable."""

import csv
import json

import yaml

from omniactor.cli import main

from .conftest import TINY_TRAIN


def test_the_probe_writes_the_table_the_figures_and_a_proposed_k(probe_run):
    out, stdout = probe_run
    with (out / "update_similarity.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    layer_rows = [r for r in rows if r["scope"] == "layer"]
    assert [int(r["layer"]) for r in layer_rows] == list(range(8))  # the tiny preset's 8 layers
    assert {r["name"] for r in rows if r["scope"] == "matrix"} == {"q", "k", "v", "o", "gate", "up", "down"}
    assert all(-1 <= float(r["cosine"]) <= 1 and float(r["norm_a"]) > 0 for r in rows)
    for name in ("ffn", "attention", "layers"):
        assert (out / f"update_similarity_{name}.png").read_bytes()[:4] == b"\x89PNG"
    split = yaml.safe_load((out / "split.yaml").read_text())
    assert split["variant"] == "omniactor" and 0 <= split["shared_layers"] <= 8
    assert f"proposed K = {split['shared_layers']} of 8" in stdout
    probe = json.loads((out / "probe.json").read_text())
    assert {r["domain"] for r in probe["runs"].values()} == {"gui", "embodied"}
    assert all(r["loss_first"] is not None and r["steps"] == 3 for r in probe["runs"].values())
    # the mixed example folder was split into one-domain copies for the two runs
    assert sorted(p.name for p in (out / "data").iterdir()) == ["embodied", "gui"]


def test_a_rerun_reuses_the_runs_and_changed_settings_are_refused(probe_run, example_data, capsys):
    out, _ = probe_run
    args = ["analyze", "update-similarity", "--probe", "--base", "tiny", "--data",
            f"gui={example_data},embodied={example_data}", "--out", str(out), "--no-progress", *TINY_TRAIN]
    before = (out / "runs" / "gui" / "final" / "model.safetensors").stat().st_mtime_ns
    assert main([*args, "--steps", "3"]) == 0
    assert "reusing the finished run gui" in capsys.readouterr().out
    assert (out / "runs" / "gui" / "final" / "model.safetensors").stat().st_mtime_ns == before
    assert main([*args, "--steps", "5"]) == 2
    assert "max_steps: 3 -> 5" in capsys.readouterr().err


def test_the_cli_compares_finished_runs_and_explains_bad_arguments(probe_run, tmp_path, capsys):
    out, _ = probe_run
    runs = f"gui={out}/runs/gui/final,embodied={out}/runs/embodied/final"
    assert main(["analyze", "update-similarity", "--base", str(out / "base"), "--runs", runs, "--out",
                 str(tmp_path), "--rule", "changepoint", "--no-progress"]) == 0
    assert "(changepoint rule)" in capsys.readouterr().out
    assert (tmp_path / "update_similarity.csv").read_text() == (out / "update_similarity.csv").read_text()
    assert main(["analyze", "update-similarity", "--base", str(out / "base"), "--runs", f"gui={out}/runs/gui/final",
                 "--out", str(tmp_path)]) == 2
    assert "at least two label=PATH pairs" in capsys.readouterr().err
    assert main(["analyze", "update-similarity", "--probe", "--base", "tinny", "--data", runs, "--out",
                 str(tmp_path)]) == 2
    assert "did you mean" in capsys.readouterr().err
