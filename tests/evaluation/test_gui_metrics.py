"""Step scoring under each protocol, against hand-worked cases (boundaries included).

Every expected verdict below was worked out by hand from the protocol's definition
(docs/evaluation.md); the comments show the arithmetic.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from omniactor.actions import (
    Click,
    ContinuousAction,
    LongPress,
    OpenApp,
    Point,
    PressKey,
    Scroll,
    Swipe,
    Terminate,
    TypeText,
    Wait,
)
from omniactor.data import build_sample
from omniactor.evaluation.gui_metrics import (
    PROTOCOLS,
    Target,
    UnknownProtocolError,
    anls,
    get_protocol,
    levenshtein,
    parse_protocols,
    score_step,
    token_f1,
    view_direction,
)

P = Point


def click(x: float, y: float) -> Click:
    return Click(P(x, y))


def verdict(prediction, target, protocol):
    score = score_step(prediction, target, protocol)
    return score.type_match, score.grounding, score.step_success, score.cause


def sample_with(action, **meta):
    return build_sample(domain="gui", instruction="do it", action=action, source="test", episode="e1", step=0, **meta)


# ---------------------------------------------------------------------------- text helpers


def test_token_f1_levenshtein_anls_exact_values():
    assert token_f1("a b", "a c") == Fraction(1, 2)  # 1 shared of 2 and 2: 2*1/(2+2)
    assert token_f1("Hello World", "hello world") == 1  # lower-cased
    assert token_f1("a a b", "a b") == 1  # sets, not counts
    assert token_f1("a", "a b c") == Fraction(1, 2)  # P=1, R=1/3: 2*1/(1+3)
    assert token_f1("", "a") == 0
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert anls("abcd", "abxy") == Fraction(1, 2)  # 2 edits of 4
    assert anls("query zzz", "query 0") == Fraction(2, 3)  # 3 edits (1 substitution, 2 deletions) of 9
    assert anls("", "") == 1


# ---------------------------------------------------------------------------- osatlas


def test_osatlas_click_at_exactly_014_is_correct_and_just_beyond_is_not():
    gt = click(0.5, 0.5)
    assert verdict(click(0.64, 0.5), gt, "osatlas") == (True, True, True, None)  # 0.64 - 0.5 = 0.14
    assert verdict(click(0.6401, 0.5), gt, "osatlas") == (True, False, False, "point_off_target")
    assert verdict(click(0.36, 0.5), gt, "osatlas")[2]  # the other side
    # 140 on the 0-1000 grid, the paper's unit
    assert verdict(Click(P.from_grid(640, 500)), Click(P.from_grid(500, 500)), "osatlas")[2]
    assert not verdict(Click(P.from_grid(641, 500)), Click(P.from_grid(500, 500)), "osatlas")[2]


def test_osatlas_distance_is_euclidean_not_per_axis():
    gt = click(0.5, 0.5)
    assert verdict(click(0.584, 0.612), gt, "osatlas")[2]  # 3-4-5: sqrt(0.084^2 + 0.112^2) = 0.14 exactly
    assert not verdict(click(0.6, 0.6), gt, "osatlas")[2]  # 0.1 on each axis, 0.1414 in all: per-axis would pass


def test_osatlas_boundary_is_exact_where_floats_are_not():
    # in floats 0.55 - 0.41 = 0.14000000000000007 and hypot(0.084, 0.112) from (0.35, 0.35) = 0.14000000000000004
    assert verdict(click(0.55, 0.5), click(0.41, 0.5), "osatlas")[2]
    assert verdict(click(0.434, 0.462), click(0.35, 0.35), "osatlas")[2]
    assert not verdict(click(0.5501, 0.5), click(0.41, 0.5), "osatlas")[2]


def test_osatlas_ignores_the_target_box():
    step = sample_with(click(0.5, 0.5), target_box=[0.0, 0.0, 1.0, 1.0])
    assert verdict(click(0.9, 0.9), step, "osatlas") == (True, False, False, "point_off_target")
    assert not score_step(click(0.9, 0.9), step, "osatlas").box_fallback


def test_osatlas_text_token_f1_must_exceed_one_half():
    gt = TypeText("a c")
    assert verdict(TypeText("a b"), gt, "osatlas") == (True, None, False, "text_mismatch")  # F1 = 0.5 exactly
    assert verdict(TypeText("a"), TypeText("a b c"), "osatlas")[2] is False  # F1 = 2*1/(1+3) = 0.5
    assert verdict(TypeText("a b c"), TypeText("a b d"), "osatlas")[2]  # F1 = 2*2/6 = 0.667
    assert verdict(TypeText("Hello World"), TypeText("hello world"), "osatlas")[2]  # lower-cased tokens
    assert verdict(TypeText(""), TypeText(""), "osatlas")[2]  # equal strings (F1 of no tokens is 0)
    assert verdict(TypeText("hello"), TypeText("hello 1000"), "osatlas")[2]  # 2*1/(1+2) = 0.667
    assert verdict(OpenApp("Google Maps"), OpenApp("Maps"), "osatlas")[2]  # 2*1/(2+1)
    assert verdict(OpenApp("Gmail"), OpenApp("Google Mail"), "osatlas")[3] == "wrong_app"


def test_osatlas_types_keys_and_statuses():
    assert verdict(LongPress(P(0.5, 0.5)), click(0.5, 0.5), "osatlas") == (False, None, False, "wrong_type")
    assert verdict(click(0.5, 0.5), LongPress(P(0.5, 0.5)), "osatlas")[3] == "wrong_type"
    # PRESS_BACK and PRESS_HOME are different actions; so are COMPLETE and IMPOSSIBLE
    assert verdict(PressKey("home"), PressKey("back"), "osatlas") == (False, None, False, "wrong_type")
    assert verdict(Terminate("failure"), Terminate("success"), "osatlas") == (False, None, False, "wrong_type")
    assert verdict(PressKey("back"), PressKey("back"), "osatlas") == (True, None, True, None)
    # scroll by direction; the gesture point does not matter; a swipe is another action
    assert verdict(Scroll("down", P(0.1, 0.1)), Scroll("down"), "osatlas") == (True, None, True, None)
    assert verdict(Scroll("up"), Scroll("down"), "osatlas") == (True, None, False, "wrong_direction")
    assert verdict(Swipe(P(0.5, 0.8), P(0.5, 0.2)), Scroll("down"), "osatlas")[3] == "wrong_type"
    assert verdict(Wait(), Wait(), "osatlas") == (True, None, True, None)


# ---------------------------------------------------------------------------- qwen25vl

BOX = [0.4, 0.4, 0.6, 0.5]  # 0.2 x 0.1; enlarged 1.2x about (0.5, 0.45): x in [0.38, 0.62], y in [0.39, 0.51]


def test_qwen25vl_enlarged_box_edges_inclusive():
    step = sample_with(click(0.5, 0.45), target_box=BOX)
    assert verdict(click(0.62, 0.45), step, "qwen25vl") == (True, True, True, None)  # on the enlarged edge
    assert verdict(click(0.6201, 0.45), step, "qwen25vl")[3] == "point_off_target"  # 0.1201 away, outside
    assert verdict(click(0.38, 0.45), step, "qwen25vl")[2]
    assert not verdict(click(0.3799, 0.45), step, "qwen25vl")[2]
    assert verdict(click(0.5, 0.51), step, "qwen25vl")[2]
    assert not verdict(click(0.5, 0.5101), step, "qwen25vl")[2]
    assert verdict(click(0.62, 0.51), step, "qwen25vl")[2]  # the enlarged corner
    assert not verdict(click(0.6, 0.52), step, "qwen25vl")[2]  # inside in x, 0.01 below in y, 0.1204 away


def test_qwen25vl_distance_004_alone_or_beside_the_box():
    gt = click(0.5, 0.5)
    assert verdict(click(0.54, 0.5), gt, "qwen25vl")[2]  # exactly 0.04, no box known
    assert not verdict(click(0.5401, 0.5), gt, "qwen25vl")[2]
    assert verdict(click(0.524, 0.532), gt, "qwen25vl")[2]  # 3-4-5: 0.04 exactly
    assert score_step(click(0.54, 0.5), gt, "qwen25vl").box_fallback  # counted: the protocol wanted a box
    # outside the enlarged box (x > 0.62) but within 0.04 of a true point on the box's edge
    step = sample_with(click(0.6, 0.45), target_box=BOX)
    assert verdict(click(0.63, 0.45), step, "qwen25vl")[2]
    assert not score_step(click(0.63, 0.45), step, "qwen25vl").box_fallback


def test_qwen25vl_swipe_is_scroll_and_status_is_ignored():
    up_finger = Swipe(P(0.5, 0.8), P(0.5, 0.2))  # the finger moves up: what is below comes into view
    assert verdict(up_finger, Scroll("down"), "qwen25vl") == (True, None, True, None)
    assert verdict(Swipe(P(0.5, 0.2), P(0.5, 0.8)), Scroll("down"), "qwen25vl")[3] == "wrong_direction"
    assert verdict(Scroll("down"), up_finger, "qwen25vl")[2]
    assert verdict(Terminate("failure"), Terminate("success"), "qwen25vl") == (True, None, True, None)
    assert verdict(PressKey("home"), PressKey("back"), "qwen25vl") == (True, None, False, "wrong_key")
    assert verdict(LongPress(P(0.5, 0.5)), click(0.5, 0.5), "qwen25vl")[3] == "wrong_type"


def test_qwen25vl_text_containment_case_insensitive():
    assert verdict(TypeText("hello"), TypeText("Hello World "), "qwen25vl")[2]
    assert verdict(TypeText("say HELLO WORLD now"), TypeText("hello world"), "qwen25vl")[2]
    assert verdict(TypeText("a b"), TypeText("a c"), "qwen25vl")[3] == "text_mismatch"
    assert verdict(TypeText(""), TypeText("anything"), "qwen25vl")[2]  # the reference's leniency, kept
    assert verdict(OpenApp("maps"), OpenApp("Google Maps"), "qwen25vl")[2]


# ---------------------------------------------------------------------------- gea


def test_gea_five_cells_of_a_50_grid():
    gt = click(0.5, 0.5)  # cell 25
    assert verdict(click(0.6199, 0.5), gt, "gea") == (True, True, True, None)  # cell 30: 5 away
    assert verdict(click(0.62, 0.5), gt, "gea")[3] == "point_off_target"  # cell 31: 6 away
    assert verdict(click(0.4, 0.5), gt, "gea")[2]  # cell 20
    assert not verdict(click(0.3999, 0.5), gt, "gea")[2]  # cell 19
    # cells, not distance: 0.1001 apart but 6 cells (24 vs 30)
    assert not verdict(click(0.6, 0.5), click(0.4999, 0.5), "gea")[2]
    # per axis: 5 cells on both axes passes (7.07 cells on the diagonal)
    assert verdict(click(0.6, 0.6), gt, "gea")[2]
    assert not verdict(click(0.6, 0.62), gt, "gea")[2]


def test_gea_right_edge_is_the_last_cell():
    assert verdict(click(0.88, 0.5), click(1.0, 0.5), "gea")[2]  # 44 vs 49 (x = 1.0 is in cell 49, not 50)
    assert not verdict(click(0.8799, 0.5), click(1.0, 0.5), "gea")[2]  # 43 vs 49


def test_gea_text_containment_and_arguments():
    assert verdict(TypeText("Hello"), TypeText("hello there"), "gea")[2]
    assert verdict(TypeText("query zzz"), TypeText("query 0"), "gea")[3] == "text_mismatch"
    assert verdict(Terminate("failure"), Terminate("success"), "gea") == (True, None, False, "wrong_status")
    assert verdict(PressKey("home"), PressKey("back"), "gea") == (True, None, False, "wrong_key")
    assert verdict(Swipe(P(0.5, 0.8), P(0.5, 0.2)), Scroll("down"), "gea")[3] == "wrong_type"
    assert verdict(OpenApp("Gmail"), OpenApp("Calendar"), "gea")[3] == "wrong_app"


# ---------------------------------------------------------------------------- odyssey


def test_odyssey_sam2_box_as_is_or_014():
    step = sample_with(click(0.45, 0.45), target_box=[0.4, 0.4, 0.6, 0.5], sam2_bbox=[400, 400, 600, 500])
    assert verdict(click(0.6, 0.45), step, "odyssey") == (True, True, True, None)  # box edge, 0.15 away
    assert verdict(click(0.6001, 0.45), step, "odyssey")[3] == "point_off_target"  # not enlarged; 0.1501 away
    assert not verdict(click(0.59, 0.52), step, "odyssey")[2]  # outside (y > 0.5), sqrt(0.14^2 + 0.07^2) = 0.1565
    assert not verdict(click(0.5, 0.59), step, "odyssey")[2]  # outside, sqrt(0.05^2 + 0.14^2) = 0.1487
    assert verdict(click(0.45, 0.59), step, "odyssey")[2]  # outside, exactly 0.14 below


def test_odyssey_without_box_falls_back_to_distance_and_counts_it():
    gt = click(0.5, 0.5)
    score = score_step(click(0.5, 0.64), gt, "odyssey")
    assert (score.step_success, score.box_fallback) == (True, True)
    assert not score_step(click(0.5, 0.6401), gt, "odyssey").step_success


def test_odyssey_box_from_sam2_bbox_alone():
    step = sample_with(click(0.45, 0.45), sam2_bbox=[600, 500, 400, 400])  # corners in any order, grid units
    assert Target.from_sample(step).box == (0.4, 0.4, 0.6, 0.5)
    assert verdict(click(0.6, 0.45), step, "odyssey")[2]


def test_odyssey_text_containment_or_anls():
    assert verdict(TypeText("query zzz"), TypeText("query 0"), "odyssey")[2]  # ANLS 2/3
    assert verdict(TypeText("abxy"), TypeText("abcd"), "odyssey")[2]  # ANLS 0.5 exactly: >= passes
    assert verdict(TypeText("axyz"), TypeText("abcd"), "odyssey")[3] == "text_mismatch"  # ANLS 0.25
    assert verdict(TypeText(" world "), TypeText("hello world"), "odyssey")[2]  # containment after strip
    # case-sensitive: not contained, ANLS("Hello", "hello world") = 1 - 7/11
    assert verdict(TypeText("Hello"), TypeText("hello world"), "odyssey")[3] == "text_mismatch"


def test_odyssey_types_scroll_keys_and_statuses():
    assert verdict(Swipe(P(0.5, 0.8), P(0.5, 0.2)), Scroll("down"), "odyssey") == (True, None, True, None)
    assert verdict(Scroll("right"), Scroll("down"), "odyssey")[3] == "wrong_direction"
    assert verdict(PressKey("home"), PressKey("back"), "odyssey")[3] == "wrong_type"  # PRESS_HOME vs PRESS_BACK
    assert verdict(Terminate("failure"), Terminate("success"), "odyssey")[3] == "wrong_type"  # IMPOSSIBLE vs COMPLETE
    assert verdict(LongPress(P(0.5, 0.5)), LongPress(P(0.5, 0.6)), "odyssey") == (True, True, True, None)


# ---------------------------------------------------------------------------- every protocol


ALL_TRUTHS = [
    click(0.3, 0.7), LongPress(P(0.1, 0.9)), TypeText("hello"), Scroll("left"), Swipe(P(0.2, 0.5), P(0.8, 0.5)),
    PressKey("back"), OpenApp("Gmail"), Wait(), Terminate("success"), Terminate("failure"),
]


@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_every_protocol_accepts_the_truth_and_rejects_nothing_parsed(name):
    for truth in ALL_TRUTHS:
        score = score_step(truth, truth, name)
        assert (score.type_match, score.step_success, score.cause) == (True, True, None), (name, truth)
        assert score.action_type == truth.type
        assert (score.grounding is not None) == isinstance(truth, (Click, LongPress))
        assert verdict(None, truth, name) == (False, None, False, "unparsable")
        robot = ContinuousAction((0.1, 0.2))
        assert verdict(robot, truth, name) == (False, None, False, "wrong_type")


def test_swipe_direction_ties_go_vertical():
    assert view_direction(Swipe(P(0.5, 0.5), P(0.7, 0.3))) == "down"  # |dx| == |dy|: the finger went up
    assert view_direction(Swipe(P(0.5, 0.5), P(0.7, 0.41))) == "left"  # finger right: the left comes into view


def test_registry_names_and_did_you_mean():
    assert [p.name for p in parse_protocols("all")] == ["osatlas", "qwen25vl", "gea", "odyssey"]
    assert [p.name for p in parse_protocols("odyssey, osatlas,odyssey")] == ["odyssey", "osatlas"]
    assert get_protocol("OSAtlas").name == "osatlas"
    with pytest.raises(UnknownProtocolError, match="did you mean 'qwen25vl'"):
        get_protocol("qwen2.5vl")
    with pytest.raises(UnknownProtocolError, match="known: osatlas, qwen25vl, gea, odyssey"):
        parse_protocols("")


def test_bad_target_box_names_the_sample_and_field():
    step = sample_with(click(0.5, 0.5), target_box=[0.1, 0.2, 1.5, 0.3])
    with pytest.raises(ValueError, match=r"episode e1, step 0: meta.target_box must be \[x1, y1, x2, y2\]"):
        score_step(click(0.5, 0.5), step, "qwen25vl")
    with pytest.raises(TypeError, match="must be a GUI action"):
        score_step(click(0.5, 0.5), ContinuousAction((0.0,)), "osatlas")
