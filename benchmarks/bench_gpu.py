"""The 7B path on one GPU: the train step per variant, the Agent's acting rate, the attention used.

One process measures, on a random-weight model of a real preset (weights are not needed to time):

- **train step** (forward + backward + AdamW), gradient checkpointing on, on a domain-homogeneous
  GUI batch of the paper's shape (448 px screenshots, decimal ``click(x=..., y=...)`` answers,
  loss over the answer tokens as ``omniactor train`` computes it), for ``dense``, ``omniactor``
  (K = the preset's split, 8 of 28 for the 7B presets), ``hard`` and ``omniactor`` + LoRA
  (r = 16, PEFT, as ``omniactor train`` applies it), then ``dense`` once more to show the drift
  between the first and the last row. Each row reports its step time (and the forward, backward
  and optimizer parts), tokens/s, the ratio to dense (the mean of the two dense rows) and the
  peak GPU memory (``torch.cuda.max_memory_allocated``). The global batch is the largest of
  ``--max-batch`` and below that fits the ``hard`` variant (tried first, largest down, on the
  GPU) unless ``--batch`` fixes it; every row then uses the same batch. Weights, gradients and
  AdamW's moments are in ``--dtype`` (bf16 on a GPU: no fp32 master weights); in a homogeneous
  batch the other domain's experts get no gradient and AdamW keeps no state for them.
- **acting**: ``Agent.act_batch`` at batch 1 and 8 of an ``omniactor`` model with two domains, a
  KV cache and constrained decoding, for LIBERO-style 7-D motions as 7 bin tokens (256 bins),
  GUI answers as decimal text (``gui_text``), and the same 7-D motions from a regression head
  (one forward pass, no decoding). Per case: actions/s, time to the first token, ms per further
  token, and the constraint's overhead against unconstrained decoding held to the same number
  of tokens. Repetitions alternate the alternatives; medians are kept.
- **attention and machine**: the attention implementation of the text and vision towers, the
  SDPA backends enabled, the GPU's name, memory and driver, and the library versions.

    python benchmarks/bench_gpu.py --preset qwen2-vl-7b --random-init --dtype bf16   # one GPU
    python benchmarks/bench_gpu.py --dry-run                                           # tiny, CPU, < 1 min

``--dry-run`` runs every part on the tiny preset on the CPU with small sizes (a check that the
script works, not a measurement of a GPU). Without a CUDA device and without ``--dry-run`` the
script measures nothing: it says so and prints a JSON line with ``"skipped": true`` (so
``make bench`` passes on a CPU machine). An interrupt (Ctrl-C, ``timeout -s INT``) or
``--budget-s`` stops it between measurements and still prints what was measured.
The last printed line is one JSON object (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

DOMAINS = ("gui", "embodied")
TRAIN_ROWS = (("dense", "dense", 0), ("omniactor", "omniactor", 0), ("hard", "hard", 0),
              ("lora", "omniactor", 16), ("dense_again", "dense", 0))
#: the row whose batch search sets the batch of every row (the most memory: every layer per domain)
PROBE_ROW = "hard"
BATCH_CANDIDATES = (128, 96, 64, 48, 32, 24, 16, 12, 8, 6, 4, 2, 1)
DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
          "fp32": "float32", "float32": "float32"}
#: acting cases: name -> (domain, agent: "tokens" writes the answer, "head" reads the regression head)
ACT_CASES = {"libero_7_bins": ("embodied", "tokens"), "gui_text": ("gui", "tokens"),
             "regression_head": ("embodied", "head")}
GOALS = {"actions_per_s_batch1": 20.0, "moe_train_ratio": 1.02, "constraint_overhead": 1.10}
GIB = 2**30


class OutOfTime(Exception):
    """``--budget-s`` is spent: the remaining measurements are skipped."""


# ---------------------------------------------------------------------------- clocks and machine


class Clock:
    """Wall-clock seconds, with the GPU synchronised before each reading on CUDA."""

    def __init__(self, device: str, budget_s: float | None = None):
        self.cuda = device.startswith("cuda")
        self.started = time.perf_counter()
        self.budget_s = budget_s

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def timed(self, fn: Any) -> float:
        start = self.now()
        fn()
        return self.now() - start

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def check_budget(self) -> None:
        if self.budget_s is not None and self.elapsed() > self.budget_s:
            raise OutOfTime(f"--budget-s {self.budget_s:g} spent after {self.elapsed():.0f} s")


def machine(device: str) -> dict[str, Any]:
    """The GPU (name, memory, driver), the CPU and the library versions."""
    import transformers

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "transformers": transformers.__version__, "peft": _version("peft"),
                            "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / GIB, 1),
                    compute_capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
                    driver=_nvidia_smi("driver_version"))
    else:
        info.update(gpu=None, gpu_memory_gib=None, compute_capability=None, cuda=None, driver=None)
    return info


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _nvidia_smi(field: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def attention_info(model: Any, requested: str | None) -> dict[str, Any]:
    """The attention implementation each tower runs, and the SDPA backends torch may pick from."""
    config = model.config
    vision = getattr(config, "vision_config", None)
    text_attention = getattr(config.get_text_config(), "_attn_implementation", None)
    info: dict[str, Any] = {"requested": requested, "text": text_attention,
                            "vision": getattr(vision, "_attn_implementation", None)}
    if torch.cuda.is_available():
        backends = torch.backends.cuda
        info["sdpa_backends_enabled"] = {"flash": backends.flash_sdp_enabled(),
                                         "mem_efficient": backends.mem_efficient_sdp_enabled(),
                                         "cudnn": backends.cudnn_sdp_enabled(), "math": backends.math_sdp_enabled()}
    return info


def peak_memory(device: str) -> dict[str, float | None]:
    """This row's peak GPU memory (GiB); on the CPU none (the process's max RSS, never reset, instead)."""
    if device.startswith("cuda"):
        return {"peak_memory_gib": round(torch.cuda.max_memory_allocated() / GIB, 2)}
    import resource

    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"peak_memory_gib": None, "cpu_process_max_rss_gib": round(rss_kib / 2**20, 2)}


def free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


# ---------------------------------------------------------------------------- models and data


def build(args: argparse.Namespace, variant: str) -> tuple[Any, Any]:
    """``(model, processor)``: the preset with random weights on the device, converted to ``variant``."""
    from omniactor.models.heterogeneity import HeterogeneityConfig, convert
    from omniactor.models.presets import build_model, get_preset

    preset = get_preset(args.preset)
    model, processor = build_model(preset, random_init=True, device=args.device, dtype=args.torch_dtype,
                                   attn_implementation=args.attn)
    convert(model, HeterogeneityConfig(variant, shared_layers=args.shared_layers, domains=DOMAINS))
    return model, processor


def gui_samples(processor: Any, count: int, image_size: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """``count`` encoded GUI training samples: a random screenshot, a task, a decimal click answer."""
    from omniactor.actions import parse_action
    from omniactor.actions.tokenizers import build_action_tokenizer
    from omniactor.data.sample import Sample
    from omniactor.training.data import SampleEncoder

    rng = np.random.default_rng(seed)
    encoder = SampleEncoder(processor, {"gui": build_action_tokenizer("gui_text")}, history=0,
                            image_size=image_size, system_prompt="none")
    encoded = []
    for i in range(count):
        x, y = rng.uniform(0, 1, 2).round(3)
        action = parse_action(f"click(x={x}, y={y})")
        instruction = f"open the settings page and turn on the option number {i}"
        sample = Sample("", [{"from": "human", "value": f"<image>\nTask: {instruction}"},
                             {"from": "gpt", "value": f"click(x={x}, y={y})"}], ["images/screen.png"], "gui",
                        action, {"instruction": instruction, "source": "bench", "episode": str(i), "step": 0})
        image = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
        encoded.append(encoder.encode(sample, [image], []))
    return encoded


# ---------------------------------------------------------------------------- the train step


def train_step(model: Any, batch: dict[str, torch.Tensor], optimizer: Any, clock: Clock) -> tuple[float, ...]:
    """One step as ``omniactor train`` takes it on one process: ``(forward, backward, optimizer)`` seconds."""
    from omniactor.models.heterogeneity import set_domains
    from omniactor.training.loop import answer_loss

    inputs = dict(batch)
    labels = inputs.pop("labels")
    set_domains(model, [DOMAINS[0]] * labels.shape[0])
    start = clock.now()
    out = model(**inputs)
    sums, counts = answer_loss(out.logits, labels)
    loss = sums.sum() / counts.sum().clamp(min=1)
    forward = clock.now()
    loss.backward()
    del out, loss
    backward = clock.now()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    done = clock.now()
    return forward - start, backward - forward, done - backward


def fits(model: Any, batch: dict[str, torch.Tensor], optimizer: Any, clock: Clock) -> bool:
    """Whether one step of ``batch`` fits the GPU (after an out-of-memory error, what it held is freed)."""
    try:
        train_step(model, batch, optimizer, clock)
        return True
    except torch.cuda.OutOfMemoryError:
        pass
    model.zero_grad(set_to_none=True)
    optimizer.state.clear()
    free("cuda" if clock.cuda else "cpu")
    return False


def make_optimizer(model: Any) -> Any:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)


def train_row(args: argparse.Namespace, variant: str, lora_rank: int, samples: list, clock: Clock,
              state: dict[str, Any]) -> dict[str, Any]:
    """Build one row's model, find or take the batch, warm up, time ``--steps`` steps, free it."""
    from omniactor.training.data import collate

    free(args.device)
    model, processor = build(args, variant)
    state.setdefault("attention", attention_info(model, args.attn))
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()  # (transformers renamed it in 5.x)
    if lora_rank:
        from omniactor.training.loop import apply_lora

        model = apply_lora(model, {"r": lora_rank, "alpha": 2 * lora_rank}, [])
    model.train()
    pad_id = processor.tokenizer.pad_token_id
    optimizer = make_optimizer(model)
    row: dict[str, Any] = {"variant": variant, "lora_rank": lora_rank or None,
                           "parameters": sum(p.numel() for p in model.parameters()),
                           "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    batch_size = state.get("batch")
    if batch_size is None:  # the first row on the GPU: largest batch first
        tried = state.setdefault("batch_search", [])
        for size in (c for c in BATCH_CANDIDATES if c <= args.max_batch):
            ok = fits(model, _on(collate(samples[:size], pad_id), args.device), optimizer, clock)
            tried.append({"batch": size, "fits": ok})
            print(f"  batch {size:4d}: {'fits' if ok else 'out of memory'}", flush=True)
            if ok:
                batch_size = state["batch"] = size
                break
        if batch_size is None:
            raise RuntimeError("not even batch 1 fits this GPU")
    batch = _on(collate(samples[:batch_size], pad_id), args.device)
    for _ in range(args.warmup):
        train_step(model, batch, optimizer, clock)
    parts = [train_step(model, batch, optimizer, clock) for _ in range(args.steps)]
    row["trained_parameters"] = _trained(optimizer)
    step_s = statistics.median(sum(p) for p in parts)
    tokens = int(batch["attention_mask"].sum())
    row.update(batch=batch_size, tokens_per_batch=tokens, step_s=round(step_s, 4),
               forward_s=round(statistics.median(p[0] for p in parts), 4),
               backward_s=round(statistics.median(p[1] for p in parts), 4),
               optimizer_s=round(statistics.median(p[2] for p in parts), 4),
               tokens_per_s=round(tokens / step_s, 1), samples_per_s=round(batch_size / step_s, 2),
               **peak_memory(args.device))
    del model, optimizer, batch
    free(args.device)
    return row


def _on(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _trained(optimizer: Any) -> int:
    """Parameters AdamW holds a state for (those that got a gradient): 0 would mean nothing trained."""
    return sum(p.numel() for group in optimizer.param_groups for p in group["params"] if p in optimizer.state)


def measure_training(args: argparse.Namespace, clock: Clock, state: dict[str, Any]) -> dict[str, Any]:
    from omniactor.models.local_tokenizer import build_local_processor
    from omniactor.models.presets import get_preset

    preset = get_preset(args.preset)
    processor = build_local_processor(preset.family, image_size=preset.image_size, patch_size=preset.vision_patch_size)
    most = args.batch or (max(c for c in BATCH_CANDIDATES if c <= args.max_batch))
    samples = gui_samples(processor, most, args.image_size)
    labels = samples[0]["labels"]
    result: dict[str, Any] = {"domain": DOMAINS[0], "gradient_checkpointing": True, "image_size": args.image_size,
                              "sequence_tokens": int(samples[0]["input_ids"].shape[0]),
                              "answer_tokens": int((labels != -100).sum()),
                              "optimizer": f"AdamW, states in {args.torch_dtype}", "rows": {}}
    if args.batch:
        state["batch"] = args.batch
    order = sorted(TRAIN_ROWS, key=lambda r: r[0] != PROBE_ROW) if state.get("batch") is None else TRAIN_ROWS
    state["train"] = result
    for name, variant, rank in order:
        clock.check_budget()
        print(f"train {name} ({variant}{f' + LoRA r={rank}' if rank else ''})", flush=True)
        row = guarded(args.device, train_row, args, variant, rank, samples, clock, state)
        result["rows"][name] = {"variant": variant, **row} if "error" in row else row
        if "error" not in row:
            print(f"  {row['step_s']:.3f} s/step, {row['tokens_per_s']:.0f} tokens/s, batch {row['batch']}, "
                  f"peak {row.get('peak_memory_gib')} GiB", flush=True)
    result["rows"] = {name: result["rows"][name] for name, *_ in TRAIN_ROWS if name in result["rows"]}
    result["batch"] = state.get("batch")
    result["batch_search"] = state.get("batch_search")
    return result


def guarded(device: str, measure: Any, *args: Any) -> dict[str, Any]:
    """``measure(*args)``, or ``{"error": ...}`` when it fails (the run goes on with the next
    measurement); a spent budget and an interrupt still stop the run."""
    try:
        return measure(*args)
    except (OutOfTime, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - one failed measurement must not lose the others
        import traceback

        traceback.print_exc()
        error = f"{type(err).__name__}: {err}"[:1000]
    free(device)  # after the except block: the traceback's frames, and the model they hold, are gone
    return {"error": error}


def train_ratios(train: dict[str, Any]) -> None:
    """Each row's step time over dense's (the mean of the first and the last dense row)."""
    rows = {name: row for name, row in train.get("rows", {}).items() if "step_s" in row}
    dense = [rows[n]["step_s"] for n in ("dense", "dense_again") if n in rows]
    if not dense:
        return
    base = statistics.fmean(dense)
    for row in rows.values():
        row["ratio_to_dense"] = round(row["step_s"] / base, 4)
    if len(dense) == 2:
        train["dense_drift"] = round(dense[1] / dense[0], 4)


# ---------------------------------------------------------------------------- acting


def build_agents(args: argparse.Namespace) -> tuple[Any, Any]:
    """An omniactor model with a GUI domain (decimal text) and an embodied one (7 bins, and a
    regression head): one Agent writing answers, one acting by the head."""
    from omniactor.actions import EEF_DELTA_GRIPPER, ContinuousAction
    from omniactor.actions.tokenizers import build_action_tokenizer
    from omniactor.agent import Agent, AgentSettings, DomainSettings
    from omniactor.models.chat import add_adapters
    from omniactor.models.heterogeneity import HeterogeneityConfig, convert
    from omniactor.models.presets import build_model, get_preset
    from omniactor.models.vocabulary import add_action_vocabulary

    model, processor = build_model(get_preset(args.preset), random_init=True, device=args.device,
                                   dtype=args.torch_dtype, attn_implementation=args.attn)
    rng = np.random.default_rng(0)
    embodied = build_action_tokenizer("uniform", num_bins=256).fit(
        [ContinuousAction(tuple(rng.uniform(-1, 1, 7).round(4).tolist()), EEF_DELTA_GRIPPER) for _ in range(256)])
    tokenizers = {"gui": build_action_tokenizer("gui_text"), "embodied": embodied}
    for tokenizer in tokenizers.values():
        add_action_vocabulary(model, processor.tokenizer, tokenizer)
    add_adapters(model, processor.tokenizer, regression_dims={"embodied": len(EEF_DELTA_GRIPPER)})
    model.omniactor_adapters.to(device=args.device, dtype=model.dtype)
    convert(model, HeterogeneityConfig("omniactor", shared_layers=args.shared_layers, domains=DOMAINS))
    settings = AgentSettings({d: DomainSettings("regression_head" if d == "embodied" else "tokens", 0, args.image_size)
                              for d in DOMAINS})
    tokens = Agent(model, processor, tokenizers, settings, use_heads=False, max_text_chars=32)
    head = Agent(model, processor, tokenizers, settings, use_heads=True)
    return tokens, head


@contextmanager
def forward_times(model: Any, clock: Clock) -> Iterator[list[float]]:
    """Clock readings: the block's start, then the end of each forward pass of ``model`` inside it
    (in ``generate``: the prefill, which gives the first token, then one per further token)."""
    stamps = [clock.now()]
    handle = model.register_forward_hook(lambda *_: stamps.append(clock.now()))
    try:
        yield stamps
    finally:
        handle.remove()


def act_case(agent: Any, domain: str, by_head: bool, batch: int, args: argparse.Namespace,
             clock: Clock) -> dict[str, Any]:
    """One case at one batch size: act_batch's rate, the prompt's preparation, and for written
    answers the time to the first token, ms per further token and the constraint's overhead
    against unconstrained decoding of the same number of tokens."""
    from omniactor.envs.base import Observation

    rng = np.random.default_rng(batch)
    instruction = "put the black bowl on the plate" if domain == "embodied" else "turn on airplane mode"
    observations = [Observation({"main": rng.integers(0, 256, (args.image_size, args.image_size, 3), dtype=np.uint8)},
                                instruction, domain, 0) for _ in range(batch)]
    requests = [(domain, instruction, list(o.images.values()), []) for o in observations]
    steps: dict[str, list[float]] = {"ttft": [], "per_token": []}

    def act() -> None:
        agent.act_batch([agent.start(instruction, domain) for _ in range(batch)], observations)

    def inputs() -> None:  # the prompt's preparation alone (chat template, image processor, copy to device)
        agent._inputs(requests)

    def constrained() -> None:  # timed step by step too
        with forward_times(agent.model, clock) as stamps:
            agent.generate(requests, constrained=True)
        steps["ttft"].append(stamps[1] - stamps[0])
        if len(stamps) > 2:
            steps["per_token"].append((stamps[-1] - stamps[1]) / (len(stamps) - 2))

    act()  # warm-up (and the grammar's tables)
    alternatives = {"act": act, "inputs": inputs}
    length = 0
    if not by_head:
        length = max(len(ids) for ids in agent.generate(requests, constrained=True))  # answer + end-of-turn
        alternatives.update(constrained=constrained, unconstrained=lambda: agent.generate(
            requests, constrained=False, max_new_tokens=length, min_new_tokens=length))
        alternatives["unconstrained"]()  # warm-up
    times: dict[str, list[float]] = {key: [] for key in alternatives}
    for _ in range(args.repeats):  # alternated, so machine noise hits each alike
        for key, fn in alternatives.items():
            times[key].append(clock.timed(fn))
    med = {key: statistics.median(values) for key, values in {**times, **steps}.items() if values}
    result: dict[str, Any] = {"batch": batch, "answer_tokens": length, "act_batch_ms": _ms(med["act"]),
                              "actions_per_s": round(batch / med["act"], 2), "inputs_ms": _ms(med["inputs"])}
    if by_head:  # one forward pass: the first "token" is the action
        result.update(ttft_ms=result["act_batch_ms"], per_token_ms=None, constraint_overhead=None)
        return result
    result.update(ttft_ms=_ms(med["ttft"]), per_token_ms=_ms(med["per_token"]) if "per_token" in med else None,
                  constrained_ms=_ms(med["constrained"]), unconstrained_ms=_ms(med["unconstrained"]),
                  constraint_overhead=round(med["constrained"] / med["unconstrained"], 3))
    return result


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 2)


def measure_acting(args: argparse.Namespace, clock: Clock, state: dict[str, Any]) -> dict[str, Any]:
    free(args.device)
    tokens, head = build_agents(args)
    state.setdefault("attention", attention_info(tokens.model, args.attn))
    result: dict[str, Any] = {"variant": "omniactor", "domains": list(DOMAINS), "image_size": args.image_size,
                              "kv_cache": bool(tokens.model.generation_config.use_cache), "constrained": True,
                              "llm_tokenizer_tokens": len(tokens.tokenizer), "cases": {}}
    state["act"] = result
    for name, (domain, kind) in ACT_CASES.items():
        agent = head if kind == "head" else tokens
        for batch in args.act_batches:
            clock.check_budget()
            row = guarded(args.device, act_case, agent, domain, kind == "head", batch, args, clock)
            result["cases"].setdefault(name, {})[str(batch)] = {"batch": batch, **row}
            if "error" not in row:
                print(f"act {name:16s} batch {batch}: {row['actions_per_s']:8.2f} actions/s, TTFT {row['ttft_ms']} ms,"
                      f" {row['per_token_ms']} ms/token, overhead {row['constraint_overhead']}", flush=True)
    result["invalid_answers"] = int(tokens.stats["invalid"])
    if args.device.startswith("cuda"):
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
    del tokens, head
    free(args.device)
    return result


# ---------------------------------------------------------------------------- goals and main


def goals(summary: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals against what was measured (``None`` where a part did not run)."""
    rows = summary.get("train", {}).get("rows", {})
    cases = summary.get("act", {}).get("cases", {})
    out: dict[str, Any] = {"targets": {"actions_per_s_at_batch_1": f">= {GOALS['actions_per_s_batch1']:g}",
                                       "moe_train_step_vs_dense": f"<= {GOALS['moe_train_ratio']}x",
                                       "constraint_overhead": f"<= {GOALS['constraint_overhead']}x"}}
    at_one = {name: runs["1"]["actions_per_s"] for name, runs in cases.items() if "actions_per_s" in runs.get("1", {})}
    out["actions_per_s_at_batch_1"] = at_one or None
    out["actions_per_s_goal_met"] = ({n: v >= GOALS["actions_per_s_batch1"] for n, v in at_one.items()}
                                     if at_one else None)
    ratio = rows.get("omniactor", {}).get("ratio_to_dense")
    out["moe_train_ratio"] = ratio
    out["moe_train_goal_met"] = None if ratio is None else ratio <= GOALS["moe_train_ratio"]
    overheads = [r["constraint_overhead"] for runs in cases.values() for r in runs.values()
                 if r.get("constraint_overhead") is not None]
    out["worst_constraint_overhead"] = max(overheads) if overheads else None
    out["constraint_goal_met"] = None if not overheads else max(overheads) <= GOALS["constraint_overhead"]
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="The last printed line is one JSON object. See docs/benchmarks/gpu.md.")
    parser.add_argument("--preset", default="qwen2-vl-7b", help="model preset (default qwen2-vl-7b; also "
                        "qwen2.5-vl-7b, llava-onevision-7b)")
    parser.add_argument("--random-init", action="store_true",
                        help="build a real preset with random weights (required for one: timing needs no weights)")
    parser.add_argument("--dtype", default=None, choices=sorted(DTYPES), metavar="{bf16,fp16,fp32}",
                        help="weights, gradients and optimizer states (default bf16 on a GPU, fp32 on the CPU)")
    parser.add_argument("--attn", default="sdpa", help="attention implementation asked of transformers "
                        "(default sdpa; flash_attention_2 needs the flash-attn package)")
    parser.add_argument("--image-size", type=int, default=448, help="square image side in px (default 448)")
    parser.add_argument("--shared-layers", type=int, default=None, help="K, the shared layers (default: the preset's)")
    parser.add_argument("--batch", type=int, default=None,
                        help="global train batch (default: the largest that fits, tried on the GPU)")
    parser.add_argument("--max-batch", type=int, default=64, help="the largest batch tried (default 64)")
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per row (median kept; default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed train steps before the timed ones (default 1)")
    parser.add_argument("--act-batches", default="1,8", help="act_batch sizes (default 1,8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per acting case (default 5)")
    parser.add_argument("--skip-train", action="store_true", help="do not measure the train step")
    parser.add_argument("--skip-act", action="store_true", help="do not measure acting")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="stop starting new measurements after this many seconds (what was measured is kept)")
    parser.add_argument("--dry-run", action="store_true",
                        help="every part on the tiny preset on the CPU, small sizes (under a minute; not a GPU figure)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 for --dry-run, which checks and does not measure; "
                        "else torch's choice)")
    parser.add_argument("--out", help="also write the JSON result to this file")
    parser.add_argument("--json", action="store_true", help="(the last line is always one JSON object)")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.preset, args.random_init, args.device = "tiny", True, "cpu"
        args.image_size = min(args.image_size, 112)
        args.batch = args.batch or 2
        args.steps, args.warmup, args.repeats = min(args.steps, 1), 0, min(args.repeats, 1)
        args.threads = args.threads or 1  # a loaded 2-core machine runs one thread 5x faster than two
    else:
        args.device = "cuda" if torch.cuda.is_available() else None
    args.torch_dtype = DTYPES[args.dtype] if args.dtype else ("bfloat16" if args.device == "cuda" else "float32")
    args.act_batches = [int(b) for b in str(args.act_batches).split(",") if b.strip()]
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from omniactor.models.presets import get_preset

    preset = get_preset(args.preset)
    if args.shared_layers is None:
        args.shared_layers = preset.shared_layers
    summary: dict[str, Any] = {"benchmark": "gpu", "dry_run": args.dry_run, "preset": preset.name,
                               "device": args.device, "dtype": args.torch_dtype, "shared_layers": args.shared_layers,
                               "num_layers": preset.num_layers}
    if args.device is None:
        reason = "no CUDA device: nothing measured; run on a GPU, or --dry-run for the tiny CPU check"
        print(reason, file=sys.stderr)
        return _finish({**summary, "skipped": True, "reason": reason}, args)
    if not preset.is_tiny and not args.random_init:
        sys.exit(f"preset {preset.name} has no weights here: pass --random-init (random weights time the same)")
    if args.dry_run:
        print("dry run: tiny preset on the CPU, small sizes; these are not GPU figures", flush=True)
    clock = Clock(args.device, args.budget_s)
    state: dict[str, Any] = {}
    summary["machine"] = machine(args.device)
    # acting first: the headline goal, and the cheaper part, should a budget cut the run short
    parts = [] if args.skip_act else [("act", measure_acting)]
    parts += [] if args.skip_train else [("train", measure_training)]
    try:
        for key, measure in parts:
            start = clock.elapsed()
            outcome = guarded(args.device, measure, args, clock, state)
            state.setdefault(key, {}).update({"error": outcome["error"]} if "error" in outcome else {})
            state[key]["seconds"] = round(clock.elapsed() - start, 1)
    except (OutOfTime, KeyboardInterrupt) as stop:
        summary["stopped"] = str(stop) or "interrupted"
        print(f"stopped: {summary['stopped']}; keeping what was measured", file=sys.stderr, flush=True)
    for key in ("attention", "train", "act"):
        if key in state:
            summary[key] = state[key]
    if "train" in summary:
        summary["train"].setdefault("batch", state.get("batch"))
        summary["train"].setdefault("batch_search", state.get("batch_search"))
        train_ratios(summary["train"])
    summary["goals"] = goals(summary)
    if args.dry_run:
        summary["goals"]["note"] = "dry run: the tiny preset on the CPU, not a verdict on the GPU goals"
    summary["elapsed_s"] = round(clock.elapsed(), 1)
    _print_tables(summary)
    return _finish(summary, args)


def _print_tables(summary: dict[str, Any]) -> None:
    rows = summary.get("train", {}).get("rows", {})
    if rows:
        print(f"\n{'row':12} {'batch':>5} {'step s':>8} {'tokens/s':>9} {'vs dense':>8} {'peak GiB':>8}")
        for name, r in rows.items():
            if "error" in r:
                print(f"{name:12} error: {r['error'][:100]}")
                continue
            print(f"{name:12} {r['batch']:>5} {r['step_s']:>8.3f} {r['tokens_per_s']:>9.0f} "
                  f"{r.get('ratio_to_dense', float('nan')):>7.3f}x {_cell(r['peak_memory_gib']):>8}")
    cases = summary.get("act", {}).get("cases", {})
    if cases:
        print(f"\n{'case':16} {'batch':>5} {'actions/s':>9} {'TTFT ms':>8} {'ms/token':>8} {'overhead':>8}")
        for name, runs in cases.items():
            for r in runs.values():
                if "error" in r:
                    print(f"{name:16} {r['batch']:>5} error: {r['error'][:100]}")
                    continue
                print(f"{name:16} {r['batch']:>5} {r['actions_per_s']:>9.2f} {r['ttft_ms']:>8.1f} "
                      f"{_cell(r['per_token_ms']):>8} {_cell(r['constraint_overhead']):>8}")
    print()


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _finish(summary: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    line = json.dumps(summary)
    if args.out:
        Path(args.out).write_text(line + "\n")
    print(line, flush=True)
    return summary


if __name__ == "__main__":
    main()
