"""What constrained decoding and batching cost the Agent, per domain, side by side in one run.

For each domain of a random-weight model of the demo's shape (tiny preset, OmniActor
variant; GUI actions as grid-cell text and, as a second GUI domain, as decimal text (the
paper's form, the longest grammar), 4-D Meta-World motions as 256 bins, BabyAI's actions as
phrases), greedy decoding:

- **constraint overhead**: latency of one answer with constrained decoding vs without, for
  the *same number of generated tokens* (the unconstrained run is held to the length the
  constrained one produced, with ``min_new_tokens = max_new_tokens``), so the ratio is the
  price of the constraint alone, not of a different answer length;
- **batching**: per-answer latency of ``batch`` requests in one ``decide`` call vs the same
  requests one by one.

Timings alternate the alternatives repetition by repetition and keep medians, so machine
noise hits both alike. Goal: constraints cost at most 10% latency.

    python benchmarks/bench_agent.py --json
    python benchmarks/bench_agent.py --preset tiny --batch 8 --repeats 5 --json

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

DOMAINS = ("gui", "gui_text", "embodied", "discrete")


def build_agent(preset_name: str, image_size: int, seed: int = 0) -> Any:
    from omniactor.actions import BABYAI_ACTIONS, XYZ_GRIPPER, ContinuousAction
    from omniactor.actions.tokenizers import build_action_tokenizer
    from omniactor.agent import Agent, AgentSettings
    from omniactor.models.heterogeneity import HeterogeneityConfig, convert
    from omniactor.models.presets import build_model, get_preset
    from omniactor.models.vocabulary import add_action_vocabulary

    preset = get_preset(preset_name)
    model, processor = build_model(replace(preset), seed=seed)
    rng = np.random.default_rng(seed)
    embodied = build_action_tokenizer("uniform", num_bins=256).fit(
        [ContinuousAction(tuple(rng.uniform(-1, 1, 4).round(4).tolist()), XYZ_GRIPPER) for _ in range(256)])
    tokenizers = {"gui": build_action_tokenizer("gui_location", grid=32), "gui_text": build_action_tokenizer("gui_text"),
                  "embodied": embodied,
                  "discrete": build_action_tokenizer("discrete_semlang", names=BABYAI_ACTIONS)}
    for tokenizer in tokenizers.values():
        add_action_vocabulary(model, processor.tokenizer, tokenizer)
    convert(model, HeterogeneityConfig("omniactor", shared_layers=preset.shared_layers, domains=DOMAINS))
    settings = AgentSettings.from_flat(list(DOMAINS), history=4, image_size=image_size,
                                    system_prompts={d: "" for d in DOMAINS})
    return Agent(model, processor, tokenizers, settings, max_text_chars=32)


def requests_for(domain: str, count: int, image_size: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    return [(domain, f"solve task number {i}", [rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)],
             []) for i in range(count)]


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_domain(agent: Any, domain: str, batch: int, repeats: int, image_size: int) -> dict[str, Any]:
    single = requests_for(domain, 1, image_size, seed=1)
    many = requests_for(domain, batch, image_size, seed=2)
    (ids,) = agent.generate(single, constrained=True)
    length = len(ids)  # answer + end-of-turn
    agent.generate(single, constrained=False, max_new_tokens=length, min_new_tokens=length)  # warm-up
    constrained, unconstrained, batched, one_by_one = [], [], [], []
    for _ in range(repeats):
        constrained.append(timed(lambda: agent.generate(single, constrained=True)))
        unconstrained.append(timed(lambda: agent.generate(single, constrained=False, max_new_tokens=length,
                                                          min_new_tokens=length)))
        batched.append(timed(lambda: agent.decide(many)) / batch)
        one_by_one.append(timed(lambda: [agent.decide([r]) for r in many]) / batch)
    c, u = statistics.median(constrained), statistics.median(unconstrained)
    b, o = statistics.median(batched), statistics.median(one_by_one)
    return {"answer_tokens": length, "constrained_ms": round(1000 * c, 2), "unconstrained_ms": round(1000 * u, 2),
            "constraint_overhead": round(c / u, 3), "batched_ms_per_answer": round(1000 * b, 2),
            "one_by_one_ms_per_answer": round(1000 * o, 2), "batching_speedup": round(o / b, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", help="model preset (random weights; default tiny)")
    parser.add_argument("--image-size", type=int, default=112, help="square image side (default 112, the demo's)")
    parser.add_argument("--batch", type=int, default=8, help="requests per batched call (default 8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (median kept; default 5)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    agent = build_agent(args.preset, args.image_size)
    results = {}
    for domain in DOMAINS:
        results[domain] = measure_domain(agent, domain, args.batch, args.repeats, args.image_size)
        if not args.json:
            print(domain, results[domain], flush=True)
    worst = max(r["constraint_overhead"] for r in results.values())
    summary = {"benchmark": "agent", "preset": args.preset, "image_size": args.image_size, "batch": args.batch,
               "repeats": args.repeats, "threads": torch.get_num_threads(), "domains": results,
               "worst_constraint_overhead": worst, "goal": "constraint overhead <= 1.10",
               "goal_met": worst <= 1.10}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
