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
    at_bound = ours.log_prob(torch.tensor([[1.0, -1.0, 1.0], [1.0, 1.0, 1.0]]))
    assert torch.isfinite(at_bound).all()  # clipped to BOUND: a finite density at the bounds
    inside = torch.tensor([[BOUND, -BOUND, BOUND], [BOUND, BOUND, BOUND]])
    assert torch.allclose(at_bound, ours.log_prob(inside))


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
