"""The session store's cap and idle expiry, and the per-domain checks of an act (domain, state
width), in process on a random agent whose domains take states."""

import asyncio

import numpy as np
import pytest

from omniactor.serving.codec import RequestError, encode_image
from omniactor.serving.sessions import SessionStore


def test_sessions_are_capped_and_dropped_when_idle():
    now = [0.0]
    store = SessionStore(max_sessions=2, idle_seconds=10, clock=lambda: now[0])
    first, second = store.create("a"), store.create("b")
    with pytest.raises(RequestError) as full:
        store.create("c")
    assert full.value.status == 429
    now[0] = 8.0
    store.get(first.id)  # used: its idle time starts again
    now[0] = 15.0
    third = store.create("c")  # the second was idle for 15 s: dropped, room for one
    assert store.expired == 1 and {s for s in store.sessions} == {first.id, third.id}
    with pytest.raises(RequestError) as gone:
        store.get(second.id)
    assert gone.value.status == 404 and "expired" in str(gone.value)
    now[0] = 100.0

    async def busy():  # a session acting now is not dropped, however long its act takes
        async with store.sessions[first.id].lock:
            return store.expire()

    assert asyncio.run(busy()) == 1 and list(store.sessions) == [first.id]


@pytest.fixture(scope="module")
def app_client():
    from starlette.testclient import TestClient

    from omniactor.serving.app import ServeConfig, build_app
    from tests.action_adapters.test_log_probs import build_agent

    with TestClient(build_app(build_agent(), ServeConfig())) as client:
        yield client


def test_a_wrong_domain_or_state_width_is_refused_before_the_model(app_client):
    image = encode_image(np.zeros((56, 56, 3), dtype=np.uint8))
    arm = app_client.post("/v1/sessions", json={"instruction": "reach", "domain": "arm"}).json()["session"]
    cases = [({"image": image}, "state: missing; domain 'arm' takes a state of 3 numbers"),
             ({"image": image, "state": [0.1, 0.2]}, "state: 2 numbers; domain 'arm' takes 3"),
             ({"image": image, "state": [0.1, None, 0.3]}, "state: expected a list of numbers")]
    for body, words in cases:
        response = app_client.post(f"/v1/sessions/{arm}/act", json=body)
        assert response.status_code == 422 and words in response.json()["error"], response.json()
    ok = app_client.post(f"/v1/sessions/{arm}/act", json={"image": image, "state": [0.1, 0.2, 0.3]})
    assert ok.status_code == 200 and ok.json()["action_json"]["type"] == "continuous"
    assert app_client.get(f"/v1/sessions/{arm}").json()["history"] == [ok.json()["action"]]
    unknown = app_client.post("/v1/act", json={"instruction": "go", "domain": "kitchen", "image": image})
    assert unknown.status_code == 422 and "domain: 'kitchen'" in unknown.json()["error"]
