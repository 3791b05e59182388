"""Constrained decoding: whatever the weights, every answer is a valid, in-range action of its domain."""

import pytest
import torch

from omniactor.actions import ContinuousAction, DiscreteAction, GuiAction, format_action, parse_action
from omniactor.actions.tokenizers.gui_location import GuiLocationTokenizer
from omniactor.agent.constraints import ActionConstraint, CodeGrammar

from .conftest import DOMAINS, build_random_agent, random_image


def check_in_range(agent, domain, action):
    tokenizer = agent.action_tokenizers[domain]
    if domain in ("gui", "gui_grid"):
        assert isinstance(action, GuiAction.__args__)
        if not isinstance(tokenizer, GuiLocationTokenizer):
            assert parse_action(format_action(action)) == action  # parses back to itself
    elif domain == "embodied":
        assert isinstance(action, ContinuousAction) and action.names == tokenizer.names
        low, high = tokenizer.normalizer.low, tokenizer.normalizer.high
        assert all(lo - 1e-6 <= v <= hi + 1e-6 for v, lo, hi in zip(action.values, low, high))
    else:
        assert isinstance(action, DiscreteAction) and action.name in tokenizer.space.names


@pytest.fixture(scope="module")
def sampling_agent():
    return build_random_agent(do_sample=True, top_k=8, seed=0)


@pytest.mark.parametrize("domain", DOMAINS)
def test_a_thousand_sampled_constrained_answers_all_decode_and_lie_in_range(sampling_agent, domain):
    answers = []
    for batch in range(4):
        requests = [(domain, f"task {i}", [random_image(batch * 250 + i, 28)], []) for i in range(250)]
        answers += sampling_agent.decide(requests)
    assert len(answers) == 1000
    assert all(a.valid for a in answers), [a.text for a in answers if not a.valid][:5]
    for answer in answers:
        check_in_range(sampling_agent, domain, answer.action)
    assert len({a.text for a in answers}) > 5  # sampling explores the space; it is not one answer repeated


def test_unconstrained_answers_of_the_same_model_mostly_do_not_decode(sampling_agent):
    sampling_agent.constrained = False
    try:
        for domain in DOMAINS:
            answers = sampling_agent.decide([(domain, "task", [random_image(i, 28)], []) for i in range(100)])
            assert sum(a.valid for a in answers) <= 10, domain
            invalid = [a for a in answers if not a.valid]
            for answer in invalid:  # never an exception: the domain's no-op, counted
                check_in_range(sampling_agent, domain, answer.action)
                assert answer.error
    finally:
        sampling_agent.constrained = True
    assert sampling_agent.stats["invalid"] >= 360


def test_greedy_answers_are_the_same_batched_and_one_by_one(random_agent):
    requests = [(d, f"task {i}", [random_image(i)], []) for i, d in enumerate(DOMAINS * 2)]
    batched = [a.text for a in random_agent.decide(requests)]
    alone = [random_agent.decide([r])[0].text for r in requests]
    assert batched == alone
    assert random_agent.decide(requests[:1])[0].text == alone[0]  # greedy is deterministic


def test_code_grammar_allows_each_positions_codes_then_only_the_end():
    grammar = CodeGrammar([[3, 4], [5], [3]], end_id=9, vocab_size=10)
    constraint = ActionConstraint([grammar, None], prompt_length=2, top_k=10)
    scores = torch.zeros(2, 10)
    ids = torch.tensor([[0, 1], [0, 1]])
    allowed = []
    for token in [4, 5, 3, 9]:
        out = constraint(ids, scores.clone())
        allowed.append(torch.isfinite(out[0]).nonzero().squeeze(1).tolist())
        assert torch.isfinite(out[1]).all()  # a row without grammar is left alone
        ids = torch.cat([ids, torch.tensor([[token], [0]])], dim=1)
    assert allowed == [[3, 4], [5], [3], [9]]


def test_text_grammar_keeps_the_best_valid_token_even_when_invalid_ones_score_higher(random_agent):
    grammar = random_agent.grammar("discrete")
    table = grammar.table
    constraint = ActionConstraint([grammar], prompt_length=0, top_k=1)
    scores = torch.zeros(1, random_agent.vocab_size)
    bad = random_agent.tokenizer.convert_tokens_to_ids("x")
    scores[0, bad] = 100.0  # the model wants 'x', which starts no phrase
    out = constraint(torch.zeros(1, 0, dtype=torch.long), scores)
    kept = torch.isfinite(out[0]).nonzero().squeeze(1).tolist()
    assert len(kept) == 1 and kept[0] != bad
    assert grammar.can_continue(table.texts[kept[0]])
