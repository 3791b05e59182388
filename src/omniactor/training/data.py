"""Training data: mixed dataset folders -> cached model inputs -> domain-homogeneous batches.

1. ``collect_items`` validates every folder (refusing bad records by name, or skipping and
   counting them with ``skip_invalid``), reads the records' metadata, and recovers each
   step's previous actions from its episode (for a configurable history length).
2. ``SampleEncoder`` turns one record into model inputs: the chat prompt (system, image(s),
   instruction, history) through the family's processor, then the target (the action
   through the domain's action tokenizer) and the end-of-turn token. Labels are -100
   everywhere but the target, so the loss covers exactly the assistant's answer.
3. ``PreprocessedCache`` stores the encoded samples in safetensors chunks keyed by a
   fingerprint of the data, the processor and the encoding settings; a restart reuses it,
   and each sample is read back alone (memory-mapped), so memory stays flat.
4. ``DomainBatchSampler`` yields global batches that each hold one domain (the MoE then
   costs what the dense model does), in a seeded random interleaving of domains, with
   per-source resampling weights; its position is part of a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..action_adapters.classification_head import ACTION_CLASS
from ..action_adapters.regression_head import ACTION_TARGET
from ..actions import Action, format_action
from ..actions.tokenizers.base import ActionTokenizer
from ..data import DatasetReader, validate_dataset
from ..data.prompts import human_turn
from ..data.sample import IMAGE_MARKER
from ..errors import OmniactorError
from ..fileio import naming
from ..models.chat import StateLayout, chat_inputs, end_of_turn_id, per_domain, resize_images, with_state_marker
from ..models.checkpoint import WRITE_ERRORS
from .config import SourceConfig

CHUNK = 256
#: the targets of the action heads (a batch holds one domain: at most one of them)
HEAD_TARGETS = (ACTION_TARGET, ACTION_CLASS)


class DataError(OmniactorError, ValueError):
    """The training data cannot be used as given (the message names the records)."""


@dataclass
class Item:
    """What training needs to know of one record before encoding it."""

    source: int
    root: str
    file: str
    line: int
    domain: str
    episode: str
    step: int


def _source_name(source: SourceConfig) -> str:
    return source.name or Path(source.path).name


def collect_items(
    sources: Sequence[SourceConfig], domains: Sequence[str], skip_invalid: bool = False
) -> tuple[list[Item], dict[str, Any]]:
    """Every usable record of ``sources``; a report of what was skipped and why."""
    items: list[Item] = []
    report: dict[str, Any] = {"skipped_invalid": 0, "skipped_domain": 0, "examples": []}
    for index, source in enumerate(sources):
        root = Path(source.path)
        validation = validate_dataset(root, images="exists")
        bad = {(issue.file, issue.line) for issue in validation.issues}
        if validation.issues and not skip_invalid:
            shown = "\n".join(issue.format(root) for issue in validation.issues[:20])
            more = len(validation.issues) - 20
            folder = len(validation.dataset_issues)
            found = f"{validation.bad} bad record(s)" + (f" and {folder} folder-level issue(s)" if folder else "")
            raise DataError(
                f"{root}: {found}; training refuses to start (pass skip_invalid=true to skip bad records and count "
                f"them):\n{shown}" + (f"\n... and {more} more" if more > 0 else "")
            )
        report["skipped_invalid"] += validation.bad  # every bad record, readable or not
        for record in DatasetReader(root, errors="warn").records():
            if (record.file, record.line) in bad:
                continue
            sample = record.sample
            if sample.domain not in domains:
                report["skipped_domain"] += 1
                if len(report["examples"]) < 5:
                    report["examples"].append(f"{root}/{record.file}:{record.line}: domain {sample.domain!r}")
                continue
            items.append(Item(index, str(root), record.file, record.line, sample.domain, sample.episode, sample.step))
    if report["skipped_domain"]:
        raise DataError(
            f"{report['skipped_domain']} record(s) have a domain the model does not have (domains: {list(domains)}), "
            f"e.g. {report['examples'][0]}; add the domain to `domains` or leave those folders out"
        )
    if not items:
        raise DataError("no training records: give at least one dataset folder in `data`")
    return items, report


def fingerprint(parts: Sequence[Any]) -> str:
    """A short stable hash of JSON-able parts (data folder states, processor settings, ...)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_root(cache_dir: str | None, output_dir: str | Path) -> Path:
    """Where preprocessed samples are cached: ``cache_dir``, or ``.omniactor-cache`` beside the run
    folder, so the runs of one parent folder (SFT and RL alike) share each encoded dataset."""
    return Path(cache_dir) if cache_dir else Path(output_dir).parent / ".omniactor-cache"


