"""A tiny random Qwen2-VL built from config (no download), and batches with an image per sample."""

import torch

IMAGE_TOKEN, VIDEO_TOKEN, VISION_START, VISION_END = 299, 298, 297, 296
VOCAB = 300


def tiny_qwen2_vl(layers: int = 4, tie: bool = False, seed: int = 0):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    torch.manual_seed(seed)
    text = dict(hidden_size=64, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=128, vocab_size=VOCAB, tie_word_embeddings=tie,
                rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, bos_token_id=0, eos_token_id=1,
                pad_token_id=2)
    vision = dict(depth=2, embed_dim=32, num_heads=2, hidden_size=64, mlp_ratio=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=IMAGE_TOKEN,
                           video_token_id=VIDEO_TOKEN, vision_start_token_id=VISION_START,
                           vision_end_token_id=VISION_END, tie_word_embeddings=tie)
    return Qwen2VLForConditionalGeneration(config).eval()


def image_batch(batch: int = 4, text_tokens: int = 10, seed: int = 1) -> dict:
    """``batch`` samples, each: 3 text tokens, one 56x56 image (4 merged tokens), text."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.tensor([[1, 4, 4]] * batch)  # t, h, w in 14 px patches -> 16 patches -> 4 tokens
    pixel_values = torch.randn(batch * 16, 3 * 2 * 14 * 14, generator=g)
    rows = []
    for _ in range(batch):
        prefix = torch.randint(3, 290, (3,), generator=g).tolist()
        suffix = torch.randint(3, 290, (text_tokens,), generator=g).tolist()
        rows.append(prefix + [VISION_START] + [IMAGE_TOKEN] * 4 + [VISION_END] + suffix)
    input_ids = torch.tensor(rows)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "pixel_values": pixel_values,
            "image_grid_thw": grid, "mm_token_type_ids": (input_ids == IMAGE_TOKEN).long()}


def rows(batch: dict, index: list[int]) -> dict:
    """The sub-batch of samples ``index`` (pixel rows follow their images)."""
    out = {k: v[index] for k, v in batch.items() if k != "pixel_values"}
    patches = batch["pixel_values"].view(batch["input_ids"].shape[0], -1, batch["pixel_values"].shape[-1])
    out["pixel_values"] = patches[index].reshape(-1, patches.shape[-1])
    return out
