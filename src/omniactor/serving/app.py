"""The policy server's application (Starlette): the HTTP JSON API, the msgpack WebSocket, the
checks every request passes, and the Prometheus metrics. ``docs/serving.md`` documents the API.

Every request is checked before it reaches the model (size, token, JSON, field types, image,
domain, state width), so that a batch only holds requests that can be answered; an error is a
JSON body ``{"error": message, "request_id": ...}`` with its status, never a traceback, and
never a session half-updated (an act's action enters the history only when it is answered).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .batcher import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_MS, Batcher
from .codec import MAX_PIXELS, RequestError, decode_image, decode_state, field
from .sessions import SessionStore

LOG = logging.getLogger("omniactor.serve")
#: a client's X-Request-ID is kept when it looks like an id
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: routes that answer without a token
OPEN_ROUTES = ("/healthz",)
#: the longest instruction and the longest history a request may carry
MAX_INSTRUCTION_CHARS = 4096
MAX_HISTORY = 256


@dataclass
class ServeConfig:
    max_batch: int = DEFAULT_MAX_BATCH
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    max_sessions: int = 1024
    session_idle_s: float = 600.0
    max_body_bytes: int = 8 * 1024 * 1024
    max_pixels: int = MAX_PIXELS
    max_queue: int = 1024  # acts waiting for the model; more get 503
    token: str | None = None


class Metrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("omniactor_requests", "requests by route and status code", ["route", "code"],
                                registry=self.registry)
        self.latency = Histogram("omniactor_request_seconds", "request latency by route", ["route"],
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30),
                                 registry=self.registry)
        self.batch_size = Histogram("omniactor_batch_size", "requests per act_batch call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.queue_depth = Gauge("omniactor_queue_depth", "acts waiting for the model", registry=self.registry)
        self.sessions = Gauge("omniactor_active_sessions", "open sessions", registry=self.registry)
        self.failures = Counter("omniactor_act_failures", "acts answered with an error after reaching the model",
                                ["kind"], registry=self.registry)

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def route_of(path: str) -> str:
    """The route template of a path (bounded label values)."""
    if path.startswith("/v1/sessions/"):
        return "/v1/sessions/{id}/act" if path.endswith("/act") else "/v1/sessions/{id}"
    known = ("/healthz", "/metrics", "/v1/info", "/v1/sessions", "/v1/act", "/v1/ws")
    return path if path in known else "other"


class Guard:
    """ASGI middleware: a request id, the bearer token (constant time), the body limit by
    ``Content-Length``, and the request's metrics and log line."""

    def __init__(self, app: Any, config: ServeConfig, metrics: Metrics):
        self.app, self.config, self.metrics = app, config, metrics
        self.token = config.token.encode() if config.token else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        rid = given if REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid
        route, started, status = route_of(scope["path"]), time.perf_counter(), [0]

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        refusal = self.refusal(scope, headers)
        try:
            if refusal is not None:
                if scope["type"] == "websocket":
                    status[0] = refusal[0]
                    await send({"type": "websocket.close", "code": 1008, "reason": refusal[1][:120]})
                else:
                    await error_response(refusal[0], refusal[1], rid)(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            code = str(status[0] or (101 if scope["type"] == "websocket" else 500))
            self.metrics.requests.labels(route, code).inc()
            self.metrics.latency.labels(route).observe(seconds)
            LOG.info("rid=%s %s %s %s %.1fms", rid, scope.get("method", "WS"), scope["path"], code, seconds * 1000)

    def refusal(self, scope: dict, headers: dict[str, str]) -> tuple[int, str] | None:
        if self.token is not None and scope["path"] not in OPEN_ROUTES:
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token):
                return 401, "missing or wrong bearer token (Authorization: Bearer <token>)"
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.config.max_body_bytes):
            return 413, f"the body is over the limit of {self.config.max_body_bytes} bytes"
        return None


def error_response(status: int, message: str, rid: str) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message, "request_id": rid}, status_code=status)


