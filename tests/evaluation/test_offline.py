"""End to end: converters' fake AndroidControl + GUI Odyssey data -> predictions -> results.json.

The predict function below returns the true action on even steps and a chosen near miss
on odd steps; every number asserted here was counted by hand from the fake sources' step
plans (see ``fake_sources.py``), listed in ``STEPS``.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from omniactor.actions import (
    Click,
    ContinuousAction,
    LongPress,
    Point,
    PressKey,
    Scroll,
    Swipe,
    Terminate,
    TypeText,
    Wait,
    format_action,
)
from omniactor.cli import main
from omniactor.data import DatasetWriter, build_sample, iter_records
from omniactor.data.converters import convert
from omniactor.data.converters.fake_sources import write_android_control, write_gui_odyssey
from omniactor.evaluation.offline import (
    NoPrediction,
    PredictionsFileError,
    evaluate_offline,
    score_predictions,
)

# The GUI steps of the dataset (source, episode: types by step); E/O = even/odd step.
#   android_control 1000: open_app E, click O, type E
#   android_control 1001: open_app E, click O, type E, scroll(up) O
#   android_control 1002: open_app E, click O, type E, scroll(left) O [unparsable answer], long_press E
#   android_control 1003: open_app E, click O, type E, scroll(right) O, long_press E, press_key(back) O
#   gui_odyssey 000000abcd: click E, type("query 0") O, terminate E
#   gui_odyssey 000001abcd: type E, scroll O, long_press E, terminate(success) O
#   gui_odyssey 000002abcd: scroll E, long_press O, press_key(app_switch) E, click O, terminate E
#   handmade h1: click E (no target box), [step 1 missing], wait E
# 32 GUI steps (19 even, 13 odd) + 2 embodied records.
# Odd-step answers: clicks/long presses 0.1 lower (osatlas, gea, odyssey: correct; qwen25vl: outside the
# 1.2x box and > 0.04), scrolls as a swipe with the same view direction (a scroll for qwen25vl and
# odyssey, another type for osatlas and gea), text "query zzz" (token F1 0.5: osatlas fails; not
# contained: qwen25vl and gea fail; ANLS 2/3: odyssey passes), press_key home (type match only under
# qwen25vl and gea, wrong key everywhere), terminate failure (type match under qwen25vl, which ignores
# the status, and gea; a different type under osatlas and odyssey).
UNPARSABLE_STEP = ("android_control", "1002", 3)
FINGER_FOR_VIEW = {"down": ((0.5, 0.8), (0.5, 0.2)), "up": ((0.5, 0.2), (0.5, 0.8)),
                   "right": ((0.8, 0.5), (0.2, 0.5)), "left": ((0.2, 0.5), (0.8, 0.5))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("offline")
    out = root / "data"
    convert("android_control", write_android_control(root / "ac", episodes=4).path, out)
    convert("gui_odyssey", write_gui_odyssey(root / "odyssey", episodes=3).path, out)
    image = np.zeros((24, 12, 3), np.uint8)
    with DatasetWriter(out, append=True) as writer:
        for step, action in ((0, Click(Point(0.3, 0.3))), (2, Wait())):
            writer.write(build_sample(domain="gui", instruction="hand made", action=action, source="handmade",
                                      episode="h1", step=step), images=[image])
        for step in range(2):
            writer.write(build_sample(domain="embodied", instruction="reach", action=ContinuousAction((0.1, -0.2)),
                                      source="robot", episode="r1", step=step), images=[image])
    return out


def true_history(root: Path) -> dict[tuple[str, str, int], list]:
    """Each GUI step's earlier true actions in its episode, read independently of the evaluator."""
    steps: dict[tuple[str, str], dict[int, object]] = {}
    for record in iter_records(root):
        s = record.sample
        if s.domain == "gui":
            steps.setdefault((s.source, s.episode), {})[s.step] = s.action
    return {(src, ep, n): [actions[k] for k in sorted(actions) if k < n]
            for (src, ep), actions in steps.items() for n in actions}


