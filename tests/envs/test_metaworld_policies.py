"""Our fixes of Meta-World's shipped scripted policies (``envs/experts/metaworld_policies.py``),
run in the real simulator on seeds where the shipped policy fails."""

from __future__ import annotations

import pytest

from omniactor.actions import XYZ_GRIPPER
from omniactor.envs import make_env, make_expert
from tests.envs.conftest import require

pytestmark = pytest.mark.env

#: Seeds (train split) where the shipped policy runs to the 500-step limit without success.
SHIPPED_FAILS = {"box-close-v3": 7, "soccer-v3": 0, "disassemble-v3": 17, "sweep-into-v3": 4}


def test_expert_uses_our_policy_for_the_fixed_tasks_only():
    require("metaworld")
    from metaworld.policies import ENV_POLICY_MAP

    from omniactor.envs.experts.metaworld import MetaWorldExpert
    from omniactor.envs.experts.metaworld_policies import POLICIES

    assert len(POLICIES) == 7 and set(POLICIES) <= set(ENV_POLICY_MAP)
    for task, policy in POLICIES.items():
        assert type(MetaWorldExpert(task).policy) is policy
        assert issubclass(policy, ENV_POLICY_MAP[task])  # a fix of the shipped one
    assert type(MetaWorldExpert("reach-v3").policy) is ENV_POLICY_MAP["reach-v3"]


@pytest.mark.parametrize("task", sorted(SHIPPED_FAILS))
def test_fixed_policy_succeeds(task):
    require("metaworld")
    env = make_env("metaworld", task, cameras=[])  # the expert reads the state: no rendering
    expert = make_expert("metaworld", env)
    try:
        for seed in (SHIPPED_FAILS[task], SHIPPED_FAILS[task] + 1):
            obs = env.reset(seed)
            expert.reset(env, obs)
            while True:
                action = expert.act(obs)
                assert action.names == XYZ_GRIPPER and all(-1 <= v <= 1 for v in action.values)
                result = env.step(action)
                obs = result.observation
                if result.done:
                    break
            assert result.success, f"{task} seed {seed}: no success in {obs.step} steps"
    finally:
        env.close()
