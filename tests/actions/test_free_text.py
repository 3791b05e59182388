"""One definition of free text (typed text, app names), both ways: what the classes accept is in every
GUI tokenizer's language, and every sentence of the language parses to an accepted action."""

import pytest
import regex
from hypothesis import example, given
from hypothesis import strategies as st

from omniactor.actions import ActionValueError, OpenApp, TypeText, format_action, parse_action
from omniactor.actions.free_text import (
    MAX_TEXT_CHARS,
    WHITESPACE,
    app_name_pattern,
    check_app_name,
    check_typed_text,
    typed_text_pattern,
)
from omniactor.actions.tokenizers import build_action_tokenizer

from .strategies import app_names, typed_texts

TOKENIZERS = [build_action_tokenizer(name, **args) for name, args in
              [("gui_text", {}), ("gui_text", {"decimals": 4}), ("gui_location", {"grid": 8, "fine": 4})]]
LANGUAGES = [(t, regex.compile(t.output_pattern())) for t in TOKENIZERS]


def test_the_white_space_list_is_what_str_strip_removes():
    assert set(WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


def _accepted(make, text):
    try:
        return make(text)
    except ActionValueError:
        return None


def _assert_in_every_language(action):
    for tokenizer, language in LANGUAGES:
        sentence = tokenizer.encode(action)
        assert language.fullmatch(sentence), (tokenizer.name, sentence)
        assert len(sentence) <= tokenizer.max_output_chars()
        assert tokenizer.decode(sentence) == action


# any string at all: the class either refuses it or its sentence is in every language
@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=MAX_TEXT_CHARS + 5))
@example(" 0")  # what an unpinned run once drew: the class accepted it, the grammar did not
@example("a\x00b")
@example('say "hi" \\ back\nslash\t')
@example("\u3000x\u3000")
@example("x" * MAX_TEXT_CHARS)
@example("x" * (MAX_TEXT_CHARS + 1))
@example("\ud800")
@example("\x85")
def test_every_accepted_free_text_is_a_sentence_of_every_gui_language(text):
    for make in (TypeText, OpenApp):
        action = _accepted(make, text)
        if action is not None:
            _assert_in_every_language(action)


@given(typed_texts, app_names)
def test_the_strategies_draw_only_accepted_text(text, name):
    _assert_in_every_language(TypeText(text))
    _assert_in_every_language(OpenApp(name))


@given(st.from_regex(typed_text_pattern(40), fullmatch=True))
def test_every_typed_text_sentence_parses_to_an_action_written_the_same_way(written):
    sentence = f"type(text={written})"
    action = parse_action(sentence)
    assert isinstance(action, TypeText)
    assert format_action(action) == sentence


@given(st.from_regex(app_name_pattern(40), fullmatch=True))
@example('"a"')
@example('"\\"x\\\\"')
def test_every_app_name_sentence_parses_to_an_action_written_the_same_way(written):
    sentence = f"open_app(name={written})"
    action = parse_action(sentence)
    assert isinstance(action, OpenApp)
    assert format_action(action) == sentence


@given(st.data())
def test_every_sentence_of_each_gui_language_decodes_and_is_written_back_into_it(data):
    tokenizer, language = data.draw(st.sampled_from(LANGUAGES))
    sentence = data.draw(st.from_regex(tokenizer.output_pattern(text_limit=20), fullmatch=True))
    action = tokenizer.decode(sentence)
    assert language.fullmatch(tokenizer.encode(action)), sentence


@pytest.mark.parametrize("make, value, message", [
    (OpenApp, " 0", "white space at an end: strip it ('0')"),
    (OpenApp, "Maps\u3000", "white space at an end"),
    (OpenApp, "", "1 to 200 characters"),
    (OpenApp, "   ", "non-empty app name"),
    (OpenApp, "a\tb", "control character '\\t'"),
    (OpenApp, "a\x85b", "control character"),
    (OpenApp, 3, "must be a string"),
    (TypeText, "a\x00b", "control character '\\x00'"),
    (TypeText, "x" * 201, "0 to 200 characters, got 201"),
    (TypeText, "\ud800", "lone surrogate"),
    (TypeText, None, "must be a string"),
])
def test_refused_fields_say_what_is_wrong(make, value, message):
    with pytest.raises(ActionValueError, match=regex.escape(message)):
        make(value)


def test_checks_return_the_value_they_accept():
    assert check_typed_text("") == "" and check_typed_text('a "b"\n') == 'a "b"\n'
    assert check_app_name("Google Maps") == "Google Maps"
