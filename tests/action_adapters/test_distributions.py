"""The three distributions on fixed parameters: their log-probs and entropies against
``torch.distributions``, and 2,000 seeded draws against their probabilities (chi-square)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare, kstest, norm

from omniactor.action_adapters.distributions import BOUND, Categorical, SquashedGaussian, TokenSequence

DRAWS = 2000


def test_categorical_log_prob_entropy_and_mode_match_torch():
    logits = torch.tensor([[1.0, -0.5, 0.2, float("-inf")], [0.0, 0.0, 3.0, -1.0]])
    for temperature in (1.0, 0.7):
        ours = Categorical(logits, temperature)
        theirs = torch.distributions.Categorical(logits=logits / temperature)
        for value in ([0, 2], [2, 3]):
            assert torch.allclose(ours.log_prob(torch.tensor(value)), theirs.log_prob(torch.tensor(value)), atol=1e-6)
        assert torch.allclose(ours.entropy(), theirs.entropy(), atol=1e-6)
        assert ours.mode().tolist() == [0, 2]
    assert float(Categorical(logits).log_prob(torch.tensor([3, 0]))[0]) == float("-inf")  # ruled out


def test_categorical_draws_follow_its_probabilities():
    dist = Categorical(torch.tensor([[0.3, -0.2, 1.1, 0.0, float("-inf")]]))
    generator = torch.Generator().manual_seed(0)
    drawn = np.array([int(dist.sample(generator)[0]) for _ in range(DRAWS)])
    counts = np.bincount(drawn, minlength=5)
    probs = dist.probs[0].double().numpy()
    assert counts[4] == 0  # a ruled-out choice is never drawn
    assert chisquare(counts[:4], probs[:4] / probs[:4].sum() * DRAWS).pvalue > 0.001
    wrong = np.roll(probs[:4], 1)  # the test can fail: the same counts against other probabilities
    assert chisquare(counts[:4], wrong / wrong.sum() * DRAWS).pvalue < 0.001


def test_squashed_gaussian_log_prob_is_torch_tanh_transformed_normal():
    mean = torch.tensor([[0.3, -1.2, 0.0], [2.0, 0.1, -0.4]])
    log_std = torch.tensor([-1.0, 0.2, math.log(0.1)])
    ours = SquashedGaussian(mean, log_std)
    theirs = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp().expand_as(mean)), [torch.distributions.TanhTransform()])
    value = torch.tensor([[0.2, -0.7, 0.05], [0.9, 0.0, -0.5]])
    assert torch.allclose(ours.log_prob(value), theirs.log_prob(value).sum(-1), atol=1e-4)
    assert torch.allclose(ours.mode(), torch.tanh(mean))
    assert torch.allclose(ours.entropy(), torch.distributions.Normal(mean, log_std.exp()).entropy().sum(-1))


def test_squashed_gaussian_scores_an_action_at_the_bound_by_the_mass_beyond_it():
    mean = torch.tensor([[0.3, -1.2, 8.6], [2.0, 0.1, -9.5]])
    log_std = torch.tensor([-1.0, 0.2, math.log(0.1)])
    ours = SquashedGaussian(mean, log_std)
    std = log_std.exp().numpy()
    value = torch.tensor([[1.0, -1.0, BOUND], [0.5, 1.0, -1.0]])
    c = math.atanh(BOUND)
    inside = norm.logpdf(math.atanh(0.5), loc=2.0, scale=std[0]) - math.log(1 - 0.5 ** 2)
    expected = [norm.logcdf((0.3 - c) / std[0]) + norm.logcdf((-c + 1.2) / std[1]) + norm.logcdf((8.6 - c) / std[2]),
                inside + norm.logcdf((0.1 - c) / std[1]) + norm.logcdf((-c + 9.5) / std[2])]
    assert ours.log_prob(value).tolist() == pytest.approx(expected, abs=1e-4)
    # inside the bounds the density is the tanh-transformed normal's, just below the bound too
    below = torch.tensor([[1.0 - 1e-5]])
    theirs = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(torch.tensor([[6.0]]), torch.tensor([[0.1]])), [torch.distributions.TanhTransform()])
    assert float(SquashedGaussian(torch.tensor([[6.0]]), torch.tensor([math.log(0.1)])).log_prob(below)) == \
        pytest.approx(float(theirs.log_prob(below.double()).sum()), abs=1e-2)


def test_a_saturated_draw_stays_likely_when_the_mean_moves_a_little():
    """A mean past the bound draws the bound: its log-probability is near 0 and barely moves
    with the mean (before the bound was censored it was scored at atanh(BOUND), 13 standard
    deviations away, and a move of 0.05 changed it by 6.7 nats)."""
    log_std = torch.tensor([math.log(0.1)])
    drawn = SquashedGaussian(torch.tensor([[8.6]]), log_std).sample(torch.Generator().manual_seed(0))
    mean = torch.tensor([[8.6]], requires_grad=True)
    log_prob = SquashedGaussian(mean, log_std).log_prob(drawn)
    log_prob.sum().backward()
    assert float(drawn.abs()) >= BOUND
    assert float(log_prob.detach()) == pytest.approx(0.0, abs=1e-6)
    assert float(mean.grad.abs()) < 1e-6
    moved = SquashedGaussian(torch.tensor([[8.55]]), log_std).log_prob(drawn)
    assert float(moved - log_prob.detach()) == pytest.approx(0.0, abs=1e-4)
    # the test can fail: the bound's mass does fall as the mean comes back past it
    assert float(SquashedGaussian(torch.tensor([[7.0]]), log_std).log_prob(drawn)) < -2.0



def test_squashed_gaussian_draws_follow_the_gaussian_before_the_squash():
    mean, log_std = torch.tensor([[0.4, -0.3]]), torch.tensor([math.log(0.5), math.log(0.2)])
    dist = SquashedGaussian(mean, log_std)
    generator = torch.Generator().manual_seed(0)
    drawn = torch.cat([dist.sample(generator) for _ in range(DRAWS)]).double()
    assert drawn.abs().max() < 1  # inside the bounds
    for i in range(2):
        pre = torch.atanh(drawn[:, i]).numpy()
        assert kstest(pre, norm(loc=float(mean[0, i]), scale=float(log_std[i].exp())).cdf).pvalue > 0.001
        assert kstest(pre, norm(loc=float(mean[0, i]) + 0.2, scale=float(log_std[i].exp())).cdf).pvalue < 0.001


def test_token_sequence_is_a_product_of_masked_softmaxes():
    logits = torch.tensor([[[2.0, 1.0, 0.5, 0.1], [0.3, 0.2, 5.0, 0.0], [9.0, 9.0, 9.0, 9.0]]])
    allowed = torch.tensor([[[True, True, False, True], [False, True, True, False], [True, True, True, True]]])
    dist = TokenSequence(logits, allowed, [2])  # the third step is padding
    expected = [torch.softmax(logits[0, t][allowed[0, t]], 0) for t in range(2)]
    ids = torch.tensor([[1, 2, 0]])
    assert float(dist.log_prob(ids)[0]) == pytest.approx(math.log(expected[0][1] * expected[1][1]), abs=1e-6)
    assert dist.step_log_probs(ids)[0, 2] == 0  # padding adds nothing
    assert float(dist.log_prob(torch.tensor([[2, 2, 0]]))[0]) == float("-inf")  # a token the mask forbids
    entropy = sum(torch.distributions.Categorical(probs=p).entropy() for p in expected)
    assert float(dist.entropy()[0]) == pytest.approx(float(entropy), abs=1e-6)
    assert dist.mode()[0].tolist() == [0, 2, -1]


def test_token_sequence_draws_follow_each_step_and_never_a_masked_token():
    logits = torch.tensor([[[0.2, 1.0, -0.5, 0.3, 4.0]]])
    allowed = torch.tensor([[[True, True, True, True, False]]])  # the best logit is not allowed
    dist = TokenSequence(logits, allowed, [1])
    generator = torch.Generator().manual_seed(0)
    counts = np.bincount([int(dist.sample(generator)[0, 0]) for _ in range(DRAWS)], minlength=5)
    assert counts[4] == 0
    probs = dist.log_probs[0, 0, :4].exp().double().numpy()
    assert chisquare(counts[:4], probs / probs.sum() * DRAWS).pvalue > 0.001
