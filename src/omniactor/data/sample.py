"""The unified sample: one agent step in ShareGPT form, plus its domain, typed action and origin.

One record per step (a line of a JSONL shard)::

    {"meta": {"source": "androidcontrol", "episode": "1041", "step": 3},
     "domain": "gui",
     "action": {"type": "click", "x": 0.634, "y": 0.927},
     "images": ["images/00000/000003_0.png"],
     "conversations": [{"from": "human", "value": "<image>\\nTask: ..."},
                       {"from": "gpt", "value": "click(x=0.634, y=0.927)"}],
     "system": "You are a GUI agent ..."}

``system``, ``conversations`` (human/gpt turns) and ``images`` are what LLaMA-Factory's
``sharegpt`` format reads; ``images`` are paths relative to the dataset folder and the
human turns hold exactly one ``<image>`` marker per image. The last ``gpt`` turn is the
answer: text that ``parse_action`` turns into an action equal to ``action`` (the canonical
``format_action`` text by default). ``meta`` holds ``source``, ``episode`` (a string; ints
are converted so every record has one schema), ``step`` (0-based) and any extra keys.

``check_record`` lists every problem of a raw JSON record (used by ``Sample.from_json``,
the writer and the validator alike), each naming the field it is about.
"""

from __future__ import annotations

import math
import numbers
import posixpath
from dataclasses import dataclass, field
from typing import Any

from ..actions import Action, ActionError, action_from_json, action_to_json, format_action, parse_action
from ..errors import OmniactorError

IMAGE_MARKER = "<image>"
HUMAN = "human"
GPT = "gpt"
REQUIRED_FIELDS: tuple[str, ...] = ("system", "conversations", "images", "domain", "action", "meta")
REQUIRED_META: tuple[str, ...] = ("source", "episode", "step")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a record: the field (``meta.step``, ``conversations[1].value``) and why."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class SampleError(OmniactorError, ValueError):
    """A record that is not a valid sample; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem], where: str = ""):
        self.problems = list(problems)
        self.where = where
        prefix = f"invalid sample ({where})" if where else "invalid sample"
        super().__init__(f"{prefix}: " + "; ".join(str(p) for p in self.problems))


@dataclass
class RecordCheck:
    """What ``check_record`` found: the problems, and the typed action when it parsed."""

    problems: list[Problem]
    action: Action | None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def image_path_problem(path: str) -> str | None:
    """Why an image path is not a clean relative path inside the dataset folder (None when it is)."""
    if not path:
        return "is empty"
    if "\\" in path:
        return f"{path!r} uses backslashes; write paths with '/'"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return f"{path!r} is absolute; image paths are relative to the dataset folder"
    if ".." in posixpath.normpath(path).split("/"):
        return f"{path!r} points outside the dataset folder"
    return None


def non_finite_numbers(value: Any, path: str = "") -> list[tuple[str, float]]:
    """``(field, value)`` of every NaN or infinite number in parsed JSON (Python's ``json`` reads
    ``NaN``, ``Infinity`` and ``1e999`` without complaint; strict JSON has no such numbers)."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(path, value)]
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in non_finite_numbers(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in non_finite_numbers(v, f"{path}[{i}]")]
    return []


def _non_finite_problems(data: dict[str, Any]) -> list[Problem]:
    action = data.get("action")
    names = action.get("names") if isinstance(action, dict) else None
    problems = []
    for path, value in non_finite_numbers(data):
        index = path[len("action.values["):-1] if path.startswith("action.values[") else ""
        if index.isdigit() and isinstance(names, list) and int(index) < len(names):
            path += f" ({names[int(index)]})"
        shown = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        problems.append(Problem(path, f"is {shown}, not a number JSON can hold; write a finite number (a writer "
                                      "using json.dumps(..., allow_nan=False) refuses it) or drop the record"))
    return problems