def build_app(agent: Any, config: ServeConfig) -> Any:
    """The ASGI application serving ``agent``."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocketDisconnect

    from .. import __version__
    from ..actions import action_to_json, format_action, parse_action
    from ..actions.errors import ActionError
    from ..agent.agent import Episode

    metrics = Metrics()
    store = SessionStore(config.max_sessions, config.session_idle_s)
    batcher = Batcher(agent, config.max_batch, config.max_wait_ms, on_batch=metrics.batch_size.observe,
                      max_queue=config.max_queue)
    widths = agent.state_widths()

    def instruction_of(data: dict[str, Any]) -> str:
        instruction = field(data, "instruction", str)
        if len(instruction) > MAX_INSTRUCTION_CHARS:
            raise RequestError(422, f"instruction: {len(instruction)} characters, over the limit of "
                                    f"{MAX_INSTRUCTION_CHARS}")
        return instruction

    def domain_of(data: dict[str, Any]) -> str:
        domain = field(data, "domain", str)
        if domain not in agent.settings.domains:
            raise RequestError(422, f"domain: {domain!r} is not one of the model's domains {agent.settings.names}")
        return domain

    async def observation(data: dict[str, Any], domain: str) -> dict[str, Any]:
        from starlette.concurrency import run_in_threadpool

        if "image" not in data or data["image"] is None:
            raise RequestError(422, "image: missing")
        # decoding a large image takes a while: off the event loop (and off the inference thread)
        image = await run_in_threadpool(decode_image, data["image"], "image", config.max_pixels)
        state = decode_state(data.get("state"))
        width = widths.get(domain)
        if width is not None:
            if state is None:
                raise RequestError(422, f"state: missing; domain {domain!r} takes a state of {width} numbers")
            if len(state) != width:
                raise RequestError(422, f"state: {len(state)} numbers; domain {domain!r} takes {width}")
        return {"image": image, "state": state if width is not None else None}

    async def read_json(request: Any) -> dict[str, Any]:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > config.max_body_bytes:
                raise RequestError(413, f"the body is over the limit of {config.max_body_bytes} bytes")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as err:  # not JSON, nested too deep, a number too long
            raise RequestError(400, f"the body is not JSON that can be read ({type(err).__name__}: {err})"[:300]) from None
        if not isinstance(data, dict):
            raise RequestError(422, f"the body must be a JSON object, got {type(data).__name__}")
        return data

    async def act(episode: Any, seen: dict[str, Any], session: str | None = None) -> dict[str, Any]:
        """One act of ``episode``: the model acts on a copy, and the action joins the episode's history
        only once it is answered, so a failed or abandoned act leaves the history as it was."""
        started = time.perf_counter()
        metrics.queue_depth.set(batcher.depth + 1)
        done = await batcher.act(Episode(episode.instruction, episode.domain, list(episode.actions)), seen, session)
        metrics.queue_depth.set(batcher.depth)
        if done.error is not None:
            metrics.failures.labels("error").inc()
            LOG.error("act failed: %s: %s", type(done.error).__name__, done.error)
            raise RequestError(500, f"the model could not act ({type(done.error).__name__}); the session is unchanged")
        if not done.decoded.valid:  # impossible under constrained decoding; counted, and not kept
            metrics.failures.labels("undecodable").inc()
            raise RequestError(500, f"the model's answer did not decode ({done.decoded.error}); the session is "
                                    "unchanged")
        action = done.decoded.action
        episode.actions.append(action)
        return {"action": format_action(action), "action_json": action_to_json(action),
                "step": len(episode.actions),
                "server_timing": {"queue_ms": round(done.queue_ms, 3), "inference_ms": round(done.inference_ms, 3),
                                  "batch_size": done.batch_size,
                                  "total_ms": round((time.perf_counter() - started) * 1000, 3)}}

    def answer(handler: Any) -> Any:
        async def endpoint(request: Any) -> Any:
            rid = request.scope["state"]["request_id"]
            try:
                return JSONResponse(await handler(request))
            except RequestError as err:
                return error_response(err.status, str(err), rid)
            except Exception as err:
                LOG.exception("rid=%s unexpected error", rid)
                return error_response(500, f"the server failed on this request ({type(err).__name__})", rid)
        return endpoint

    async def health(request: Any) -> Any:
        return JSONResponse({"status": "ok"})

    async def info(request: Any) -> dict[str, Any]:
        domains = {d: {"output": s.output, "action_tokenizer": agent.action_tokenizers[d].name,
                       "history": s.history, "image_size": s.image_size, "state_width": s.state_width}
                   for d, s in agent.settings.domains.items()}
        return {"version": __version__, "domains": domains,
                "decoding": {"do_sample": agent.do_sample, "temperature": agent.temperature, "top_k": agent.top_k,
                             "constrained": agent.constrained, "seed": agent.seed},
                "limits": {"max_batch": config.max_batch, "max_wait_ms": config.max_wait_ms,
                           "max_sessions": config.max_sessions, "session_idle_s": config.session_idle_s,
                           "max_body_bytes": config.max_body_bytes, "max_pixels": config.max_pixels}}

    def new_session(data: dict[str, Any]) -> dict[str, Any]:
        instruction, domain = instruction_of(data), domain_of(data)
        session = store.create(Episode(instruction, domain))
        metrics.sessions.set(len(store))
        return {"session": session.id}

    async def create(request: Any) -> dict[str, Any]:
        return new_session(await read_json(request))

    def described(session: Any) -> dict[str, Any]:
        episode = session.episode
        return {"session": session.id, "instruction": episode.instruction, "domain": episode.domain,
                "history": [format_action(a) for a in episode.actions]}

    async def session_act(request: Any) -> dict[str, Any]:
        data = await read_json(request)
        return await act_in_session(request.path_params["id"], data)

    async def act_in_session(key: str, data: dict[str, Any]) -> dict[str, Any]:
        session = store.get(key)
        seen = await observation(data, session.episode.domain)
        async with session.lock:
            if store.sessions.get(key) is not session:  # deleted while this act waited for the lock
                raise RequestError(404, f"session {key[:40]!r}: deleted while the act waited")
            return await act(session.episode, seen, session.id)

    async def session_route(request: Any) -> Any:
        key = request.path_params["id"]
        try:
            if request.method == "DELETE":
                store.delete(key)
                batcher.forget(key)
                metrics.sessions.set(len(store))
                return JSONResponse({"deleted": key})
            return JSONResponse(described(store.get(key)))
        except RequestError as err:
            return error_response(err.status, str(err), request.scope["state"]["request_id"])

    def history_of(data: dict[str, Any]) -> list[Any]:
        given = field(data, "history", list, required=False) or []
        if len(given) > MAX_HISTORY:
            raise RequestError(422, f"history: {len(given)} actions, over the limit of {MAX_HISTORY} (send the "
                                    "last ones; the prompt shows only the last few)")
        actions = []
        for i, text in enumerate(given):
            if not isinstance(text, str):
                raise RequestError(422, f"history[{i}]: expected action text, got {type(text).__name__}")
            try:
                actions.append(parse_action(text))
            except ActionError as err:
                raise RequestError(422, f"history[{i}]: {err}") from None
        return actions

    async def stateless(request: Any) -> dict[str, Any]:
        data = await read_json(request)
        instruction, domain = instruction_of(data), domain_of(data)
        episode = Episode(instruction, domain, history_of(data))
        return await act(episode, await observation(data, domain))

    async def metrics_route(request: Any) -> Any:
        metrics.sessions.set(len(store))
        metrics.queue_depth.set(batcher.depth)
        return Response(metrics.text(), media_type="text/plain; version=0.0.4")

    async def websocket(ws: Any) -> None:
        """msgpack messages: ``{"type": "session" | "act" | "close" | "info", ...}`` answered in order."""
        import msgpack

        await ws.accept()
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                raw = message.get("bytes")
                try:
                    if raw is None:
                        raise RequestError(400, "send msgpack in binary frames, not text")
                    if len(raw) > config.max_body_bytes:
                        raise RequestError(413, f"the message is over the limit of {config.max_body_bytes} bytes")
                    try:
                        data = msgpack.unpackb(raw, raw=False, strict_map_key=True)
                    except Exception:  # noqa: BLE001 - msgpack raises several kinds
                        raise RequestError(400, "the message is not msgpack") from None
                    if not isinstance(data, dict):
                        raise RequestError(422, "a message must be a map with a 'type'")
                    kind = field(data, "type", str)
                    if kind == "session":
                        reply = new_session(data)
                    elif kind == "act":
                        reply = await act_in_session(field(data, "session", str), data)
                    elif kind == "close":
                        store.delete(field(data, "session", str))
                        batcher.forget(data["session"])
                        reply = {"deleted": data["session"]}
                    elif kind == "info":
                        reply = await info(ws)
                    else:
                        raise RequestError(422, f"type: {kind!r} is not one of session, act, close, info")
                except RequestError as err:
                    reply = {"error": str(err), "status": err.status}
                except Exception as err:
                    LOG.exception("websocket: unexpected error")
                    reply = {"error": f"the server failed on this message ({type(err).__name__})", "status": 500}
                await ws.send_bytes(msgpack.packb(reply, use_bin_type=True))
        except WebSocketDisconnect:
            return

    async def startup() -> None:
        batcher.start()

    async def shutdown() -> None:
        await batcher.stop()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        await startup()
        yield
        await shutdown()

    routes = [Route("/healthz", health), Route("/metrics", metrics_route), Route("/v1/info", answer(info)),
              Route("/v1/sessions", answer(create), methods=["POST"]),
              Route("/v1/sessions/{id}", session_route, methods=["GET", "DELETE"]),
              Route("/v1/sessions/{id}/act", answer(session_act), methods=["POST"]),
              Route("/v1/act", answer(stateless), methods=["POST"]), WebSocketRoute("/v1/ws", websocket)]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.store, app.state.metrics, app.state.batcher = store, metrics, batcher
    return Guard(app, config, metrics)
