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

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
points = st.builds(Point, unit, unit)
texts = st.text(max_size=40)

gui_actions = st.one_of(
    st.builds(Click, points),
    st.builds(LongPress, points),
    st.builds(TypeText, texts),
    st.builds(Scroll, st.sampled_from(SCROLL_DIRECTIONS), st.none() | points),
    st.builds(Swipe, points, points),
    st.builds(PressKey, st.sampled_from(KEYS)),
    st.builds(OpenApp, texts.filter(lambda s: s.strip() != "")),
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
