"""Sampled answers are a function of the episode (its seed and step), not of the batch it is in."""

import pytest

from omniactor.envs.base import Observation

from .conftest import DOMAINS, build_random_agent, random_image

STEPS = 3


@pytest.fixture(scope="module")
def sampling_agent():
    return build_random_agent(classification=True, do_sample=True, top_k=8, seed=0)


def play(agent, members: list[int]) -> dict[int, list[str]]:
    """Episodes ``members`` (one per domain and index) acting together, one batch per step."""
    domains = [DOMAINS[i % len(DOMAINS)] for i in members]
    episodes = [agent.start(f"task {i}", d, seed=f"env/{i}") for i, d in zip(members, domains)]
    for step in range(STEPS):
        agent.act_batch(episodes, [Observation({"main": random_image(100 * i + step)}, e.instruction, e.domain, step)
                                   for i, e in zip(members, episodes)])
    return {i: [str(a) for a in e.actions] for i, e in zip(members, episodes)}


def test_an_episode_samples_the_same_actions_alone_and_in_any_batch(sampling_agent):
    # discrete acts by its classification head, the other domains by sampled tokens
    members = list(range(2 * len(DOMAINS)))
    batched = play(sampling_agent, members)
    assert play(sampling_agent, members[::-1]) == batched  # another order
    alone = {}
    for i in members:
        alone.update(play(sampling_agent, [i]))
    assert alone == batched
    assert len({tuple(v) for v in batched.values()}) == len(members)


def test_the_episode_seed_and_the_agents_seed_choose_the_stream(sampling_agent):
    image = random_image(0)

    def draws(seed, agent_seed=0):
        sampling_agent.set_decoding(do_sample=True, top_k=8, seed=agent_seed)
        episode = sampling_agent.start("go", "discrete", seed=seed)
        for step in range(12):
            sampling_agent.act_batch([episode], [Observation({"main": image}, "go", "discrete", step)])
        return [a.name for a in episode.actions]

    try:
        assert draws("a") == draws("a")
        assert draws("a") != draws("b") and draws("a") != draws("a", agent_seed=1)
        assert len(set(draws("a"))) > 1  # a random head spreads its samples over the actions
    finally:
        sampling_agent.set_decoding(do_sample=True, top_k=8, seed=0)


def test_a_mixed_batch_generates_once_per_domain(sampling_agent, monkeypatch):
    """A generation pads every prompt to the longest and decodes to the longest answer: each domain's
    rows go in their own, so no row pays for another domain's longer prompt or answer."""
    calls = []
    answer = sampling_agent.answer

    def spy(requests, generators=None):
        calls.append([r[0] for r in requests])
        return answer(requests, generators)

    monkeypatch.setattr(sampling_agent, "answer", spy)
    play(sampling_agent, list(range(2 * len(DOMAINS))))
    assert calls and all(len(set(domains)) == 1 for domains in calls)
    assert len(calls) == STEPS * len({d for domains in calls for d in domains})
