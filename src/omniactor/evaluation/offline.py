"""Offline GUI evaluation: predict every recorded GUI step of a dataset folder and score it.

``evaluate_offline(data_dir, predict, protocols, out_dir)`` walks the GUI records of a
unified dataset episode by episode (steps in order), gives ``predict(sample, images,
previous_actions)`` each step with the *true* previous actions of its episode (teacher
forcing, as training shows them), and scores the answer under one or more protocols
(``gui_metrics``) from that single prediction pass, since predictions are the expensive part.
``predict`` returns a typed action or the model's raw text (parsed with ``parse_action``;
text that does not parse is a wrong step with cause ``unparsable``); it may raise
``NoPrediction`` to leave a step unscored (counted).

Written to ``out_dir``:

- ``results.json``: per protocol, overall / per action type / per source: steps, action-type
  accuracy, grounding accuracy (click and long-press steps whose type matched), step
  success rate, episode success rate, box fallbacks, failure causes; plus counts of
  everything not scored (non-GUI records by domain, steps past ``limit``, unparsable and
  non-GUI predictions, steps without prediction, incomplete episodes and why).
- ``report.md``: the same as tables.
- ``predictions.jsonl``: one ``{"source", "episode", "step", "prediction"}`` line per
  predicted step (the model's text, or the canonical text of a returned action), the
  format ``--predictions`` reads back, so a run can be re-scored under any protocol.
- ``steps.jsonl``: every scored step with its true action, prediction and per-protocol verdict.

Episode success: an episode counts when its steps in the data are exactly ``0..n-1`` and
every one was scored; it succeeds when all its steps succeed. An episode whose *last*
steps are missing from the data looks complete (nothing in a sample says how long its
episode was): evaluate whole converted episodes.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..actions import Action, ActionError, format_action, parse_action
from ..actions.gui import GUI_ACTION_TYPES
from ..errors import OmniactorError
from .gui_metrics import Protocol, StepScore, Target, UnknownProtocolError, parse_protocols, score_step

Predict = Callable[[Any, list, list], Any]
"""``predict(sample, images, previous_actions) -> Action | str``."""

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
PREDICTIONS_FILE = "predictions.jsonl"
STEPS_FILE = "steps.jsonl"


class PredictionsFileError(OmniactorError, ValueError):
    """A predictions file line that cannot be read (the message starts with ``file:line``)."""


class NoPrediction(Exception):
    """Raised by a predict function that has no prediction for a step: the step is counted, not scored."""


def _is_gui(action: Any) -> bool:
    return type(action) in GUI_ACTION_TYPES.values()


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# ---------------------------------------------------------------------------- tallies


@dataclass
class _Tally:
    """Counts behind one row of results (overall, one action type or one source)."""

    steps: int = 0
    type_matches: int = 0
    grounding_steps: int = 0
    grounding_correct: int = 0
    step_successes: int = 0
    box_fallbacks: int = 0
    episodes_scored: int = 0
    episode_successes: int = 0

    def add(self, score: StepScore) -> None:
        self.steps += 1
        self.type_matches += score.type_match
        self.step_successes += score.step_success
        self.box_fallbacks += score.box_fallback
        if score.grounding is not None:
            self.grounding_steps += 1
            self.grounding_correct += score.grounding

    def to_json(self, episodes: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "steps": self.steps,
            "type_matches": self.type_matches,
            "type_accuracy": _rate(self.type_matches, self.steps),
            "grounding_steps": self.grounding_steps,
            "grounding_correct": self.grounding_correct,
            "grounding_accuracy": _rate(self.grounding_correct, self.grounding_steps),
            "step_successes": self.step_successes,
            "step_success_rate": _rate(self.step_successes, self.steps),
            "box_fallbacks": self.box_fallbacks,
        }
        if episodes:
            out["episodes_scored"] = self.episodes_scored
            out["episode_successes"] = self.episode_successes
            out["episode_success_rate"] = _rate(self.episode_successes, self.episodes_scored)
        return out


@dataclass
class _ProtocolTally:
    protocol: Protocol
    overall: _Tally = field(default_factory=_Tally)
    by_type: dict[str, _Tally] = field(default_factory=dict)
    by_source: dict[str, _Tally] = field(default_factory=dict)
    failures: Counter = field(default_factory=Counter)

    def add(self, source: str, score: StepScore) -> None:
        self.overall.add(score)
        self.by_type.setdefault(score.action_type, _Tally()).add(score)
        self.by_source.setdefault(source, _Tally()).add(score)
        if score.cause:
            self.failures[score.cause] += 1

    def add_episode(self, source: str, success: bool) -> None:
        for tally in (self.overall, self.by_source.setdefault(source, _Tally())):
            tally.episodes_scored += 1
            tally.episode_successes += success

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": dataclasses.asdict(self.protocol),
            "overall": self.overall.to_json(),
            "by_action_type": {k: t.to_json(episodes=False) for k, t in sorted(self.by_type.items())},
            "by_source": {k: t.to_json() for k, t in sorted(self.by_source.items())},
            "failures": dict(sorted(self.failures.items())),
        }


# ---------------------------------------------------------------------------- reading


@dataclass
class _Episode:
    source: str
    episode: str
    records: list  # Record, sorted by step

    @property
    def contiguous(self) -> bool:
        return [r.sample.step for r in self.records] == list(range(len(self.records)))


def _read_episodes(reader: Any) -> tuple[list[_Episode], int, Counter]:
    """GUI records grouped into episodes (first-appearance order), records read, non-GUI records by domain."""
    from ..data.io import DatasetFormatError

    groups: dict[tuple[str, str], list] = {}
    skipped: Counter = Counter()
    total = 0
    for record in reader.records():
        total += 1
        sample = record.sample
        if not _is_gui(sample.action):
            skipped[sample.domain] += 1
            continue
        groups.setdefault((sample.source, sample.episode), []).append(record)
    episodes = []
    for (source, episode), records in groups.items():
        records.sort(key=lambda r: r.sample.step)
        for before, after in itertools.pairwise(records):
            if before.sample.step == after.sample.step:
                raise DatasetFormatError(
                    f"{after.location}: source {source!r} episode {episode!r} step {after.sample.step} is also at "
                    f"{before.location}; each step must appear once (remove the duplicate record)"
                )
        episodes.append(_Episode(source, episode, records))
    return episodes, total, skipped


# ---------------------------------------------------------------------------- predicting


def _interpret(raw: Any, where: str) -> tuple[str, Action | None, str]:
    """(text to record, parsed action or None, status) of what ``predict`` returned."""
    if isinstance(raw, str):
        try:
            action = parse_action(raw)
        except ActionError:
            return raw, None, "unparsable"
    else:
        try:
            text = format_action(raw)
        except TypeError:
            raise TypeError(
                f"{where}: predict returned {type(raw).__name__}; it must return an Action or the model's text"
            ) from None
        raw, action = text, raw
    return raw, action, "ok" if _is_gui(action) else "non_gui"


def _run(
    data_dir: str | os.PathLike,
    predict: Predict,
    protocols: list[Protocol],
    out_dir: Path,
    limit: int | None,
    progress: bool,
    load_images: bool,
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from ..data import DatasetFormatError, DatasetReader

    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 (or None for all steps), got {limit}")
    reader = DatasetReader(data_dir)
    episodes, total_records, skipped = _read_episodes(reader)
    gui_steps = sum(len(e.records) for e in episodes)
    budget = gui_steps if limit is None else min(limit, gui_steps)
    tallies = {p.name: _ProtocolTally(p) for p in protocols}
    counts: Counter = Counter()
    incomplete: Counter = Counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    with (
        open(out_dir / PREDICTIONS_FILE, "w", encoding="utf-8") as predictions_out,
        open(out_dir / STEPS_FILE, "w", encoding="utf-8") as steps_out,
        tqdm(total=budget, desc="eval-offline", disable=not progress, unit="step") as bar,
    ):
        for episode in episodes:
            if counts["evaluated"] >= budget:
                counts["episodes_not_reached"] += 1
                continue
            successes = {name: True for name in tallies}
            cut = unpredicted = False
            for i, record in enumerate(episode.records):
                if counts["evaluated"] >= budget:
                    cut = True
                    break
                counts["evaluated"] += 1
                bar.update(1)
                sample = record.sample
                where = f"{sample.where} ({record.location})"
                try:  # checks meta.target_box before the expensive call
                    target = Target.from_sample(sample)
                except ValueError as err:
                    raise DatasetFormatError(f"{reader.root / record.location}: {err}") from None
                previous = [r.sample.action for r in episode.records[:i]]
                images = reader.load_images(sample) if load_images else []
                try:
                    raw = predict(sample, images, previous)
                except NoPrediction:
                    counts["without_prediction"] += 1
                    unpredicted = True
                    continue
                except Exception as err:
                    err.add_note(f"while predicting {where}")
                    raise
                text, action, status = _interpret(raw, where)
                counts[status] += 1
                key = {"source": sample.source, "episode": sample.episode, "step": sample.step}
                predictions_out.write(json.dumps({**key, "prediction": text}, ensure_ascii=False) + "\n")
                verdicts = {}
                for name, tally in tallies.items():
                    score = score_step(action, target, tally.protocol)
                    tally.add(sample.source, score)
                    successes[name] &= score.step_success
                    verdicts[name] = {"type_match": score.type_match, "grounding": score.grounding,
                                      "step_success": score.step_success, "cause": score.cause}
                line = {**key, "truth": format_action(sample.action), "prediction": text, "status": status,
                        "scores": verdicts}
                steps_out.write(json.dumps(line, ensure_ascii=False) + "\n")
            if not episode.contiguous:
                incomplete["steps_missing_in_data"] += 1
            elif cut:
                incomplete["cut_by_limit"] += 1
            elif unpredicted:
                incomplete["steps_without_prediction"] += 1
            else:
                counts["episodes_complete"] += 1
                for name, tally in tallies.items():
                    tally.add_episode(episode.source, successes[name])
    scored = counts["ok"] + counts["unparsable"] + counts["non_gui"]
    return {
        "data": str(data_dir),
        "protocols": [p.name for p in protocols],
        "limit": limit,
        "counts": {
            "records": total_records,
            "gui_steps": gui_steps,
            "steps_evaluated": counts["evaluated"],
            "steps_scored": scored,
            "steps_not_evaluated_limit": gui_steps - counts["evaluated"],
            "steps_without_prediction": counts["without_prediction"],
            "unparsable_predictions": counts["unparsable"],
            "non_gui_predictions": counts["non_gui"],
            "skipped_non_gui_records": sum(skipped.values()),
            "skipped_non_gui_by_domain": dict(sorted(skipped.items())),
        },
        "episodes": {
            "total": len(episodes),
            "complete": counts["episodes_complete"],
            "incomplete": sum(incomplete.values()),
            "not_reached_limit": counts["episodes_not_reached"],
            "incomplete_reasons": dict(sorted(incomplete.items())),
        },
        "metrics": {name: tally.to_json() for name, tally in tallies.items()},
    }


# ---------------------------------------------------------------------------- report


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none"


def _row(label: str, row: dict[str, Any]) -> str:
    episodes = "-"
    if row.get("episodes_scored"):
        episodes = f"{_pct(row['episode_success_rate'])} ({row['episode_successes']}/{row['episodes_scored']})"
    grounding = "-"
    if row["grounding_steps"]:
        grounding = f"{_pct(row['grounding_accuracy'])} ({row['grounding_correct']}/{row['grounding_steps']})"
    return (
        f"| {label} | {row['steps']} | {_pct(row['type_accuracy'])} | {grounding} | "
        f"{_pct(row['step_success_rate'])} | {episodes} | {row['box_fallbacks']} |"
    )


def format_report(results: dict[str, Any]) -> str:
    """``report.md``: what was scored, what was not and why, then one table per protocol (rates in %)."""
    counts, episodes = results["counts"], results["episodes"]
    lines = [
        "# Offline GUI step metrics",
        "",
        f"Data: `{results['data']}`" + (f", checkpoint: `{results['checkpoint']}`" if results.get("checkpoint") else "")
        + (f", predictions: `{results['predictions']}`" if results.get("predictions") else ""),
        "",
        (
            f"- records read: {counts['records']}; GUI steps: {counts['gui_steps']}; evaluated: "
            f"{counts['steps_evaluated']}; scored: {counts['steps_scored']}"
        ),
        (
            f"- not scored: {counts['steps_not_evaluated_limit']} past --limit, "
            f"{counts['steps_without_prediction']} without a prediction, {counts['skipped_non_gui_records']} "
            f"non-GUI records ({_pairs(counts['skipped_non_gui_by_domain'])})"
        ),
        (
            f"- predictions that did not parse: {counts['unparsable_predictions']} (wrong steps, cause "
            f"`unparsable`); non-GUI actions predicted: {counts['non_gui_predictions']} (wrong type)"
        ),
        (
            f"- episodes: {episodes['total']}, complete (scored for episode success): {episodes['complete']}, "
            f"incomplete: {episodes['incomplete']} ({_pairs(episodes['incomplete_reasons'])}), "
            f"not reached (--limit): {episodes['not_reached_limit']}"
        ),
    ]
    if results.get("predictions_not_in_data"):
        lines.append(f"- predictions for steps not in the data (ignored): {results['predictions_not_in_data']}")
    header = [
        "| | steps | type acc. | grounding acc. | step SR | episode SR | box fallbacks |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, block in results["metrics"].items():
        protocol = block["protocol"]
        lines += ["", f"## {name}", "", f"{protocol['summary']}. Source: {protocol['source']}.", "", *header]
        lines.append(_row("**all**", block["overall"]))
        lines += [_row(f"`{k}`", v) for k, v in block["by_action_type"].items()]
        if len(block["by_source"]) > 1:
            lines += [_row(f"source `{k}`", v) for k, v in block["by_source"].items()]
        lines += ["", f"Failures by cause: {_pairs(block['failures'])}."]
    return "\n".join(lines) + "\n"


def _write(results: dict[str, Any], out_dir: Path) -> None:
    (out_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / REPORT_FILE).write_text(format_report(results), encoding="utf-8")


# ---------------------------------------------------------------------------- entry points


def evaluate_offline(
    data_dir: str | os.PathLike,
    predict: Predict,
    protocol: str | Sequence[str | Protocol],
    out_dir: str | os.PathLike,
    limit: int | None = None,
    progress: bool = True,
    *,
    load_images: bool = True,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Predict and score every GUI step of ``data_dir``; write ``results.json`` and ``report.md``; return the results.

    ``protocol``: one name, a comma-separated list, ``"all"`` or a list (all are scored
    from one prediction pass). ``limit``: evaluate at most this many steps (whole episodes
    first, in dataset order). ``load_images=False`` passes no images (a predict function that
    does not need them). ``config`` is stored in the results (checkpoint path, ...).
    """
    protocols = parse_protocols(protocol)
    out = Path(out_dir)
    results = _run(data_dir, predict, protocols, out, limit, progress, load_images)
    results = {**(config or {}), **results}
    _write(results, out)
    return results