def make_predict(root: Path):
    history = true_history(root)

    def predict(sample, images, previous):
        assert previous == history[(sample.source, sample.episode, sample.step)]
        assert len(images) == 1 and images[0].mode == "RGB"
        truth = sample.action
        if sample.step % 2 == 0:
            return truth
        if (sample.source, sample.episode, sample.step) == UNPARSABLE_STEP:
            return "scroll the list a bit to the left please"
        if isinstance(truth, (Click, LongPress)):
            return format_action(type(truth)(Point(truth.point.x, truth.point.y + 0.1)))
        if isinstance(truth, TypeText):
            return TypeText(truth.text.split()[0] + " zzz")
        if isinstance(truth, Scroll):
            start, end = FINGER_FOR_VIEW[truth.direction]
            return Swipe(Point(*start), Point(*end))
        if isinstance(truth, PressKey):
            return PressKey("home")
        if isinstance(truth, Terminate):
            return Terminate("failure")
        raise AssertionError(f"no odd-step answer for {truth}")

    return predict


def overall(results, protocol):
    return results["metrics"][protocol]["overall"]


def test_end_to_end_numbers(dataset, tmp_path):
    results = evaluate_offline(dataset, make_predict(dataset), "all", tmp_path, progress=False)
    assert results["counts"] == {
        "records": 34, "gui_steps": 32, "steps_evaluated": 32, "steps_scored": 32, "steps_not_evaluated_limit": 0,
        "steps_without_prediction": 0, "unparsable_predictions": 1, "non_gui_predictions": 0,
        "skipped_non_gui_records": 2, "skipped_non_gui_by_domain": {"embodied": 2},
    }
    assert results["episodes"] == {"total": 8, "complete": 7, "incomplete": 1, "not_reached_limit": 0,
                                   "incomplete_reasons": {"steps_missing_in_data": 1}}
    #               type  success  grounding  fallbacks  episodes won (of 7)
    expected = {
        "osatlas": (26, 25, (11, 11), 0, 2),   # 1000, 000002abcd
        "qwen25vl": (31, 23, (5, 11), 1, 1),   # 000001abcd (swipe = scroll, status ignored)
        "gea": (28, 25, (11, 11), 0, 2),       # 1000, 000002abcd
        "odyssey": (29, 29, (11, 11), 1, 4),   # 1000, 1001, 000000abcd, 000002abcd
    }
    for name, (types_, successes, (ground_ok, ground_n), fallbacks, won) in expected.items():
        row = overall(results, name)
        assert row["steps"] == 32, name
        assert (row["type_matches"], row["step_successes"]) == (types_, successes), name
        assert (row["grounding_correct"], row["grounding_steps"]) == (ground_ok, ground_n), name
        assert row["box_fallbacks"] == fallbacks, name
        assert (row["episode_successes"], row["episodes_scored"]) == (won, 7), name
        assert row["step_success_rate"] == successes / 32 and row["type_accuracy"] == types_ / 32
        assert row["episode_success_rate"] == won / 7
    assert results["metrics"]["osatlas"]["failures"] == {"text_mismatch": 1, "unparsable": 1, "wrong_type": 5}
    assert results["metrics"]["qwen25vl"]["failures"] == {"point_off_target": 6, "text_mismatch": 1, "unparsable": 1,
                                                         "wrong_key": 1}
    assert results["metrics"]["gea"]["failures"] == {"text_mismatch": 1, "unparsable": 1, "wrong_key": 1,
                                                    "wrong_status": 1, "wrong_type": 3}
    assert results["metrics"]["odyssey"]["failures"] == {"unparsable": 1, "wrong_type": 2}


def test_per_type_and_per_source_numbers(dataset, tmp_path):
    results = evaluate_offline(dataset, make_predict(dataset), "osatlas,qwen25vl", tmp_path, progress=False)
    osatlas, qwen = results["metrics"]["osatlas"], results["metrics"]["qwen25vl"]
    assert set(results["metrics"]) == {"osatlas", "qwen25vl"}
    click, scroll = osatlas["by_action_type"]["click"], osatlas["by_action_type"]["scroll"]
    assert (click["steps"], click["step_successes"], click["grounding_steps"]) == (7, 7, 7)
    assert (scroll["steps"], scroll["type_matches"], scroll["step_successes"]) == (5, 1, 1)
    assert "episodes_scored" not in click  # episodes are not per action type
    assert qwen["by_action_type"]["click"]["step_successes"] == 2  # only the two even-step clicks
    assert qwen["by_action_type"]["scroll"]["step_successes"] == 4  # 3 swipes + 1 true scroll
    assert qwen["by_action_type"]["terminate"]["step_successes"] == 3  # incl. the odd "failure" (status ignored)
    by_source = {k: (v["steps"], v["step_successes"], v["episodes_scored"], v["episode_successes"])
                 for k, v in osatlas["by_source"].items()}
    assert by_source == {"android_control": (18, 14, 4, 1), "gui_odyssey": (12, 9, 3, 1), "handmade": (2, 2, 0, 0)}
    report = (tmp_path / "report.md").read_text()
    assert "## osatlas" in report and "## qwen25vl" in report and "## gea" not in report
    assert "| **all** | 32 | 81.25 | 100.00 (11/11) | 78.12 | 28.57 (2/7) | 0 |" in report
    assert "embodied: 2" in report and "steps_missing_in_data: 1" in report


