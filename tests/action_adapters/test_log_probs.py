"""Every adapter's distribution, on a random-weight agent whose domains use all of them: the log-prob
an act recorded is the one its distribution gives again from the recorded tokens, the mode is the
greedy action, and what the agent samples follows the distribution it reports."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from omniactor.envs.base import Observation

#: domain -> (its tokenizer, its adapter); the text and code grammars, the pointer and copy, both heads
DOMAINS = {
    "gui": ("gui_text", "tokens"),
    "grid": ("gui_location", "pointer"),
    "bins": ("uniform", "tokens"),
    "codes": ("discrete_token", "tokens"),
    "phrases": ("discrete_semlang", "tokens"),
    "arm": ("uniform", "regression_head"),
    "grid_world": ("discrete_semlang", "classification_head"),
}


def build_agent(**options):
    from omniactor.actions import BABYAI_ACTIONS, XYZ_GRIPPER, ContinuousAction
    from omniactor.actions.tokenizers import build_action_tokenizer
    from omniactor.actions.tokenizers.base import VocabularyPlacement
    from omniactor.agent import Agent, AgentSettings, DomainSettings
    from omniactor.models.chat import add_adapters
    from omniactor.models.heterogeneity import HeterogeneityConfig, convert
    from omniactor.models.presets import build_model, get_preset
    from omniactor.models.vocabulary import add_action_vocabulary

    preset = replace(get_preset("tiny"), num_layers=2, hidden_size=64, num_heads=2, num_kv_heads=1,
                     intermediate_size=128, vision_depth=1, vision_hidden_size=32, vision_intermediate_size=64,
                     shared_layers=1)
    model, processor = build_model(preset, seed=0)
    rng = np.random.default_rng(0)
    motions = [ContinuousAction(tuple(rng.uniform(-1, 1, 4).round(3).tolist()), XYZ_GRIPPER) for _ in range(64)]
    tokenizers = {}
    for domain, (name, _) in DOMAINS.items():
        if name == "uniform":
            tokenizer = build_action_tokenizer(name, num_bins=8, placement=VocabularyPlacement(prefix=f"{domain}_"))
            tokenizer.fit(motions)
        elif name == "gui_location":
            tokenizer = build_action_tokenizer(name, grid=4)
        elif name == "discrete_token" or name == "discrete_semlang":
            tokenizer = build_action_tokenizer(name, names=BABYAI_ACTIONS)
        else:
            tokenizer = build_action_tokenizer(name)
        add_action_vocabulary(model, processor.tokenizer, tokenizer)
        tokenizers[domain] = tokenizer
    cells = processor.tokenizer.convert_tokens_to_ids([f"<loc_{i}>" for i in range(16)])
    add_adapters(model, processor.tokenizer, state_dim=6, mean=np.zeros(6), std=np.ones(6),  # two domains of 3
                 regression_dims={"arm": 4}, classification_sizes={"grid_world": len(BABYAI_ACTIONS)},
                 regression_state=True, pointer={"loc_token_ids": [int(i) for i in cells], "grid": 4},
                 copy=["gui", "grid", "phrases"])
    with torch.no_grad():  # the new rows start equal; a trained model has no exact ties between actions
        head = model.get_output_embeddings().weight
        head.add_(0.05 * torch.randn(head.shape, generator=torch.Generator().manual_seed(0)))
    convert(model, HeterogeneityConfig("omniactor", shared_layers=1, domains=tuple(DOMAINS)))
    settings = AgentSettings({d: DomainSettings(output, history=1, image_size=56,
                                                state_width=3 if output.endswith("_head") else None)
                              for d, (_, output) in DOMAINS.items()})
    return Agent(model, processor, tokenizers, settings, max_text_chars=6, record=True, **options)


@pytest.fixture(scope="module")
def agent():
    return build_agent()


def observation(domain, seed):
    image = np.random.default_rng(seed).integers(0, 256, (56, 56, 3), dtype=np.uint8)
    state = np.random.default_rng(seed).normal(size=3) if DOMAINS[domain][1].endswith("_head") else None
    return Observation({"main": image}, f"type 'ab{seed}' and go", domain, 0, state=state)


def act_all(agent, seeds=(0, 1)):
    """One batch holding every domain (mixed domains in one generation and one head pass), twice."""
    decided = []
    for seed in seeds:
        episodes = [agent.start(f"type 'ab{seed}' and go", d) for d in DOMAINS]
        decided += agent.act_batch(episodes, [observation(d, seed) for d in DOMAINS], details=True)
    return decided


@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "sampled"])
def test_the_recorded_log_prob_is_what_the_distribution_gives_again(agent, sampled):
    agent.set_decoding(do_sample=sampled, temperature=1.0, top_k=10**6, seed=1)
    try:
        decided = act_all(agent)
    finally:
        agent.set_decoding()
    distributions = agent.score([d.record for d in decided])
    for answer, distribution in zip(decided, distributions):
        record = answer.record
        if agent.adapters[record.domain].writes_answer:
            assert record.ids[-1] == agent.end_id and len(record.step_log_probs) == len(record.ids)
            again = distribution.step_log_probs(torch.tensor([record.ids]))[0].tolist()
            assert again == pytest.approx(record.step_log_probs, abs=1e-5), record.domain  # step by step
            value = torch.tensor([record.ids])
        else:
            value = record.value[None]
        assert float(distribution.log_prob(value)[0]) == pytest.approx(record.log_prob, abs=1e-5), record.domain
        assert record.log_prob <= 0 or not agent.adapters[record.domain].writes_answer
        assert torch.isfinite(distribution.entropy()).all()


def test_the_mode_is_the_greedy_action(agent):
    decided = act_all(agent)
    for answer, distribution in zip(decided, agent.score([d.record for d in decided])):
        adapter = agent.adapters[answer.record.domain]
        if adapter.writes_answer:  # the greedy answer takes the best allowed token at every step
            assert distribution.mode()[0].tolist() == answer.record.ids, answer.record.domain
        elif hasattr(answer.action, "values"):  # a motion: the batched pass rounds differently in the last bits
            assert adapter.to_action(distribution.mode()[0]).values == pytest.approx(answer.action.values, abs=1e-6)
        else:
            assert adapter.to_action(distribution.mode()[0]) == answer.action, answer.record.domain


def test_a_recorded_step_log_prob_is_the_masked_temperature_1_softmax(agent):
    """The first token of a text answer, checked against a forward pass of our own: the softmax of
    the logits over exactly the tokens the grammar allows there."""
    from omniactor.agent.constraints import masked_log_softmax

    (answer,) = agent.decide([("phrases", "go", [observation("phrases", 0).images["main"]], [])])
    inputs, _ = agent._inputs([("phrases", "go", [observation("phrases", 0).images["main"]], [])])
    with torch.no_grad(), agent._routed(["phrases"]):
        logits = agent.model(**inputs).logits[0, -1].float()
    allowed = agent.grammar("phrases").allowed("", 0)
    expected = torch.softmax(logits.masked_fill(~allowed[: logits.numel()], float("-inf")), dim=0)
    first = answer.record.ids[0]
    assert np.exp(answer.record.step_log_probs[0]) == pytest.approx(float(expected[first]), abs=1e-6)
    assert float(masked_log_softmax(logits, allowed).exp().sum()) == pytest.approx(1.0, abs=1e-6)
    assert 1 < int(allowed.sum()) < allowed.numel()  # a real constraint: some tokens, not all


@pytest.mark.parametrize("domain", ["codes", "grid_world"])
def test_what_the_agent_samples_follows_the_distribution_it_reports(agent, domain):
    """2,000 sampled acts on one observation: the counts of each action against the probabilities
    the distribution gives (chi-square, derandomized by the agent's seed)."""
    from scipy.stats import chisquare

    agent.set_decoding(do_sample=True, temperature=1.0, top_k=10**6, seed=7)
    seen = observation(domain, 3)
    request = (domain, seen.instruction, [seen.images["main"]], [], seen.state)
    try:
        decided = []
        for _ in range(20):
            decided += agent.decide([request] * 100)
    finally:
        agent.set_decoding()
    (distribution,) = agent.score([decided[0].record])
    names = list(agent.action_tokenizers[domain].space.names)
    counts = np.array([sum(d.action.name == n for d in decided) for n in names], dtype=float)
    if agent.adapters[domain].writes_answer:  # one code then the end: the first step is the action
        tokenizer = agent.action_tokenizers[domain]
        from omniactor.actions import DiscreteAction

        ids = [tokenizer.encode_ids(DiscreteAction(n))[0] for n in names]
        probs = distribution.log_probs[0, 0, ids].exp().double().numpy()
    else:
        probs = distribution.probs[0].double().numpy()
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert probs.min() > 0.01  # random weights: every action has a real chance, so the test can fail
    assert chisquare(counts, probs / probs.sum() * counts.sum()).pvalue > 0.001


def test_a_restricted_classification_head_acts_and_scores_only_its_actions(agent):
    """``restrict_actions``: the other actions get probability 0 when the agent samples, greedy takes
    the best allowed one, the recorded log-prob is the renormalised one scored again, and the
    restriction is part of the settings an RL run saves; bad names and answer domains are refused."""
    from omniactor.agent.agent import AgentError

    allowed = ["left", "right", "forward"]
    seen = observation("grid_world", 3)
    request = ("grid_world", seen.instruction, [seen.images["main"]], [], seen.state)
    (before,) = agent.score([agent.decide([request])[0].record])
    agent.restrict_actions("grid_world", allowed)
    try:
        assert agent.settings.domains["grid_world"].actions == allowed
        agent.set_decoding(do_sample=True, temperature=1.0, top_k=10**6, seed=3)
        decided = agent.decide([request] * 300)
        assert {d.action.name for d in decided} == set(allowed)  # all three drawn, nothing else
        (distribution,) = agent.score([decided[0].record])
        names = list(agent.action_tokenizers["grid_world"].space.names)
        keep = torch.tensor([n in allowed for n in names])
        expected = torch.softmax(before.raw[0].masked_fill(~keep, float("-inf")), dim=0)
        assert distribution.probs[0].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
        for answer in decided[:20]:
            (again,) = agent.score([answer.record])
            assert float(again.log_prob(answer.record.value[None])[0]) == pytest.approx(answer.record.log_prob,
                                                                                       abs=1e-6)
        agent.set_decoding()
        (greedy,) = agent.decide([request])
        assert greedy.action.name == names[int(expected.argmax())]
        with pytest.raises(AgentError, match=r"unknown: \['jump'\]"):
            agent.restrict_actions("grid_world", ["left", "jump"])
        with pytest.raises(AgentError, match="only a classification head"):
            agent.restrict_actions("codes", allowed)
    finally:
        agent.set_decoding()
        agent.restrict_actions("grid_world", None)
    assert agent.settings.domains["grid_world"].actions is None
    assert agent.adapters["grid_world"].allowed is None
