import copy

import pytest
import torch

from omniactor.models.heterogeneity import (
    HeterogeneityConfig,
    aux_loss,
    convert,
    domain_parameters,
    shared_parameters,
    use_domains,
)
from omniactor.models.routing import DomainRouted, RoutingError

from .tiny import image_batch, rows, tiny_qwen2_vl

DOMAINS = ("gui", "embodied", "discrete")
VARIANTS = ["dense", "omniactor", "hard", "router"]


def converted(dense, variant: str, shared: int = 2, domains=DOMAINS):
    return convert(copy.deepcopy(dense), HeterogeneityConfig(variant=variant, shared_layers=shared, domains=domains))


def perturb_experts(model, scale: float = 0.05, seed: int = 0):
    """Make the domains differ, as after training, so routing mistakes become visible."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".experts." in name and ".experts.gui." not in name:
                p.add_(scale * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("variant", VARIANTS)
def test_right_after_conversion_every_domain_computes_the_dense_logits(dense_model, variant):
    batch = image_batch(3)
    with torch.no_grad():
        reference = dense_model(**batch).logits
        model = converted(dense_model, variant)
        for domain in DOMAINS:
            logits = model(**batch, domain=domain).logits
            assert torch.allclose(logits, reference, atol=1e-5), (variant, domain)


@pytest.mark.parametrize("variant", ["omniactor", "hard", "router"])
def test_a_mixed_batch_equals_the_domains_run_separately(dense_model, variant):
    model = converted(dense_model, variant)
    perturb_experts(model)
    batch = image_batch(4)
    domains = ["gui", "embodied", "discrete", "embodied"]
    with torch.no_grad():
        mixed = model(**batch, domain_ids=domains).logits
        for domain in DOMAINS:
            index = [i for i, d in enumerate(domains) if d == domain]
            alone = model(**rows(batch, index), domain=domain).logits
            assert torch.allclose(mixed[index], alone, atol=1e-5), domain
    if variant != "router":  # the router ignores domains; the others must differ by domain
        with torch.no_grad():
            assert not torch.allclose(mixed[[1]], model(**rows(batch, [1]), domain="gui").logits, atol=1e-4)


def test_a_training_step_on_one_domain_changes_only_that_domain_and_the_shared_part(dense_model):
    model = converted(dense_model, "omniactor").train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = image_batch(2)
    loss = model(**batch, labels=batch["input_ids"], domain="embodied").loss
    loss.backward()
    optimizer.step()

    def changed(names):
        return {n for n in names if not torch.equal(before[n], dict(model.named_parameters())[n])}

    for other in ("gui", "discrete"):
        assert changed(domain_parameters(model, other)) == set(), other
    own = domain_parameters(model, "embodied")
    assert changed(own) == set(own)  # every parameter of the trained domain moved
    shared = {n for n in shared_parameters(model) if "embed_tokens" not in n and "visual" not in n}
    assert changed(shared) == shared  # shared decoder layers moved
    assert len(changed(n for n in shared_parameters(model) if "visual" in n)) > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_greedy_generation_with_cache_equals_without(dense_model, variant):
    model = converted(dense_model, variant)
    perturb_experts(model)
    batch = image_batch(3)
    with use_domains(model, ["gui", "embodied", "discrete"]), torch.no_grad():
        cached = model.generate(**batch, max_new_tokens=6, do_sample=False, use_cache=True)
        uncached = model.generate(**batch, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_generation_with_several_sequences_per_sample_repeats_the_domains(dense_model):
    model = converted(dense_model, "omniactor")
    perturb_experts(model)
    batch = image_batch(2)
    with use_domains(model, ["gui", "embodied"]), torch.no_grad():
        out = model.generate(**batch, max_new_tokens=4, do_sample=True, num_return_sequences=3)
    assert out.shape[0] == 6


def test_a_domain_homogeneous_batch_runs_one_expert_per_module(dense_model):
    model = converted(dense_model, "omniactor")
    calls = {d: 0 for d in DOMAINS}

    def count(domain):
        def hook(*_):
            calls[domain] += 1
        return hook

    routed = [m for m in model.modules() if isinstance(m, DomainRouted)]
    for module in routed:
        for domain, expert in module.experts.items():
            expert.register_forward_hook(count(domain))
    with torch.no_grad():
        model(**image_batch(2), domain="embodied")
    assert calls == {"gui": 0, "embodied": len(routed), "discrete": 0}


def test_routing_errors_are_clear(dense_model):
    model = converted(dense_model, "omniactor")
    batch = image_batch(2)
    with pytest.raises(RoutingError, match="unknown domain 'web'"):
        model(**batch, domain="web")
    with pytest.raises(RoutingError, match="3 domain ids for a batch of 2"):
        model(**batch, domain_ids=["gui", "gui", "gui"])
    fresh = converted(dense_model, "omniactor")
    with pytest.raises(RoutingError, match="no domain set"):
        fresh(**batch)
    with pytest.raises(ValueError, match="variant 'soft'"):
        HeterogeneityConfig(variant="soft")
    with pytest.raises(ValueError, match="has 4 decoder layers"):
        converted(dense_model, "omniactor", shared=9)


def test_router_reports_a_load_balancing_loss_and_learns(dense_model):
    model = converted(dense_model, "router").train()
    batch = image_batch(2)
    out = model(**batch, labels=batch["input_ids"], domain="gui")
    balance = aux_loss(model)
    assert balance is not None and balance.item() == pytest.approx(1.0, abs=1e-5)  # uniform start, all to one expert
    (out.loss + 0.01 * balance).backward()
    gates = [p.grad for n, p in model.named_parameters() if "omniactor_router" in n]
    assert len(gates) == 2 and all(g is not None and g.abs().sum() > 0 for g in gates)


def test_parameter_counts_grow_as_the_variants_say():
    dense = tiny_qwen2_vl(layers=4)

    def count(model):
        return sum(p.numel() for p in model.parameters())

    layer = sum(p.numel() for p in dense.model.language_model.layers[0].parameters())
    head = dense.lm_head.weight.numel() + dense.model.language_model.norm.weight.numel()
    base = count(dense)
    assert count(converted(dense, "dense")) == base
    assert count(converted(dense, "omniactor", shared=1, domains=("gui", "embodied"))) == base + 3 * layer + head
    assert count(converted(dense, "hard", domains=("gui", "embodied"))) == base + 4 * layer + head
    router = converted(dense, "router", shared=3, domains=("gui", "embodied"))
    assert count(router) == base + layer + 2 * 64  # one more expert layer and its router gate (64 x 2)


def test_tied_embeddings_are_untied_for_separate_heads():
    dense = tiny_qwen2_vl(tie=True)
    assert dense.lm_head.weight is dense.get_input_embeddings().weight
    model = converted(dense, "omniactor")
    batch = image_batch(2)
    with torch.no_grad():
        assert torch.allclose(model(**batch, domain="gui").logits, dense(**batch).logits, atol=1e-5)
    assert not model.config.get_text_config().tie_word_embeddings
