"""The policy server as a real process: the token, every bad request with its status and message,
32 concurrent sessions, a client killed mid-request, the metrics, and WebSocket = HTTP."""

import base64
import io
import json
import subprocess
import sys
import threading
import time

import httpx
import pytest
from PIL import Image

from omniactor.serving import ServerError
from omniactor.serving.codec import encode_array, encode_image

from .conftest import TOKEN, image

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_health_needs_no_token_and_every_other_route_does(server, client):
    url = server[0]
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
        for method, path in (("GET", "/v1/info"), ("GET", "/metrics"), ("POST", "/v1/sessions"), ("POST", "/v1/act")):
            response = httpx.request(method, f"{url}{path}", headers=headers, json={})
            assert response.status_code == 401, (path, headers)
            assert "bearer token" in response.json()["error"] and response.headers["x-request-id"]
    info = client.info()
    assert list(info["domains"]) == ["gui", "embodied", "discrete"]
    assert info["domains"]["gui"]["action_tokenizer"] == "gui_location" and info["decoding"]["constrained"]


def png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_each_bad_request_gets_its_status_and_a_message_naming_the_field(server, client):
    url = server[0]
    session = client.new_session("click the button", "gui")
    act = f"/v1/sessions/{session}/act"
    cases = [  # (method, path, body: dict or raw bytes, status, words in the message)
        ("POST", "/v1/sessions", b"{not json", 400, "not JSON"),
        ("POST", "/v1/sessions", b"[1, 2]", 422, "JSON object"),
        ("POST", "/v1/sessions", {"instruction": 5, "domain": "gui"}, 422, "instruction: expected str, got int"),
        ("POST", "/v1/sessions", {"instruction": "go"}, 422, "domain: missing"),
        ("POST", "/v1/sessions", {"instruction": "go", "domain": "kitchen"}, 422, "domain: 'kitchen' is not one of"),
        ("POST", "/v1/sessions/nope/act", {"image": png(8, 8)}, 404, "session 'nope': unknown"),
        ("GET", "/v1/sessions/nope", None, 404, "unknown"),
        ("DELETE", "/v1/sessions/nope", None, 404, "unknown"),
        ("POST", act, {}, 422, "image: missing"),
        ("POST", act, {"image": "%%% not base64"}, 400, "image: not base64"),
        ("POST", act, {"image": base64.b64encode(b"hello").decode()}, 400, "image: cannot be decoded"),
        ("POST", act, {"image": 7}, 422, "image: expected a base64 PNG/JPEG, got int"),
        ("POST", act, {"image": png(1200, 1000)}, 400, "1200 x 1000 pixels is over the limit of 1000000"),
        ("POST", act, {"image": png(8, 8), "state": "fast"}, 422, "state: expected a list of numbers"),
        ("POST", act, b"x" * (2 * 1024 * 1024), 413, "over the limit"),
        ("POST", "/v1/act", {"instruction": "go", "domain": "gui", "image": png(8, 8), "history": ["fly()"]}, 422,
         "history[0]"),
        ("POST", "/v1/act", {"instruction": "go", "domain": "gui", "image": png(8, 8), "history": "click"}, 422,
         "history: expected list"),
    ]
    for method, path, body, status, words in cases:
        content = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
        response = httpx.request(method, f"{url}{path}", headers={**AUTH, "Content-Type": "application/json"},
                                 content=content, timeout=30)
        assert response.status_code == status, (path, body if not isinstance(body, bytes) else body[:20],
                                                response.text)
        assert words in response.json()["error"], (words, response.json())
    assert client.session(session)["history"] == []  # none of it touched the session
    answer = client.act(session, image(0))  # and it still acts
    assert answer["action"] and answer["server_timing"]["batch_size"] >= 1
    assert client.session(session)["history"] == [answer["action"]]
    client.close_session(session)


def test_sessions_are_capped(server, client):
    made = []
    with pytest.raises(ServerError) as full:
        for _ in range(41):
            made.append(client.new_session("go", "discrete"))
    assert full.value.status == 429 and "limit of 40 sessions" in str(full.value)
    for session in made:
        client.close_session(session)


