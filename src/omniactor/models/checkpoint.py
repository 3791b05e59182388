"""Save, load and export OmniActor checkpoints (safetensors only).

A checkpoint is a plain Hugging Face model folder (``config.json`` + safetensors) whose
config carries the heterogeneity config under the ``omniactor`` key, so loading rebuilds
the variant's module tree before the weights go in. ``export_dense`` writes one domain's
path (shared layers + that domain's layers, norm and head) as a checkpoint of the base
architecture that plain ``transformers`` loads with no omniactor code.

Weights are never initialised twice: models are built with empty parameters
(``accelerate.init_empty_weights``; buffers such as rotary frequencies stay real) and the
checkpoint's tensors are assigned, so loading a 7B model costs its memory once.

A folder that cannot be loaded raises ``CheckpointError`` naming the folder and the file (a
missing ``config.json``, a safetensors shard the index lists but the folder lacks, a
truncated shard, tensors that do not fit the model); ``CheckpointFileMissing`` when a file
is absent (also a ``FileNotFoundError``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import OmniactorError
from ..fileio import naming
from .adapters import ADAPTERS_KEY, INITIAL_LOG_STD, adapter_config, attach_adapters
from .heterogeneity import CONFIG_KEY, HeterogeneityConfig, convert, heterogeneity_config

WEIGHTS_INDEX = "model.safetensors.index.json"
WEIGHTS_FILE = "model.safetensors"
_MODEL_FILES = {"config.json", "generation_config.json", WEIGHTS_INDEX}


def _write_errors() -> tuple[type[BaseException], ...]:
    from safetensors import SafetensorError

    return (RuntimeError, SafetensorError)


#: what torch (``RuntimeError``) and safetensors (``SafetensorError``) raise when a write fails
#: (a full disk): ``fileio.naming(path, also=WRITE_ERRORS)`` turns them into an ``OSError`` naming the file
WRITE_ERRORS = _write_errors()


class CheckpointError(OmniactorError, ValueError):
    """A checkpoint folder that cannot be loaded or exported as asked (the message names it and the file)."""


class CheckpointFileMissing(CheckpointError, FileNotFoundError):
    """A file a checkpoint needs is not in its folder (``config.json``, a safetensors shard)."""


def _model_class(config: Any) -> type[nn.Module]:
    import transformers

    names = getattr(config, "architectures", None) or []
    for name in names:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    raise CheckpointError(f"config.architectures={names} names no transformers class; is this a model folder?")


def read_state_dict(directory: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a folder's safetensors file(s) (single file or sharded with an index)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    index = directory / WEIGHTS_INDEX
    if index.exists():
        try:
            files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as err:  # bad JSON, no weight_map, not a mapping
            raise CheckpointError(f"{index}: not a safetensors index ({type(err).__name__}: {err}); re-save the "
                                  "checkpoint") from None
    elif (directory / WEIGHTS_FILE).exists():
        files = [WEIGHTS_FILE]
    else:
        raise CheckpointFileMissing(f"no {WEIGHTS_FILE} or {WEIGHTS_INDEX} in {directory} (only safetensors are read)")
    missing = [name for name in files if not (directory / name).is_file()]
    if missing:
        raise CheckpointFileMissing(f"{directory}: {len(missing)} of the {len(files)} safetensors shard(s) listed in "
                                    f"{WEIGHTS_INDEX} are missing: {', '.join(missing[:5])}; copy the whole "
                                    "checkpoint folder again")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        try:
            state.update(load_file(str(directory / name)))
        except (SafetensorError, OSError) as err:  # a damaged or truncated file
            raise CheckpointError(f"{directory / name}: cannot be read as safetensors ({type(err).__name__}: {err}); "
                                  "the file is damaged or cut short: copy the checkpoint again") from None
    return state


def empty_model(config: Any, het: HeterogeneityConfig | None = None) -> nn.Module:
    """The model of ``config`` (converted to ``het`` when given) with parameters on the meta device."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        model = _model_class(config)(config)
    if het is not None:
        convert(model, het)
    return model


