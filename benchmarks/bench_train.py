"""Data pipeline vs training step, samples/s, side by side in one run (tiny preset, CPU).

The pipeline is what feeds each step during training: the sampler's next global batch,
each sample read back from the preprocessed cache, and the collate (padding, images).
The training step is forward + backward + AdamW on that batch for the omniactor variant.
Goal: the pipeline is at least 5x faster than the step, so it never limits training.
Preprocessing itself (the one-off cache build) is reported separately.

The cache keeps each record's images as pixels and makes their tensors again on reading
(``PreprocessedCache``); the same records are also cached with the processor's tensors stored,
and the two are compared side by side: bytes per record and the pipeline's rate.

    python benchmarks/bench_train.py --json [--data DIR] [--batch-size 16] [--steps 10]

Without ``--data`` an example dataset of all three domains is written to a temporary folder.
The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="a dataset folder (default: a generated example dataset)")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (and pipeline batches)")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--system-prompt", default="none", help="sample | none (the tiny configs use none)")
    parser.add_argument("--json", action="store_true", help="(the last line is always one JSON object)")
    args = parser.parse_args()

    from omniactor.data.example import write_example_dataset
    from omniactor.models.heterogeneity import HeterogeneityConfig, convert
    from omniactor.training.config import load_config
    from omniactor.training.data import (
        DomainBatchSampler,
        PreprocessedCache,
        SampleEncoder,
        collate,
        collect_items,
    )
    from omniactor.training.loop import answer_loss, build_model, fit_action_tokenizers

    work = Path(tempfile.mkdtemp(prefix="bench_train_"))
    data = Path(args.data) if args.data else work / "data"
    if not args.data:
        write_example_dataset(data, episodes_per_domain=12, seed=0)
    config = load_config(None, [f"data=[{data}]", f"model={args.preset}", f"batch_size={args.batch_size}",
                                f"image_size={args.image_size}", f"output_dir={work / 'run'}",
                                f"system_prompt={args.system_prompt}"])
    items, _ = collect_items(config.data, config.domains)
    model, processor, shared = build_model(config)
    tokenizers = fit_action_tokenizers(config, items, model, processor)
    convert(model, HeterogeneityConfig(config.variant, shared_layers=shared, domains=tuple(config.domains)))
    encoder = SampleEncoder(processor, tokenizers, config.history, config.image_size, config.system_prompt)

    start = time.perf_counter()
    PreprocessedCache.build(work / "cache", items, encoder, progress=False)
    preprocess_s = time.perf_counter() - start
    PreprocessedCache.build(work / "cache-tensors", items, encoder, progress=False, keep_image_tensors=True)
    dataset = PreprocessedCache(work / "cache", encoder)
    pad_id = processor.tokenizer.pad_token_id
    domain_ids = {d: i for i, d in enumerate(config.domains)}

    def pipeline(cache):
        """The same global batches read from ``cache``: the batches and the seconds they took."""
        sampler = DomainBatchSampler(cache.domains, cache.sources, [1.0], args.batch_size, seed=0)
        batches = iter(sampler)
        collate([cache[i] for i in next(batches)], pad_id)  # open the cache files
        start = time.perf_counter()
        kept = [(indices, collate([cache[i] for i in indices], pad_id)) for indices in
                (next(batches) for _ in range(args.steps))]
        return kept, time.perf_counter() - start

    # the data pipeline alone, from pixels (the cache training uses) and from stored tensors
    kept, pipeline_s = pipeline(dataset)
    _, tensors_pipeline_s = pipeline(PreprocessedCache(work / "cache-tensors"))

    def bytes_per_record(folder):
        return sum(p.stat().st_size for p in folder.glob("chunk-*.safetensors")) / len(dataset)

    # the full training step on the same batches
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(indices, batch):
        batch = dict(batch)
        labels = batch.pop("labels")
        domain = dataset.domains[indices[0]]
        out = model(**batch, domain_ids=torch.full((len(indices),), domain_ids[domain]))
        sums, counts = answer_loss(out.logits, labels)
        (sums.sum() / counts.sum()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(*kept[0])  # warm-up
    start = time.perf_counter()
    for indices, batch in kept:
        step(indices, batch)
    train_s = time.perf_counter() - start

    samples = args.steps * args.batch_size
    result = {
        "preset": args.preset, "batch_size": args.batch_size, "steps": args.steps, "records": len(dataset),
        "preprocess_samples_per_s": len(dataset) / preprocess_s,
        "pipeline_samples_per_s": samples / pipeline_s,
        "train_step_samples_per_s": samples / train_s,
        "cache_bytes_per_record": bytes_per_record(work / "cache"),
        "tensors_cache_bytes_per_record": bytes_per_record(work / "cache-tensors"),
        "tensors_pipeline_samples_per_s": samples / tensors_pipeline_s,
    }
    result["cache_size_ratio_tensors_over_pixels"] = (result["tensors_cache_bytes_per_record"]
                                                      / result["cache_bytes_per_record"])
    result["pipeline_over_train_ratio"] = result["pipeline_samples_per_s"] / result["train_step_samples_per_s"]
    result["goal_pipeline_at_least_5x"] = bool(result["pipeline_over_train_ratio"] >= 5)
    print(f"preprocess (one-off): {result['preprocess_samples_per_s']:8.1f} samples/s")
    print(f"data pipeline:        {result['pipeline_samples_per_s']:8.1f} samples/s")
    print(f"training step:        {result['train_step_samples_per_s']:8.1f} samples/s")
    print(f"pipeline / step:      {result['pipeline_over_train_ratio']:8.1f}x (goal >= 5x)")
    print(f"cache, pixels:        {result['cache_bytes_per_record'] / 1e3:8.1f} KB/record, "
          f"pipeline {result['pipeline_samples_per_s']:.1f} samples/s")
    print(f"cache, tensors:       {result['tensors_cache_bytes_per_record'] / 1e3:8.1f} KB/record, "
          f"pipeline {result['tensors_pipeline_samples_per_s']:.1f} samples/s "
          f"({result['cache_size_ratio_tensors_over_pixels']:.1f}x the bytes)")
    print(json.dumps(result))
    shutil.rmtree(work, ignore_errors=True)  # the caches, the example data and the run


if __name__ == "__main__":
    main()
