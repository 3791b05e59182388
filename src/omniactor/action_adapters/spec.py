"""A domain's whole action interface in one config block, checked when it is loaded.

::

    domains:
      gui:      {action_tokenizer: {name: gui_location, grid: 16}, output: pointer, copy: true, history: 2, image_size: 224}
      embodied: {action_tokenizer: {name: uniform, num_bins: 64}, output: regression_head, state: true, history: 0}
      discrete: {action_tokenizer: {name: discrete_semlang}, output: classification_head, state: true, history: 1}

``action_tokenizer`` names a registered tokenizer; its other keys are the tokenizer's arguments
(``{name: uniform, num_bins: 64}``, or the older ``{name: uniform, args: {num_bins: 64}}``).
``output`` is the adapter that turns the model's output into the action (``OUTPUTS``). Every
combination that cannot work (a pointer on a tokenizer without grid cells, a regression head
on discrete actions, ...) is refused here, before anything is built, with the domain, the key
and the fix (``check_domain``).

Configs written before this block (flat keys: ``action_tokenizers``, ``image_pointer``,
``prompt_copy``, ``state_domains``, ``regression_heads``, ``classification_heads`` and a
per-domain ``history`` / ``image_size`` mapping) still load: ``from_flat_keys`` turns them into
the block, and the caller prints a one-line deprecation note.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import OmniactorError

#: the adapters: what turns the model's output into a domain's action
OUTPUTS: dict[str, str] = {
    "tokens": "the answer tokens, written under the tokenizer's grammar (constrained decoding)",
    "pointer": "the answer tokens, with <loc_i> grid cells scored by an image pointer over the screenshot's patches",
    "regression_head": "an MLP on the final hidden state -> a normalised continuous action (Gaussian when sampled)",
    "classification_head": "an MLP on the final hidden state -> logits over the domain's discrete actions",
}

#: what each registered action tokenizer writes: continuous motions, discrete actions or GUI actions
TOKENIZER_KINDS: dict[str, str] = {
    "uniform": "continuous", "vq": "continuous", "rvq": "continuous",
    "discrete_token": "discrete", "discrete_lang": "discrete", "discrete_semlang": "discrete",
    "gui_text": "gui", "gui_location": "gui",
}

#: the flat keys of configs written before the domain block
FLAT_KEYS = ("action_tokenizers", "image_pointer", "prompt_copy", "state_domains", "regression_heads",
             "classification_heads", "history", "image_size")

#: what a domain gets when the flat form leaves a key out (the defaults of the old keys)
FLAT_DEFAULTS: dict[str, Any] = {"history": 4, "image_size": 112}

#: each default domain's tokenizer (the old ``action_tokenizers`` default)
DEFAULT_TOKENIZERS: dict[str, dict[str, Any]] = {
    "gui": {"name": "gui_text", "args": {}},
    "embodied": {"name": "uniform", "args": {"num_bins": 256}},
    "discrete": {"name": "discrete_semlang", "args": {}},
}


class SpecError(OmniactorError, ValueError):
    """A domain block that cannot work (the config reader raises it as its own ``ConfigError``)."""


@dataclass
class ActionTokenizerConfig:
    """How one domain's actions become the model's targets."""

    name: str = "gui_text"
    """a registered action tokenizer (``omniactor actions tokenizers``)"""
    args: dict[str, Any] = field(default_factory=dict)
    """its constructor arguments, e.g. {num_bins: 256} or {grid: 32}"""


@dataclass
class DomainConfig:
    """One domain's action interface: how its actions are written, read out and prompted."""

    action_tokenizer: ActionTokenizerConfig = field(default_factory=ActionTokenizerConfig)
    """the tokenizer of its actions: {name: gui_location, grid: 16} (other keys are its arguments)"""
    output: str = "tokens"
    """how the action is read out: tokens | pointer | regression_head | classification_head"""
    copy: bool = False
    """the answer tokens may copy from the prompt (a pointer-generator: text the task gives, to type)"""
    state: bool = False
    """the records' meta.state enters the prompt as one <state> token (and the action heads read it)"""
    history: int = 4
    """previous actions shown in the prompt (0: none; a motion policy that sees its last motion copies it)"""
    image_size: int | None = 112
    """images are resized to this square size (null: as stored)"""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def tokenizer_config(value: Any, where: str) -> ActionTokenizerConfig:
    """``{name: X, arg: ...}`` or ``{name: X, args: {...}}`` (or just the name) as a tokenizer config."""
    if isinstance(value, ActionTokenizerConfig):
        return value
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise SpecError(f"{where}: {value!r:.80} is not a tokenizer: write {{name: uniform, num_bins: 64}}")
    given = dict(value)
    name = given.pop("name")
    args = given.pop("args", {}) or {}
    if not isinstance(args, dict):
        raise SpecError(f"{where}.args: {args!r:.80} is not a mapping of the tokenizer's arguments")
    return ActionTokenizerConfig(name, {**args, **given})


