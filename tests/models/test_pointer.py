"""The image pointer: cells map to the right patches, scores follow the image, generate works."""

import numpy as np
import pytest
import torch

from omniactor.actions.tokenizers import build_action_tokenizer
from omniactor.models.chat import add_adapters, chat_inputs
from omniactor.models.pointer import PointerError, cell_patches
from omniactor.models.presets import build_model
from omniactor.models.vocabulary import add_action_vocabulary


@pytest.fixture(scope="module")
def pointed():
    model, processor = build_model("tiny", seed=0)
    tokenizer = build_action_tokenizer("gui_location", grid=4)
    add_action_vocabulary(model, processor.tokenizer, tokenizer)
    ids = processor.tokenizer.convert_tokens_to_ids([f"<loc_{i}>" for i in range(16)])
    add_adapters(model, processor.tokenizer, pointer={"loc_token_ids": ids, "grid": 4})
    return model.eval(), processor, ids


def test_each_cell_maps_to_the_patch_under_its_centre_in_the_processors_order(pointed):
    _, processor, _ = pointed
    # a 56 px image is 4 x 4 patches of 14 px; patch (r, c) gets the grey level 10 * (4 r + c)
    image = np.zeros((56, 56, 3), dtype=np.uint8)
    for r in range(4):
        for c in range(4):
            image[14 * r:14 * (r + 1), 14 * c:14 * (c + 1)] = 10 * (4 * r + c)
    inputs = chat_inputs(processor, [("", "x", [image])], 56)
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]]
    levels = inputs["pixel_values"].mean(dim=1)  # one row per patch, in the processor's order
    order = torch.argsort(levels)  # the processor row of patch 0, 1, ..., 15 (row-major)
    token, patch = cell_patches(4, 4, 4, 2)
    assert patch.tolist() == order.tolist()
    assert token.tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]
    # a coarser action grid than the patch grid: each cell takes the patch under its centre
    token, patch = cell_patches(2, 4, 4, 2)
    assert patch.tolist() == [order[5].item(), order[7].item(), order[13].item(), order[15].item()]


def test_the_cell_scores_follow_the_image_and_only_the_image_rows_own(pointed):
    model, processor, ids = pointed
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 255, (210, 160, 3), dtype=np.uint8) for _ in range(2))
    with torch.no_grad():
        one = model(**chat_inputs(processor, [("", "click", [a]), ("", "click it", [a])], [56, 28])).logits
        two = model(**chat_inputs(processor, [("", "click", [b]), ("", "click it", [a])], [56, 28])).logits
    assert not torch.allclose(one[0, -1, ids], two[0, -1, ids])  # another screenshot, other cell scores
    assert torch.allclose(one[1, -1, ids], two[1, -1, ids], atol=1e-5)  # the other row is untouched


def test_generation_keeps_the_prompts_image_keys_for_its_decoding_steps(pointed):
    model, processor, ids = pointed
    image = np.random.default_rng(1).integers(0, 255, (56, 56, 3), dtype=np.uint8)
    inputs = chat_inputs(processor, [("", "click", [image])], 56)
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=3, do_sample=False,
                                   output_logits=True, return_dict_in_generate=True)
        prompt = model(**inputs).logits[0, -1]
    assert torch.allclose(generated.logits[0][0], prompt, atol=1e-4)
    # a decoding step's <loc_i> scores come from the kept keys: equal to a full forward pass
    full = torch.cat([inputs["input_ids"], generated.sequences[:, -3:-2]], dim=1)
    with torch.no_grad():
        again = model(**{**inputs, "input_ids": full, "attention_mask": torch.ones_like(full),
                         "mm_token_type_ids": torch.cat([inputs["mm_token_type_ids"],
                                                         torch.zeros_like(full[:, :1])], dim=1)}).logits[0, -1]
    assert torch.allclose(generated.logits[1][0, ids], again[ids], atol=1e-4)


def test_a_family_without_the_known_patch_order_is_refused():
    model, processor = build_model("tiny-qwen2.5-vl", seed=0)
    with pytest.raises(PointerError, match="Qwen2-VL"):
        add_adapters(model, processor.tokenizer, pointer={"loc_token_ids": [0, 1, 2, 3], "grid": 2})
