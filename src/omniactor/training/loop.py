"""Supervised fine-tuning, top to bottom, on Accelerate (DDP / FSDP / DeepSpeed come from it).

``train(config)``:
1. model: a preset or a local checkpoint, converted to ``config.variant``; each domain's
   action tokenizer fitted on its actions and its vocabulary added; optional LoRA (PEFT);
2. data: validated folders -> records in a canonical order (``canonical_order``: by episode
   and step, not by where a collector's workers happened to write them) -> cached encodings
   -> domain-homogeneous global batches, each process taking its slice;
3. the loop: loss over the answer tokens normalised by the global token count (so N
   processes compute exactly what one process would on the same global batch), the
   routers' balance loss, AdamW + warm-up/cosine, clipping; a progress bar; metrics per
   domain and per source in ``metrics.jsonl`` and TensorBoard; held-out loss per domain;
4. checkpoints: every ``save_every`` steps, written to a temporary folder and renamed when
   complete (a crash leaves a complete checkpoint or none), the newest ``keep_checkpoints``
   kept; re-running the same command resumes from the newest one (model, optimizer,
   scheduler, RNG and data position);
5. the final model, processor and action tokenizers in ``<output_dir>/final``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from ..action_adapters.heads import prompt_end_states
from ..fileio import JsonLinesAppender, naming
from ..models.checkpoint import WRITE_ERRORS
from .config import TrainConfig, save_config
from .data import (
    HEAD_TARGETS,
    DataError,
    DomainBatchSampler,
    PreprocessedCache,
    SampleEncoder,
    cache_root,
    collate,
    collect_items,
    fingerprint,
    folder_state,
    processor_state,
)

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
#: one line per start of a run (and per resume): what its float sums depend on besides the config
RUNTIME_FILE = "runtime.jsonl"


# ---------------------------------------------------------------------------- model


def build_model(config: TrainConfig) -> tuple[Any, Any, int]:
    """``(model, processor, K)`` for ``config.model``: a preset name or a local checkpoint."""
    from ..models.presets import build_model as build_preset
    from ..models.presets import get_preset, load_model, paper_shared_layers

    if Path(config.model).is_dir():
        model, processor = load_model(config.model, dtype="float32")
        layers = model.config.get_text_config().num_hidden_layers
        return model, processor, config.resolved_shared_layers(paper_shared_layers(layers))
    preset = get_preset(config.model)
    model, processor = build_preset(preset, seed=config.seed)
    return model, processor, config.resolved_shared_layers(preset.shared_layers)


def canonical_order(items: list) -> list:
    """``items`` sorted by what they are (source, episode, step), not by where they were read.

    A collection's shards hold episodes in the order its workers finished them, which changes
    from run to run with timing; the batches are drawn over item positions, so training on
    the file order trained two identical collections differently."""
    return sorted(items, key=lambda i: (i.source, i.episode, i.step, i.file, i.line))


def fit_action_tokenizers(config: TrainConfig, items: list, model: Any, processor: Any) -> dict[str, Any]:
    """Each domain's action tokenizer, fitted on that domain's training actions (in episode and
    step order), vocabulary added."""
    from ..actions import ContinuousAction, DiscreteAction
    from ..actions.tokenizers import build_action_tokenizer
    from ..data import DatasetReader
    from ..models.vocabulary import add_action_vocabulary

    keyed: dict[str, list] = {}
    roots = sorted({item.root for item in items})
    for root in roots:
        for sample in DatasetReader(root, errors="warn"):
            keyed.setdefault(sample.domain, []).append(((root, sample.episode, sample.step), sample.action))
    actions = {domain: [a for _, a in sorted(pairs, key=lambda pair: pair[0])] for domain, pairs in keyed.items()}
    tokenizers = {}
    for domain, block in config.blocks.items():
        spec = block.action_tokenizer
        args = dict(spec.args)
        seen = actions.get(domain, [])
        if "names" not in args and seen and isinstance(seen[0], DiscreteAction):
            args["names"] = sorted({a.name for a in seen})
        try:
            tokenizer = build_action_tokenizer(spec.name, **args)
        except TypeError as err:  # e.g. discrete phrases without names, fitted from no records
            raise DataError(f"domain {domain!r}: cannot build its {spec.name!r} action tokenizer ({err}); "
                            + ("no training record has this domain: add its data or drop it from `domains`"
                               if not seen else f"check domains.{domain}.action_tokenizer")) from None
        if seen and isinstance(seen[0], ContinuousAction):
            tokenizer.fit(seen)
        add_action_vocabulary(model, processor.tokenizer, tokenizer)
        tokenizers[domain] = tokenizer
    return tokenizers


def take_state(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """Move a batch's ``state`` into the model's state input (batches hold one domain: all rows or
    none); returns it (regression heads may read it too)."""
    state = batch.pop("state", None)
    if state is not None:
        from ..models.adapters import set_state

        set_state(model, state)
    return state


def pop_head_target(batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """Take the batch's action-head target out of it (``None`` when its domain has no head)."""
    targets = [batch.pop(key) for key in HEAD_TARGETS if key in batch]
    return targets[0] if targets else None