def test_32_concurrent_sessions_of_20_acts_each_keep_their_own_history(server):
    from omniactor.serving import Client

    domains = ["gui", "embodied", "discrete"]
    errors, answers = [], {}

    def run(i):
        own = Client(server[0], token=TOKEN)
        try:
            domain = domains[i % 3]
            session = own.new_session(f"task number {i}", domain)
            answers[i] = (session, [own.act(session, {"image": image(100 * i + step)})["action"]
                                    for step in range(20)])
        except Exception as err:  # noqa: BLE001 - counted: the test wants none
            errors.append(repr(err))
        finally:
            own.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(answers) == 32

    reader = Client(server[0], token=TOKEN)
    for i, (session, actions) in answers.items():
        seen = reader.session(session)
        assert seen["instruction"] == f"task number {i}" and seen["history"] == actions
        reader.close_session(session)
    metrics = reader.http.get("/metrics").text
    batched = [line for line in metrics.splitlines() if line.startswith("omniactor_batch_size_sum")]
    counted = [line for line in metrics.splitlines() if line.startswith("omniactor_batch_size_count")]
    assert float(batched[0].split()[-1]) / float(counted[0].split()[-1]) > 1  # concurrent acts were batched
    reader.close()


def test_a_client_killed_mid_request_leaves_the_server_healthy(server, client):
    url = server[0]
    session = client.new_session("click the button", "gui")
    body = json.dumps({"image": encode_image(image(5))})
    script = (f"import httpx; httpx.post({url + f'/v1/sessions/{session}/act'!r}, content={body!r}, "
              f"headers={{'Authorization': 'Bearer {TOKEN}'}}, timeout=60)")
    child = subprocess.Popen([sys.executable, "-c", script])
    time.sleep(0.3)
    child.kill()
    child.wait()
    assert httpx.get(f"{url}/healthz").status_code == 200
    answer = client.act(session, image(6))
    assert answer["action"]
    assert len(client.session(session)["history"]) in (1, 2)  # the killed act may have been answered
    client.close_session(session)


def counter(metrics, route, code):
    for line in metrics.splitlines():
        if line.startswith("omniactor_requests_total{") and f'route="{route}"' in line and f'code="{code}"' in line:
            return float(line.split()[-1])
    return 0.0


def test_metrics_count_the_requests_made(server, client):
    before = client.http.get("/metrics").text
    for _ in range(7):
        httpx.get(f"{server[0]}/healthz")
    with pytest.raises(ServerError):
        client.session("nope")
    after = client.http.get("/metrics").text
    assert counter(after, "/healthz", 200) - counter(before, "/healthz", 200) == 7
    assert counter(after, "/v1/sessions/{id}", 404) - counter(before, "/v1/sessions/{id}", 404) == 1
    for name in ("omniactor_request_seconds_bucket", "omniactor_queue_depth", "omniactor_active_sessions"):
        assert name in after


def test_the_websocket_and_http_give_the_same_actions(server, client):
    import msgpack
    from websockets.sync.client import connect

    url = server[0].replace("http://", "ws://") + "/v1/ws"
    http_session = client.new_session("push the block", "embodied")
    http_actions = [client.act(http_session, image(20 + step))["action"] for step in range(4)]
    with connect(url, additional_headers=AUTH) as ws:
        def call(message):
            ws.send(msgpack.packb(message, use_bin_type=True))
            return msgpack.unpackb(ws.recv(), raw=False)

        session = call({"type": "session", "instruction": "push the block", "domain": "embodied"})["session"]
        ws_actions = [call({"type": "act", "session": session, "image": encode_array(image(20 + step))})["action"]
                      for step in range(4)]
        assert call({"type": "act", "session": "nope", "image": encode_array(image(0))})["status"] == 404
        assert call({"type": "dance"})["status"] == 422
        ws.send(b"\xc1 not msgpack")
        assert msgpack.unpackb(ws.recv(), raw=False)["status"] == 400
        call({"type": "close", "session": session})
    assert ws_actions == http_actions
    client.close_session(http_session)
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus), connect(url):  # no token: the handshake is refused
        pass