def _check_conversations(turns: Any, problems: list[Problem]) -> bool:
    """Check the turns' shape and order; True when every turn is a well-formed dict."""
    if not isinstance(turns, list) or not turns:
        problems.append(Problem("conversations", f"must be a non-empty list of turns, got {turns!r:.80}"))
        return False
    well_formed = True
    for i, turn in enumerate(turns):
        where = f"conversations[{i}]"
        if not isinstance(turn, dict):
            problems.append(Problem(where, f"must be an object with 'from' and 'value', got {turn!r:.80}"))
            well_formed = False
            continue
        if turn.get("from") not in (HUMAN, GPT):
            problems.append(Problem(f"{where}.from", f"must be 'human' or 'gpt', got {turn.get('from')!r}"))
            well_formed = False
        if not isinstance(turn.get("value"), str):
            problems.append(Problem(f"{where}.value", f"must be a string, got {turn.get('value')!r:.80}"))
            well_formed = False
    if well_formed:
        roles = [t["from"] for t in turns]
        expected = [HUMAN if i % 2 == 0 else GPT for i in range(len(roles))]
        if roles != expected or roles[-1] != GPT:
            problems.append(
                Problem(
                    "conversations", f"turns must alternate human, gpt, ... and end with gpt; got {', '.join(roles)}"
                )
            )
    return well_formed


def _check_meta(meta: Any, problems: list[Problem]) -> None:
    if not isinstance(meta, dict):
        problems.append(Problem("meta", f"must be an object with source, episode and step, got {meta!r:.80}"))
        return
    for key in REQUIRED_META:
        if key not in meta:
            problems.append(Problem(f"meta.{key}", "is missing"))
    if "source" in meta and (not isinstance(meta["source"], str) or not meta["source"]):
        problems.append(Problem("meta.source", f"must be a non-empty string, got {meta['source']!r}"))
    episode = meta.get("episode")
    if "episode" in meta and not ((isinstance(episode, str) and episode) or _is_int(episode)):
        problems.append(Problem("meta.episode", f"must be a non-empty string or an integer, got {episode!r}"))
    step = meta.get("step")
    if "step" in meta and not (_is_int(step) and step >= 0):
        problems.append(Problem("meta.step", f"must be a non-negative integer, got {step!r}"))


def check_record(data: Any) -> RecordCheck:
    """Every problem of one raw record (a parsed JSON line), and its action when that parsed.

    Checks fields and types, the turn order, ``<image>`` markers against ``images``, that no
    number is NaN or infinite, the action JSON (including GUI points in ``[0, 1]``) and that
    the last gpt turn parses to that same action. Dataset-level checks (known domains, declared action spaces, image
    files) live in ``validate.py``.
    """
    problems: list[Problem] = []
    if not isinstance(data, dict):
        return RecordCheck([Problem("record", f"must be a JSON object, got {type(data).__name__}")], None)
    for key in REQUIRED_FIELDS:
        if key not in data:
            problems.append(Problem(key, "is missing"))
    for key in data:
        if key not in REQUIRED_FIELDS:  # a Sample would drop it; extra information belongs in meta
            problems.append(Problem(str(key), "is not a field of a sample; put extra information in meta"))
    if "system" in data and not isinstance(data["system"], str):
        problems.append(Problem("system", f"must be a string, got {data['system']!r:.80}"))
    if "domain" in data and (not isinstance(data["domain"], str) or not data["domain"]):
        problems.append(Problem("domain", f"must be a non-empty string, got {data['domain']!r}"))
    if "meta" in data:
        _check_meta(data["meta"], problems)

    images = data.get("images")
    images_ok = isinstance(images, list) and all(isinstance(p, str) for p in images)
    if "images" in data and not images_ok:
        problems.append(Problem("images", f"must be a list of relative paths, got {images!r:.80}"))
    elif images_ok:
        for i, path in enumerate(images):
            reason = image_path_problem(path)
            if reason:
                problems.append(Problem(f"images[{i}]", reason))

    turns = data.get("conversations")
    turns_ok = "conversations" in data and _check_conversations(turns, problems)
    if turns_ok:
        human_markers = sum(t["value"].count(IMAGE_MARKER) for t in turns if t["from"] == HUMAN)
        if images_ok and human_markers != len(images):
            problems.append(
                Problem(
                    "conversations",
                    f"{human_markers} {IMAGE_MARKER} marker(s) in the human turns but {len(images)} image(s)",
                )
            )
        for i, turn in enumerate(turns):
            if turn["from"] == GPT and IMAGE_MARKER in turn["value"]:
                problems.append(
                    Problem(f"conversations[{i}].value", f"a gpt turn must not hold {IMAGE_MARKER} markers")
                )

    non_finite = _non_finite_problems(data)
    problems += non_finite
    action: Action | None = None
    if "action" in data and not any(p.field.startswith("action") for p in non_finite):  # one cause, one message
        try:
            action = action_from_json(data["action"])
        except ActionError as err:
            problems.append(Problem("action", str(err)))
    if action is not None and turns_ok and turns[-1]["from"] == GPT:
        where = f"conversations[{len(turns) - 1}].value"
        try:
            answered = parse_action(turns[-1]["value"])
        except ActionError as err:
            problems.append(Problem(where, f"the answer does not parse as an action: {err}"))
        else:
            if answered != action:
                problems.append(
                    Problem(
                        where, f"the answer {format_action(answered)} differs from the action {format_action(action)}"
                    )
                )
    return RecordCheck(problems, action)