class PredictionsFile:
    """A predict function that reads predictions saved as JSON lines (``predictions.jsonl``).

    Each line: ``{"source": "android_control", "episode": "1041", "step": 3, "prediction":
    "click(x=0.634, y=0.927)"}``; ``prediction`` is the model's text (any form
    ``parse_action`` reads; text that does not parse is scored as ``unparsable``). Steps with
    no line raise ``NoPrediction`` (counted, not scored).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.predictions: dict[tuple[str, str, int], str] = {}
        self.used: set[tuple[str, str, int]] = set()
        lines: dict[tuple[str, str, int], int] = {}
        with open(self.path, encoding="utf-8") as f:
            for number, text in enumerate(f, 1):
                if not text.strip():
                    continue
                where = f"{self.path}:{number}"
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as err:
                    raise PredictionsFileError(f"{where}: not valid JSON: {err.msg} (column {err.colno})") from None
                key = self._key(data, where)
                if key in lines:
                    raise PredictionsFileError(f"{where}: a second prediction for {key} (the first is on line {lines[key]})")
                lines[key] = number
                self.predictions[key] = data["prediction"]

    @staticmethod
    def _key(data: Any, where: str) -> tuple[str, str, int]:
        if not isinstance(data, dict):
            raise PredictionsFileError(f"{where}: expected an object with source, episode, step and prediction")
        for name in ("source", "episode", "step", "prediction"):
            if name not in data:
                raise PredictionsFileError(f"{where}: field {name!r} is missing (need source, episode, step, prediction)")
        source, episode, step = data["source"], data["episode"], data["step"]
        if not isinstance(source, str) or not source:
            raise PredictionsFileError(f"{where}: field 'source' must be a non-empty string, got {source!r}")
        if isinstance(episode, int) and not isinstance(episode, bool):
            episode = str(episode)
        if not isinstance(episode, str) or not episode:
            raise PredictionsFileError(f"{where}: field 'episode' must be a non-empty string or an integer, got {episode!r}")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise PredictionsFileError(f"{where}: field 'step' must be a non-negative integer, got {step!r}")
        if not isinstance(data["prediction"], str):
            raise PredictionsFileError(f"{where}: field 'prediction' must be the model's text, got {data['prediction']!r:.80}")
        return source, episode, step

    def __call__(self, sample: Any, images: list, previous: list) -> str:
        key = (sample.source, sample.episode, sample.step)
        if key not in self.predictions:
            raise NoPrediction(key)
        self.used.add(key)
        return self.predictions[key]


def score_predictions(
    data_dir: str | os.PathLike,
    predictions: str | os.PathLike,
    protocol: str | Sequence[str | Protocol],
    out_dir: str | os.PathLike,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``evaluate_offline`` with saved predictions instead of a model (no images are loaded)."""
    protocols = parse_protocols(protocol)
    saved = PredictionsFile(predictions)
    out = Path(out_dir)
    results = _run(data_dir, saved, protocols, out, limit, progress, load_images=False)
    if saved.predictions and not saved.used and results["counts"]["steps_evaluated"]:
        example = next(iter(saved.predictions))
        raise ValueError(
            f"none of the {len(saved.predictions)} predictions in {predictions} matches a GUI step of {data_dir} "
            f"(first: source {example[0]!r}, episode {example[1]!r}, step {example[2]}); "
            "check that source and episode names are those of the dataset's meta"
        )
    if limit is None:  # with a limit, predictions past it are expected to stay unused
        results["predictions_not_in_data"] = len(saved.predictions) - len(saved.used)
    results = {"predictions": str(predictions), **results}
    _write(results, out)
    return results


