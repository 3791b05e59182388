"""One episode: ``run_episode`` runs the expert in an environment and keeps what the samples need.

Also used by the online evaluation and the expert evaluation, so an episode is played the
same way whether it is collected or measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import Job


@dataclass
class Episode:
    """A finished episode held in memory until committed."""

    job: Job
    instruction: list[str]
    images: list[list[np.ndarray]]  # per step, one (H, W, 3) array per view
    actions: list[Any]
    states: list[np.ndarray | None]
    success: bool
    error: str | None = None  # the expert failed with an exception

    def info(self, written: bool) -> dict[str, Any]:
        return {
            "key": self.job.key,
            "task": self.job.task,
            "seed": self.job.seed,
            "split": self.job.split,
            "success": self.success,
            "steps": len(self.actions),
            "written": written,
            **({"error": self.error} if self.error else {}),
        }


def run_episode(env: Any, expert: Any, job: Job) -> Episode:
    """Run the expert for one episode. Environment failures raise ``EnvError``; an expert that
    raises, or emits an action the environment refuses, ends the episode as a failure (its
    message kept in ``Episode.error``)."""
    from ...envs.base import EnvError

    obs = env.reset(job.seed)
    episode = Episode(job, [], [], [], [], False)
    try:
        expert.reset(env, obs)
    except Exception as err:  # noqa: BLE001 -- any expert bug fails the episode, kept in .error
        episode.error = f"{type(err).__name__}: {err}"
        return episode
    while True:
        try:
            action = expert.act(obs)
        except Exception as err:  # noqa: BLE001 -- as above
            episode.error = f"{type(err).__name__}: {err}"
            return episode
        episode.instruction.append(obs.instruction)
        episode.images.append(list(obs.images.values()))
        episode.states.append(obs.state)
        episode.actions.append(action)
        try:
            result = env.step(action)
        except EnvError:
            raise
        except (TypeError, ValueError) as err:  # an action the environment refuses: the expert's fault
            episode.error = f"{type(err).__name__}: {err}"
            return episode
        obs = result.observation
        if result.done:
            episode.success = result.success
            return episode
