"""GUI text / location tokenizers and the discrete Token, Lang and SemLang tokenizers."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniactor.actions import (
    BABYAI_ACTIONS,
    ActionDecodeError,
    ActionValueError,
    Click,
    ContinuousAction,
    DiscreteAction,
    Point,
    Scroll,
    Swipe,
    TypeText,
    points_of,
)
from omniactor.actions.tokenizers import build_action_tokenizer, load_action_tokenizer

from .strategies import discrete_actions, gui_actions


@given(gui_actions, st.integers(1, 4))
def test_gui_text_round_trip_within_rounding(action, decimals):
    tok = build_action_tokenizer("gui_text", decimals=decimals)
    decoded = tok.decode(tok.encode(action))
    assert decoded.type == action.type
    for p, q in zip(points_of(decoded), points_of(action)):
        assert abs(p.x - q.x) <= 0.5 * 10**-decimals + 1e-9 and abs(p.y - q.y) <= 0.5 * 10**-decimals + 1e-9


@given(gui_actions, st.sampled_from([(8, 0), (32, 0), (16, 4), (50, 0)]))
def test_gui_location_decodes_within_half_a_cell(action, grid_fine):
    grid, fine = grid_fine
    tok = build_action_tokenizer("gui_location", grid=grid, fine=fine)
    text = tok.encode(action)
    decoded = tok.decode(text)
    assert decoded.type == action.type
    half_cell = 0.5 / (grid * max(fine, 1))
    for p, q in zip(points_of(decoded), points_of(action), strict=True):
        assert abs(p.x - q.x) <= half_cell + 1e-4 and abs(p.y - q.y) <= half_cell + 1e-4  # + Point's 1e-4 rounding
    assert tok.encode(decoded) == text  # a cell centre lies in its own cell


def test_gui_location_forms_and_vocabulary():
    tok = build_action_tokenizer("gui_location", grid=10)
    assert tok.encode(Click(Point(0.05, 0.05))) == "click(<loc_0>)"
    assert tok.encode(Click(Point(1.0, 1.0))) == "click(<loc_99>)"
    assert tok.encode(Swipe(Point(0.55, 0.05), Point(0.05, 0.95))) == "swipe(<loc_5>, <loc_90>)"
    assert tok.encode(Scroll("down", Point(0.5, 0.5))) == 'scroll(direction="down", <loc_55>)'
    assert tok.encode(TypeText("hi")) == 'type(text="hi")'
    assert len(tok.tokens()) == 100 and tok.tokens()[7] == "<loc_7>"


@pytest.mark.parametrize(
    "text",
    ["click(<loc_100>)", "click(<loc_1><fine_0>)", "click(<loc_1>, <loc_2>)", "swipe(<loc_1>)",
     "click(x=0.5, y=0.5)", "scroll(<loc_3>)", "continuous(x=1.0)", "hello", ""],
)
def test_gui_location_rejects_bad_text(text):
    tok = build_action_tokenizer("gui_location", grid=10)
    assert isinstance(tok.try_decode(text), ActionDecodeError)


def test_gui_tokenizers_refuse_other_domains():
    for name in ("gui_text", "gui_location"):
        tok = build_action_tokenizer(name)
        with pytest.raises(ActionValueError):
            tok.encode(ContinuousAction((0.0,), ("x",)))
        assert isinstance(tok.try_decode("discrete(name=\"left\")"), ActionDecodeError)
        assert isinstance(tok.try_decode([1, 2]), ActionDecodeError)


@pytest.mark.parametrize("name", ["discrete_token", "discrete_lang", "discrete_semlang"])
@given(action=discrete_actions)
def test_discrete_round_trip(name, action):
    tok = build_action_tokenizer(name, names=BABYAI_ACTIONS)
    assert tok.decode(tok.encode(action)) == action


def test_semlang_says_what_actions_do_and_lang_does_not():
    sem = build_action_tokenizer("discrete_semlang", names=BABYAI_ACTIONS)
    lang = build_action_tokenizer("discrete_lang", names=BABYAI_ACTIONS)
    assert sem.encode(DiscreteAction("pickup")) == "pick up"
    assert sem.decode("  Pick   UP ") == DiscreteAction("pickup")
    words = {lang.encode(DiscreteAction(n)) for n in BABYAI_ACTIONS}
    assert len(words) == len(BABYAI_ACTIONS) and not words & set(BABYAI_ACTIONS)
    assert isinstance(lang.try_decode("turn left"), ActionDecodeError)
    with pytest.raises(ActionValueError):
        sem.encode(DiscreteAction("jump"))


def test_discrete_token_codes_and_errors():
    tok = build_action_tokenizer("discrete_token", names=BABYAI_ACTIONS)
    assert tok.encode(DiscreteAction("forward")) == [2]
    assert tok.tokens() == [f"<dact_{i}>" for i in range(7)]
    for bad in ([7], [0, 1], [], "forward"):
        assert isinstance(tok.try_decode(bad), ActionDecodeError)


@pytest.mark.parametrize(
    "name, kwargs, action",
    [
        ("gui_text", {"decimals": 2}, Click(Point(0.5, 0.25))),
        ("gui_location", {"grid": 16, "fine": 3}, Swipe(Point(0.1, 0.2), Point(0.9, 0.8))),
        ("discrete_token", {"names": BABYAI_ACTIONS}, DiscreteAction("toggle")),
        ("discrete_lang", {"names": BABYAI_ACTIONS, "seed": 3}, DiscreteAction("toggle")),
        ("discrete_semlang", {"names": BABYAI_ACTIONS}, DiscreteAction("toggle")),
    ],
)
def test_save_load_round_trip(tmp_path, name, kwargs, action):
    tok = build_action_tokenizer(name, **kwargs)
    loaded = load_action_tokenizer(tok.save(tmp_path / name))
    assert type(loaded) is type(tok) and loaded.config() == tok.config()
    assert loaded.encode(action) == tok.encode(action)
    assert loaded.tokens() == tok.tokens()


def test_registry_suggests_a_close_name():
    with pytest.raises(KeyError, match="did you mean 'uniform'"):
        build_action_tokenizer("unifrom")