# ---------------------------------------------------------------------------- command line


def _eval_offline(args: argparse.Namespace) -> int:
    try:
        protocols = parse_protocols(args.protocol)
    except UnknownProtocolError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    progress = not args.no_progress
    if args.predictions:
        results = score_predictions(args.data, args.predictions, protocols, args.out, args.limit, progress)
    else:
        from ..agent import Agent

        agent = Agent.from_pretrained(args.checkpoint)
        results = evaluate_offline(args.data, agent.predict_sample, protocols, args.out, args.limit, progress,
                                   config={"checkpoint": str(args.checkpoint)})
    counts = results["counts"]
    print(f"scored {counts['steps_scored']} of {counts['gui_steps']} GUI steps "
          f"({counts['skipped_non_gui_records']} non-GUI records skipped)")
    for name, block in results["metrics"].items():
        row = block["overall"]
        print(f"{name:>9}: type {_pct(row['type_accuracy'])}  grounding {_pct(row['grounding_accuracy'])}  "
              f"step SR {_pct(row['step_success_rate'])}  episode SR {_pct(row['episode_success_rate'])}")
    print(f"wrote {Path(args.out) / RESULTS_FILE} and {Path(args.out) / REPORT_FILE}")
    return 0


def add_eval_offline_command(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser(
        "eval-offline",
        help="score a GUI agent step by step on recorded episodes (AndroidControl, GUI Odyssey, ...)",
        description="Predicts every GUI step of a unified dataset folder (true previous actions as history) "
        "and scores it under one or more protocols: osatlas (click within 0.14; text token F1 > 0.5), "
        "qwen25vl (inside the target box enlarged 1.2x or within 0.04; text containment), gea (within 5 cells "
        "of a 50x50 grid; text containment), odyssey (inside the SAM2 box or within 0.14; text containment or "
        "ANLS >= 0.5). Writes results.json, report.md, predictions.jsonl and steps.jsonl; see docs/evaluation.md.",
    )
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="DIR", help="model folder to load with Agent.from_pretrained")
    source.add_argument("--predictions", metavar="FILE",
                        help="score saved predictions instead (JSON lines: source, episode, step, prediction)")
    command.add_argument("--data", required=True, metavar="DIR", help="unified dataset folder (e.g. converted test split)")
    command.add_argument("--protocol", required=True, metavar="P[,P2]",
                         help="osatlas, qwen25vl, gea, odyssey, a comma-separated list, or all")
    command.add_argument("--out", required=True, metavar="DIR", help="output folder for results and predictions")
    command.add_argument("--limit", type=int, metavar="N", help="evaluate at most N steps (episodes in order)")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command.set_defaults(handler=_eval_offline)
