import copy

import pytest
import torch

from omniactor.actions import ContinuousAction
from omniactor.actions.tokenizers import VocabularyPlacement, build_action_tokenizer
from omniactor.models.adapters import AdapterConfig, attach_adapters, last_token_states
from omniactor.models.checkpoint import export_dense, load_pretrained, save_pretrained
from omniactor.models.heterogeneity import HeterogeneityConfig, convert
from omniactor.models.presets import build_model
from omniactor.models.vocabulary import add_action_vocabulary, least_frequent_ids

from .test_families import processor_batch


@pytest.fixture(scope="module")
def tiny():
    return build_model("tiny")


def test_new_action_tokens_start_at_the_mean_embedding_in_every_domain_head(tiny):
    dense, processor = tiny
    tokenizer = copy.deepcopy(processor.tokenizer)
    model = convert(copy.deepcopy(dense), HeterogeneityConfig(shared_layers=2))
    old = model.get_input_embeddings().weight.detach().clone()
    action_tok = build_action_tokenizer("uniform", num_bins=16, names=[f"a{i}" for i in range(7)], normalization=None)
    new_ids = add_action_vocabulary(model, tokenizer, action_tok)
    assert len(new_ids) == 16 and new_ids == list(range(old.shape[0], old.shape[0] + 16))
    embed = model.get_input_embeddings().weight
    assert torch.allclose(embed[new_ids], old.mean(0, keepdim=True).expand(16, -1), atol=1e-6)
    for head in model.lm_head.experts.values():
        assert head.weight.shape[0] == old.shape[0] + 16
    # the placement is bound: codes map to the new ids and the text splits into exactly those ids
    action = ContinuousAction((0.0,) * 7)
    assert action_tok.encode_ids(action) == [new_ids[c] for c in action_tok.encode(action)]
    assert tokenizer(action_tok.encode_text(action), add_special_tokens=False)["input_ids"] == action_tok.encode_ids(action)
    batch = processor_batch(processor, n=2)
    batch["input_ids"][0, -1] = new_ids[3]
    with torch.no_grad():
        assert model(**batch, domain="embodied").logits.shape[-1] == old.shape[0] + 16


def test_location_tokens_of_a_text_tokenizer_are_added_too(tiny):
    dense, processor = tiny
    tokenizer = copy.deepcopy(processor.tokenizer)
    model = copy.deepcopy(dense)
    loc = build_action_tokenizer("gui_location", grid=8)
    added = add_action_vocabulary(model, tokenizer, loc)
    assert len(added) == 64
    ids = tokenizer("click(<loc_17>)", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_tokens_to_ids("<loc_17>") in ids  # one atomic token per cell
    assert loc.decode(tokenizer.decode(ids)) == loc.decode("click(<loc_17>)")


def test_least_frequent_ids_reuse_rare_ordinary_tokens(tiny):
    _, processor = tiny
    tokenizer = processor.tokenizer
    corpus = ["click the blue button", "pick up the red block"] * 10
    ids = least_frequent_ids(tokenizer, 32, corpus)
    seen = set(tokenizer(" ".join(corpus), add_special_tokens=False)["input_ids"])
    assert len(set(ids)) == 32 and not set(ids) & seen
    assert not set(ids) & set(tokenizer.all_special_ids)
    tok = build_action_tokenizer("uniform", num_bins=32, names=["x"], normalization=None,
                                 placement=VocabularyPlacement("reuse", ids=ids))
    assert add_action_vocabulary(copy.deepcopy(tiny[0]), copy.deepcopy(tokenizer), tok) == []
    assert tok.encode_ids(ContinuousAction((1.0,), ("x",))) == [ids[31]]


def test_pred_heads_and_state_input_train_save_load_and_export(tmp_path, tiny):
    dense, processor = tiny
    tokenizer = copy.deepcopy(processor.tokenizer)
    tokenizer.add_tokens(["<state>"])
    model = convert(copy.deepcopy(dense), HeterogeneityConfig(shared_layers=2))
    from omniactor.models.vocabulary import resize_vocabulary

    resize_vocabulary(model, len(tokenizer))
    state_id = tokenizer.convert_tokens_to_ids("<state>")
    attach_adapters(model, AdapterConfig(regression_dims={"embodied": 4}, classification_sizes={"discrete": 7},
                                         state_dim=39, state_token_id=state_id))
    batch = processor_batch(processor, n=2)
    batch["input_ids"][:, 1] = state_id
    state = torch.randn(2, 39)
    model.train()
    out = model(**batch, domain="embodied", state=state, output_hidden_states=True)
    pooled = last_token_states(out.hidden_states[-1], batch["attention_mask"])
    predicted = model.omniactor_adapters["regression_embodied"](pooled)
    assert predicted.shape == (2, 4) and predicted.abs().max() <= 1
    loss = model.omniactor_adapters["regression_embodied"].loss(predicted, torch.zeros(2, 4))
    logits = model.omniactor_adapters["classification_discrete"](pooled)
    loss = loss + model.omniactor_adapters["classification_discrete"].loss(logits, torch.tensor([0, 6]))
    loss.backward()
    assert model.omniactor_adapters["state"].net[0].weight.grad.abs().sum() > 0  # the state reached the loss

    model.eval()
    with torch.no_grad():
        a = model(**batch, domain="embodied", state=state).logits
        b = model(**batch, domain="embodied", state=state * 2).logits
    assert not torch.allclose(a, b)  # the state vector changes the output
    save_pretrained(model, tmp_path / "ckpt")
    loaded = load_pretrained(tmp_path / "ckpt")
    with torch.no_grad():
        assert torch.equal(loaded(**batch, domain="embodied", state=state).logits, a)
    export_dense(loaded, "gui", tmp_path / "gui")  # adapters are left out of the plain dense view
    with pytest.raises(ValueError, match="no state= was given"):
        fresh = load_pretrained(tmp_path / "ckpt")
        fresh(**batch, domain="embodied")