def folder_state(root: str | Path) -> list[Any]:
    """What identifies a dataset folder's content: its manifest and its shards' sizes and times."""
    root = Path(root)
    manifest = (root / "manifest.json").read_bytes() if (root / "manifest.json").exists() else b""
    shards = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in (root / "shards").glob("*.jsonl"))
    return [hashlib.sha256(manifest).hexdigest(), shards]


def processor_state(processor: Any) -> list[Any]:
    tokenizer = getattr(processor, "tokenizer", processor)
    image = getattr(processor, "image_processor", None)
    return [type(processor).__name__, len(tokenizer), sorted(tokenizer.get_added_vocab().items()),
            getattr(tokenizer, "chat_template", None), image.to_dict() if image is not None else None]


class SampleEncoder:
    """One record -> ``{input_ids, labels, attention_mask, pixel_values, ...}`` tensors."""

    def __init__(self, processor: Any, action_tokenizers: dict[str, ActionTokenizer], history: int | dict[str, int],
                 image_size: int | dict[str, int] | None, system_prompt: str = "sample",
                 state_widths: dict[str, int] | None = None, heads: dict[str, Any] | None = None):
        """``history`` / ``image_size``: one value, or one per domain; ``state_widths``: the width of
        each domain's ``meta.state`` that enters the prompt (``models.chat.StateLayout``); ``heads``:
        the action adapters of the domains that act by a head (``action_adapters``), whose
        ``head_target`` each sample carries under the adapter's ``target_key``."""
        self.processor = processor
        self.state_layout = StateLayout(state_widths)
        self.heads = dict(heads or {})
        self.system_prompt = system_prompt
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.action_tokenizers = action_tokenizers
        self.history = history
        self.image_size = image_size
        self.end_id = end_of_turn_id(self.tokenizer)

    def target_ids(self, domain: str, action: Action) -> list[int]:
        """The answer's token ids: the action through the domain's tokenizer, then end-of-turn."""
        from ..action_adapters.tokens import TokenAnswer

        return TokenAnswer(domain, self.action_tokenizers[domain]).answer_ids(action, self.tokenizer, self.end_id)

    def prompt_text(self, sample: Any, previous: Sequence[Action]) -> tuple[str, int]:
        """The human turn (re-rendered with ``history`` when the instruction is known)."""
        instruction = sample.meta.get("instruction")
        n_images = len(sample.images)
        if instruction is not None:
            history = per_domain(self.history, sample.domain)
            shown = list(previous)[-history:] if history else []
            text = human_turn(instruction, 0, [format_action(a) for a in shown])
        else:
            text = sample.prompt.replace(IMAGE_MARKER, "").strip()
        return text, n_images

    def system_for(self, sample: Any) -> str:
        """The system prompt of ``sample`` under the ``system_prompt`` setting (sample / none / a text)."""
        return {"sample": sample.system, "none": ""}.get(self.system_prompt, self.system_prompt)

    def encode(self, sample: Any, images: list, previous: Sequence[Action]) -> dict[str, torch.Tensor]:
        return self.encode_with_images(sample, images, previous)[0]

    def image_inputs(self, images: Sequence[Any]) -> dict[str, torch.Tensor]:
        """The model's image tensors of ``images`` as the model sees them (already resized): what the
        processor adds to a prompt's inputs for them (``pixel_values``, ``image_grid_thw``, ...)."""
        return dict(self.processor.image_processor(images=list(images), return_tensors="pt"))

    def encode_with_images(self, sample: Any, images: list,
                           previous: Sequence[Action]) -> tuple[dict[str, torch.Tensor], list[Any]]:
        """``encode``'s tensors, and the images as the model sees them (resized RGB)."""
        images = resize_images(images, per_domain(self.image_size, sample.domain))
        text, n_images = self.prompt_text(sample, previous)
        if len(images) != n_images:
            raise DataError(f"episode {sample.episode} step {sample.step}: {n_images} <image> marker(s) but "
                            f"{len(images)} image(s)")
        state = None
        if sample.domain in self.state_layout:
            state = sample.meta.get("state")
            if not state:
                raise DataError(f"episode {sample.episode} step {sample.step}: domain {sample.domain!r} takes a state "
                                "input (state_domains) but the record has no meta.state; collect it with its state "
                                "or drop the domain from state_domains")
            text = with_state_marker(text)
        inputs = chat_inputs(self.processor, [(self.system_for(sample), text, images)], None)
        target = torch.tensor(self.target_ids(sample.domain, sample.action), dtype=torch.long)
        prompt_ids = inputs["input_ids"][0]
        out = {"input_ids": torch.cat([prompt_ids, target]),
               "labels": torch.cat([torch.full_like(prompt_ids, -100), target])}
        for key, value in inputs.items():
            if key in ("input_ids", "attention_mask"):
                continue
            if key in ("mm_token_type_ids", "token_type_ids"):
                out[key] = torch.cat([value[0], torch.zeros_like(target)])
            else:
                out[key] = value
        if state is not None:
            try:
                placed = self.state_layout.place(sample.domain, state)
            except ValueError as err:
                raise DataError(f"episode {sample.episode} step {sample.step}: {err}") from None
            out["state"] = torch.tensor([placed], dtype=torch.float32)
        head = self.heads.get(sample.domain)
        if head is not None:
            out[head.target_key] = head.head_target(sample)
        return out, images