def parameter_groups(model: Any, config: TrainConfig) -> list[dict[str, Any]]:
    """The trainable parameters; the action heads in a group of their own learning rate."""
    from ..models.adapters import HEAD_PREFIXES

    head_parameters = tuple(f"omniactor_adapters.{prefix}" for prefix in HEAD_PREFIXES)
    heads, rest = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (heads if any(part in name for part in head_parameters) else rest).append(parameter)
    groups = [{"params": rest}]
    if heads:
        groups.append({"params": heads, "lr": config.head_learning_rate or config.learning_rate})
    return groups


def sample_encoder(config: TrainConfig, processor: Any, action_tokenizers: dict[str, Any],
                   state_widths: dict[str, int], adapters: dict[str, Any]) -> SampleEncoder:
    """The encoder of ``config``'s samples: each domain's prompt settings, and the head targets."""
    return SampleEncoder(processor, action_tokenizers, {d: spec.history for d, spec in config.blocks.items()},
                         {d: spec.image_size for d, spec in config.blocks.items()}, config.system_prompt,
                         state_widths, {d: a for d, a in adapters.items() if not a.writes_answer})


def prompt_key(config: TrainConfig) -> list[Any]:
    """The cache fingerprint's part for how samples are encoded: the domains' blocks and the system prompt."""
    return [{d: spec.to_json() for d, spec in config.blocks.items()}, config.system_prompt]


def build_adapters(config: TrainConfig, action_tokenizers: dict[str, Any]) -> dict[str, Any]:
    """Each domain's action adapter (``action_adapters``), checked against its fitted tokenizer."""
    from ..action_adapters import build_adapter

    adapters = {}
    for domain, block in config.blocks.items():
        adapter = build_adapter(block.output, domain, action_tokenizers[domain])
        try:
            adapter.check()
        except ValueError as err:
            raise DataError(f"domains.{domain}.output: {err}") from None
        adapters[domain] = adapter
    return adapters


