"""The BabyAI bot (``minigrid.utils.baby_ai_bot.BabyAIBot``): a planner that reads the grid."""

from __future__ import annotations

from ...actions import BABYAI_ACTIONS, Action, DiscreteAction
from ..base import Env, Expert, Observation


class BabyAIBotExpert(Expert):
    """Replans every step from the true grid; solves every original BabyAI level."""

    def __init__(self) -> None:
        self.bot = None

    def reset(self, env: Env, observation: Observation) -> None:
        from minigrid.utils.baby_ai_bot import BabyAIBot

        self.bot = BabyAIBot(observation.extra["env"])

    def act(self, observation: Observation) -> Action:
        if self.bot is None:
            raise RuntimeError("call reset(env, observation) before act()")
        return DiscreteAction(BABYAI_ACTIONS[int(self.bot.replan())])