def domain_config(domain: str, value: Any, where: str = "domains") -> DomainConfig:
    """``domain``'s block from plain data (unknown keys and wrong types refused by the config's
    reader); gui, embodied and discrete may leave out their tokenizer (``DEFAULT_TOKENIZERS``)."""
    from ..training.config import _build

    at = f"{where}.{domain}"
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise SpecError(f"{at}: {value!r:.80} is not a domain block: write {{action_tokenizer: {{name: ...}}, "
                        "output: tokens, ...}}")
    data = dict(value)
    if "action_tokenizer" in data:
        data["action_tokenizer"] = tokenizer_config(data["action_tokenizer"], f"{at}.action_tokenizer")
    elif domain in DEFAULT_TOKENIZERS:
        data["action_tokenizer"] = default_domain(domain).action_tokenizer
    else:
        raise SpecError(f"{at}.action_tokenizer: missing; name the tokenizer of its actions, e.g. "
                        f"{{name: gui_location, grid: 16}} (known: {', '.join(TOKENIZER_KINDS)})")
    return _build(DomainConfig, data, at)


def check_domain(domain: str, spec: DomainConfig, where: str = "domains") -> None:
    """Refuse a block that cannot work, naming the domain, the key and the fix."""
    at = f"{where}.{domain}"
    name = spec.action_tokenizer.name
    kind = TOKENIZER_KINDS.get(name)
    if kind is None:
        import difflib

        close = difflib.get_close_matches(name, TOKENIZER_KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(f"{at}.action_tokenizer.name: {name!r} is not a registered action tokenizer{hint}; "
                        f"known: {', '.join(TOKENIZER_KINDS)}")
    if spec.output not in OUTPUTS:
        raise SpecError(f"{at}.output: {spec.output!r} is not one of {', '.join(OUTPUTS)}")
    if spec.output == "pointer" and name != "gui_location":
        raise SpecError(f"{at}.output: pointer scores the <loc_i> grid cells of the gui_location tokenizer, and "
                        f"{domain!r} has {name!r}: set {at}.action_tokenizer.name: gui_location, or output: tokens")
    if spec.output == "regression_head" and kind != "continuous":
        raise SpecError(f"{at}.output: a regression head predicts continuous motions, and {name!r} writes {kind} "
                        f"actions: use output: classification_head for discrete actions, or output: tokens")
    if spec.output == "classification_head" and kind != "discrete":
        raise SpecError(f"{at}.output: a classification head picks one of a discrete action set, and {name!r} "
                        f"writes {kind} actions: use a discrete tokenizer (discrete_semlang, discrete_lang, "
                        "discrete_token), or output: " + ("regression_head" if kind == "continuous" else "tokens"))
    if isinstance(spec.history, bool) or not isinstance(spec.history, int) or spec.history < 0:
        raise SpecError(f"{at}.history: {spec.history!r} must be 0 or more previous actions")
    if spec.image_size is not None and (isinstance(spec.image_size, bool) or spec.image_size < 1):
        raise SpecError(f"{at}.image_size: {spec.image_size!r} must be a size in pixels, or null for images as stored")


def check_domains(domains: dict[str, DomainConfig], where: str = "domains") -> None:
    """Each block, and what the blocks must agree on (one image pointer per model)."""
    if not domains:
        raise SpecError(f"{where}: no domain given; name at least one (domains: {{gui: {{...}}}})")
    for domain, spec in domains.items():
        check_domain(domain, spec, where)
    pointers = [d for d, spec in domains.items() if spec.output == "pointer"]
    if len(pointers) > 1:
        raise SpecError(f"{where}: {pointers} all ask for output: pointer; a model has one image pointer: keep it "
                        "on one GUI domain and give the others output: tokens")


def default_domain(domain: str) -> DomainConfig:
    """A domain named in a plain list: its default tokenizer (gui_text for an unknown name)."""
    tokenizer = DEFAULT_TOKENIZERS.get(domain, {"name": "gui_text", "args": {}})
    return DomainConfig(ActionTokenizerConfig(tokenizer["name"], dict(tokenizer["args"])))


def from_flat_keys(names: list[str], flat: dict[str, Any]) -> dict[str, DomainConfig]:
    """The blocks a config of the flat keys meant (``flat``: the keys it gave, ``FLAT_KEYS``)."""

    def per_domain(value: Any, domain: str) -> Any:
        return value.get(domain) if isinstance(value, dict) else value

    tokenizers = flat.get("action_tokenizers") or {}
    history = flat.get("history", FLAT_DEFAULTS["history"])
    image_size = flat.get("image_size", FLAT_DEFAULTS["image_size"])
    blocks = {}
    for domain in names:
        spec = default_domain(domain)
        if domain in tokenizers:
            given = tokenizers[domain]
            spec.action_tokenizer = ActionTokenizerConfig(given.name, dict(given.args)) \
                if isinstance(given, ActionTokenizerConfig) else tokenizer_config(given, f"action_tokenizers.{domain}")
        spec.output = flat_output(domain, flat.get("image_pointer"), flat.get("regression_heads"),
                                  flat.get("classification_heads"))
        spec.copy = bool(flat.get("prompt_copy"))
        spec.state = domain in (flat.get("state_domains") or ())
        spec.history = int(per_domain(history, domain) or 0)
        spec.image_size = per_domain(image_size, domain)
        blocks[domain] = spec
    for key, listed in (("regression_heads", flat.get("regression_heads")),
                        ("classification_heads", flat.get("classification_heads")),
                        ("state_domains", flat.get("state_domains"))):
        unknown = [d for d in listed or () if d not in names]
        if unknown:
            raise SpecError(f"{key} names {unknown}, which are not among the domains {names}")
    pointer = flat.get("image_pointer")
    if pointer and pointer not in names:
        raise SpecError(f"image_pointer names {pointer!r}, which is not one of the domains {names}")
    return blocks


def flat_output(domain: str, image_pointer: str | None, regression_heads: Any, classification_heads: Any) -> str:
    """The ``output`` a domain had in the flat form (a config's keys, or an old ``agent.json``)."""
    outputs = [output for output, named in (("pointer", [image_pointer]), ("regression_head", regression_heads),
                                            ("classification_head", classification_heads)) if domain in (named or ())]
    if len(outputs) > 1:
        raise SpecError(f"domain {domain!r} is given {' and '.join(outputs)} outputs (image_pointer, "
                        "regression_heads, classification_heads); keep one")
    return outputs[0] if outputs else "tokens"


def deprecation_note(given: list[str]) -> str:
    """The one line printed when a config uses the flat keys."""
    return (f"note: the flat key(s) {', '.join(given)} are deprecated; write each domain's action interface as "
            "one block, domains: {gui: {action_tokenizer: {name: gui_location, grid: 16}, output: pointer, "
            "history: 2, ...}} (omniactor train --list-keys)")
