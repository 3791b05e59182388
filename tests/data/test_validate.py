"""validate_dataset: clean data passes; every planted fault, and every single check, is reported."""

from __future__ import annotations

import json

import pytest

from omniactor.actions import format_action
from omniactor.actions.continuous import ContinuousAction
from omniactor.data import NotADatasetError, format_report, validate_dataset
from omniactor.data.example import FAULT_KINDS, write_example_dataset

SHARD = "shards/shard-00000.jsonl"


def test_clean_example_has_no_issues(example_dir):
    report = validate_dataset(example_dir, images="decode")
    assert report.ok, format_report(report)
    assert report.checked == 38 and report.bad == 0
    assert format_report(report).endswith("38 records checked: all valid")


def test_planted_faults_are_each_reported_and_nothing_else(tmp_path):
    example = write_example_dataset(tmp_path / "faulty", faults=True)
    assert sorted(f.kind for f in example.faults) == sorted(FAULT_KINDS)
    report = validate_dataset(tmp_path / "faulty")
    found = {(i.file, i.line): i for i in report.issues}
    assert set(found) == {(f.file, f.line) for f in example.faults}
    assert len(report.issues) == 4 and report.bad == 4 and report.checked == example.records
    expected_words = {
        "missing_image": "file not found",
        "bad_action": "gripper=2.5 is outside [-1.0, 1.0]",
        "marker_mismatch": "2 <image> marker(s) in the human turns but 1 image(s)",
        "truncated_json": "not valid JSON (the file ends mid-record",
    }
    for fault in example.faults:
        issue = found[(fault.file, fault.line)]
        assert expected_words[fault.kind] in issue.message
        assert (issue.episode, issue.step) == (fault.episode, fault.step)  # recovered even from the cut line
    text = format_report(report, "DIR")
    for fault in example.faults:
        assert f"DIR/{fault.file}:{fault.line} (episode {fault.episode}, step {fault.step}): " in text
    assert text.splitlines()[-1] == "4 bad record(s) of 38 checked (4 issue(s))"


def _set_answer(record, action):
    record["conversations"][-1]["value"] = format_action(action)


