"""The BabyAI bot (``minigrid.utils.baby_ai_bot.BabyAIBot``): a planner that reads the grid."""

from __future__ import annotations

from ...actions import BABYAI_ACTIONS, Action, DiscreteAction
from ..base import Env, Expert, Observation


class BabyAIBotExpert(Expert):
    """Replans every step from the true grid; solves every original BabyAI level. Advising another
    policy, it is told each action taken (the bot's ``replan(action_taken)``), so it labels any state."""

    def __init__(self) -> None:
        self.bot = None
        self.taken: int | None = None  # the action another policy took since the last act

    def reset(self, env: Env, observation: Observation) -> None:
        from minigrid.utils.baby_ai_bot import BabyAIBot

        self.bot = BabyAIBot(observation.extra["env"])
        self.taken = None

    def act(self, observation: Observation) -> Action:
        if self.bot is None:
            raise RuntimeError("call reset(env, observation) before act()")
        taken, self.taken = self.taken, None
        return DiscreteAction(BABYAI_ACTIONS[int(self.bot.replan(taken))])

    def follows(self, taken: Action, suggested: Action) -> bool:
        self.taken = BABYAI_ACTIONS.index(taken.name)
        return True
