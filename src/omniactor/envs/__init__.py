"""Real environments behind one interface, their scripted experts, resolved lazily by name.

- ``base``: ``Env`` (``reset(seed) -> Observation``, ``step(action) -> StepResult``), ``Observation``,
  ``Expert``, ``EnvError`` (the browser / simulator died), ``DependencyNotInstalled``.
- ``registry``: ``make_env(name, task, **config)``, ``make_expert(name, env)``, ``list_tasks``,
  ``resolve_tasks`` (task sets such as ``MT10``, ``all``), ``get_spec(name).missing()``.
- One adapter per file: ``babyai`` (minigrid), ``metaworld`` (MuJoCo), ``miniwob`` (Chromium).
- ``experts/``: the BabyAI bot, Meta-World's scripted policies, DOM-reading MiniWoB++ solvers.
- ``cli``: ``omniactor envs list`` and ``omniactor collect`` (the collector is ``omniactor.data.collect``).

Importing this package imports none of the environments' own packages.
"""

from .base import DependencyNotInstalled, Env, EnvError, Expert, Observation, StepResult
from .registry import EnvSpec, env_names, get_spec, list_tasks, make_env, make_expert, resolve_tasks, task_sets

__all__ = [
    "DependencyNotInstalled",
    "Env",
    "EnvError",
    "EnvSpec",
    "Expert",
    "Observation",
    "StepResult",
    "env_names",
    "get_spec",
    "list_tasks",
    "make_env",
    "make_expert",
    "resolve_tasks",
    "task_sets",
]
