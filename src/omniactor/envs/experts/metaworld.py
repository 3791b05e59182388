"""Meta-World's scripted policies, one per v3 task: the shipped ones (``metaworld.policies``),
except for the 7 tasks where they fall below 95% success, which use our fixed versions
(``metaworld_policies.POLICIES``: box-close, disassemble, peg-insert-side, push-back, soccer,
stick-pull, sweep-into; each class says what it fixes).

They read the 39-D state (hand, objects, goal) and return the 4-D action; actions are
clipped to ``[-1, 1]`` (the policies' gains sometimes overshoot, which the simulator
clips anyway) and rounded to 4 decimals, so the recorded action is exactly the one run.
"""

from __future__ import annotations

import warnings

import numpy as np

from ...actions import XYZ_GRIPPER, Action, ContinuousAction
from ..base import Env, Expert, Observation

DECIMALS = 4


class MetaWorldExpert(Expert):
    def __init__(self, task: str):
        from metaworld.policies import ENV_POLICY_MAP

        from .metaworld_policies import POLICIES

        if task not in ENV_POLICY_MAP:
            raise KeyError(f"Meta-World has no scripted policy for {task!r}")
        self.task = task
        self.policy = POLICIES.get(task, ENV_POLICY_MAP[task])()

    def reset(self, env: Env, observation: Observation) -> None:
        if env.task != self.task:
            raise ValueError(f"expert for {self.task!r} used on {env.task!r}")

    def act(self, observation: Observation) -> Action:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Constant(s) may be too high": we clip below
            action = self.policy.get_action(observation.extra["obs"])
        values = np.round(np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0), DECIMALS)
        return ContinuousAction(tuple(values.tolist()), XYZ_GRIPPER)

    def follows(self, taken: Action, suggested: Action) -> bool:
        return True  # a function of the observation alone: it labels any state
