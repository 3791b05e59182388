"""The agent: a trained model that acts (``Agent``), with constrained decoding (``constraints``).

Imported lazily: ``from omniactor.agent import Agent`` loads torch and transformers only then.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Agent", "AgentError", "AgentSettings", "DomainSettings", "Episode"]


def __getattr__(name: str) -> Any:
    if name in ("AgentSettings", "DomainSettings"):
        from . import settings

        return getattr(settings, name)
    if name in __all__:
        from . import agent

        return getattr(agent, name)
    raise AttributeError(f"module 'omniactor.agent' has no attribute {name!r}")
