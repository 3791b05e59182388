import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniactor.actions import ActionValueError, Click, Point, PressKey, Scroll, Swipe, TypeText, points_of

from .strategies import points


def test_points_are_kept_to_four_decimals():
    assert Point(0.123456, 0.99999) == Point(0.1235, 1.0)


@pytest.mark.parametrize("x, y", [(-0.01, 0.5), (0.5, 1.01), (float("nan"), 0.5), (float("inf"), 0.0), (True, 0.5)])
def test_off_screen_points_are_refused(x, y):
    with pytest.raises(ActionValueError):
        Point(x, y)


@given(st.integers(1, 4000), st.integers(1, 4000), st.data())
def test_pixel_round_trip_lands_on_the_same_pixel(width, height, data):
    px = data.draw(st.integers(0, width - 1))
    py = data.draw(st.integers(0, height - 1))
    # the centre of a pixel converts back to that pixel
    assert Point.from_pixels(px + 0.5, py + 0.5, width, height).to_pixels(width, height) == (px, py)


@given(st.integers(0, 1000), st.integers(0, 1000))
def test_grid_round_trip(gx, gy):
    assert Point.from_grid(gx, gy).to_grid() == (gx, gy)


def test_from_pixels_clips_only_when_asked():
    with pytest.raises(ActionValueError):
        Point.from_pixels(1081, 10, 1080, 2400)
    assert Point.from_pixels(1081, 10, 1080, 2400, clip=True).x == 1.0


@given(points)
def test_to_pixels_stays_on_screen(point):
    px, py = point.to_pixels(1080, 2400)
    assert 0 <= px < 1080 and 0 <= py < 2400


def test_points_of_lists_every_point():
    a, b = Point(0.1, 0.2), Point(0.3, 0.4)
    assert points_of(Click(a)) == [a]
    assert points_of(Swipe(a, b)) == [a, b]
    assert points_of(Scroll("up")) == []
    assert points_of(TypeText("x")) == []


def test_named_keys_and_text_types_are_checked():
    with pytest.raises(ActionValueError):
        PressKey("Enter")
    with pytest.raises(ActionValueError):
        TypeText(5)