def test_outputs_on_disk(dataset, tmp_path):
    evaluate_offline(dataset, make_predict(dataset), "odyssey", tmp_path, progress=False)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["protocols"] == ["odyssey"] and on_disk["metrics"]["odyssey"]["protocol"]["radius"] == 0.14
    predictions = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    steps = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert len(predictions) == len(steps) == 32
    bad = next(p for p in predictions if (p["source"], p["episode"], p["step"]) == UNPARSABLE_STEP)
    assert bad["prediction"] == "scroll the list a bit to the left please"
    first = steps[0]
    assert first["truth"] == 'open_app(name="Gmail")' and first["scores"]["odyssey"]["step_success"]


def test_limit_cuts_episodes_and_counts_them(dataset, tmp_path):
    results = evaluate_offline(dataset, make_predict(dataset), "osatlas,qwen25vl", tmp_path, limit=5, progress=False)
    assert results["counts"]["steps_evaluated"] == 5 and results["counts"]["steps_not_evaluated_limit"] == 27
    assert results["episodes"] == {"total": 8, "complete": 1, "incomplete": 1, "not_reached_limit": 6,
                                   "incomplete_reasons": {"cut_by_limit": 1}}
    # 1000 (3 steps) + 1001 steps 0-1: the odd clicks pass osatlas, fail qwen25vl
    assert overall(results, "osatlas")["step_successes"] == 5
    assert (overall(results, "osatlas")["episode_successes"], overall(results, "osatlas")["episodes_scored"]) == (1, 1)
    assert overall(results, "qwen25vl")["step_successes"] == 3
    assert overall(results, "qwen25vl")["episode_successes"] == 0


def test_saved_predictions_rescore_identically_and_missing_ones_are_counted(dataset, tmp_path):
    first = evaluate_offline(dataset, make_predict(dataset), "all", tmp_path / "model", progress=False)
    again = score_predictions(dataset, tmp_path / "model" / "predictions.jsonl", "all", tmp_path / "file",
                              progress=False)
    assert again["metrics"] == first["metrics"] and again["predictions_not_in_data"] == 0
    lines = (tmp_path / "model" / "predictions.jsonl").read_text().splitlines()
    kept = [line for line in lines if not ('"000000abcd"' in line and '"step": 1,' in line)]  # the "query zzz" step
    extra = json.dumps({"source": "elsewhere", "episode": 7, "step": 0, "prediction": "wait()"})
    (tmp_path / "partial.jsonl").write_text("\n".join([*kept, extra]) + "\n")
    partial = score_predictions(dataset, tmp_path / "partial.jsonl", "osatlas,odyssey", tmp_path / "partial",
                                progress=False)
    assert partial["counts"]["steps_without_prediction"] == 1 and partial["counts"]["steps_scored"] == 31
    assert partial["predictions_not_in_data"] == 1
    assert partial["episodes"]["incomplete_reasons"] == {"steps_missing_in_data": 1, "steps_without_prediction": 1}
    assert overall(partial, "odyssey")["step_successes"] == 28  # the unscored step was an odyssey success
    assert (overall(partial, "odyssey")["episode_successes"], overall(partial, "odyssey")["episodes_scored"]) == (3, 6)
    assert overall(partial, "osatlas")["step_successes"] == 25  # ... and an osatlas failure


