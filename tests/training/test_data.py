import copy

import pytest
import torch

from omniactor.actions.tokenizers import build_action_tokenizer
from omniactor.data import DatasetReader
from omniactor.models.presets import build_model
from omniactor.models.vocabulary import add_action_vocabulary
from omniactor.training.config import SourceConfig
from omniactor.training.data import DataError, DomainBatchSampler, SampleEncoder, collate, collect_items


def example_encoder(preset: str) -> SampleEncoder:
    """An encoder of the example dataset's three domains for ``preset``'s processor (56 px, history 2)."""
    model, processor = build_model(preset)
    processor = copy.deepcopy(processor)
    tokenizers = {"gui": build_action_tokenizer("gui_text"),
                  "embodied": build_action_tokenizer("uniform", num_bins=16, normalization=None,
                                                     names=["x", "y", "z", "roll", "pitch", "yaw", "gripper"]),
                  "discrete": build_action_tokenizer("discrete_semlang", names=["done", "forward", "left", "right"])}
    for tok in tokenizers.values():
        add_action_vocabulary(model, processor.tokenizer, tok)
    return SampleEncoder(processor, tokenizers, history=2, image_size=56)


@pytest.fixture(scope="module")
def encoder():
    return example_encoder("tiny")


def test_loss_mask_covers_exactly_the_answer_tokens(encoder, example_data):
    reader = DatasetReader(example_data)
    for sample in list(reader)[::7]:
        encoded = encoder.encode(sample, reader.load_images(sample), previous=[])
        answer = encoder.target_ids(sample.domain, sample.action)
        labels, ids = encoded["labels"], encoded["input_ids"]
        supervised = labels != -100
        assert supervised.sum() == len(answer)
        assert labels[supervised].tolist() == answer == ids[-len(answer):].tolist()
        assert not supervised[: len(ids) - len(answer)].any()  # nothing of the prompt is supervised
        assert answer[-1] == encoder.end_id


def test_history_is_rendered_from_earlier_steps(encoder, example_data):
    reader = DatasetReader(example_data)
    sample = next(s for s in reader if s.step == 3)
    from omniactor.actions import DiscreteAction

    text, _ = encoder.prompt_text(sample, previous=[DiscreteAction("left"), DiscreteAction("right"),
                                                    DiscreteAction("forward")])
    assert 'discrete(name="right")' in text and 'discrete(name="forward")' in text and '"left"' not in text


def test_batches_hold_one_domain_and_resampling_weights_count(example_data):
    items, _ = collect_items([SourceConfig(str(example_data))], ["gui", "embodied", "discrete"])
    domains = [i.domain for i in items]
    sampler = DomainBatchSampler(domains, [0] * len(items), [1.0], batch_size=4, seed=0)
    batches = sampler.epoch_batches(0)
    assert all(len({domains[i] for i in b}) == 1 and len(b) == 4 for b in batches)
    assert len({domains[b[0]] for b in batches[:6]}) > 1  # domains interleave
    doubled = DomainBatchSampler(domains, [0] * len(items), [2.0], batch_size=4, seed=0)
    assert len(doubled.epoch_batches(0)) >= 2 * len(batches) - 3
    # seek: the same next batch as an uninterrupted iteration
    it = iter(DomainBatchSampler(domains, [0] * len(items), [1.0], 4, seed=1))
    stream = [next(it) for _ in range(len(batches) + 3)]
    resumed = DomainBatchSampler(domains, [0] * len(items), [1.0], 4, seed=1)
    resumed.seek(len(batches) + 1)
    assert next(iter(resumed)) == stream[len(batches) + 1]


def test_bad_data_refuses_to_start_by_name_or_is_skipped_and_counted(tmp_path):
    from omniactor.data.example import write_example_dataset

    planted = write_example_dataset(tmp_path / "bad", episodes_per_domain=2, faults=True)
    with pytest.raises(DataError) as info:
        collect_items([SourceConfig(str(tmp_path / "bad"))], ["gui", "embodied", "discrete"])
    for fault in planted.faults:
        assert f"{fault.file}:{fault.line}" in str(info.value)
    items, report = collect_items([SourceConfig(str(tmp_path / "bad"))], ["gui", "embodied", "discrete"],
                                  skip_invalid=True)
    assert report["skipped_invalid"] == len(planted.faults)
    with pytest.raises(DataError, match="domain"):
        collect_items([SourceConfig(str(tmp_path / "bad"))], ["gui"], skip_invalid=True)


