"""Copying from the prompt: a proper distribution, only prompt text as sources, and it learns to copy."""

import numpy as np
import pytest
import torch

from omniactor.models.chat import add_adapters, chat_inputs
from omniactor.models.presets import build_model


@pytest.fixture(scope="module")
def copying():
    model, processor = build_model("tiny", seed=0)
    add_adapters(model, processor.tokenizer, copy=True)
    return model, processor


def _inputs(processor, texts):
    image = np.zeros((56, 56, 3), dtype=np.uint8)
    return chat_inputs(processor, [("", text, [image]) for text in texts], 56)


def test_logits_are_the_log_probabilities_of_the_mixture(copying):
    model, processor = copying
    with torch.no_grad():
        logits = model(**_inputs(processor, ['Enter "Cierra" now', "go"])).logits
    assert torch.allclose(torch.logsumexp(logits[:, -1].float(), dim=-1), torch.zeros(2), atol=1e-4)


def test_sources_are_the_human_turns_text_only(copying):
    model, processor = copying
    inputs = _inputs(processor, ['Enter "Cierra" now'])
    tokenizer = processor.tokenizer
    mask = model.omniactor_adapters["copy"].sources(inputs["input_ids"])[0]
    copied = tokenizer.decode(inputs["input_ids"][0][mask])
    assert "Cierra" in copied
    kept = set(inputs["input_ids"][0][mask].tolist())
    assert model.config.image_token_id not in kept
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") not in kept
    assert "assistant" not in copied  # the answer's own turn is not a source


def test_a_model_learns_to_type_the_name_it_is_given(copying):
    """Random names, 200 steps: with the copy, the next letter of a name never seen in training is
    the model's best guess for most of its tokens (chance: one of 2,300 tokens).

    Measured teacher-forced on 16 held-out names (72 tokens): 0.75 on a 2-core CPU. Greedy
    generation is not asserted: whether 2 or 3 of 4 names come out whole after 200 steps depends
    on the machine's float rounding, where the per-token accuracy does not move much."""
    model, processor = build_model("tiny", seed=1)
    add_adapters(model, processor.tokenizer, copy=True)
    tokenizer = processor.tokenizer
    rng = np.random.default_rng(0)
    letters = "abcdefghijklmnopqrstuvwxyz"

    def batch(names):
        inputs = _inputs(processor, [f'Enter "{name}" please' for name in names])
        answers = tokenizer([f'{name}<|im_end|>' for name in names], add_special_tokens=False, padding=True,
                            return_tensors="pt")["input_ids"]
        ids = torch.cat([inputs["input_ids"], answers], dim=1)
        labels = torch.cat([torch.full_like(inputs["input_ids"], -100), answers], dim=1)
        labels[labels == tokenizer.pad_token_id] = -100
        mask = torch.cat([inputs["attention_mask"], (answers != tokenizer.pad_token_id).long()], dim=1)
        return {**inputs, "input_ids": ids, "attention_mask": mask,
                "mm_token_type_ids": torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(answers)], 1)}, labels

    def random_names(generator, n):
        return ["".join(generator.choice(list(letters), 4)).capitalize() for _ in range(n)]

    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(200):
        inputs, labels = batch(random_names(rng, 16))
        logits = model(**inputs).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                 labels[:, 1:].reshape(-1), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    held_out = ["Qwer", "Zxcv", "Plmo", "Vbnh"] + random_names(np.random.default_rng(123), 12)
    inputs, labels = batch(held_out)
    with torch.no_grad():
        best = model(**inputs).logits[:, :-1].argmax(-1)
    answer = labels[:, 1:] != -100
    accuracy = float((best[answer] == labels[:, 1:][answer]).float().mean())
    assert accuracy >= 0.5, accuracy