def _assign(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> nn.Module:
    expected = set(model.state_dict())
    # buffers added after a checkpoint was written (the state input's standardisation)
    # keep their initial values, which reproduce the older behaviour
    buffers = dict(model.named_buffers())
    state = {**{k: buffers[k] for k in expected - set(state) if k in buffers and k.startswith("omniactor_")}, **state}
    # so does a regression head's policy spread (log_std), added with online RL
    parameters = dict(model.named_parameters())
    state = {**{k: torch.full(parameters[k].shape, INITIAL_LOG_STD) for k in expected - set(state)
                if k.startswith("omniactor_adapters.regression_") and k.endswith(".log_std")}, **state}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: checkpoint does not match the model: {len(missing)} missing tensor(s) "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    model.load_state_dict(state, strict=True, assign=True)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return model.eval()


def save_pretrained(model: nn.Module, directory: str | Path, processor: Any = None) -> Path:
    """Write ``model`` (and its processor/tokenizer, when given) to ``directory``.

    A write that fails (a full disk) raises an ``OSError`` naming the folder (``fileio.naming``),
    whatever the library under it raised; callers write to a temporary folder and rename it."""
    from huggingface_hub import save_torch_state_dict

    directory = Path(directory)
    with naming(directory, also=WRITE_ERRORS):
        directory.mkdir(parents=True, exist_ok=True)
        # tensors under the module tree's own names (transformers' save_pretrained would rename
        # them to the hub's legacy layout, which knows nothing of the per-domain experts)
        for stale in list(directory.glob("*.safetensors")) + [directory / WEIGHTS_INDEX]:
            stale.unlink(missing_ok=True)
        save_torch_state_dict(model.state_dict(), directory, max_shard_size="5GB")
        model.config.architectures = [type(model).__name__]
        model.config.save_pretrained(directory)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(directory)
        if processor is not None:
            processor.save_pretrained(directory)
    return directory


def load_pretrained(directory: str | Path, dtype: torch.dtype | None = None, device: str | None = None) -> nn.Module:
    """Load an omniactor checkpoint (any variant) or a plain HF checkpoint from a local folder."""
    from transformers import AutoConfig

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        what = "no such folder" if not directory.is_dir() else "no config.json; is this a checkpoint folder?"
        raise CheckpointFileMissing(f"{directory}: {what}")
    config = AutoConfig.from_pretrained(directory, local_files_only=True)
    state = read_state_dict(directory)
    model = empty_model(config, heterogeneity_config(config))
    adapters = adapter_config(config)
    if adapters is not None:
        attach_adapters(model, adapters)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model = _assign(model, state, str(directory))
    return model.to(device) if device else model


def dense_state_dict(model: nn.Module, domain: str) -> dict[str, torch.Tensor]:
    """One domain's path of a converted model, under the dense model's parameter names."""
    het = heterogeneity_config(model)
    # action-space adapters (regression / classification heads, state input) are omniactor
    # modules that the base architecture cannot hold: the dense view is the language path
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("omniactor_adapters.")}
    if het is None or het.variant == "dense":
        return state
    if het.variant == "router":
        raise CheckpointError("a router model routes tokens, not domains: it has no single dense path per domain "
                              "to export")
    if domain not in het.domains:
        raise CheckpointError(f"unknown domain {domain!r}; this model has domains {list(het.domains)}")
    mine = f"experts.{domain}."
    out = {}
    for key, value in state.items():
        if ".experts." not in key:
            out[key] = value
        elif mine in key:
            out[key.replace(mine, "")] = value
    return out


def export_dense(model_or_dir: nn.Module | str | Path, domain: str, out: str | Path) -> Path:
    """Write ``domain``'s path as a plain checkpoint of the base architecture to ``out``."""
    source_dir = None
    if not isinstance(model_or_dir, nn.Module):
        source_dir = Path(model_or_dir)
        model = load_pretrained(source_dir)
    else:
        model = model_or_dir
    state = dense_state_dict(model, domain)
    config = model.config.__class__.from_dict(model.config.to_dict())
    for key in (CONFIG_KEY, ADAPTERS_KEY):
        if hasattr(config, key):
            delattr(config, key)
    dense = _assign(empty_model(config), {k: v.detach().clone() for k, v in state.items()}, f"export of {domain}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dense.save_pretrained(out, safe_serialization=True)
    if source_dir is not None:  # carry the processor / tokenizer files along
        for path in source_dir.iterdir():
            if path.is_file() and path.name not in _MODEL_FILES and not path.name.endswith(".safetensors"):
                shutil.copy2(path, out / path.name)
    return out