def test_collate_pads_and_concatenates_images(encoder, example_data):
    reader = DatasetReader(example_data)
    samples = [s for s in reader if s.domain == "gui"][:3]
    batch = collate([encoder.encode(s, reader.load_images(s), []) for s in samples], pad_id=0)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["image_grid_thw"].shape[0] == 3
    assert torch.equal(batch["attention_mask"].sum(1),
                       torch.tensor([len(encoder.encode(s, reader.load_images(s), [])["input_ids"]) for s in samples]))


def test_system_prompt_can_be_dropped_or_replaced(encoder, example_data):
    reader = DatasetReader(example_data)
    sample = next(iter(reader))
    images = reader.load_images(sample)
    full = encoder.encode(sample, images, [])["input_ids"]
    encoder.system_prompt = "none"
    try:
        bare = encoder.encode(sample, images, [])["input_ids"]
        encoder.system_prompt = "Act."
        short = encoder.encode(sample, images, [])["input_ids"]
    finally:
        encoder.system_prompt = "sample"
    assert len(bare) < len(short) < len(full)


def cache_bytes(directory):
    return sum(p.stat().st_size for p in directory.glob("chunk-*.safetensors"))


@pytest.mark.parametrize("preset", ["tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-llava-onevision"])
def test_the_cache_keeps_pixels_and_reads_back_exactly_the_processors_tensors(tmp_path, example_data, preset):
    """Every family: a record read from the cache (pixels, tensors made again) equals the record of
    a cache that stored the processor's tensors, key by key and bit by bit, at a fraction of the size."""
    from omniactor.training.data import PreprocessedCache
    from omniactor.training.loop import canonical_order

    encoder = example_encoder(preset)
    items, _ = collect_items([SourceConfig(path=str(example_data))], ["gui", "embodied", "discrete"])
    items = canonical_order(items)[::5]
    PreprocessedCache.build(tmp_path / "pixels", items, encoder, progress=False)
    PreprocessedCache.build(tmp_path / "tensors", items, encoder, progress=False, keep_image_tensors=True)
    pixels, tensors = PreprocessedCache(tmp_path / "pixels", encoder), PreprocessedCache(tmp_path / "tensors")
    for index in range(len(items)):
        again, stored = pixels[index], tensors[index]
        assert sorted(again) == sorted(stored), index
        for key in stored:
            assert again[key].dtype == stored[key].dtype and torch.equal(again[key], stored[key]), (index, key)
    assert "pixel_values" in stored
    assert cache_bytes(tmp_path / "pixels") < cache_bytes(tmp_path / "tensors") / 3
    with pytest.raises(DataError, match="open the cache with its SampleEncoder"):
        PreprocessedCache(tmp_path / "pixels")[0]


def test_a_domain_whose_image_tensors_the_image_processor_alone_does_not_give_keeps_them(tmp_path, encoder,
                                                                                         example_data, capsys):
    from omniactor.training.data import PreprocessedCache

    class Skewed(SampleEncoder):
        def image_inputs(self, images):
            tensors = super().image_inputs(images)
            return {**tensors, "pixel_values": tensors["pixel_values"] + 1e-6}

    skewed = Skewed(encoder.processor, encoder.action_tokenizers, history=2, image_size=56)
    items, _ = collect_items([SourceConfig(path=str(example_data))], ["gui", "embodied", "discrete"])
    PreprocessedCache.build(tmp_path / "cache", items[:4], skewed, progress=False)
    assert "records keep the tensors" in capsys.readouterr().err
    record = PreprocessedCache(tmp_path / "cache")[0]  # no encoder needed: nothing to make again
    reader = DatasetReader(example_data)
    sample = next(s for s in reader if (s.episode, s.step) == (items[0].episode, items[0].step))
    assert torch.equal(record["pixel_values"], encoder.encode(sample, reader.load_images(sample), [])["pixel_values"])
