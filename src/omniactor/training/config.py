"""The run configuration of ``omniactor train``: one YAML file, ``key=value`` overrides.

Every field carries a one-line help (``config_help()``); unknown keys fail with a "did you
mean", and a value of the wrong type (``max_steps=abc``, ``batch_size: "x"``, ``domains: gui``)
with the key and the type it takes, as a ``ConfigError``, before anything runs. The
resolved configuration is written beside the run's outputs (``config.yaml``).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..action_adapters.spec import (
    DEFAULT_TOKENIZERS,
    FLAT_KEYS,
    ActionTokenizerConfig,
    DomainConfig,
    SpecError,
    check_domains,
    default_domain,
    deprecation_note,
    domain_config,
    from_flat_keys,
)
from ..errors import OmniactorError
from ..fileio import write_text_atomic

__all__ = ["ActionTokenizerConfig", "ConfigError", "DomainConfig", "SourceConfig", "TrainConfig", "load_config"]


#: how the encoding cache keeps a record's images (``training.data.PreprocessedCache``)
CACHE_IMAGES = ("pixels", "tensors")


class ConfigError(OmniactorError, ValueError):
    """A run configuration that cannot be used: an unknown key, a value of the wrong type, bad YAML."""


@dataclass
class SourceConfig:
    """One dataset folder in the mixture."""

    path: str = ""
    """dataset folder in the unified sample format"""
    weight: float = 1.0
    """resampling factor: the folder's records are used ``weight`` times per epoch (5.0: the paper's embodied data)"""
    name: str | None = None
    """label in the metrics (default: the folder name)"""


@dataclass
class TrainConfig:
    """Everything one training run needs."""

    # -- model ------------------------------------------------------------------------
    model: str = "tiny"
    """a preset name (tiny, tiny-qwen2.5-vl, ...) or a local checkpoint folder"""
    variant: str = "omniactor"
    """dense | omniactor | hard | router"""
    shared_layers: int | None = None
    """K, the shared decoder layers (default: the preset's, the paper's 8 of 28 for 7B)"""
    domains: list[str] | dict[str, DomainConfig] | None = None
    """each domain's action interface, in the order of the domain ids: {gui: {action_tokenizer: {name:
    gui_location, grid: 16}, output: pointer, copy: true, state: false, history: 2, image_size: 224}, ...}
    (the block's keys: --list-keys); a list of names takes each one's defaults; null: gui, embodied,
    discrete; samples of other domains are refused"""
    router_aux_weight: float = 0.01
    """weight of the routers' load-balancing loss (router variant)"""
    action_tokenizers: dict[str, ActionTokenizerConfig] | None = None
    """deprecated (domains.<d>.action_tokenizer): per domain, the action tokenizer of its actions"""
    lora: dict[str, Any] | None = None
    """PEFT LoRA settings (e.g. {r: 16, alpha: 32}); None trains every parameter"""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass (GPU memory for time)"""

    # -- data ---------------------------------------------------------------------------
    data: list[SourceConfig] = field(default_factory=list)
    """the dataset folders to mix"""
    eval_data: list[SourceConfig] = field(default_factory=list)
    """held-out dataset folders, evaluated every eval_every steps (loss per domain)"""
    system_prompt: str = "sample"
    """sample: each record's system prompt (describes the action space, as the paper); none: no
    system turn (saves ~300 tokens per GUI sample for models trained from scratch); other text: that prompt"""
    head_loss_weight: float = 1.0
    """weight of the action heads' loss (MSE, cross-entropy) beside the answer-token loss"""
    head_learning_rate: float | None = None
    """peak learning rate of the action heads (None: learning_rate); a small MLP learns the
    state-to-action map in fewer steps at a higher rate than the model around it"""
    history: int | dict[str, int] | None = None
    """deprecated (domains.<d>.history): previous actions shown in the prompt, one length or one per domain"""
    state_domains: list[str] | None = None
    """deprecated (domains.<d>.state: true): domains whose meta.state enters the prompt"""
    regression_heads: list[str] | None = None
    """deprecated (domains.<d>.output: regression_head): domains acting by a regression head"""
    classification_heads: list[str] | None = None
    """deprecated (domains.<d>.output: classification_head): domains acting by a classification head"""
    image_size: int | dict[str, int] | None = None
    """deprecated (domains.<d>.image_size): the square image size, one or one per domain"""
    image_pointer: str | None = None
    """deprecated (domains.<d>.output: pointer): the GUI domain whose <loc_i> cells an image pointer scores"""
    prompt_copy: bool | None = None
    """deprecated (domains.<d>.copy: true): copying from the prompt, for every domain"""
    skip_invalid: bool = False
    """skip records that fail validation (counted and reported) instead of refusing to start"""
    cache_dir: str | None = None
    """where preprocessed samples are cached (default: .omniactor-cache beside output_dir, shared by
    the runs of one parent folder)"""
    cache_images: str = "pixels"
    """how the cache keeps images: pixels (resized 8-bit; their tensors made again on reading, about a
    millisecond per small image) | tensors (the processor's float32 tensors: up to 8x the disk, nothing
    to redo; for image processing too slow to keep up with the training step)"""

    # -- optimisation -------------------------------------------------------------------
    output_dir: str = "outputs/train"
    """run folder: checkpoints, metrics.jsonl, TensorBoard logs, config.yaml, final model"""
    seed: int = 0
    """seed of the model init, the data order and dropout"""
    max_steps: int = 100
    """optimizer steps to run"""
    batch_size: int = 8
    """global batch size (samples per optimizer step, over all processes)"""
    learning_rate: float = 1e-5
    """peak learning rate of AdamW (the paper: 1e-5)"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    warmup_ratio: float = 0.03
    """fraction of max_steps spent warming up linearly (the paper: 0.03)"""
    lr_schedule: str = "cosine"
    """cosine | linear | constant (after warm-up)"""
    max_grad_norm: float = 1.0
    """gradient clipping (0: off)"""
    mixed_precision: str = "no"
    """no | bf16 | fp16 (bf16 on GPUs)"""
    deepspeed: str | None = None
    """a DeepSpeed config JSON (e.g. configs/deepspeed/zero3.json) for accelerate"""

    # -- bookkeeping ---------------------------------------------------------------------
    log_every: int = 10
    """steps between metric records (metrics.jsonl, TensorBoard)"""
    eval_every: int = 0
    """steps between held-out evaluations (0: only at the end)"""
    save_every: int = 50
    """steps between checkpoints"""
    keep_checkpoints: int = 2
    """how many of the newest checkpoints to keep"""

    def __post_init__(self) -> None:
        """Every domain as its block (``domains``): the flat keys of older configs are turned into
        blocks with a one-line note on stderr, and each block is checked (``check_domains``)."""
        import sys

        flat = {key: getattr(self, key) for key in FLAT_KEYS if getattr(self, key) is not None}
        try:
            if isinstance(self.domains, dict):
                if flat:
                    first = next(iter(self.domains), "gui")
                    raise ConfigError(f"the flat key(s) {', '.join(flat)} beside the domains block: move each into "
                                      f"its domain's block (e.g. domains.{first}.history)")
                blocks = {str(d): v if isinstance(v, DomainConfig) else domain_config(str(d), v)
                          for d, v in self.domains.items()}
            else:
                names = list(self.domains) if self.domains is not None else ["gui", "embodied", "discrete"]
                blocks = from_flat_keys(names, flat) if flat else {d: default_domain(d) for d in names}
                if flat:
                    print(deprecation_note(sorted(flat)), file=sys.stderr)
            check_domains(blocks)
        except SpecError as err:
            raise ConfigError(str(err)) from None
        self.domains = blocks
        for key in FLAT_KEYS:
            setattr(self, key, None)
        if self.cache_images not in CACHE_IMAGES:
            raise ConfigError(f"cache_images: {self.cache_images!r} is not one of {', '.join(CACHE_IMAGES)}")

    @property
    def blocks(self) -> dict[str, DomainConfig]:
        """``{domain: its block}`` in the order of the domain ids."""
        assert isinstance(self.domains, dict)
        return self.domains

    def domains_with(self, output: str) -> list[str]:
        """The domains whose ``output`` is ``output`` (e.g. ``regression_head``)."""
        return [d for d, spec in self.blocks.items() if spec.output == output]

    @property
    def state_domain_names(self) -> list[str]:
        return [d for d, spec in self.blocks.items() if spec.state]

    def resolved_shared_layers(self, preset_default: int) -> int:
        return preset_default if self.shared_layers is None else self.shared_layers


def _help_of(cls: type) -> dict[str, str]:
    """Field docstrings (the string literal after each field) as a dict."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    out = {}
    for node, nxt in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            out[node.target.id] = str(nxt.value.value)
    return out


def config_help() -> dict[str, str]:
    """``{key: meaning}`` of the run config, the domain block's keys as ``domains.<d>.<key>``."""
    out = {}
    for key, text in _help_of(TrainConfig).items():
        if key in FLAT_KEYS:
            continue
        out[key] = text
        if key == "domains":
            out.update({f"domains.<d>.{k}": v for k, v in _help_of(DomainConfig).items()})
    out.update({key: text for key, text in _help_of(TrainConfig).items() if key in FLAT_KEYS})
    return out


def _build(cls: type, data: Any, where: str) -> Any:
    """A dataclass of ``cls`` from plain data, refusing unknown keys (with a suggestion) and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {data!r:.80}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
        if cls is TrainConfig and key in ("data", "eval_data"):
            if isinstance(value, (str, dict)):  # one folder
                value = [value]
            if value is not None and not isinstance(value, list):
                raise ConfigError(f"{where}.{key}: {value!r:.80} is not a list of dataset folders")
            value = [_build(SourceConfig, v if isinstance(v, dict) else {"path": v}, f"{where}.{key}[{i}]")
                     for i, v in enumerate(value or [])]
        elif cls is TrainConfig and key == "domains" and isinstance(value, dict):
            try:
                value = {str(d): domain_config(str(d), v, f"{where}.domains") for d, v in value.items()}
            except SpecError as err:
                raise ConfigError(str(err)) from None
        elif cls is TrainConfig and key == "action_tokenizers" and value is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: {value!r:.80} is not a mapping of domains to tokenizers")
            value = {d: _build(ActionTokenizerConfig, v, f"{where}.action_tokenizers.{d}") for d, v in value.items()}
        kwargs[key] = _coerce(value, hints.get(key, Any), f"{where}.{key}")
    return cls(**kwargs)


_WORDS = {int: ("a whole number", "whole numbers"), float: ("a number", "numbers"),
          bool: ("true or false", "true/false"), str: ("a text", "texts"), type(None): ("null", "nulls"),
          Any: ("anything", "values")}


def _type_name(hint: Any, plural: bool = False) -> str:
    """A type hint in words, for messages (``int | None`` -> 'a whole number or null')."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a, plural) for a in args)
    if origin is list:
        return ("lists" if plural else "a list") + (f" of {_type_name(args[0], True)}" if args else "")
    if origin is dict:
        return ("mappings" if plural else "a mapping") + (f" of names to {_type_name(args[1], True)}" if args else "")
    if hint in _WORDS:
        return _WORDS[hint][plural]
    return ("mappings" if plural else "a mapping") if dataclasses.is_dataclass(hint) else str(hint)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against the field's type hint; ``ConfigError`` names the key and the type.

    YAML reads ``3e-3`` as a string (YAML 1.1 wants ``3.0e-3``): numbers written as text are
    taken as numbers; a whole number is taken where a number is asked for."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    wrong = ConfigError(f"{where}: {value!r:.80} is not {_type_name(hint)}")
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = None  # the error inside a list or mapping of the value's own kind says more
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except ConfigError as err:
                if typing.get_origin(option) in (list, dict) and isinstance(value, typing.get_origin(option)):
                    inner = err
        raise inner or wrong
    if origin is list:
        if not isinstance(value, list):
            raise wrong
        return [_coerce(v, args[0] if args else Any, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong
        return {str(k): _coerce(v, args[1] if args else Any, f"{where}.{k}") for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise wrong
    if hint in (int, float):
        if isinstance(value, str):
            try:
                value = int(value) if hint is int else float(value)
            except ValueError:
                raise wrong from None
        not_a_whole_number = hint is int and not isinstance(value, int)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not_a_whole_number:
            raise wrong
        return hint(value)
    if isinstance(hint, type) and not isinstance(value, hint):
        raise wrong
    return value


def _parse_value(text: str, item: str) -> Any:
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({str(err).splitlines()[0]})") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``key=value`` (dotted keys for nested mappings; values parsed as YAML) applied to ``data``."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. variant=hard)")
        key, value = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a mapping")
        node[parts[-1]] = _parse_value(value, item)
    return data


def to_plain(config: TrainConfig) -> dict[str, Any]:
    """The config as plain data, each domain as its block (the flat keys are never written)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in FLAT_KEYS}


def read_config(path: str | Path | None, overrides: list[str] = ()) -> tuple[dict[str, Any], str]:
    """The plain data of a YAML config file (none: empty) with ``key=value`` overrides applied, and
    the name its messages use for it."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not a valid YAML config: {err}") from None
        data = loaded or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config file holds a mapping of keys to values")
    return apply_overrides(data, list(overrides)), str(path) if path else "config"


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """The config of a YAML file (or the defaults) with overrides applied."""
    data, where = read_config(path, overrides)
    if data.get("action_tokenizers") is not None:  # a partial mapping overrides the defaults per domain
        merged = {d: dict(v) for d, v in DEFAULT_TOKENIZERS.items()}
        given_tokenizers = data["action_tokenizers"] or {}
        if not isinstance(given_tokenizers, dict):
            raise ConfigError(f"{where}.action_tokenizers: {given_tokenizers!r:.80} is not a mapping of domains "
                              "to tokenizers")
        for domain, given in given_tokenizers.items():
            base = merged.get(domain, {"name": None, "args": {}})
            if isinstance(given, dict) and given.get("name", base["name"]) != base["name"]:
                base = {"name": given["name"], "args": {}}  # another tokenizer: the old args do not apply
            merged[domain] = {**base, **given} if isinstance(given, dict) else given
        data["action_tokenizers"] = merged
    return _build(TrainConfig, data, where)


def save_config(config: TrainConfig, path: str | Path) -> None:
    write_text_atomic(path, yaml.safe_dump(to_plain(config), sort_keys=False))  # read back by `omniactor demo`
