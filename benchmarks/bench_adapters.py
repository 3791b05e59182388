"""What each output adapter of the demo's model costs, side by side in one run (tiny preset, CPU).

Training: samples per second of the demo's model (``omniactor.demo.plan``: OmniActor variant,
GUI at 224 px, Meta-World and BabyAI at 112 px) trained on one domain at a time, without and
with each adapter:

- GUI: grid cells as free ``<loc_i>`` rows; + the image pointer (``image_pointer: gui``);
  + copying from the prompt (``prompt_copy``);
- Meta-World (embodied): 64 bins; + the regression head (``regression_heads``);
- BabyAI (discrete): phrases; + the classification head (``classification_heads``).

Acting: the latency of one ``Agent.act_batch`` call (a batch of ``--batch`` requests) for the
head domains, by the head (one forward pass) and by generating the answer tokens
(``use_heads=False``), alternated repetition by repetition, medians kept.

Data: without ``--data`` the example dataset (all three domains), with a state of the demo's
widths added to its embodied (39 numbers) and discrete (1,033) records. ``--data DIR`` takes
a folder holding ``miniwob``, ``metaworld`` and ``babyai`` datasets (e.g. ``outputs/demo/data``).

    python benchmarks/bench_adapters.py --json
    python benchmarks/bench_adapters.py --data outputs/demo/data --steps 20 --json

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: domain -> (folder under --data, state width added to the example dataset)
DOMAINS = {"gui": ("miniwob", 0), "embodied": ("metaworld", 39), "discrete": ("babyai", 1033)}

#: (name, domain, settings over the demo's base for that domain); the first of a domain is its base
VARIANTS = (
    ("gui: free <loc_i> rows", "gui", {}),
    ("gui: + image pointer", "gui", {"image_pointer": "gui"}),
    ("gui: + pointer + copy", "gui", {"image_pointer": "gui", "prompt_copy": True}),
    ("embodied: 64 bins", "embodied", {}),
    ("embodied: + regression head", "embodied", {"regression_heads": ["embodied"]}),
    ("discrete: phrases", "discrete", {}),
    ("discrete: + classification head", "discrete", {"classification_heads": ["discrete"]}),
)


def example_data(root: Path) -> dict[str, str]:
    """The example dataset split into one folder per domain, with states of the demo's widths."""
    from dataclasses import replace

    from PIL import Image

    from omniactor.data import DatasetReader, DatasetWriter
    from omniactor.data.example import (
        DISCRETE_SOURCE,
        DISCRETE_SPACE,
        EMBODIED_SOURCE,
        EMBODIED_SPACE,
        write_example_dataset,
    )

    source = root / "all"
    write_example_dataset(source, episodes_per_domain=6, seed=0)
    spaces = {EMBODIED_SOURCE: EMBODIED_SPACE, DISCRETE_SOURCE: DISCRETE_SPACE}
    rng = np.random.default_rng(0)
    folders = {}
    for domain, (folder, width) in DOMAINS.items():
        folders[domain] = str(root / folder)
        with DatasetWriter(root / folder, action_spaces=spaces) as writer:
            for sample in DatasetReader(source):
                if sample.domain != domain:
                    continue
                images = [np.asarray(Image.open(source / path).convert("RGB")) for path in sample.images]
                meta = {**sample.meta, "state": rng.integers(0, 2, width).tolist()} if width else sample.meta
                writer.write(replace(sample, images=[], meta=meta), images=images)
    return folders


def variant_config(domain: str, settings: dict[str, Any], data: str, out: Path, steps: int, batch: int) -> Any:
    """The demo's training settings on one domain, its adapters off, then ``settings``."""
    import yaml

    from omniactor.demo.plan import FULL
    from omniactor.training.config import load_config

    config = {**FULL.train, "max_steps": steps, "batch_size": batch, "save_every": steps, "log_every": 1,
              "domains": [domain], "image_pointer": None, "prompt_copy": False, "regression_heads": [],
              "classification_heads": [], "state_domains": [domain] if DOMAINS[domain][1] else [],
              "data": [{"path": data}], "output_dir": str(out / "run"), "cache_dir": str(out / "cache"), **settings}
    config["action_tokenizers"] = {domain: config["action_tokenizers"][domain]}
    path = out / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return load_config(path)


def train_rate(config: Any) -> float:
    """Samples per second over the run's last half (the first steps warm up)."""
    from omniactor.training.loop import train

    train(config, progress=False)
    records = [json.loads(line) for line in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in records if "samples_per_s" in r]
    return float(rates[-1])


def act_latency(final: Path, domain: str, batch: int, repeats: int) -> dict[str, float]:
    """Median seconds of one act_batch call of ``batch`` requests: by the head, by the tokens."""
    from omniactor.agent import Agent
    from omniactor.envs.base import Observation

    agents = {"head": Agent.from_pretrained(final), "tokens": Agent.from_pretrained(final, use_heads=False)}
    width = agents["head"].settings.state_widths.get(domain, 0)
    image = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    state = np.random.default_rng(1).integers(0, 2, width).astype(np.float32) if width else None
    observations = [Observation({"main": image}, "go to the red ball", domain, 0, state=state)] * batch
    times: dict[str, list[float]] = {name: [] for name in agents}
    for _ in range(repeats + 1):  # the first round warms up
        for name, agent in agents.items():
            episodes = [agent.start("go to the red ball", domain) for _ in range(batch)]
            start = time.perf_counter()
            agent.act_batch(episodes, observations)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values[1:]) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="a folder with miniwob/, metaworld/, babyai/ datasets (default: example data)")
    parser.add_argument("--steps", type=int, default=12, help="training steps per variant (default 12)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4, help="requests per act_batch call (default 4)")
    parser.add_argument("--repeats", type=int, default=5, help="timed act_batch calls per way (default 5)")
    parser.add_argument("--json", action="store_true", help="(the last line is always one JSON object)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-adapters-") as tmp:
        root = Path(tmp)
        if args.data:
            data = {domain: str(Path(args.data) / folder) for domain, (folder, _) in DOMAINS.items()}
        else:
            data = example_data(root / "data")
        training: dict[str, dict[str, float]] = {}
        acting: dict[str, dict[str, float]] = {}
        bases: dict[str, float] = {}
        for index, (name, domain, settings) in enumerate(VARIANTS):
            out = root / f"variant-{index}"
            config = variant_config(domain, settings, data[domain], out, args.steps, args.batch_size)
            rate = train_rate(config)
            bases.setdefault(domain, rate)
            training[name] = {"samples_per_s": round(rate, 2), "relative_to_base": round(rate / bases[domain], 3)}
            print(f"train  {name:34s} {rate:7.1f} samples/s  (x{rate / bases[domain]:.2f} of the base)", flush=True)
            if settings.get("regression_heads") or settings.get("classification_heads"):
                latency = act_latency(out / "run" / "final", domain, args.batch, args.repeats)
                acting[domain] = {"head_s": round(latency["head"], 4), "tokens_s": round(latency["tokens"], 4),
                                  "tokens_over_head": round(latency["tokens"] / latency["head"], 2)}
                print(f"act    {domain:34s} head {latency['head'] * 1e3:6.1f} ms | tokens "
                      f"{latency['tokens'] * 1e3:6.1f} ms per call of {args.batch}", flush=True)
    print(json.dumps({"data": "given" if args.data else "example", "steps": args.steps, "batch_size": args.batch_size,
                      "training": training, "acting": acting}))


if __name__ == "__main__":
    main()