def test_a_host_other_machines_reach_needs_a_token_file(trained_checkpoint, capsys):
    from omniactor.cli import main

    assert main(["serve", "--checkpoint", str(trained_checkpoint[0]), "--host", "0.0.0.0"]) == 2
    assert "--token-file" in capsys.readouterr().err


def test_the_stateless_act_takes_the_history_in_the_request(client):
    first = client.act_stateless("open the menu", "discrete", image(1))
    again = client.act_stateless("open the menu", "discrete", image(1), history=[first["action"]])
    assert first["step"] == 1 and again["step"] == 2


@pytest.mark.parametrize("env,task,env_config", [("babyai", "GoToRedBall", {}),
                                                  ("miniwob", "click-button", {"max_steps": 4})])
def test_an_evaluation_through_the_server_takes_the_in_process_actions(server, trained_checkpoint, tmp_path, env,
                                                                      task, env_config):
    """Greedy decoding: ``omniactor eval --server`` and the in-process agent act the same, episode by
    episode (the records' trajectory digests)."""
    from omniactor.envs.registry import get_spec
    from omniactor.evaluation.online import EvalConfig, evaluate

    if get_spec(env).missing():
        pytest.skip(f"{env}: {get_spec(env).install_hint()}")
    common = {"env": env, "tasks": [task], "episodes": 3, "env_config": env_config, "progress": False}
    evaluate(EvalConfig(out=str(tmp_path / "local"), checkpoint=str(trained_checkpoint[0]), **common))
    results = evaluate(EvalConfig(out=str(tmp_path / "served"), server=server[0], token=TOKEN, **common))
    assert results["decoding"]["answers"] > 0

    def episodes(folder):
        lines = (tmp_path / folder / "episodes.jsonl").read_text().splitlines()
        return sorted((r["key"], r["trajectory"], r["steps"], r["success"]) for r in map(json.loads, lines))

    assert episodes("served") == episodes("local")
    assert TOKEN not in (tmp_path / "served" / "eval_config.json").read_text()  # the token is never written


def test_hostile_bodies_and_frames_get_an_answer_not_a_dropped_connection(server, client):
    import msgpack
    from websockets.sync.client import connect

    url = server[0]
    session = client.new_session("click", "gui")
    cases = [(b"[" * 100_000, 400, "not JSON"), (b'{"instruction": ' + b"9" * 5000 + b"}", 400, "not JSON"),
             (json.dumps({"instruction": "x" * 5000, "domain": "gui"}).encode(), 422, "instruction: 5000 characters")]
    for body, status, words in cases:
        response = httpx.post(f"{url}/v1/sessions", content=body, headers=AUTH, timeout=30)
        assert response.status_code == status and words in response.json()["error"], response.text[:200]
    response = httpx.post(f"{url}/v1/sessions/{session}/act", json={"image": encode_image(image(1)),
                                                                    "state": [10**400]}, headers=AUTH)
    assert response.status_code in (400, 422), response.text[:200]  # JSON cannot even carry it as a float
    with connect(url.replace("http://", "ws://") + "/v1/ws", additional_headers=AUTH) as ws:
        ws.send("a text frame")
        assert msgpack.unpackb(ws.recv(), raw=False)["status"] == 400
        huge = {"type": "act", "session": session,
                "image": {"dtype": "uint8", "shape": [2**31 - 1, 2**31 - 1, 3], "data": b""}}
        ws.send(msgpack.packb(huge, use_bin_type=True))
        assert msgpack.unpackb(ws.recv(), raw=False)["status"] == 422
        empty = {"type": "act", "session": session, "image": {"dtype": "uint8", "shape": [0, 5, 3], "data": b""}}
        ws.send(msgpack.packb(empty, use_bin_type=True))
        assert msgpack.unpackb(ws.recv(), raw=False)["status"] == 422
    assert client.session(session)["history"] == [] and client.health()["status"] == "ok"
    client.close_session(session)
