"""Action tokenizers, one file each, one protocol (``base.ActionTokenizer``), resolved by name.

=================  ======  ==============================================================
name               output  what it is
=================  ======  ==============================================================
``uniform``        codes   per-dimension uniform bins (OmniActor / OpenVLA), K bins
``vq``             codes   learned vector quantiser (one codebook), MLP encoder/decoder
``rvq``            codes   residual VQ (GEA: 2 codebooks x 512), several embodiments
``discrete_token`` codes   one new token per discrete action (Token)
``discrete_lang``  text    a non-semantic word per discrete action (Lang)
``discrete_semlang`` text  a semantically aligned phrase per discrete action (SemLang)
``gui_text``       text    canonical GUI text with decimal coordinates (the paper's form)
``gui_location``   text    GUI text whose points are grid-cell tokens (``<loc_517>``)
=================  ======  ==============================================================
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from .base import TOKENIZER_FILE, ActionTokenizer, CodeTokenizer, VocabularyPlacement

_REGISTRY: dict[str, str] = {
    "uniform": "omniactor.actions.tokenizers.uniform:UniformBinTokenizer",
    "vq": "omniactor.actions.tokenizers.vq:VQTokenizer",
    "rvq": "omniactor.actions.tokenizers.vq:ResidualVQTokenizer",
    "discrete_token": "omniactor.actions.tokenizers.discrete:DiscreteTokenTokenizer",
    "discrete_lang": "omniactor.actions.tokenizers.discrete:DiscreteLangTokenizer",
    "discrete_semlang": "omniactor.actions.tokenizers.discrete:DiscreteSemLangTokenizer",
    "gui_text": "omniactor.actions.tokenizers.gui_text:GuiTextTokenizer",
    "gui_location": "omniactor.actions.tokenizers.gui_location:GuiLocationTokenizer",
}


def tokenizer_names() -> list[str]:
    return list(_REGISTRY)


def get_tokenizer_class(name: str) -> type[ActionTokenizer]:
    """The tokenizer class registered as ``name`` (imported on first use)."""
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"unknown action tokenizer {name!r}{hint}; known: {', '.join(_REGISTRY)}")
    module, attr = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build_action_tokenizer(name: str, **kwargs: Any) -> ActionTokenizer:
    return get_tokenizer_class(name)(**kwargs)


def load_action_tokenizer(directory: str | Path) -> ActionTokenizer:
    """Rebuild a tokenizer saved with ``save(directory)``."""
    directory = Path(directory)
    path = directory / TOKENIZER_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: not a saved action tokenizer")
    payload = json.loads(path.read_text())
    return get_tokenizer_class(payload["tokenizer"]).from_config(payload["config"], directory)


__all__ = [
    "ActionTokenizer", "CodeTokenizer", "VocabularyPlacement", "build_action_tokenizer",
    "get_tokenizer_class", "load_action_tokenizer", "tokenizer_names",
]
