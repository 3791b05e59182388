"""Check every record of a dataset folder and report every problem, never only the first.

Per record: the line is UTF-8 and well-formed JSON (a last line cut short by an
interrupted write included); fields and types; human/gpt turns alternate and end with
gpt; ``<image>`` markers in the human turns equal ``len(images)``; every image file is
present and decodable; the action JSON parses and is in range (GUI points in [0, 1];
continuous and discrete actions inside the space the manifest declares for the source);
the last gpt turn parses to that same action; the domain is known and matches the action
kind. Per folder: ``manifest.json`` is readable and lists exactly the shards on disk with
their line counts.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from .domains import action_kind, domain_problems, known_domains
from .io import Line, iter_lines, json_error_message, require_dataset, shard_paths
from .manifest import MANIFEST_FILE, Manifest, ManifestError, load_manifest, shard_count_problems
from .sample import check_record, image_path_problem

ImageCheck = Literal["exists", "verify", "decode"]

_EPISODE = re.compile(r'"episode"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')
_STEP = re.compile(r'"step"\s*:\s*(\d+)')


@dataclass(frozen=True)
class Issue:
    """One problem: where (file relative to the dataset folder, 1-based line or None) and what."""

    file: str
    line: int | None
    episode: str | None
    step: int | None
    message: str

    def format(self, root: str | os.PathLike | None = None) -> str:
        path = os.path.join(root, self.file) if root is not None else self.file
        if self.line is None:
            return f"{path}: {self.message}"
        episode = "?" if self.episode is None else self.episode
        step = "?" if self.step is None else self.step
        return f"{path}:{self.line} (episode {episode}, step {step}): {self.message}"

    def __str__(self) -> str:
        return self.format()

    @classmethod
    def folder(cls, file: str, message: str) -> Issue:
        """An issue of a whole file (the manifest, a shard), not of one record."""
        return cls(file, None, None, None, message)


@dataclass
class ValidationReport:
    """Every issue found; ``checked`` records (lines), ``bad`` of them with at least one issue."""

    root: str
    checked: int = 0
    bad: int = 0
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def record_issues(self) -> list[Issue]:
        return [i for i in self.issues if i.line is not None]

    @property
    def dataset_issues(self) -> list[Issue]:
        return [i for i in self.issues if i.line is None]


def _where(data: Any, text: str) -> tuple[str | None, int | None]:
    """Episode and step of a record, from its meta or (for broken JSON) from its text."""
    if isinstance(data, dict) and isinstance(data.get("meta"), dict):
        meta = data["meta"]
        episode, step = meta.get("episode"), meta.get("step")
        return (None if episode is None else str(episode)), (step if isinstance(step, int) else None)
    episode_match, step_match = _EPISODE.search(text), _STEP.search(text)
    episode = None
    if episode_match:
        try:
            episode = str(json.loads(episode_match.group(1)))
        except json.JSONDecodeError:
            episode = episode_match.group(1)
    return episode, (int(step_match.group(1)) if step_match else None)


def _image_problem(path: Path, mode: ImageCheck) -> str | None:
    if not path.is_file():
        return "file not found"
    if mode == "exists":
        return None
    try:
        with Image.open(path) as image:
            if mode == "verify":
                image.verify()
            else:
                image.load()
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        return f"cannot be decoded ({type(err).__name__}: {err})"
    return None


class _Checker:
    """Checks of one record against the dataset's manifest and files."""

    def __init__(self, root: Path, manifest: Manifest | None, images: ImageCheck):
        self.root = root
        self.manifest = manifest or Manifest()
        self.known = known_domains(self.manifest.domains)
        self.images = images

    def check(self, line: Line) -> tuple[list[str], str | None, int | None]:
        """Messages for one line (empty when valid), and the record's episode and step."""
        if line.text is None:
            return [line.error or "not UTF-8 text"], None, None
        if not line.text.strip():
            return ["empty line (every line of a shard must be one record)"], None, None
        try:
            data = json.loads(line.text)
        except json.JSONDecodeError as err:
            episode, step = _where(None, line.text)
            return [json_error_message(err, line.complete)], episode, step
        episode, step = _where(data, line.text)
        result = check_record(data)
        messages = [str(p) for p in result.problems]
        if not isinstance(data, dict):
            return messages, episode, step
        action = result.action
        domain = data.get("domain")
        domain_messages = []
        if isinstance(domain, str) and domain:
            domain_messages = [f"domain: {m}" for m in domain_problems(domain, action, self.known)]
        messages += domain_messages
        meta = data.get("meta")
        source = meta.get("source") if isinstance(meta, dict) else None
        if isinstance(source, str) and not domain_messages:  # one root cause, one message
            messages += self._source_messages(source, domain, action)
        images = data.get("images")
        if isinstance(images, list):
            for i, rel in enumerate(images):
                if isinstance(rel, str) and image_path_problem(rel) is None:
                    problem = _image_problem(self.root / rel, self.images)
                    if problem:
                        messages.append(f"images[{i}]: {rel}: {problem}")
        return messages, episode, step

    def _source_messages(self, source: str, domain: Any, action: Any) -> list[str]:
        info = self.manifest.sources.get(source)
        if info is None:
            return []
        if isinstance(domain, str) and domain and info.domain != domain:
            return [f"domain: source {source!r} is in domain {info.domain!r} per {MANIFEST_FILE}, not {domain!r}"]
        messages = []
        space = info.action_space
        if action is not None and space is not None:
            kind, space_kind = action_kind(action), space.to_json()["kind"]
            if kind != space_kind:
                messages.append(f"action: a {kind} action, but source {source!r} declares a {space_kind} space")
            else:
                messages += [f"action: {v} (space declared for source {source!r})" for v in space.violations(action)]
        return messages


