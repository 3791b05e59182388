"""The BabyAI bot (``minigrid.utils.baby_ai_bot.BabyAIBot``): a planner that reads the grid."""

from __future__ import annotations

from ...actions import BABYAI_ACTIONS, Action, DiscreteAction
from ..base import Env, Expert, Observation


class BabyAIBotExpert(Expert):
    """Replans every step from the true grid; solves every original BabyAI level.

    Advising another policy: where that policy did something other than the bot suggested, the bot
    starts over from the state reached. (minigrid's ``replan(action_taken)`` would instead plan to
    undo the step, back to where the policy strayed from: labels that depend on the history, which
    a policy that sees one step back cannot learn.)"""

    def __init__(self) -> None:
        self.bot = None
        self.env = None
        self.strayed = False  # the advised policy did something else since the last act

    def reset(self, env: Env, observation: Observation) -> None:
        self.env = observation.extra["env"]
        self.bot = self._new_bot()
        self.strayed = False

    def _new_bot(self):
        from minigrid.utils.baby_ai_bot import BabyAIBot

        return BabyAIBot(self.env)

    def act(self, observation: Observation) -> Action:
        if self.bot is None:
            raise RuntimeError("call reset(env, observation) before act()")
        if self.strayed:
            self.bot, self.strayed = self._new_bot(), False
        return DiscreteAction(BABYAI_ACTIONS[int(self.bot.replan())])

    def follows(self, taken: Action, suggested: Action) -> bool:
        self.strayed = taken != suggested
        return True