def model_parts(adapters: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """``add_adapters``' keyword arguments for what the adapters need in the model (heads, the
    image pointer), merged over the domains."""
    parts: dict[str, Any] = {}
    for adapter in adapters.values():
        for key, value in adapter.model_part(tokenizer).items():
            parts.setdefault(key, {}).update(value)
    return parts


def state_statistics(items: list, state_domains: list[str]) -> tuple[dict[str, int], Any, Any]:
    """``(widths, mean, std)``: the width of each state domain's ``meta.state`` (one per domain) and
    the per-dimension mean / std of the state input, each domain's slice over its own records
    (``models.chat.StateLayout``: the domains' states side by side). Summed per episode, then over
    episodes in key order: the result does not depend on the order of the files' records."""
    import numpy as np

    from ..data import DatasetReader
    from ..models.chat import StateLayout

    per_episode: dict[tuple[str, str, str], list[Any]] = {}  # (domain, root, episode) -> [total, squares, count]
    first: dict[str, tuple[int, str]] = {}
    for root in sorted({item.root for item in items if item.domain in state_domains}):
        for record in DatasetReader(root, errors="warn").records():
            domain, state = record.sample.domain, record.sample.meta.get("state")
            if domain not in state_domains or not state:
                continue
            where = f"{root}/{record.file}:{record.line}"
            width, seen_at = first.setdefault(domain, (len(state), where))
            if len(state) != width:
                raise DataError(f"{where}: meta.state has {len(state)} numbers, but {seen_at} of the same domain "
                                f"{domain!r} has {width}; one domain's states must have one width")
            values = np.asarray(state, dtype=np.float64)
            acc = per_episode.setdefault((domain, root, record.sample.episode), [np.zeros(width), np.zeros(width), 0])
            acc[0] += values
            acc[1] += values**2
            acc[2] += 1
    sums: dict[str, list[Any]] = {}  # domain -> [total, squares, count]
    for (domain, _, _), (total, squares, count) in sorted(per_episode.items(), key=lambda entry: entry[0]):
        acc = sums.setdefault(domain, [np.zeros_like(total), np.zeros_like(squares), 0])
        acc[0] += total
        acc[1] += squares
        acc[2] += count
    missing = [d for d in state_domains if d not in sums]
    if missing:
        raise DataError(f"domains {missing} take a state input (state: true) but no record of theirs has "
                        "meta.state; collect them with their states or set state: false")
    layout = StateLayout({d: first[d][0] for d in state_domains})
    mean, std = np.zeros(layout.width), np.ones(layout.width)
    for domain, (total, squares, count) in sums.items():
        part = slice(*layout.span(domain))
        mean[part] = total / count
        std[part] = np.sqrt(np.maximum(squares / count - mean[part] ** 2, 0.0))
    return layout.widths, mean, std


def apply_lora(model: Any, settings: dict[str, Any], new_token_ids: list[int]) -> Any:
    """Wrap ``model`` with PEFT LoRA on every attention/FFN projection (per-domain experts included)."""
    from peft import LoraConfig, get_peft_model
    from torch import nn

    targets = set(settings.get("target_modules", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                  "up_proj", "down_proj"]))
    names = []
    for name, module in model.named_modules():
        parts = name.split(".")
        if not isinstance(module, nn.Linear) or "visual" in parts or "vision_tower" in parts:
            continue
        if parts[-1] in targets or (len(parts) > 2 and parts[-2] == "experts" and parts[-3] in targets):
            names.append(name)
    lora = LoraConfig(r=settings.get("r", 16), lora_alpha=settings.get("alpha", 32),
                      lora_dropout=settings.get("dropout", 0.0), target_modules=names,
                      modules_to_save=["lm_head"],  # new action tokens need their output rows trained
                      trainable_token_indices={"embed_tokens": new_token_ids} if new_token_ids else None)
    return get_peft_model(model, lora)


# ---------------------------------------------------------------------------- checkpoints


def complete_checkpoints(output_dir: Path, state_file: str = STATE_FILE) -> list[Path]:
    """The complete ``checkpoint-N`` folders (their ``state_file`` written last), oldest first."""
    found = [p for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*") if (p / state_file).exists() and "tmp" not in p.name]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def save_checkpoint(accelerator: Any, output_dir: Path, step: int, keep: int) -> None:
    final = output_dir / f"{CHECKPOINT_PREFIX}{step:07d}"
    tmp = output_dir / f"{CHECKPOINT_PREFIX}{step:07d}.tmp"
    if accelerator.is_main_process:
        for stale in [tmp, *output_dir.glob(f"{CHECKPOINT_PREFIX}*.tmp-old")]:  # left by a kill or a full disk
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        with naming(tmp, also=WRITE_ERRORS):  # a full disk: "error: <folder>: ...", never a traceback
            accelerator.save_state(str(tmp))
            if accelerator.is_main_process:
                (tmp / STATE_FILE).write_text(json.dumps({"step": step}))
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        tmp.rename(final)  # a checkpoint is complete or absent
        for old in complete_checkpoints(output_dir)[:-keep]:
            doomed = old.with_name(old.name + ".tmp-old")  # no longer a checkpoint while it is deleted
            old.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)
    accelerator.wait_for_everyone()


# ---------------------------------------------------------------------------- loss


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample summed cross-entropy over the answer tokens ``(B,)``, and their counts ``(B,)``."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    mask = shift_labels != -100
    losses = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.clamp(min=0).reshape(-1), reduction="none"
    ).view(shift_labels.shape)
    return (losses * mask).sum(dim=1), mask.sum(dim=1)


# ---------------------------------------------------------------------------- the run


