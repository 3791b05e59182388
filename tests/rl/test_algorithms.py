"""GAE, PPO's losses and GRPO's advantages on small examples computed by hand."""

import math

import pytest
import torch

from omniactor.rl.algorithms import (
    clipped_surrogate,
    explained_variance,
    gae,
    grpo_advantages,
    ppo_policy_loss,
    ppo_value_loss,
)

T, F = True, False


def test_gae_of_a_terminated_episode():
    # gamma = lam = 0.5. deltas: 1 + 0.5*1 - 0.5 = 1; 0 + 0.5*0.25 - 1 = -0.875; 2 + 0 - 0.25 = 1.75 (terminated:
    # the next value 9 is not used). A2 = 1.75, A1 = -0.875 + 0.25*1.75 = -0.4375, A0 = 1 + 0.25*-0.4375 = 0.890625
    advantages, returns = gae(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.5, 1.0, 0.25]),
                              torch.tensor([1.0, 0.25, 9.0]), torch.tensor([F, F, T]), torch.tensor([F, F, F]),
                              gamma=0.5, lam=0.5)
    assert advantages.tolist() == [0.890625, -0.4375, 1.75]
    assert returns.tolist() == [1.390625, 0.5625, 2.0]


def test_gae_bootstraps_a_truncated_step_and_stops_the_trace_at_every_episode_end():
    # a 1-step episode cut by the time limit (bootstraps from V = 4), then a 2-step one that terminates.
    # gamma = 0.5, lam = 1: deltas 1 + 2 = 3, 1 + 1 = 2, 1; A2 = 1, A1 = 2 + 0.5 = 2.5, A0 = 3 (the trace stops)
    advantages, _ = gae(torch.ones(3), torch.zeros(3), torch.tensor([4.0, 2.0, 8.0]), torch.tensor([F, F, T]),
                        torch.tensor([T, F, F]), gamma=0.5, lam=1.0)
    assert advantages.tolist() == [3.0, 2.5, 1.0]


def test_ppo_policy_loss_clips_the_ratio_and_reports_what_it_did():
    # ratios 1.5, 0.5, 1; advantages 1, 1, -2; clip 0.2: min(1.5, 1.2) = 1.2, min(0.5, 0.8) = 0.5, -2
    # loss = -(1.2 + 0.5 - 2) / 3 = 0.1; two ratios outside [0.8, 1.2]
    old = torch.tensor([-1.0, -2.0, -0.5])
    new = old + torch.log(torch.tensor([1.5, 0.5, 1.0]))
    result = ppo_policy_loss(new.requires_grad_(), old, torch.tensor([1.0, 1.0, -2.0]), clip=0.2)
    assert float(result.loss.detach()) == pytest.approx(0.1, abs=1e-6)
    assert result.clip_fraction == pytest.approx(2 / 3)
    kl = ((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5)) + 0.0) / 3
    assert result.approx_kl == pytest.approx(kl, abs=1e-6)
    result.loss.backward()  # d/dlog r of -min(.)/3: 0 where the clipped term wins, -A r / 3 elsewhere
    assert new.grad.tolist() == pytest.approx([0.0, -0.5 / 3, 2 / 3], abs=1e-6)


def test_the_dual_clip_bounds_the_loss_of_a_negative_advantage():
    # log r = 200, 1, 200, 0 (r = e^200 overflows float32); A = -1, -1, +1, -1; clip 0.2, dual clip 3:
    # -1: min(e^200, 1.2) x ... -> capped at 3 (gradient 0); e: 2.718 (below 3: as without it, gradient e);
    # +1: 1.2 clipped, -1.2 (gradient 0); r = 1: 1 (gradient 1)
    old = torch.zeros(4)
    new = torch.tensor([200.0, 1.0, 200.0, 0.0], requires_grad=True)
    losses, log_ratio = clipped_surrogate(new, old, torch.tensor([-1.0, -1.0, 1.0, -1.0]), clip=0.2, dual_clip=3.0)
    assert losses.tolist() == pytest.approx([3.0, math.e, -1.2, 1.0], abs=1e-5)
    assert log_ratio.tolist() == pytest.approx([200.0, 1.0, 200.0, 0.0])  # the statistics see the true ratio
    losses.sum().backward()
    assert new.grad.tolist() == pytest.approx([0.0, math.e, 0.0, 1.0], abs=1e-5)
    unbounded, _ = clipped_surrogate(torch.tensor([5.0]), torch.zeros(1), torch.tensor([-1.0]), clip=0.2)
    assert float(unbounded[0]) == pytest.approx(math.exp(5.0), rel=1e-5)  # without it: r |A|


def test_ppo_value_loss_takes_the_worse_of_the_clipped_and_unclipped_errors():
    # V = 1, 0; V_old = 0.5, 0.5; R = 2, 0; clip 0.2: unclipped 1, 0; clipped (0.7 - 2)^2 = 1.69, 0.3^2 = 0.09
    values, old, returns = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]), torch.tensor([2.0, 0.0])
    assert float(ppo_value_loss(values, old, returns, clip=0.2)) == pytest.approx(0.5 * (1.69 + 0.09) / 2)
    assert float(ppo_value_loss(values, old, returns, clip=None)) == pytest.approx(0.5 * (1.0 + 0.0) / 2)


def test_grpo_normalises_each_outcome_within_its_group():
    # group 0: 1, 0, 1, 1 (mean 0.75, population std sqrt(0.1875)); group 1: all 1 -> 0
    advantages = grpo_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 1.0]), torch.tensor([0, 0, 0, 0, 1, 1]))
    std = math.sqrt(0.1875)
    expected = [0.25 / std, -0.75 / std, 0.25 / std, 0.25 / std, 0.0, 0.0]
    assert advantages.tolist() == pytest.approx(expected, abs=1e-5)


def test_explained_variance():
    # Var(R) = 2/3, Var(R - V) = 2/9: 1 - 1/3
    assert explained_variance(torch.tensor([1.0, 2.0, 2.0]), torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(2 / 3)
    assert math.isnan(explained_variance(torch.zeros(3), torch.ones(3)))
