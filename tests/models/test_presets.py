"""Model presets and local tokenizers/processors: registry, configs, tiny models end to end, real sizes."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from omniactor.models.local_tokenizer import (  # noqa: E402
    QWEN2_VL_CHAT_TEMPLATE,
    TOKENIZER_SPECS,
    _train_bpe,
    build_local_processor,
    build_local_tokenizer,
    default_corpus,
)
from omniactor.models.presets import (  # noqa: E402
    FAMILIES,
    PRESETS,
    ModelPreset,
    build_model,
    count_parameters,
    family_of,
    get_preset,
    list_presets,
    load_model,
    paper_shared_layers,
    preset_fields_help,
)

TINY = [p.name for p in list_presets() if p.is_tiny]
REAL = [p.name for p in list_presets() if not p.is_tiny]
#: image tokens of one 112x112 image with each tiny preset's processor
TINY_IMAGE_TOKENS = {"tiny-qwen2-vl": 16, "tiny-qwen2.5-vl": 16, "tiny-llava-onevision": 36}


def red_block(size=(112, 112)) -> Image.Image:
    image = Image.new("RGB", size, (230, 230, 230))
    image.paste((200, 30, 30), (40, 50, 70, 80))
    return image


def messages(image: Image.Image, text: str = "Pick up the red block.") -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]


def encode(processor, image=None):
    return processor.apply_chat_template(
        messages(image or red_block()), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )


@pytest.fixture(scope="module", params=TINY)
def tiny(request):
    model, processor = build_model(request.param)
    return request.param, model, processor


# ------------------------------------------------------------------------------------------ registry


def test_registry_names_aliases_and_families():
    names = [p.name for p in list_presets()]
    assert len(names) == len(set(names)) == len(PRESETS)
    assert get_preset("tiny") is get_preset("tiny-qwen2-vl")
    assert get_preset(PRESETS["qwen2-vl-7b"]) is PRESETS["qwen2-vl-7b"]
    assert set(FAMILIES) == set(TOKENIZER_SPECS)
    assert {p.family for p in list_presets()} == set(FAMILIES)
    for family in FAMILIES:  # one tiny preset per family
        assert any(p.is_tiny and p.family == family for p in list_presets())


def test_every_preset_field_has_a_one_line_help():
    help_ = preset_fields_help()
    assert set(help_) == {f.name for f in dataclasses.fields(ModelPreset)}
    assert all(text and "\n" not in text for text in help_.values())


def test_presets_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["tiny-qwen2-vl"].num_layers = 3


def test_a_derived_preset_is_checked_and_builds():
    with pytest.raises(ValueError, match="num_kv_heads"):
        dataclasses.replace(get_preset("tiny"), num_kv_heads=3)
    wider = dataclasses.replace(get_preset("tiny"), name="tiny-256", hidden_size=256, intermediate_size=1024)
    model, processor = build_model(wider)
    assert model.get_submodule(wider.spec.head_path).in_features == 256


def test_a_typo_in_a_preset_name_suggests_the_right_one():
    with pytest.raises(KeyError) as err:
        get_preset("tiny-qwen2vl")
    assert "did you mean 'tiny-qwen2-vl'" in str(err.value)
    assert "known presets" in str(err.value)
    with pytest.raises(KeyError, match="did you mean 'qwen2.5-vl-7b'"):
        get_preset("qwen25-vl-7b")


def test_paper_split_is_8_of_28_layers():
    assert paper_shared_layers(28) == 8
    for name in ("qwen2-vl-7b", "qwen2.5-vl-7b", "qwen2-vl-2b", "llava-onevision-7b"):
        assert get_preset(name).shared_layers == 8
    assert get_preset("tiny").num_layers == 8 and get_preset("tiny").shared_layers == 2


# ------------------------------------------------------------------------------------------ tokenizer


def test_bpe_training_is_deterministic():
    corpus = default_corpus()
    assert _train_bpe(corpus, 600) == _train_bpe(corpus, 600)


@pytest.mark.parametrize("family", sorted(TOKENIZER_SPECS))
def test_local_tokenizer_has_the_family_tokens_in_checkpoint_order(family):
    spec = TOKENIZER_SPECS[family]
    tok = build_local_tokenizer(family)
    assert len(tok) == 2048  # the built-in corpus supports the default size
    added = spec.special_tokens + spec.extra_tokens
    first = len(tok) - len(added)
    assert tok.convert_tokens_to_ids(list(added)) == list(range(first, len(tok)))
    assert tok.convert_ids_to_tokens(first) == "<|endoftext|>"  # as 151643 in Qwen
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    text = "Operation: pyautogui.click(x=0.634, y=0.927) Pick up the red block!"
    ids = tok(text + "<|im_end|>").input_ids
    assert ids[-1] == tok.eos_token_id  # special tokens are atomic
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.tokenize("0.634") == ["0", ".", "6", "3", "4"]  # digits one by one, as Qwen2


def test_qwen_chat_template_renders_chatml_with_vision_markers():
    tok = build_local_tokenizer("qwen2-vl")
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Click OK."}]}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Click OK.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert TOKENIZER_SPECS["qwen2.5-vl"].chat_template == QWEN2_VL_CHAT_TEMPLATE


def test_llava_onevision_chat_template_puts_images_first():
    tok = build_local_tokenizer("llava-onevision")
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Click OK."}, {"type": "image"}]}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user <image>\nClick OK.<|im_end|><|im_start|>assistant\n"


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="unknown model family 'qwen3-vl'"):
        build_local_tokenizer("qwen3-vl")


# ------------------------------------------------------------------------------------------ configs


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_its_config(name):
    preset = get_preset(name)
    spec = FAMILIES[preset.family]
    tok = build_local_tokenizer(preset.family)
    config = preset.build_config(tok)
    assert type(config).__name__ == spec.config_class and config.model_type == spec.model_type
    text = spec.text_config(config)
    assert (text.hidden_size, text.num_hidden_layers) == (preset.hidden_size, preset.num_layers)
    assert (text.num_attention_heads, text.num_key_value_heads) == (preset.num_heads, preset.num_kv_heads)
    assert text.intermediate_size == preset.intermediate_size
    assert text.vocab_size == (preset.vocab_size or len(tok))
    assert config.tie_word_embeddings == preset.tie_word_embeddings
    for field, token in spec.token_id_fields:
        assert getattr(config, field) == tok.convert_tokens_to_ids(token), field
    assert text.eos_token_id == tok.eos_token_id and text.pad_token_id == tok.pad_token_id


def test_real_qwen2_vl_7b_hyper_parameters():
    text = get_preset("qwen2-vl-7b").build_config().text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        3584, 28, 28, 4,
    )
    assert (text.intermediate_size, text.vocab_size) == (18944, 152064)
    assert text.rope_parameters["mrope_section"] == [16, 24, 24]
    assert text.rope_parameters["rope_theta"] == 1_000_000.0


# ------------------------------------------------------------------------------------------ real sizes


@pytest.mark.parametrize("name", REAL)
def test_real_presets_match_the_published_parameter_counts(name):
    preset = get_preset(name)
    model, _ = build_model(preset, random_init=True, device="meta", dtype="bfloat16")  # no memory
    assert type(model).__name__ == FAMILIES[preset.family].model_class
    assert len(model.get_submodule(preset.spec.layers_path)) == preset.num_layers
    assert count_parameters(model) == pytest.approx(preset.published_params, rel=0.005)


def test_a_real_preset_is_not_mistaken_for_a_checkpoint():
    with pytest.raises(ValueError, match="load_model"):
        build_model("qwen2-vl-7b")


# ------------------------------------------------------------------------------------------ tiny models


def test_tiny_model_parts_are_where_the_family_spec_says(tiny):
    name, model, processor = tiny
    preset, spec = get_preset(name), family_of(model)
    assert spec.name == preset.family
    vocab = len(processor.tokenizer)
    assert len(model.get_submodule(spec.layers_path)) == preset.num_layers
    assert model.get_submodule(spec.embed_path).num_embeddings == vocab
    assert model.get_submodule(spec.head_path).out_features == vocab
    assert model.get_submodule(spec.final_norm_path).weight.shape == (preset.hidden_size,)
    assert count_parameters(model.get_submodule(spec.vision_path)) > 0
    assert count_parameters(model.get_submodule(spec.projector_path)) > 0
    assert count_parameters(model) < 4_000_000


def test_tiny_model_forward_with_an_image_gives_vocabulary_logits(tiny):
    name, model, processor = tiny
    batch = encode(processor)
    assert int((batch["input_ids"] == processor.image_token_id).sum()) == TINY_IMAGE_TOKENS[name]
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], len(processor.tokenizer))
    assert torch.isfinite(logits).all()


def test_tiny_model_trains_on_a_padded_batch_of_two_image_sizes(tiny):
    _, model, processor = tiny
    texts = [
        processor.apply_chat_template(messages(red_block(), t), add_generation_prompt=True, tokenize=False)
        for t in ("Click OK.", "Pick up the red block and put it on the green plate.")
    ]
    batch = processor(text=texts, images=[red_block(), red_block((160, 120))], padding=True, return_tensors="pt")
    model.train()
    try:
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
    assert torch.isfinite(loss)


def test_tiny_model_generates(tiny):
    _, model, processor = tiny
    batch = encode(processor)
    out = model.generate(**batch, max_new_tokens=3, min_new_tokens=3)
    assert out.shape == (1, batch["input_ids"].shape[1] + 3)
    assert isinstance(processor.batch_decode(out[:, batch["input_ids"].shape[1]:])[0], str)


def test_build_is_seeded():
    a, _ = build_model("tiny-qwen2-vl", seed=0)
    b, _ = build_model("tiny-qwen2-vl", seed=0)
    c, _ = build_model("tiny-qwen2-vl", seed=1)
    head = FAMILIES["qwen2-vl"].head_path
    assert torch.equal(a.get_submodule(head).weight, b.get_submodule(head).weight)
    assert not torch.equal(a.get_submodule(head).weight, c.get_submodule(head).weight)


def test_processor_save_and_autoprocessor_reload_round_trip(tmp_path):
    from transformers import AutoProcessor

    for family in FAMILIES:
        processor = build_local_processor(family)
        processor.save_pretrained(tmp_path / family)
        again = AutoProcessor.from_pretrained(tmp_path / family, local_files_only=True)
        assert type(again) is type(processor)
        first, second = encode(processor), encode(again)
        assert torch.equal(first["input_ids"], second["input_ids"])
        assert torch.equal(first["pixel_values"], second["pixel_values"])


def test_saved_tiny_model_loads_back_with_load_model(tiny, tmp_path):
    _, model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again, again_processor = load_model(str(tmp_path))
    assert type(again) is type(model) and type(again_processor) is type(processor)
    with torch.no_grad():
        expected = model(**encode(processor)).logits
        got = again(**encode(again_processor)).logits
    assert torch.equal(expected, got)


def test_load_model_needs_a_local_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="local checkpoint directory"):
        load_model(str(tmp_path / "Qwen2-VL-7B-Instruct"))


def test_load_model_points_converted_checkpoints_to_the_omniactor_loader(tmp_path):
    model, processor = build_model("tiny-qwen2-vl")
    model.config.omniactor = {"variant": "omniactor", "shared_layers": 2}
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="checkpoint.load_pretrained"):
        load_model(tmp_path)