def train(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    from ..action_adapters import adapter_class
    from ..models.heterogeneity import HeterogeneityConfig, aux_loss, convert, set_domains

    # per-domain experts, the state input and the heads sit idle in other domains' batches
    unused = (config.variant != "dense" or bool(config.state_domain_names)
              or not all(adapter_class(spec.output).writes_answer for spec in config.blocks.values()))
    kwargs = [DistributedDataParallelKwargs(find_unused_parameters=unused)]
    plugin = None
    if config.deepspeed:
        from accelerate import DeepSpeedPlugin

        plugin = DeepSpeedPlugin(hf_ds_config=config.deepspeed)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, kwargs_handlers=kwargs, deepspeed_plugin=plugin,
                              cpu=not torch.cuda.is_available(),  # several CPU processes: gloo (torchrun, accelerate)
                              # batch_size is global (each process slices it): one scheduler step per step
                              dataloader_config=DataLoaderConfiguration(split_batches=True))
    world, rank = accelerator.num_processes, accelerator.process_index
    if config.batch_size % world:
        raise ValueError(f"batch_size={config.batch_size} must be a multiple of the {world} processes")
    set_seed(config.seed)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process:
        save_config(config, output_dir / "config.yaml")

    # 1. model, action tokenizers, vocabulary -----------------------------------------
    items, skipped = collect_items(config.data, config.domains, config.skip_invalid)
    items = canonical_order(items)
    model, processor, shared = build_model(config)
    before_vocab = model.get_input_embeddings().weight.shape[0]
    action_tokenizers = fit_action_tokenizers(config, items, model, processor)
    adapters = build_adapters(config, action_tokenizers)
    parts = model_parts(adapters, processor.tokenizer)
    state_widths: dict[str, int] = {}
    state_domains = config.state_domain_names
    copying = [d for d, spec in config.blocks.items() if spec.copy]
    if state_domains or parts or copying:
        from ..models.chat import StateLayout, add_adapters

        if state_domains:
            state_widths, mean, std = state_statistics(items, state_domains)
            state = (StateLayout(state_widths).width, mean, std)
        else:
            state = (0, None, None)
        add_adapters(model, processor.tokenizer, *state, regression_state=bool(state_domains),
                     copy=copying if len(copying) < len(config.blocks) else bool(copying), **parts)
    new_ids = list(range(before_vocab, model.get_input_embeddings().weight.shape[0]))
    convert(model, HeterogeneityConfig(config.variant, shared_layers=shared, domains=tuple(config.domains)))
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if config.lora:
        model = apply_lora(model, config.lora, new_ids)
    model.train()

    # 2. data ---------------------------------------------------------------------------
    encoder = sample_encoder(config, processor, action_tokenizers, state_widths, adapters)
    key = fingerprint([[folder_state(s.path) for s in config.data], processor_state(processor),
                       {d: t.config() for d, t in action_tokenizers.items()}, prompt_key(config),
                       [s.path for s in config.data], state_widths, "canonical order", config.cache_images])
    cache_dir = cache_root(config.cache_dir, output_dir) / key
    with accelerator.main_process_first():
        dataset = PreprocessedCache.open_or_build(cache_dir, items, encoder,
                                                  progress=progress and accelerator.is_main_process,
                                                  keep_image_tensors=config.cache_images == "tensors")
    sampler = DomainBatchSampler(dataset.domains, dataset.sources, [s.weight for s in config.data],
                                 config.batch_size, config.seed)
    per_rank = config.batch_size // world
    pad_id = processor.tokenizer.pad_token_id

    # 3. optimisation -------------------------------------------------------------------
    optimizer = torch.optim.AdamW(parameter_groups(model, config), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    scheduler = get_scheduler(config.lr_schedule if config.lr_schedule != "constant" else "constant_with_warmup",
                              optimizer, num_warmup_steps=math.ceil(config.warmup_ratio * config.max_steps),
                              num_training_steps=config.max_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    step = 0
    checkpoints = complete_checkpoints(output_dir)
    if checkpoints:
        accelerator.load_state(str(checkpoints[-1]))
        step = json.loads((checkpoints[-1] / STATE_FILE).read_text())["step"]
        accelerator.print(f"resuming from {checkpoints[-1]} (step {step})")
    sampler.seek(step)
    batches = iter(sampler)
    if accelerator.is_main_process:
        record_runtime(output_dir, step, world, accelerator.device)

    domain_ids = {d: i for i, d in enumerate(config.domains)}
    source_names = [s.name or Path(s.path).name for s in config.data]
    metrics_file = output_dir / "metrics.jsonl"
    writer = None
    if accelerator.is_main_process:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(output_dir / "tensorboard"))
    totals: dict[str, list[float]] = {}
    bar = tqdm(total=config.max_steps, initial=step, desc="train", disable=not (progress and accelerator.is_main_process))
    started, samples_done = time.perf_counter(), 0
    while step < config.max_steps:
        indices = next(batches)
        mine = indices[rank * per_rank:(rank + 1) * per_rank]
        batch = collate([dataset[i] for i in mine], pad_id)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        labels = batch.pop("labels")
        target = pop_head_target(batch)
        state = take_state(model, batch)
        domain = dataset.domains[mine[0]]
        set_domains(model, torch.full((len(mine),), domain_ids[domain], dtype=torch.long))
        out = model(**batch, output_hidden_states=target is not None)
        sums, counts = answer_loss(out.logits, labels)
        global_tokens = accelerator.reduce(counts.sum().detach().float(), reduction="sum")
        loss = sums.sum() / global_tokens.clamp(min=1) * world  # DDP averages gradients over processes
        if target is not None:
            adapter = adapters[domain]
            head = adapter.head_loss(model, prompt_end_states(out.hidden_states[-1], labels), state, target)
            loss = loss + config.head_loss_weight * head
            total = totals.setdefault(f"{adapter.loss_name}/{domain}", [0.0, 0.0])
            total[0] += float(head.detach())
            total[1] += 1
        balance = aux_loss(model) if config.variant == "router" else None
        if balance is not None:
            loss = loss + config.router_aux_weight * balance
        accelerator.backward(loss)
        if config.max_grad_norm:
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        samples_done += config.batch_size

        # bookkeeping: loss per domain and per source, summed over processes
        per_sample = torch.stack([sums.detach(), counts.float()], dim=1)
        gathered = accelerator.gather(per_sample).cpu()
        all_sources = accelerator.gather(torch.tensor([dataset.sources[i] for i in mine], device=accelerator.device))
        for (s, c), source in zip(gathered.tolist(), all_sources.cpu().tolist()):
            for key_name in (f"domain/{domain}", f"source/{source_names[source]}"):
                total = totals.setdefault(key_name, [0.0, 0.0])
                total[0] += s
                total[1] += c
        rate = samples_done / (time.perf_counter() - started)
        bar.set_postfix(loss=f"{loss.item():.3f}", domain=domain, samples_s=f"{rate:.1f}")
        bar.update(1)
        if accelerator.is_main_process and (step % config.log_every == 0 or step == config.max_steps):
            record = {"step": step, "lr": scheduler.get_last_lr()[0], "samples_per_s": rate,
                      **{f"loss/{k}": v[0] / max(v[1], 1) for k, v in totals.items()}}
            if balance is not None:
                record["router_balance"] = float(balance)
            with JsonLinesAppender(metrics_file) as f:
                f.append(record)
            for k, v in record.items():
                if k != "step":
                    writer.add_scalar(k, v, step)
            totals = {}
        if config.eval_data and config.eval_every and step % config.eval_every == 0:
            log_eval(config, accelerator, model, processor, encoder, step, metrics_file, writer, progress)
        if step % config.save_every == 0 or step == config.max_steps:
            save_checkpoint(accelerator, output_dir, step, config.keep_checkpoints)
    bar.close()

    result: dict[str, Any] = {"steps": step, "skipped": skipped}
    if config.eval_data:
        result["eval"] = log_eval(config, accelerator, model, processor, encoder, step, metrics_file, writer, progress)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_final(accelerator.unwrap_model(model), processor, action_tokenizers, output_dir / "final",
                   agent_settings(config, items, encoder))
        if writer is not None:
            writer.close()
    accelerator.end_training()
    return result


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; else what ``platform`` knows)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def record_runtime(output_dir: Path, step: int, processes: int, device: Any) -> dict[str, Any]:
    """Append this start's torch version, thread count, processes, device and CPU to ``runtime.jsonl``.

    On a CPU the same config, data and thread count give bitwise the same model; another
    thread count splits the float sums differently and gives another model (docs/demo.md), and
    so may another CPU: torch picks its kernels by the CPU's vector instructions
    (``cpu_capability``: e.g. AVX2, AVX512)."""
    import platform

    record = {"step": step, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "processes": processes, "device": str(device), "machine": platform.machine(), "cpu": cpu_model(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    with JsonLinesAppender(output_dir / RUNTIME_FILE) as f:
        f.append(record)
    return record


def evaluate_loss(config: TrainConfig, model: Any, processor: Any, encoder: SampleEncoder, cache_root: Path,
                  progress: bool = False) -> dict[str, float]:
    """Mean answer-token loss per domain on ``config.eval_data`` (no gradient)."""
    from ..models.heterogeneity import set_domains

    items, _ = collect_items(config.eval_data, config.domains, config.skip_invalid)
    items = canonical_order(items)
    key = fingerprint([[folder_state(s.path) for s in config.eval_data], processor_state(processor),
                       {d: t.config() for d, t in encoder.action_tokenizers.items()}, prompt_key(config), "eval",
                       encoder.state_layout.widths, config.cache_images])
    dataset = PreprocessedCache.open_or_build(cache_root / key, items, encoder, progress=progress,
                                              keep_image_tensors=config.cache_images == "tensors")
    domain_ids = {d: i for i, d in enumerate(config.domains)}
    totals: dict[str, list[float]] = {}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for domain in config.domains:
            members = [i for i, d in enumerate(dataset.domains) if d == domain]
            for start in range(0, len(members), config.batch_size):
                chunk = members[start:start + config.batch_size]
                batch = {k: v.to(device) for k, v in collate([dataset[i] for i in chunk], processor.tokenizer.pad_token_id).items()}
                labels = batch.pop("labels")
                pop_head_target(batch)
                take_state(model, batch)
                set_domains(model, torch.full((len(chunk),), domain_ids[domain], dtype=torch.long))
                out = model(**batch)
                sums, counts = answer_loss(out.logits, labels)
                total = totals.setdefault(domain, [0.0, 0.0])
                total[0] += float(sums.sum())
                total[1] += float(counts.sum())
    model.train(was_training)
    return {d: v[0] / max(v[1], 1) for d, v in totals.items()}


def log_eval(config, accelerator, model, processor, encoder, step, metrics_file, writer, progress) -> dict[str, float]:
    with accelerator.main_process_first():
        losses = evaluate_loss(config, model, processor, encoder, cache_root(config.cache_dir, config.output_dir),
                               progress=False)
    if accelerator.is_main_process:
        with JsonLinesAppender(metrics_file) as f:
            f.append({"step": step, **{f"eval_loss/{d}": v for d, v in losses.items()}})
        for d, v in losses.items():
            writer.add_scalar(f"eval_loss/{d}", v, step)
    return losses


def agent_settings(config: TrainConfig, items: list, encoder: SampleEncoder) -> Any:
    """How the Agent must ask the trained model: the prompt settings and one system prompt per
    domain (that of the domain's first record in ``canonical_order``, under the ``system_prompt``
    setting)."""
    from ..agent.settings import AgentSettings, DomainSettings
    from ..data import DatasetReader

    firsts: dict[str, Any] = {}
    for item in canonical_order(items):
        firsts.setdefault(item.domain, item)
    wanted = {(item.root, item.file, item.line): domain for domain, item in firsts.items()}
    prompts: dict[str, str] = {}
    for root in sorted({item.root for item in firsts.values()}):
        for record in DatasetReader(root, errors="warn").records():
            domain = wanted.get((root, record.file, record.line))
            if domain is not None:
                prompts[domain] = encoder.system_for(record.sample)
            if len(prompts) == len(firsts):
                break
    widths = encoder.state_layout.widths
    return AgentSettings({domain: DomainSettings(spec.output, spec.history, spec.image_size, prompts.get(domain, ""),
                                                 widths.get(domain)) for domain, spec in config.blocks.items()})


def save_final(model: Any, processor: Any, action_tokenizers: dict[str, Any], directory: Path,
               settings: Any = None) -> None:
    """The trained model (LoRA merged), processor, action tokenizers and agent settings, ready for the Agent."""
    from ..models.checkpoint import save_pretrained

    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with naming(tmp):
            save_pretrained(model, tmp, processor)
            for domain, tokenizer in action_tokenizers.items():
                tokenizer.save(tmp / "action_tokenizers" / domain)
            if settings is not None:
                settings.save(tmp)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
