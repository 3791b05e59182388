"""Sample: JSON round-trip, and check_record naming the field of every problem."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from omniactor.actions import (
    DiscreteAction,
    Point,
    format_action,
    parse_action,
)
from omniactor.actions.gui import Click
from omniactor.data import Sample, SampleError, action_kind, build_sample, check_record

from ..actions.strategies import all_actions


def make(action=None, **extra_meta) -> Sample:
    return build_sample(
        domain="gui",
        instruction="tap ok",
        action=action or Click(Point(0.25, 0.75)),
        source="src",
        episode="e1",
        step=2,
        images=["images/00000/000000_0.png"],
        **extra_meta,
    )


def fields(record) -> list[str]:
    return [p.field for p in check_record(record).problems]


def test_round_trip_through_json_text():
    sample = make(app="Settings")
    text = json.dumps(sample.to_json())
    again = Sample.from_json(json.loads(text))
    assert again == sample
    assert again.meta == {"source": "src", "episode": "e1", "step": 2, "instruction": "tap ok", "app": "Settings"}
    assert again.answer == format_action(sample.action)
    assert list(sample.to_json())[:3] == ["meta", "domain", "action"]  # meta first: a cut line still names itself


def test_integer_episode_becomes_a_string():
    sample = build_sample(
        domain="discrete",
        instruction="go",
        action=DiscreteAction("left"),
        source="s",
        episode=17,
        step=0,
        images=["a.png"],
    )
    assert sample.episode == "17"


@given(all_actions)
def test_any_action_round_trips(action):
    domain = {"gui": "gui", "continuous": "embodied", "discrete": "discrete"}[action_kind(action)]
    sample = build_sample(
        domain=domain,
        instruction="do it",
        action=action,
        source="s",
        episode="e",
        step=0,
        images=["i.png"],
        system="sys",
    )
    assert sample.problems() == []
    assert Sample.from_json(json.loads(json.dumps(sample.to_json()))) == sample


def test_thought_gives_the_two_line_answer_that_parses_to_the_action():
    action = Click(Point(0.634, 0.927))
    sample = build_sample(
        domain="gui",
        instruction="x",
        action=action,
        source="s",
        episode="e",
        step=0,
        images=["i.png"],
        thought="Tap  the\nsend button.",
    )
    assert sample.answer == "Action: Tap the send button.\nOperation: click(x=0.634, y=0.927)"
    assert parse_action(sample.answer) == action
    assert sample.problems() == []


def test_from_json_names_every_bad_field():
    record = make().to_json()
    record["meta"]["step"] = -1
    del record["system"]
    with pytest.raises(SampleError) as info:
        Sample.from_json(record, where="shard:3")
    assert [p.field for p in info.value.problems] == ["system", "meta.step"]
    assert "shard:3" in str(info.value) and "meta.step: must be a non-negative integer" in str(info.value)


@pytest.mark.parametrize(
    "change, field, words",
    [
        (lambda r: r.pop("domain"), "domain", "is missing"),
        (lambda r: r.update(tools="[]"), "tools", "put extra information in meta"),
        (lambda r: r.update(system=3), "system", "must be a string"),
        (lambda r: r.update(images="a.png"), "images", "list of relative paths"),
        (lambda r: r.update(images=["/abs/a.png"]), "images[0]", "absolute"),
        (lambda r: r.update(images=["../a.png"]), "images[0]", "outside the dataset folder"),
        (lambda r: r["meta"].pop("source"), "meta.source", "is missing"),
        (lambda r: r["meta"].update(episode=True), "meta.episode", "string or an integer"),
        (lambda r: r.update(conversations=[]), "conversations", "non-empty list"),
        (lambda r: r["conversations"][0].update({"from": "user"}), "conversations[0].from", "'human' or 'gpt'"),
        (lambda r: r["conversations"].reverse(), "conversations", "alternate"),
        (lambda r: r["conversations"].append({"from": "human", "value": "more"}), "conversations", "end with gpt"),
        (lambda r: r["conversations"][0].update(value="no marker"), "conversations", "0 <image> marker(s)"),
        (
            lambda r: r.update(
                conversations=[{"from": "human", "value": "hi"}, {"from": "gpt", "value": "<image>"}]
                + r["conversations"]
            ),
            "conversations[1].value",
            "must not hold",
        ),
        (lambda r: r.update(action={"type": "fly"}), "action", "not one of"),
        (lambda r: r.update(action={"type": "click", "x": 1.7, "y": 0.2}), "action", "outside the screen"),
        (lambda r: r["conversations"][1].update(value="tap the button"), "conversations[1].value", "does not parse"),
        (lambda r: r["conversations"][1].update(value="click(x=0.3, y=0.75)"), "conversations[1].value", "differs"),
    ],
)
def test_each_record_check_reports_its_field(change, field, words):
    record = make().to_json()
    change(record)
    problems = check_record(record).problems
    assert [p.field for p in problems] == [field], problems
    assert words in problems[0].message


def test_bad_action_is_not_also_compared_with_the_answer():
    record = make().to_json()
    record["action"] = {"type": "click", "x": 1.7, "y": 0.2}
    assert fields(record) == ["action"]  # one root cause, one problem


def test_not_an_object():
    assert fields([1, 2]) == ["record"]


def test_history_turns_are_allowed():
    record = make().to_json()
    turns = record["conversations"]
    record["conversations"] = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "wait()"}] + turns
    assert fields(record) == []
