"""How a trained model is asked, per domain: ``AgentSettings`` (``agent.json`` beside the weights).

Each domain has its adapter (the block's ``output``, ``action_adapters``) and its prompt
(history, image size, system prompt, state input). ``agent.json`` files written before the
domain blocks (the flat form: ``regression_heads``, ``classification_heads``, per-domain
``history`` / ``image_size`` maps, no ``format``) load with a one-line note, and the image
pointer they did not name is found in the model (``with_pointer``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

AGENT_FILE = "agent.json"


@dataclass
class DomainSettings:
    """How one domain is asked and answers: its adapter (``output``, ``action_adapters``) and its
    prompt (history, image size, system prompt, state input)."""

    output: str = "tokens"
    history: int = 0
    image_size: int | None = None
    system_prompt: str = ""
    state_width: int | None = None  # None: no state input (0: an old agent.json; the model's width)
    actions: list[str] | None = None  # a classification head's policy acts only by these (None: all)


@dataclass
class AgentSettings:
    """How the model was trained to be asked: one ``DomainSettings`` per domain, in the order of the
    domain ids (saved as ``agent.json`` next to the weights)."""

    domains: dict[str, DomainSettings]

    FORMAT: ClassVar[int] = 2

    def __post_init__(self) -> None:
        if not isinstance(self.domains, dict):  # a list of names: each with the defaults
            self.domains = {str(d): DomainSettings() for d in self.domains}

    @classmethod
    def from_flat(cls, domains: Sequence[str], history: int | dict[str, int] = 0,
                  image_size: int | dict[str, int] | None = None, system_prompts: dict[str, str] | None = None,
                  state_widths: dict[str, int] | None = None, regression_heads: Sequence[str] = (),
                  classification_heads: Sequence[str] = ()) -> AgentSettings:
        """The settings of the flat form (``agent.json`` as written before format 2)."""
        from ..action_adapters.spec import flat_output
        from ..models.chat import per_domain

        def output(domain: str) -> str:
            return flat_output(domain, None, regression_heads, classification_heads)

        return cls({d: DomainSettings(output(d), int(per_domain(history, d) or 0), per_domain(image_size, d),
                                      (system_prompts or {}).get(d, ""), (state_widths or {}).get(d))
                    for d in domains})

    def with_pointer(self, model: Any, action_tokenizers: dict[str, Any]) -> AgentSettings:
        """The flat form did not name the pointer's domain (it lived in the model only): a model with
        an image pointer gives it to the ``gui_location`` domain that acts by tokens."""
        from ..actions.tokenizers.gui_location import GuiLocationTokenizer

        adapters = getattr(model, "omniactor_adapters", None)
        if adapters is None or "pointer" not in adapters:
            return self
        domains = {d: replace(s, output="pointer") if s.output == "tokens" and isinstance(
            action_tokenizers.get(d), GuiLocationTokenizer) else s for d, s in self.domains.items()}
        return AgentSettings(domains)

    @property
    def names(self) -> list[str]:
        return list(self.domains)

    @property
    def state_widths(self) -> dict[str, int]:
        """``{domain: width}`` of the domains whose prompt carries the state input."""
        return {d: s.state_width for d, s in self.domains.items() if s.state_width is not None}

    def to_json(self) -> dict[str, Any]:
        return {"format": self.FORMAT, "domains": {d: asdict(s) for d, s in self.domains.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = AGENT_FILE) -> AgentSettings:
        if data.get("format") == cls.FORMAT:
            return cls({d: DomainSettings(**s) for d, s in data["domains"].items()})
        print(f"note: {where} is in the flat form written before format {cls.FORMAT} (one block per domain); "
              "it loads as before, and a re-saved agent is written in the new form", file=sys.stderr)
        history = data.get("history", 0)
        widths = data.get("state_widths")
        if widths is None:  # written before states had a width per domain: one domain, width from the model
            widths = {d: 0 for d in data.get("state_domains", [])}
        return cls.from_flat(list(data["domains"]), history if isinstance(history, dict) else int(history),
                             data.get("image_size"), dict(data.get("system_prompts", {})), dict(widths),
                             list(data.get("regression_heads", [])), list(data.get("classification_heads", [])))

    def save(self, directory: str | Path) -> None:
        (Path(directory) / AGENT_FILE).write_text(json.dumps(self.to_json(), indent=2))


def load_settings(directory: Path, model: Any, action_tokenizers: dict[str, Any]) -> AgentSettings:
    """The settings of a ``final/`` folder: its ``agent.json`` in either form (a folder from before
    ``agent.json``: each tokenizer's domain with the default prompt settings)."""
    path = directory / AGENT_FILE
    written = json.loads(path.read_text()) if path.exists() else {}
    if written.get("format") == AgentSettings.FORMAT:
        return AgentSettings.from_json(written)
    settings = AgentSettings.from_json(written, str(path)) if written else AgentSettings.from_flat(
        sorted(action_tokenizers))
    return settings.with_pointer(model, action_tokenizers)
