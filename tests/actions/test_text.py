import json

import pytest
from hypothesis import given

from omniactor.actions import (
    ActionParseError,
    Click,
    ContinuousAction,
    DiscreteAction,
    LongPress,
    OpenApp,
    Point,
    PressKey,
    Scroll,
    Swipe,
    Terminate,
    TypeText,
    Wait,
    action_from_json,
    action_to_json,
    format_action,
    parse_action,
)

from .strategies import all_actions


@given(all_actions)
def test_format_then_parse_returns_an_equal_action(action):
    assert parse_action(format_action(action)) == action


@given(all_actions)
def test_json_round_trip_survives_serialisation(action):
    assert action_from_json(json.loads(json.dumps(action_to_json(action)))) == action


@pytest.mark.parametrize(
    "text, expected",
    [
        ("click(x=0.634, y=0.927)", Click(Point(0.634, 0.927))),
        ("click(0.634, 0.927)", Click(Point(0.634, 0.927))),
        ("click(x=634, y=927)", Click(Point(0.634, 0.927))),  # 0-1000 integer grid
        ("pyautogui.click(x=0.634, y=0.927)", Click(Point(0.634, 0.927))),
        ("pyautogui.click(634, 927)", Click(Point(0.634, 0.927))),
        ("Action: tap send\nOperation: pyautogui.click(x=0.634, y=0.927)", Click(Point(0.634, 0.927))),
        ("long_press(x=0, y=1000)", LongPress(Point(0.0, 1.0))),
        ('type(text="a \\"b\\"\\n")', TypeText('a "b"\n')),
        ('input_text(text="hi")', TypeText("hi")),
        ('pyautogui.write(message="hi")', TypeText("hi")),
        ('pyautogui.typewrite("hi")', TypeText("hi")),
        ('pyautogui.press("Return")', PressKey("enter")),
        ('pyautogui.press(keys="esc")', PressKey("escape")),
        ("pyautogui.scroll(-3)", Scroll("down")),
        ("pyautogui.scroll(5, x=0.5, y=0.5)", Scroll("up", Point(0.5, 0.5))),
        ('scroll(direction="left", x=500, y=500)', Scroll("left", Point(0.5, 0.5))),
        ("drag(x1=0.1, y1=0.2, x2=0.3, y2=0.4)", Swipe(Point(0.1, 0.2), Point(0.3, 0.4))),
        ("navigate_back()", PressKey("back")),
        ("navigate_home()", PressKey("home")),
        ('open_app(app_name="Clock")', OpenApp("Clock")),
        ("wait()", Wait()),
        ("terminate()", Terminate("success")),
        ('terminate(status="failure")', Terminate("failure")),
        ("continuous(x=0.5, gripper=-1)", ContinuousAction((0.5, -1.0), ("x", "gripper"))),
        ('discrete(name="pickup")', DiscreteAction("pickup")),
    ],
)
def test_accepted_variants(text, expected):
    assert parse_action(text) == expected


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("click", "expected a single call"),
        ("click(x=0.5, y=0.5", "not a function call"),
        ("tap(x=0.5, y=0.5)", "unknown action 'tap'"),
        ("click(x=0.5)", "missing argument 'y'"),
        ("click(x=0.5, y=0.5, z=1)", "no argument 'z'"),
        ("click(0.5, y=0.5, x=0.1)", "got argument 'x' twice"),
        ("click(x=1.5, y=0.5)", "outside the screen"),
        ("click(x=1001, y=5)", "outside the 0-1000 grid"),
        ("click(x=0.5, y=500)", "mixes an integer and a decimal"),
        ('click(x="a", y=0.5)', "must be numbers"),
        ("click(x=foo, y=0.5)", "not a literal"),
        ("click(*p)", "*args"),
        ('press_key(key="hyper")', "not a known key"),
        ('scroll(direction="diagonal")', "scroll direction"),
        ("scroll(direction=\"up\", x=0.5)", "both x and y"),
        ("type(text=5)", "quoted string"),
        ('terminate(status="maybe")', "terminate status"),
        ("continuous()", "at least one named dimension"),
        ("continuous(0.1, 0.2)", "named dimensions only"),
        ("continuous(x=nan)", "not a literal"),
        ('continuous(x="1")', "must be a number"),
        ('discrete(name="Turn Left")', "lower_snake_case"),
        ("click(x=0.1, y=0.1)\nclick(x=0.2, y=0.2)", "several lines"),
        ("Operation: click(x=0.1, y=0.1)\nOperation: wait()", "more than one"),
        ("pyautogui.scroll(0)", "non-zero"),
        ("__import__('os').system('true')", "unknown action"),
    ],
)
def test_rejected_text_says_what_is_wrong(text, reason):
    with pytest.raises(ActionParseError) as info:
        parse_action(text)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    "data, reason",
    [
        ([], "JSON object"),
        ({"type": "tap"}, "action type 'tap'"),
        ({"type": "click", "x": 0.5}, "missing field(s) y"),
        ({"type": "click", "x": 0.5, "y": 2}, "outside the screen"),
        ({"type": "continuous", "names": ["x"], "values": [1, 2]}, "2 values but 1"),
        ({"type": "continuous", "names": ["x"], "values": [None]}, "must be numbers"),
        ({"type": "scroll", "direction": "up", "x": 0.5}, "both x and y"),
    ],
)
def test_bad_action_json_names_the_problem(data, reason):
    with pytest.raises(ValueError) as info:
        action_from_json(data)
    assert reason in str(info.value)


def test_canonical_text_is_what_the_paper_shows():
    assert format_action(Click(Point(0.634, 0.927))) == "click(x=0.634, y=0.927)"
    assert format_action(Scroll("down")) == 'scroll(direction="down")'
    assert format_action(ContinuousAction((0.1, -1), ("x", "gripper"))) == "continuous(x=0.1, gripper=-1.0)"
