"""The action languages of the text tokenizers: everything they encode is in, out-of-range text is out."""

import regex
from hypothesis import given

from omniactor.actions.free_text import typed_text_pattern
from omniactor.actions.grammar import coordinate, integer_below
from omniactor.actions.tokenizers import build_action_tokenizer

from .strategies import gui_actions

TOKENIZERS = [("gui_text", {}), ("gui_text", {"decimals": 4}), ("gui_location", {"grid": 32}),
              ("gui_location", {"grid": 8, "fine": 4})]
PATTERNS = [(build_action_tokenizer(n, **a), regex.compile(build_action_tokenizer(n, **a).output_pattern()))
            for n, a in TOKENIZERS]


@given(gui_actions)
def test_every_encoded_gui_action_is_a_sentence_of_its_tokenizers_language(action):
    for tokenizer, pattern in PATTERNS:
        text = tokenizer.encode(action)
        assert pattern.fullmatch(text), (tokenizer.name, text)
        assert len(text) <= tokenizer.max_output_chars()


def test_sentences_out_of_range_or_malformed_are_not_in_the_language():
    _, gui_text = PATTERNS[0]
    for bad in ["click(x=1.5, y=0.2)", "click(x=-0.1, y=0.2)", "click(x=0.12345, y=0.2)", "click(x=1, y=0.2)",
                'press_key(key="f13")', 'scroll(direction="diagonal")', 'type(text="\\u0001")', "wait( )",
                'terminate(status="maybe")', "click(x=0.5)", 'open_app(name=" ")']:
        assert not gui_text.fullmatch(bad), bad
    assert gui_text.fullmatch("click(x=0.5, y=", partial=True)  # a prefix can still be completed
    assert not gui_text.fullmatch("click(x=2", partial=True)
    _, grid = PATTERNS[2]
    assert grid.fullmatch("click(<loc_1023>)") and not grid.fullmatch("click(<loc_1024>)")
    assert not grid.fullmatch("click(x=0.5, y=0.5)")  # points must be cells for this tokenizer


def test_grammar_pieces():
    assert regex.fullmatch(integer_below(12), "11") and not regex.fullmatch(integer_below(12), "12")
    assert not regex.fullmatch(integer_below(12), "01")
    assert regex.fullmatch(coordinate(3), "0.125") and not regex.fullmatch(coordinate(3), "0.1255")
    assert regex.fullmatch(typed_text_pattern(3), '"abc"') and not regex.fullmatch(typed_text_pattern(3), '"abcd"')


def test_discrete_phrases_are_their_own_language():
    tokenizer = build_action_tokenizer("discrete_semlang", names=["left", "right", "pickup"])
    pattern = regex.compile(tokenizer.output_pattern())
    assert [bool(pattern.fullmatch(p)) for p in ("turn left", "pick up", "turn", "jump")] == [True, True, False, False]
    assert tokenizer.max_output_chars() == len("turn right")
