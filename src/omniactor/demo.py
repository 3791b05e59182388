"""The main job, end to end, as far as the toolkit reaches today.

Stages (each timed, each reused when its output is complete, so a re-run continues):

1. **dataset**: an example dataset of all three domains in the unified sample format;
2. **validate**: every record checked (the run stops if any is bad);
3. **stats**: counts and action statistics;
4. **tokenizers**: each domain's action tokenizers fitted on that domain's actions, with
   their reconstruction error and the size of the vocabulary they need;
5. **report**: ``report.md`` and ``results.json`` in the output folder.

Later milestones (real environments, training, evaluation) extend this to
collect -> train -> evaluate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .actions import ContinuousAction, DiscreteAction, format_action, points_of
from .actions.gui import GUI_ACTION_TYPES


def _stage(name: str, timings: dict[str, float]) -> Callable:
    def wrap(fn: Callable[[], Any]) -> Any:
        print(f"[{name}] ...", flush=True)
        start = time.perf_counter()
        result = fn()
        timings[name] = round(time.perf_counter() - start, 3)
        print(f"[{name}] done in {timings[name]:.1f}s", flush=True)
        return result

    return wrap


def _actions_by_domain(root: Path) -> dict[str, list]:
    from .data import DatasetReader

    by_domain: dict[str, list] = {}
    for sample in DatasetReader(root):
        by_domain.setdefault(sample.domain, []).append(sample.action)
    return by_domain


def _continuous_rows(actions: list[ContinuousAction]) -> list[dict[str, Any]]:
    from .actions.tokenizers import build_action_tokenizer

    array = np.stack([a.as_array() for a in actions])
    rows = []
    for num_bins in (64, 256):
        tok = build_action_tokenizer("uniform", num_bins=num_bins).fit(actions)
        decoded = tok.unbin_array(tok.bin_array(array))
        err = np.abs(tok.normalizer.normalize(decoded) - tok.normalizer.normalize(array))
        rows.append({"tokenizer": f"uniform K={num_bins}", "tokens_per_action": tok.codes_per_action,
                     "new_tokens": len(tok.tokens()), "mean_abs_error": float(err.mean()),
                     "max_abs_error": float(err.max()), "unit": "normalised [-1, 1]"})
    try:
        tok = build_action_tokenizer("rvq", num_quantizers=2, codebook_size=64)
    except ImportError as err:  # the vq extra is optional
        rows.append({"tokenizer": "rvq", "skipped": str(err)})
        return rows
    tok.fit(actions)
    decoded = np.stack([tok.decode(tok.encode(a)).as_array() for a in actions])
    norm = build_action_tokenizer("uniform").fit(actions).normalizer
    err = np.abs(norm.normalize(decoded) - norm.normalize(array))
    rows.append({"tokenizer": "rvq 2x64", "tokens_per_action": tok.codes_per_action, "new_tokens": len(tok.tokens()),
                 "mean_abs_error": float(err.mean()), "max_abs_error": float(err.max()),
                 "unit": "normalised [-1, 1] (training actions)"})
    return rows


def _gui_rows(actions: list) -> list[dict[str, Any]]:
    from .actions.tokenizers import build_action_tokenizer

    rows = []
    for name, kwargs in (("gui_text", {"decimals": 3}), ("gui_location", {"grid": 32}),
                         ("gui_location", {"grid": 32, "fine": 4})):
        tok = build_action_tokenizer(name, **kwargs)
        errors, lengths = [], []
        for action in actions:
            text = tok.encode(action)
            lengths.append(len(text))
            decoded = tok.decode(text)
            errors += [p.distance(q) for p, q in zip(points_of(decoded), points_of(action))]
        rows.append({"tokenizer": f"{name} {kwargs}", "new_tokens": len(tok.tokens()),
                     "mean_chars": float(np.mean(lengths)),
                     "mean_point_error": float(np.mean(errors)) if errors else 0.0,
                     "max_point_error": float(np.max(errors)) if errors else 0.0, "unit": "screen fraction"})
    return rows


def _discrete_rows(actions: list[DiscreteAction]) -> list[dict[str, Any]]:
    from .actions.tokenizers import build_action_tokenizer

    names = sorted({a.name for a in actions})
    rows = []
    for name in ("discrete_token", "discrete_lang", "discrete_semlang"):
        tok = build_action_tokenizer(name, names=names)
        exact = sum(tok.decode(tok.encode(a)) == a for a in actions)
        example = tok.encode(actions[0])
        rows.append({"tokenizer": name, "new_tokens": len(tok.tokens()), "exact": exact, "of": len(actions),
                     "example": f"{format_action(actions[0])} -> {example}"})
    return rows


def _fit_tokenizers(root: Path) -> dict[str, list[dict[str, Any]]]:
    by_domain = _actions_by_domain(root)
    results: dict[str, list[dict[str, Any]]] = {}
    for domain, actions in sorted(by_domain.items()):
        kind = actions[0].type
        if isinstance(actions[0], ContinuousAction):
            results[domain] = _continuous_rows(actions)
        elif isinstance(actions[0], DiscreteAction):
            results[domain] = _discrete_rows(actions)
        elif kind in GUI_ACTION_TYPES:
            results[domain] = _gui_rows(actions)
    return results


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    keys = [k for k in rows[0] if k != "unit"]
    for row in rows[1:]:
        keys += [k for k in row if k not in keys and k != "unit"]

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def _write_report(out: Path, stats_text: str, tokenizers: dict, timings: dict, records: int) -> None:
    parts = ["# omniactor demo report", "",
             f"Example dataset: {records} records in `{out / 'dataset'}` (validated: no bad record).", "",
             "## Dataset statistics", "", "```", stats_text.strip(), "```", "",
             "## Action tokenizers fitted on each domain's actions", ""]
    for domain, rows in tokenizers.items():
        unit = next((r["unit"] for r in rows if "unit" in r), "")
        parts += [f"### {domain}" + (f" (errors in {unit})" if unit else ""), "", _markdown_table(rows), ""]
    parts += ["## Stage timings (s)", "", _markdown_table([timings]), ""]
    (out / "report.md").write_text("\n".join(parts))


def run_demo(out: str | Path, quick: bool = False) -> int:
    from .data import dataset_stats, format_report, format_stats, validate_dataset
    from .data.example import write_example_dataset

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = out / "dataset"
    timings: dict[str, float] = {}
    episodes = 2 if quick else 20

    done_marker = root / ".complete"
    if done_marker.exists():
        print(f"[dataset] reusing {root}")
    else:
        def make() -> None:
            import shutil

            shutil.rmtree(root, ignore_errors=True)  # a partial dataset from an interrupted run
            write_example_dataset(root, episodes_per_domain=episodes, seed=0)
            done_marker.write_text("complete\n")

        _stage("dataset", timings)(make)

    report = _stage("validate", timings)(lambda: validate_dataset(root))
    print(format_report(report, root))
    if not report.ok:
        return 1
    stats = _stage("stats", timings)(lambda: dataset_stats(root))
    stats_text = format_stats(stats)
    print(stats_text)
    tokenizers = _stage("tokenizers", timings)(lambda: _fit_tokenizers(root))
    for domain, rows in tokenizers.items():
        print(f"\n{domain}\n{_markdown_table(rows)}")
    _write_report(out, stats_text, tokenizers, timings, report.checked)
    results = {"records": report.checked, "tokenizers": tokenizers, "timings_s": timings}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nreport: {out / 'report.md'}\nresults: {out / 'results.json'}")
    return 0
