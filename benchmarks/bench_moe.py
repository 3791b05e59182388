"""Cost of each variant relative to the dense model, measured side by side in one run.

For every variant (dense, omniactor, hard, router) on the same batch: training-step time
(forward + backward + AdamW step), per-token generation latency with a KV cache (decode
only: time(1 + N new tokens) - time(1 new token), divided by N), for a domain-homogeneous
batch and for a mixed one; parameter counts and memory (CUDA: ``max_memory_allocated`` of one
training step; CPU: the training state, fp32 weights + gradients + two AdamW moments).
Timings interleave the variants repetition by repetition and keep the median, so machine
noise hits every variant alike; the ratios to dense are the result.

    python benchmarks/bench_moe.py --json                      # tiny preset, CPU
    python benchmarks/bench_moe.py --device cuda --preset qwen2-vl-7b --random-init --json

Full-size runs time forward + backward without the optimizer step (AdamW states of a
~14B-parameter MoE would not fit one GPU; that is the trainer's ZeRO-3 job).
The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
import torch

VARIANTS = ("dense", "omniactor", "hard", "router")


def make_batch(processor: Any, batch_size: int, image_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """``batch_size`` chat samples, each with one random image and a short instruction."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    texts, images = [], []
    for i in range(batch_size):
        messages = [{"role": "user", "content": [
            {"type": "image"}, {"type": "text", "text": f"Task {i}: click the blue button, then type hello."}]}]
        texts.append(processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                     + "click(x=0.25, y=0.75)")
        images.append(Image.fromarray(rng.integers(0, 255, (image_size, image_size, 3), dtype=np.uint8)))
    batch = processor(text=texts, images=images, return_tensors="pt", padding=True)
    return dict(batch)


def build(preset: str, variant: str, shared_layers: int | None, random_init: bool, device: str, dtype: str):
    from omniactor.models.heterogeneity import HeterogeneityConfig, convert
    from omniactor.models.presets import build_model, get_preset

    p = get_preset(preset)
    model, processor = build_model(p, random_init=random_init or None, device=device, dtype=dtype)
    k = shared_layers if shared_layers is not None else p.shared_layers
    convert(model, HeterogeneityConfig(variant=variant, shared_layers=k, domains=("gui", "embodied")))
    return model, processor


def domains_for(case: str, batch_size: int) -> list[str]:
    return ["gui"] * batch_size if case == "homogeneous" else ["gui", "embodied"] * (batch_size // 2)


def train_step(model, batch, domains, optimizer) -> None:
    out = model(**batch, labels=batch["input_ids"], domain_ids=domains)
    out.loss.backward()
    if optimizer is not None:
        optimizer.step()
    model.zero_grad(set_to_none=True)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def decode_latency(model, batch, domains, new_tokens: int, device: str) -> float:
    from omniactor.models.heterogeneity import use_domains

    def run(n: int) -> float:
        sync(device)
        start = time.perf_counter()
        with use_domains(model, domains), torch.no_grad():
            model.generate(**batch, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        sync(device)
        return time.perf_counter() - start

    return (run(1 + new_tokens) - run(1)) / new_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", help="model preset (default: tiny)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default=None, help="float32 (CPU default) or bfloat16 (CUDA default)")
    parser.add_argument("--random-init", action="store_true", help="build a real-size preset with random weights")
    parser.add_argument("--shared-layers", type=int, default=None, help="K (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions per variant (median kept)")
    parser.add_argument("--new-tokens", type=int, default=16, help="decoded tokens per latency measurement")
    parser.add_argument("--json", action="store_true", help="(the last line is always one JSON object)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    full_size = args.random_init
    use_optimizer = not full_size

    models, batch = {}, None
    for variant in VARIANTS:
        model, processor = build(args.preset, variant, args.shared_layers, args.random_init, args.device, dtype)
        models[variant] = model
        if batch is None:
            batch = {k: v.to(args.device) for k, v in make_batch(processor, args.batch_size, args.image_size).items()}
    tokens_per_batch = int(batch["attention_mask"].sum())

    results: dict[str, Any] = {"preset": args.preset, "device": args.device, "dtype": dtype,
                               "batch_size": args.batch_size, "tokens_per_batch": tokens_per_batch,
                               "optimizer_step_included": use_optimizer, "variants": {}}
    for variant, model in models.items():
        results["variants"][variant] = {"parameters": sum(p.numel() for p in model.parameters())}

    for case in ("homogeneous", "mixed"):
        domains = domains_for(case, args.batch_size)
        optimizers = {v: (torch.optim.AdamW(m.parameters(), lr=1e-5) if use_optimizer else None)
                      for v, m in models.items()}
        step_times: dict[str, list[float]] = {v: [] for v in models}
        decode_times: dict[str, list[float]] = {v: [] for v in models}
        for model in models.values():  # warm-up
            model.train()
            train_step(model, batch, domains, None)
        for _ in range(args.repeats):
            for variant, model in models.items():
                model.train()
                sync(args.device)
                start = time.perf_counter()
                train_step(model, batch, domains, optimizers[variant])
                sync(args.device)
                step_times[variant].append(time.perf_counter() - start)
                model.eval()
                decode_times[variant].append(decode_latency(model, batch, domains, args.new_tokens, args.device))
        for variant in models:
            entry = results["variants"][variant]
            entry[f"{case}_train_step_s"] = statistics.median(step_times[variant])
            entry[f"{case}_decode_token_s"] = statistics.median(decode_times[variant])
            entry[f"{case}_train_tokens_per_s"] = tokens_per_batch / entry[f"{case}_train_step_s"]
        del optimizers

    for variant in models:
        entry = results["variants"][variant]
        dense = results["variants"]["dense"]
        for case in ("homogeneous", "mixed"):
            entry[f"{case}_train_ratio"] = entry[f"{case}_train_step_s"] / dense[f"{case}_train_step_s"]
            entry[f"{case}_decode_ratio"] = entry[f"{case}_decode_token_s"] / dense[f"{case}_decode_token_s"]
        entry["parameter_ratio"] = entry["parameters"] / dense["parameters"]

    if args.device.startswith("cuda"):
        for variant in VARIANTS:  # one variant at a time on the GPU for a clean peak
            for other in models.values():
                other.to("cpu")
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            model = models[variant].to(args.device)
            model.train()
            train_step(model, batch, domains_for("mixed", args.batch_size), None)
            results["variants"][variant]["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:  # the CPU allocator gives no per-model peak; count the training state instead
        for variant in VARIANTS:
            entry = results["variants"][variant]
            entry["peak_memory_mb"] = None
            entry["training_state_mb"] = entry["parameters"] * 16 / 2**20  # fp32 weights, grads, 2 AdamW moments

    omni = results["variants"]["omniactor"]
    results["goal_omniactor_homogeneous_within_1.05x"] = bool(
        omni["homogeneous_train_ratio"] <= 1.05 and omni["homogeneous_decode_ratio"] <= 1.05)

    header = f"{'variant':10} {'params':>10} {'train hom':>10} {'train mix':>10} {'decode hom':>11} {'decode mix':>11} {'memory MB':>10}"
    print(header)
    for variant, e in results["variants"].items():
        print(f"{variant:10} {e['parameters']:>10,} {e['homogeneous_train_ratio']:>9.3f}x {e['mixed_train_ratio']:>9.3f}x "
              f"{e['homogeneous_decode_ratio']:>10.3f}x {e['mixed_decode_ratio']:>10.3f}x "
              f"{e['peak_memory_mb'] or e['training_state_mb']:>10.1f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