@dataclass
class Sample:
    """One step: ShareGPT ``system``/``conversations``/``images`` + ``domain``, typed ``action``, ``meta``."""

    system: str
    conversations: list[dict[str, str]]
    images: list[str]
    domain: str
    action: Action
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.conversations = [dict(t) for t in self.conversations]
        self.images = list(self.images)
        self.meta = dict(self.meta)
        # Collectors often hand over numpy integers; JSON needs plain ones, and episode ids are strings.
        if isinstance(self.meta.get("step"), numbers.Integral) and not isinstance(self.meta["step"], bool):
            self.meta["step"] = int(self.meta["step"])
        if isinstance(self.meta.get("episode"), numbers.Integral) and not isinstance(self.meta["episode"], bool):
            self.meta["episode"] = str(int(self.meta["episode"]))

    @property
    def source(self) -> str:
        return self.meta["source"]

    @property
    def episode(self) -> str:
        return self.meta["episode"]

    @property
    def step(self) -> int:
        return self.meta["step"]

    @property
    def prompt(self) -> str:
        """The last human turn (markers, instruction, history)."""
        return [t["value"] for t in self.conversations if t["from"] == HUMAN][-1]

    @property
    def answer(self) -> str:
        """The last gpt turn: the action's text."""
        return self.conversations[-1]["value"]

    @property
    def where(self) -> str:
        return f"source {self.meta.get('source')!r}, episode {self.meta.get('episode')}, step {self.meta.get('step')}"

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON; ``meta`` first so a truncated line still says what it was."""
        return {
            "meta": dict(self.meta),
            "domain": self.domain,
            "action": action_to_json(self.action),
            "images": list(self.images),
            "conversations": [dict(t) for t in self.conversations],
            "system": self.system,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Sample:
        """The sample of a raw record; ``SampleError`` lists every problem, each naming its field."""
        check = check_record(data)
        if check.problems:
            raise SampleError(check.problems, where)
        return cls(
            system=data["system"],
            conversations=data["conversations"],
            images=data["images"],
            domain=data["domain"],
            action=check.action,
            meta=data["meta"],
        )

    def problems(self) -> list[Problem]:
        """Every problem of this sample as a record (empty when it is valid)."""
        try:
            record = self.to_json()
        except TypeError as err:  # the action is not a typed action
            return [Problem("action", str(err))]
        return check_record(record).problems

    def check(self) -> None:
        """Raise ``SampleError`` listing every problem, if any."""
        problems = self.problems()
        if problems:
            raise SampleError(problems, self.where)