def test_predictions_file_errors_name_the_line(dataset, tmp_path):
    path = tmp_path / "p.jsonl"
    first = '{"source": "a", "episode": "1", "step": 0, "prediction": "wait()"}'
    second = '{"source": "a", "episode": 1, "step": 0, "prediction": "wait()"}'
    cases = [
        ('{"source": "a", "episode": "1", "step": 0}', "p.jsonl:1: field 'prediction' is missing"),
        ('{"source": "a", "episode": "1", "step": -1, "prediction": "wait()"}', "'step' must be a non-negative"),
        ("not json", "p.jsonl:1: not valid JSON"),
        (f"{first}\n{second}", "p.jsonl:2: a second prediction.*on line 1"),  # episode 1 is "1"
    ]
    for text, message in cases:
        path.write_text(text + "\n")
        with pytest.raises(PredictionsFileError, match=message):
            score_predictions(dataset, path, "osatlas", tmp_path / "out", progress=False)
    path.write_text('{"source": "nowhere", "episode": "1", "step": 0, "prediction": "wait()"}\n')
    with pytest.raises(ValueError, match="none of the 1 predictions.*source 'nowhere'"):
        score_predictions(dataset, path, "osatlas", tmp_path / "out", progress=False)


def test_predict_errors_name_the_step(dataset, tmp_path):
    with pytest.raises(TypeError, match="episode 1000, step 0 .*predict returned int"):
        evaluate_offline(dataset, lambda s, i, p: 42, "osatlas", tmp_path, progress=False)

    def broken(sample, images, previous):
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="model exploded") as info:
        evaluate_offline(dataset, broken, "osatlas", tmp_path, progress=False)
    assert any("while predicting source 'android_control', episode 1000, step 0" in n for n in info.value.__notes__)

    def skip_all(sample, images, previous):
        raise NoPrediction

    results = evaluate_offline(dataset, skip_all, "osatlas", tmp_path, progress=False)
    assert results["counts"]["steps_without_prediction"] == 32 and overall(results, "osatlas")["steps"] == 0
    assert overall(results, "osatlas")["step_success_rate"] is None


def test_duplicate_steps_are_an_error(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    with DatasetWriter(tmp_path / "dup") as writer:
        for _ in range(2):
            writer.write(build_sample(domain="gui", instruction="x", action=Wait(), source="s", episode="e", step=0),
                         images=[image])
    with pytest.raises(ValueError, match=r"shard-00000.jsonl:2: source 's' episode 'e' step 0 is also at .*:1"):
        evaluate_offline(tmp_path / "dup", lambda s, i, p: s.action, "osatlas", tmp_path / "out", progress=False)


def test_cli_with_a_checkpoint_and_with_predictions(dataset, tmp_path, monkeypatch, capsys):
    loaded = []

    class FakeAgent:  # stands in for omniactor.agent.Agent (the lead's), which the command loads
        @classmethod
        def from_pretrained(cls, directory):
            loaded.append(directory)
            return cls()

        def predict_sample(self, sample, images, previous):
            return format_action(sample.action)

    monkeypatch.setitem(sys.modules, "omniactor.agent", types.SimpleNamespace(Agent=FakeAgent))
    out = tmp_path / "cli"
    code = main(["eval-offline", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(dataset),
                 "--protocol", "osatlas,odyssey", "--out", str(out), "--limit", "7", "--no-progress"])
    assert code == 0 and loaded == [str(tmp_path / "ckpt")]
    results = json.loads((out / "results.json").read_text())
    assert results["checkpoint"] == str(tmp_path / "ckpt") and results["limit"] == 7
    assert overall(results, "odyssey")["step_success_rate"] == 1.0 and overall(results, "odyssey")["steps"] == 7
    printed = capsys.readouterr().out
    assert "scored 7 of 32 GUI steps" in printed and "osatlas: type 100.00" in printed

    code = main(["eval-offline", "--predictions", str(out / "predictions.jsonl"), "--data", str(dataset),
                 "--protocol", "gea", "--out", str(tmp_path / "again"), "--no-progress"])
    assert code == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["counts"]["steps_scored"] == 7 and again["counts"]["steps_without_prediction"] == 25

    assert main(["eval-offline", "--predictions", "x", "--data", str(dataset), "--protocol", "qwen2.5",
                 "--out", str(tmp_path / "x")]) == 2
    assert "did you mean 'qwen25vl'" in capsys.readouterr().err