# Each case edits one line of the small dataset (1: gui, 2: embodied, 3: discrete; bytes
# replace the line's text) and names words the issue it causes must contain.
CASES = {
    "truncated middle line": (1, lambda r: json.dumps(r)[:40].encode(), "not valid JSON: "),
    "not an object": (1, lambda r: b"[1, 2]", "record: must be a JSON object"),
    "empty line": (2, lambda r: b"", "empty line"),
    "missing field": (1, lambda r: r.pop("system"), "system: is missing"),
    "wrong type": (1, lambda r: r.update(images="images/00000/000000_0.png"), "images: must be a list"),
    "negative step": (1, lambda r: r["meta"].update(step=-1), "meta.step: must be a non-negative integer"),
    "turn order": (1, lambda r: r["conversations"].reverse(), "turns must alternate"),
    "marker mismatch": (1, lambda r: r["conversations"][0].update(value="no image here"), "0 <image> marker(s)"),
    "path outside": (1, lambda r: r.update(images=["../x.png"]), "points outside the dataset folder"),
    "unknown action": (1, lambda r: r.update(action={"type": "teleport"}), "action: action type 'teleport'"),
    "gui point out of range": (1, lambda r: r["action"].update(x=1.7), "outside the screen"),
    "answer unparseable": (1, lambda r: r["conversations"][-1].update(value="tap ok"), "does not parse"),
    "answer differs": (
        3,
        lambda r: r["conversations"][-1].update(value='discrete(name="left")'),
        "differs from the action",
    ),
    "continuous out of space": (
        2,
        lambda r: (
            r["action"].update(values=[0.5, -0.25, 3.0]),
            _set_answer(r, ContinuousAction((0.5, -0.25, 3.0), ("x", "y", "gripper"))),
        ),
        "gripper=3.0 is outside [-1.0, 1.0] (space declared for source 'robot')",
    ),
    "continuous wrong dimensions": (
        2,
        lambda r: (
            r["action"].update(names=["x", "y", "z"]),
            _set_answer(r, ContinuousAction((0.5, -0.25, 1.0), ("x", "y", "z"))),
        ),
        "do not match the space's",
    ),
    "discrete not in set": (
        3,
        lambda r: (r["action"].update(name="jump"), r["conversations"][-1].update(value='discrete(name="jump")')),
        "'jump' is not in the action set",
    ),
    "unknown domain": (2, lambda r: r.update(domain="embodies"), "did you mean 'embodied'?"),
    "domain and action disagree": (
        3,
        lambda r: r.update(domain="gui"),
        "'gui' expects gui actions, but the action is discrete",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_check_reports_its_fault(small_dataset, edit_line, name):
    line, change, words = CASES[name]
    assert validate_dataset(small_dataset).ok
    edit_line(small_dataset / SHARD, line, change)
    report = validate_dataset(small_dataset)
    assert len(report.issues) == 1 and report.bad == 1, format_report(report)  # one fault, one issue
    (issue,) = report.issues
    assert (issue.file, issue.line) == (SHARD, line)
    assert words in issue.message


def test_undecodable_image(small_dataset):
    (small_dataset / "images/00000/000001_0.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    report = validate_dataset(small_dataset)
    assert [(i.line, i.message.split(": ")[0]) for i in report.issues] == [(2, "images[0]")]
    assert "cannot be decoded" in report.issues[0].message
    assert validate_dataset(small_dataset, images="exists").ok


def test_non_utf8_line(small_dataset):
    shard = small_dataset / SHARD
    lines = shard.read_bytes().split(b"\n")
    lines[0] = b'{"meta": "\xff\xfe"}'
    shard.write_bytes(b"\n".join(lines))
    report = validate_dataset(small_dataset)
    assert [(i.line, "not UTF-8" in i.message) for i in report.issues] == [(1, True)]


def test_every_problem_of_every_record_is_reported(small_dataset, edit_line):
    shard = small_dataset / SHARD
    edit_line(shard, 1, lambda r: (r.pop("system"), r["meta"].update(step="3")))
    edit_line(shard, 3, lambda r: r.update(domain="nowhere"))
    (small_dataset / "images/00000/000001_0.png").unlink()
    report = validate_dataset(small_dataset)
    assert report.bad == 3 and report.checked == 3
    assert [(i.line, i.message.split(":")[0]) for i in report.issues] == [
        (1, "system"),
        (1, "meta.step"),
        (2, "images[0]"),
        (3, "domain"),
    ]


def test_domains_declared_in_the_manifest_are_known(small_dataset, edit_line):
    edit_line(small_dataset / SHARD, 3, lambda r: r.update(domain="navigation"))
    assert not validate_dataset(small_dataset).ok
    manifest = json.loads((small_dataset / "manifest.json").read_text())
    manifest["domains"]["navigation"] = "discrete"
    manifest["sources"]["grid"]["domain"] = "navigation"
    (small_dataset / "manifest.json").write_text(json.dumps(manifest))
    assert validate_dataset(small_dataset).ok


def test_source_in_another_domain_than_the_manifest_says(small_dataset, edit_line):
    edit_line(small_dataset / SHARD, 1, lambda r: r["meta"].update(source="grid"))
    (issue,) = validate_dataset(small_dataset).issues
    assert "source 'grid' is in domain 'discrete'" in issue.message


def test_folder_level_issues(small_dataset):
    shard = small_dataset / SHARD
    extra = small_dataset / "shards/shard-00001.jsonl"
    extra.write_text(shard.read_text().splitlines()[0] + "\n")
    report = validate_dataset(small_dataset)
    assert [(i.file, i.line) for i in report.issues] == [("shards/shard-00001.jsonl", None)]
    assert "not listed in manifest.json" in report.issues[0].message
    assert "1 folder-level issue(s)" in format_report(report)

    shard.write_text("".join(shard.read_text().splitlines(keepends=True)[:2]))
    extra.unlink()
    (issue,) = validate_dataset(small_dataset).issues
    assert issue.file == SHARD and "says 3 records but the file has 2 lines" in issue.message

    (small_dataset / "manifest.json").unlink()
    (issue,) = validate_dataset(small_dataset).issues
    assert issue.file == "manifest.json" and "missing" in issue.message


def test_not_a_dataset(tmp_path):
    with pytest.raises(NotADatasetError):
        validate_dataset(tmp_path)