def _previous_actions(items: Sequence[Item]) -> dict[int, list[int]]:
    """Index of each item -> indices of the earlier steps of its episode, in order."""
    episodes: dict[tuple[int, str], list[int]] = {}
    for i, item in enumerate(items):
        episodes.setdefault((item.source, item.episode), []).append(i)
    previous: dict[int, list[int]] = {}
    for members in episodes.values():
        members.sort(key=lambda i: items[i].step)
        for position, i in enumerate(members):
            previous[i] = members[:position]
    return previous


class PreprocessedCache(torch.utils.data.Dataset):
    """Encoded samples in safetensors chunks under ``directory`` (built once, then reused).

    A record's images are kept as the model sees them (resized ``uint8`` pixels, key
    ``image.<j>``), and their tensors (``pixel_values``, ...) are made again when the record is
    read: a float32 copy of the patches is 8 times the pixels (Qwen2-VL: 301 KB against 38 KB
    for a 112-pixel image) and the image processor takes about a millisecond per image. The
    first record of each domain checks that the image processor alone gives exactly the
    processor's tensors; a domain where it does not keeps the tensors (``note`` printed).
    """

    def __init__(self, directory: str | Path, encoder: SampleEncoder | None = None):
        self.directory = Path(directory)
        self.encoder = encoder
        meta = json.loads((self.directory / "index.json").read_text())
        self.domains: list[str] = meta["domains"]
        self.sources: list[int] = meta["sources"]
        self.lengths: list[int] = meta["lengths"]
        self._handles: dict[int, Any] = {}

    @classmethod
    def open_or_build(cls, directory: str | Path, items: Sequence[Item], encoder: SampleEncoder,
                      progress: bool = True, keep_image_tensors: bool = False) -> PreprocessedCache:
        """The cache in ``directory``, encoding ``items`` into it first if it is not there yet."""
        if not (Path(directory) / "index.json").exists():
            cls.build(directory, items, encoder, progress=progress, keep_image_tensors=keep_image_tensors)
        return cls(directory, encoder)

    @staticmethod
    def build(directory: str | Path, items: Sequence[Item], encoder: SampleEncoder, progress: bool = True,
              keep_image_tensors: bool = False) -> None:
        """Encode every item into ``directory`` (written to a temporary folder, then renamed);
        ``keep_image_tensors``: store the image tensors instead of the pixels (``cache_images:
        tensors``; ``benchmarks/bench_train.py`` compares the two)."""

        directory = Path(directory)
        tmp = directory.with_name(directory.name + f".tmp-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            with naming(tmp, also=WRITE_ERRORS):  # a full disk: "error: <folder>: ...", the folder removed
                PreprocessedCache._build(directory, tmp, items, encoder, progress, keep_image_tensors)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def _build(directory: Path, tmp: Path, items: Sequence[Item], encoder: SampleEncoder, progress: bool,
               keep_image_tensors: bool) -> None:
        from safetensors.torch import save_file
        from tqdm.auto import tqdm

        previous = _previous_actions(items)
        readers: dict[str, DatasetReader] = {}
        samples: dict[tuple[str, str, int], Any] = {}
        for item in items:  # one streaming pass per folder to get the samples back
            if item.root not in readers:
                readers[item.root] = DatasetReader(item.root, errors="warn")
                wanted = {(i.file, i.line) for i in items if i.root == item.root}
                for record in readers[item.root].records():
                    if (record.file, record.line) in wanted:
                        samples[(item.root, record.file, record.line)] = record.sample
        image_keys: dict[str, set[str] | None] = {}  # per domain: the tensors made again on reading (None: kept)
        chunk: dict[str, torch.Tensor] = {}
        lengths = []
        for index, item in enumerate(tqdm(items, desc="preprocess", disable=not progress, leave=False)):
            sample = samples[(item.root, item.file, item.line)]
            history = [samples[(items[j].root, items[j].file, items[j].line)].action for j in previous[index]]
            images = readers[item.root].load_images(sample)
            encoded, seen = encoder.encode_with_images(sample, images, history)
            if seen and item.domain not in image_keys and not keep_image_tensors:
                image_keys[item.domain] = _remade_image_keys(encoder, encoded, seen)
                if image_keys[item.domain] is None:
                    print(f"note: preprocess: the image processor alone does not give the processor's image tensors "
                          f"of domain {item.domain!r}; its records keep the tensors (a larger cache)", file=sys.stderr)
            remade = image_keys.get(item.domain) if seen else None
            if remade is not None:
                encoded = {k: v for k, v in encoded.items() if k not in remade}
                encoded.update({f"{IMAGE_KEY}{j}": torch.from_numpy(np.array(image, dtype=np.uint8))
                                for j, image in enumerate(seen)})
            lengths.append(int(encoded["input_ids"].shape[0]))
            for key, value in encoded.items():
                chunk[f"{index % CHUNK}.{key}"] = value.contiguous()
            if index % CHUNK == CHUNK - 1 or index == len(items) - 1:
                save_file(chunk, str(tmp / f"chunk-{index // CHUNK:05d}.safetensors"))
                chunk = {}
        meta = {"domains": [i.domain for i in items], "sources": [i.source for i in items], "lengths": lengths}
        (tmp / "index.json").write_text(json.dumps(meta))
        if directory.exists():  # another process finished first: keep its copy
            shutil.rmtree(tmp)
            return
        os.replace(tmp, directory)

    def __len__(self) -> int:
        return len(self.domains)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from safetensors import safe_open

        chunk = index // CHUNK
        if chunk not in self._handles:
            self._handles[chunk] = safe_open(str(self.directory / f"chunk-{chunk:05d}.safetensors"), "pt")
        handle = self._handles[chunk]
        prefix = f"{index % CHUNK}."
        record = {k[len(prefix):]: handle.get_tensor(k) for k in handle.keys() if k.startswith(prefix)}  # noqa: SIM118 (a safetensors handle has keys(), not __iter__)
        pixels = sorted((k for k in record if k.startswith(IMAGE_KEY)), key=lambda k: int(k[len(IMAGE_KEY):]))
        if pixels:
            from PIL import Image

            if self.encoder is None:
                raise DataError(f"{self.directory}: record {index} keeps its images as pixels; open the cache with "
                                "its SampleEncoder (PreprocessedCache(directory, encoder)) to make their tensors")
            record.update(self.encoder.image_inputs([Image.fromarray(record.pop(k).numpy()) for k in pixels]))
        return record

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen their own handles
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state


#: a cached record's image ``j``, as the model sees it (resized ``uint8`` pixels): ``image.<j>``
IMAGE_KEY = "image."


def _remade_image_keys(encoder: SampleEncoder, encoded: dict[str, torch.Tensor], images: list[Any]) -> set[str] | None:
    """The keys of ``encoded`` the image processor alone gives again from ``images``, exactly; None
    where it does not (another key, shape or value)."""
    again = encoder.image_inputs(images)
    same = all(k in encoded and encoded[k].shape == v.shape and torch.equal(encoded[k], v) for k, v in again.items())
    return set(again) if again and same else None


class DomainBatchSampler:
    """Global batches of one domain each, domains interleaved at random, resumable.

    ``weights[s]`` resamples source ``s``: each epoch uses its items ``floor(w)`` times plus a
    random ``frac(w)`` share of them once more. Each domain's last incomplete batch of an
    epoch is dropped (the next epoch's order differs, so no sample is lost for good).
    ``seek(n)`` continues after ``n`` consumed batches, so a resumed run gets the same next batch.
    """

    def __init__(self, domains: Sequence[str], sources: Sequence[int], weights: Sequence[float], batch_size: int,
                 seed: int = 0):
        self.domains, self.sources = list(domains), list(sources)
        self.weights, self.batch_size, self.seed = list(weights), batch_size, seed
        self.epoch, self.position = 0, 0

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        by_domain: dict[str, list[int]] = {}
        for index, (domain, source) in enumerate(zip(self.domains, self.sources)):
            weight = self.weights[source]
            copies = math.floor(weight) + int(rng.random() < weight - math.floor(weight))
            by_domain.setdefault(domain, []).extend([index] * copies)
        batches = []
        for domain in sorted(by_domain):
            order = rng.permutation(np.asarray(by_domain[domain], dtype=np.int64)).tolist()
            full = len(order) - len(order) % self.batch_size  # drop the tail: every batch is full
            batches += [order[i:i + self.batch_size] for i in range(0, full, self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            batches = self.epoch_batches(self.epoch)
            while self.position < len(batches):
                batch = batches[self.position]
                self.position += 1
                yield batch
            self.epoch, self.position = self.epoch + 1, 0

    def seek(self, consumed: int) -> None:
        """Continue after ``consumed`` batches (what a checkpoint records: prefetching data
        loaders run ahead of training, so the sampler's own position is not the truth)."""
        self.epoch, self.position = 0, 0
        while True:
            length = len(self.epoch_batches(self.epoch))
            if length == 0:
                raise DataError("no full batch can be formed: lower batch_size or add data")
            if consumed < length:
                self.position = consumed
                return
            consumed -= length
            self.epoch += 1


def collate(samples: Sequence[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad the per-token tensors; concatenate the image tensors along their first dim."""
    longest = max(s["input_ids"].shape[0] for s in samples)
    batch: dict[str, torch.Tensor] = {}
    pad_values = {"input_ids": pad_id, "labels": -100, "mm_token_type_ids": 0, "token_type_ids": 0}
    for key, fill in pad_values.items():
        if key in samples[0]:
            batch[key] = torch.stack([torch.nn.functional.pad(s[key], (0, longest - s[key].shape[0]), value=fill)
                                      for s in samples])
    batch["attention_mask"] = torch.stack([
        torch.nn.functional.pad(torch.ones_like(s["input_ids"]), (0, longest - s["input_ids"].shape[0]))
        for s in samples])
    for key in samples[0]:
        if key not in batch:
            try:
                batch[key] = torch.cat([s[key] for s in samples], dim=0)
            except RuntimeError as err:
                raise DataError(f"cannot batch {key!r} of different shapes ({err}); set image_size") from None
    return batch