def _shard_issues(manifest: Manifest | None, lines_per_shard: dict[str, int]) -> list[Issue]:
    return [Issue.folder(rel, message) for rel, message in shard_count_problems(manifest, lines_per_shard)]


def validate_dataset(
    root: str | os.PathLike, *, images: ImageCheck = "verify", progress: bool = False
) -> ValidationReport:
    """Check every record of the dataset folder ``root``; raises ``NotADatasetError`` if it is none.

    ``images``: ``exists`` only checks that files are there, ``verify`` (default) also runs
    PIL's cheap integrity check, ``decode`` fully decodes every image.
    """
    if images not in ("exists", "verify", "decode"):
        raise ValueError(f"images must be exists, verify or decode, got {images!r}")
    root = require_dataset(root)
    report = ValidationReport(str(root))
    manifest: Manifest | None = None
    try:
        manifest = load_manifest(root)
        if manifest is None:
            missing = "missing (the writer did not close?); counts and action spaces are unknown"
            report.issues.append(Issue.folder(MANIFEST_FILE, missing))
    except ManifestError as err:
        message = str(err)  # load_manifest names the file, and so does the issue
        report.issues.append(Issue.folder(MANIFEST_FILE, message.removeprefix(f"{root / MANIFEST_FILE}: ")))

    checker = _Checker(root, manifest, images)
    lines_per_shard = {rel: 0 for rel in shard_paths(root)}
    lines: Iterable[Line] = iter_lines(root)
    if progress:
        from tqdm import tqdm

        lines = tqdm(lines, total=manifest.num_records if manifest else None, unit="rec", desc="validate", disable=None)
    for line in lines:
        report.checked += 1
        lines_per_shard[line.file] = line.line
        messages, episode, step = checker.check(line)
        if messages:
            report.bad += 1
            report.issues += [Issue(line.file, line.line, episode, step, m) for m in messages]
    report.issues += _shard_issues(manifest, lines_per_shard)
    return report


def format_report(report: ValidationReport, root: str | os.PathLike | None = None) -> str:
    """One line per issue (``file:line (episode, step): what``), then the counts."""
    root = report.root if root is None else root
    out = [issue.format(root) for issue in report.issues]
    if report.ok:
        out.append(f"{report.checked} records checked: all valid")
    else:
        summary = f"{report.bad} bad record(s) of {report.checked} checked ({len(report.record_issues)} issue(s))"
        if report.dataset_issues:
            summary += f"; {len(report.dataset_issues)} folder-level issue(s)"
        out.append(summary)
    return "\n".join(out)
