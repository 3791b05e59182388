"""Hypothesis strategies that generate every kind of valid action."""

from hypothesis import strategies as st

from omniactor.actions import (
    BABYAI_ACTIONS,
    KEYS,
    SCROLL_DIRECTIONS,
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
)
from omniactor.actions.free_text import MAX_TEXT_CHARS, SHORT_ESCAPES

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
points = st.builds(Point, unit, unit)

#: every typed text the class accepts: any characters but the control characters without a short
#: JSON escape (``actions.free_text``), up to the length limit
typed_texts = st.text(st.characters(exclude_categories=("Cs",),
                                    exclude_characters=[chr(c) for c in range(0x20) if chr(c) not in SHORT_ESCAPES]),
                      max_size=MAX_TEXT_CHARS)
#: every app name the class accepts: no control characters, no white space at either end
app_names = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=MAX_TEXT_CHARS).map(
    str.strip).filter(bool)

gui_actions = st.one_of(
    st.builds(Click, points),
    st.builds(LongPress, points),
    st.builds(TypeText, typed_texts),
    st.builds(Scroll, st.sampled_from(SCROLL_DIRECTIONS), st.none() | points),
    st.builds(Swipe, points, points),
    st.builds(PressKey, st.sampled_from(KEYS)),
    st.builds(OpenApp, app_names),
    st.just(Wait()),
    st.builds(Terminate, st.sampled_from(["success", "failure"])),
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
dimension_names = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), min_size=1, max_size=8, unique=True).filter(
    lambda names: not any(n in {"if", "in", "is", "or", "as", "def", "for", "and", "not", "del", "try"} for n in names)
)


@st.composite
def continuous_actions(draw, dims: int | None = None, low: float = -1e6, high: float = 1e6):
    names = draw(dimension_names) if dims is None else tuple(f"a{i}" for i in range(dims))
    values = draw(st.lists(st.floats(low, high, allow_nan=False), min_size=len(names), max_size=len(names)))
    return ContinuousAction(tuple(values), tuple(names))


discrete_actions = st.sampled_from(BABYAI_ACTIONS).map(DiscreteAction)
all_actions = st.one_of(gui_actions, continuous_actions(), discrete_actions)
