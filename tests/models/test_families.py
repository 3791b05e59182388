"""The conversion on every supported family's tiny preset, with real processor batches."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from omniactor.models.heterogeneity import HeterogeneityConfig, convert, use_domains
from omniactor.models.presets import build_model

from .test_heterogeneity import perturb_experts

FAMILY_PRESETS = ["tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-llava-onevision"]


def processor_batch(processor, n: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    texts, images = [], []
    for i in range(n):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"step {i}: pick up"}]}]
        texts.append(processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        images.append(Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)))
    return dict(processor(text=texts, images=images, return_tensors="pt", padding=True))


@pytest.fixture(scope="module", params=FAMILY_PRESETS)
def family(request):
    model, processor = build_model(request.param)
    return request.param, model, processor


def test_every_variant_starts_equal_to_dense_and_routes_mixed_batches(family):
    name, dense, processor = family
    batch = processor_batch(processor)
    domains = ["gui", "embodied", "discrete"]
    with torch.no_grad():
        reference = dense(**batch).logits
    for variant in ("omniactor", "hard", "router"):
        model = convert(copy.deepcopy(dense), HeterogeneityConfig(variant, shared_layers=2, domains=domains))
        with torch.no_grad():
            assert torch.allclose(model(**batch, domain_ids=domains).logits, reference, atol=1e-5), (name, variant)
    perturb_experts(model := convert(copy.deepcopy(dense), HeterogeneityConfig(shared_layers=2, domains=domains)))
    with torch.no_grad():
        mixed = model(**batch, domain_ids=domains).logits
        for i, domain in enumerate(domains):
            alone = model(**batch, domain=domain).logits[i]
            assert torch.allclose(mixed[i], alone, atol=1e-5), (name, domain)


def test_generation_with_cache_equals_without(family):
    name, dense, processor = family
    model = convert(copy.deepcopy(dense), HeterogeneityConfig(shared_layers=2))
    perturb_experts(model)
    batch = processor_batch(processor, n=2)
    with use_domains(model, ["gui", "embodied"]), torch.no_grad():
        cached = model.generate(**batch, max_new_tokens=5, do_sample=False)
        uncached = model.generate(**batch, max_new_tokens=5, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached), name
