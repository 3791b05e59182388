"""``Agent.act`` takes an Observation, a PIL image, an (H, W, 3) uint8 array or a dict, and says
what it accepts when given anything else."""

import numpy as np
import pytest
from PIL import Image

from omniactor.agent import AgentError
from omniactor.agent.inputs import ObservationError, observation_inputs
from omniactor.envs.base import Observation

from .conftest import random_image


def test_every_accepted_form_gives_the_same_images_and_state():
    image = random_image(0)
    state = [0.5, -1.0]
    forms = [Observation({"main": image}, "go", "embodied", 0, state=np.array(state)),
             {"image": image, "state": state}, {"images": [image], "state": state},
             {"images": {"main": Image.fromarray(image)}, "state": state}]
    for form in forms:
        images, seen_state = observation_inputs(form)
        assert len(images) == 1 and np.array_equal(images[0], image)
        assert np.array_equal(seen_state, state)
    for form in (image, Image.fromarray(image), Image.fromarray(image).convert("RGBA")):
        images, seen_state = observation_inputs(form)
        assert np.array_equal(images[0], image) and seen_state is None


#: (what is given, words the message must hold)
REFUSED = [
    ("a path", "a str is not an observation", "PIL image"),
    (np.zeros((8, 8), dtype=np.uint8), "shape (8, 8)", "(H, W, 3) uint8"),
    (np.zeros((8, 8, 3), dtype=np.float32), "dtype float32", "(H, W, 3) uint8"),
    (np.zeros((8, 8, 4), dtype=np.uint8), "shape (8, 8, 4)", "alpha"),
    ({"img": np.zeros((8, 8, 3), dtype=np.uint8)}, "'image' or 'images'", "['img']"),
    ({"image": np.zeros((8, 8, 3), dtype=np.uint8), "images": []}, "exactly one of", "'images'"),
    ({"images": []}, "observation.images", "non-empty list"),
    ({"images": ["x.png"]}, "observation.images[0]", "not an image"),
    ({"image": np.zeros((8, 8, 3), dtype=np.uint8), "state": "fast"}, "observation.state", "list of numbers"),
    ({"image": np.zeros((8, 8, 3), dtype=np.uint8), "state": [1.0, float("nan")]}, "observation.state", "finite"),
    (None, "a NoneType is not an observation", "dict"),
]


@pytest.mark.parametrize("given,words", [(g, w) for g, *w in REFUSED], ids=[str(i) for i in range(len(REFUSED))])
def test_anything_else_is_refused_saying_what_is_accepted(given, words):
    with pytest.raises(ObservationError) as refused:
        observation_inputs(given)
    for word in words:
        assert word in str(refused.value), (word, str(refused.value))


def test_the_agent_acts_the_same_on_each_form_and_refuses_others_with_an_agent_error(random_agent):
    image = random_image(3)
    actions = []
    for form in (Observation({"main": image}, "click OK", "gui_grid", 0), image, Image.fromarray(image),
                 {"image": image}):
        random_agent.reset("click OK", "gui_grid")
        actions.append(random_agent.act(form))
    assert all(action == actions[0] for action in actions)
    random_agent.reset("click OK", "gui_grid")
    with pytest.raises(AgentError, match="observation 0: a str is not an observation"):
        random_agent.act("screenshot.png")
    assert random_agent.episode.actions == []  # a refused observation leaves the history as it was
