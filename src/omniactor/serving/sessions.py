"""Sessions: one episode each (its task and the actions taken so far), capped and expired when idle
so that memory stays bounded whatever clients do."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .codec import RequestError


@dataclass
class Session:
    id: str
    episode: Any  # agent.Episode
    last_used: float = field(default_factory=time.monotonic)
    #: one act at a time per session, so its history grows in the order the acts were asked
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SessionStore:
    """At most ``max_sessions`` sessions; one idle for ``idle_seconds`` is dropped."""

    def __init__(self, max_sessions: int = 1024, idle_seconds: float = 600.0, clock: Any = time.monotonic):
        self.max_sessions, self.idle_seconds, self.clock = max_sessions, idle_seconds, clock
        self.sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self.expired = 0

    def __len__(self) -> int:
        return len(self.sessions)

    def expire(self) -> int:
        """Drop the sessions idle for longer than ``idle_seconds`` (and not acting now)."""
        now, dropped = self.clock(), 0
        for key in list(self.sessions):
            session = self.sessions[key]
            if now - session.last_used <= self.idle_seconds:
                break  # the rest were used later
            if not session.lock.locked():
                del self.sessions[key]
                dropped += 1
        self.expired += dropped
        return dropped

    def create(self, episode: Any) -> Session:
        self.expire()
        if len(self.sessions) >= self.max_sessions:
            raise RequestError(429, f"the server holds its limit of {self.max_sessions} sessions; delete finished "
                                    f"ones (DELETE /v1/sessions/ID) or wait for idle ones to expire "
                                    f"({self.idle_seconds:g} s)")
        session = Session(secrets.token_urlsafe(16), episode, self.clock())
        self.sessions[session.id] = session
        return session

    def get(self, key: str) -> Session:
        self.expire()
        session = self.sessions.get(key)
        if session is None:
            raise RequestError(404, f"session {key[:40]!r}: unknown (never created, deleted, or expired after "
                                    f"{self.idle_seconds:g} s idle)")
        session.last_used = self.clock()
        self.sessions.move_to_end(key)
        return session

    def delete(self, key: str) -> None:
        if self.sessions.pop(key, None) is None:
            raise RequestError(404, f"session {key[:40]!r}: unknown")
