"""The policy server (``omniactor serve``) and its clients.

``app``: the HTTP/WebSocket application; ``batcher``: dynamic batching; ``sessions``: bounded
sessions; ``codec``: what crosses the wire; ``client``: ``Client`` and ``RemoteAgent``.
Imported lazily: ``from omniactor.serving import Client`` needs only ``httpx``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Client", "RemoteAgent", "ServerError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'omniactor.serving' has no attribute {name!r}")
