"""Clients of ``omniactor serve``: ``Client`` (the HTTP API, one call per route) and
``RemoteAgent``, which mirrors ``Agent.reset`` / ``act`` / ``start`` / ``act_batch`` so that
code written for an in-process agent runs against a server. ``act_batch`` sends its acts
concurrently, so the server batches them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import OmniactorError


class ServerError(OmniactorError, RuntimeError):
    """The server answered with an error: ``status`` and its message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


class Client:
    """``Client("http://127.0.0.1:8000", token=...)``: one method per route of the API."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0):
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout,
                                 limits=httpx.Limits(max_connections=256, max_keepalive_connections=256))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        try:
            response = self.http.request(method, path, json=body)
        except httpx.TransportError as err:
            raise ServerError(503, f"cannot reach the server at {self.http.base_url} ({type(err).__name__}: {err}); "
                                   "is `omniactor serve` running there?") from None
        try:
            data = response.json()
        except ValueError:
            data = {"error": response.text[:200]}
        if response.status_code >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            raise ServerError(response.status_code, message or response.reason_phrase)
        return data

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/healthz")

    def info(self) -> dict[str, Any]:
        return self._call("GET", "/v1/info")

    def new_session(self, instruction: str, domain: str) -> str:
        return self._call("POST", "/v1/sessions", {"instruction": instruction, "domain": domain})["session"]

    def session(self, session: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/sessions/{session}")

    def act(self, session: str, observation: Any) -> dict[str, Any]:
        """The server's answer (``action``, ``action_json``, ``server_timing``) to one observation."""
        return self._call("POST", f"/v1/sessions/{session}/act", body_of(observation))

    def act_stateless(self, instruction: str, domain: str, observation: Any, history: list[str] = ()) -> dict:
        return self._call("POST", "/v1/act", {"instruction": instruction, "domain": domain,
                                              "history": list(history), **body_of(observation)})

    def close_session(self, session: str) -> None:
        self._call("DELETE", f"/v1/sessions/{session}")

    def close(self) -> None:
        self.http.close()


def body_of(observation: Any) -> dict[str, Any]:
    """The JSON fields of an observation in any form ``Agent.act`` accepts (the first image)."""
    from ..agent.inputs import observation_inputs
    from .codec import encode_image

    images, state = observation_inputs(observation)
    if len(images) != 1:
        raise ServerError(422, f"the server takes one image per act; the observation has {len(images)} views "
                               "(send the main one)")
    body: dict[str, Any] = {"image": encode_image(images[0])}
    if state is not None:
        body["state"] = [float(v) for v in state]
    return body


@dataclass
class RemoteEpisode:
    """An episode of a ``RemoteAgent``: kept here, sent with each act (the server keeps nothing)."""

    instruction: str
    domain: str
    actions: list[Any] = field(default_factory=list)
    seed: Any = None


class RemoteAgent:
    """An agent on a server, used as the in-process ``Agent`` is (``reset`` / ``act``, ``start`` /
    ``act_batch``). Each act goes to the stateless ``POST /v1/act`` with the episode's history,
    so nothing is lost when the server restarts or a session would have expired; the acts of one
    ``act_batch`` are sent concurrently, so the server batches them. Decoding is the server's
    (``omniactor serve --sample``); ``settings``, ``constrained``, ``do_sample``, ``temperature``
    and ``seed`` are read from its ``/v1/info``."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0):
        from collections import Counter
        from types import SimpleNamespace

        self.client = Client(url, token, timeout)
        info = self.client.info()
        domains = info["domains"]
        self.settings = SimpleNamespace(domains=domains, names=list(domains))
        decoding = info["decoding"]
        self.constrained, self.do_sample = decoding["constrained"], decoding["do_sample"]
        self.temperature, self.seed = decoding["temperature"], decoding.get("seed")
        self.stats: Counter[str] = Counter()
        self.episode: RemoteEpisode | None = None
        self.pool = ThreadPoolExecutor(max_workers=64)

    def start(self, instruction: str, domain: str, seed: Any = None) -> RemoteEpisode:
        if domain not in self.settings.domains:
            raise ServerError(422, f"the served model has no domain {domain!r}; its domains: {self.settings.names}")
        return RemoteEpisode(instruction, domain, seed=seed)

    def reset(self, instruction: str, domain: str, seed: Any = None) -> None:
        self.episode = self.start(instruction, domain, seed)

    def act(self, observation: Any) -> Any:
        if self.episode is None:
            raise ServerError(400, "call reset(instruction, domain) before act()")
        return self.act_batch([self.episode], [observation])[0]

    def act_batch(self, episodes: list[RemoteEpisode], observations: list[Any], details: bool = False) -> list[Any]:
        """One action per episode (``details=True``: ``Decoded`` answers), the acts sent concurrently."""
        from ..action_adapters import Decoded
        from ..actions import action_from_json, format_action

        def one(pair: tuple[RemoteEpisode, Any]) -> dict[str, Any]:
            episode, observation = pair
            return self.client.act_stateless(episode.instruction, episode.domain, observation,
                                             [format_action(a) for a in episode.actions])

        answers = list(self.pool.map(one, zip(episodes, observations)))
        decoded = [Decoded(action_from_json(a["action_json"]), a["action"], True) for a in answers]
        for episode, answer in zip(episodes, decoded):
            episode.actions.append(answer.action)
        self.stats["actions"] += len(decoded)
        return decoded if details else [d.action for d in decoded]

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.client.close()
