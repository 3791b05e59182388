"""What a dataset folder holds, computed from its records in one streaming pass.

Counts per domain, source and action type; episodes and steps per episode; per source,
continuous action statistics per dimension (mean, std, min, max, p01, p99: exact up to
``quantile_capacity`` actions, from a uniform sample beyond) and discrete action
frequencies. Records that cannot be read are counted (``unreadable``, with the first few
reasons), never skipped silently; so are shards whose line counts differ from ``manifest.json``
and a missing manifest (``folder_issues``). A manifest that cannot be read is a ``ManifestError``.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from .domains import action_kind
from .io import DatasetFormatError, iter_lines, parse_line, require_dataset, shard_paths
from .manifest import MANIFEST_FILE, ActionStatsAccumulator, load_manifest, shard_count_problems


def _counter(counter: Counter) -> dict[str, int]:
    return dict(sorted(counter.items()))


def dataset_stats(
    root: str | os.PathLike, *, progress: bool = False, quantile_capacity: int = 100_000
) -> dict[str, Any]:
    """Statistics of every readable record of ``root`` (a JSON-ready dict; see ``format_stats``)."""
    root = require_dataset(root)
    domains: Counter = Counter()
    sources: Counter = Counter()
    types: Counter = Counter()
    types_per_source: dict[str, Counter] = defaultdict(Counter)
    discrete: dict[str, Counter] = defaultdict(Counter)
    continuous: dict[str, ActionStatsAccumulator] = {}
    mixed_dimensions: set[str] = set()
    steps: Counter = Counter()  # (source, episode) -> steps
    records = unreadable = images = 0
    first_unreadable: list[str] = []
    lines_per_shard = {rel: 0 for rel in shard_paths(root)}

    manifest = load_manifest(root)
    lines = iter_lines(root)
    if progress:
        from tqdm import tqdm

        lines = tqdm(lines, total=manifest.num_records if manifest else None, unit="rec", desc="stats", disable=None)
    for line in lines:
        lines_per_shard[line.file] = line.line
        try:
            sample = parse_line(line, root)
        except DatasetFormatError as err:
            unreadable += 1
            if len(first_unreadable) < 5:
                first_unreadable.append(str(err))
            continue
        records += 1
        images += len(sample.images)
        domains[sample.domain] += 1
        sources[sample.source] += 1
        types[sample.action.type] += 1
        types_per_source[sample.source][sample.action.type] += 1
        steps[(sample.source, sample.episode)] += 1
        kind = action_kind(sample.action)
        if kind == "discrete":
            discrete[sample.source][sample.action.name] += 1
        elif kind == "continuous":
            acc = continuous.get(sample.source)
            if acc is None:
                acc = continuous[sample.source] = ActionStatsAccumulator(sample.action.names, quantile_capacity)
            if acc.names == sample.action.names:
                acc.add(sample.action.values)
            else:
                mixed_dimensions.add(sample.source)

    folder_issues = [f"{rel}: {what}" for rel, what in shard_count_problems(manifest, lines_per_shard)]
    if manifest is None:
        folder_issues.insert(0, f"{MANIFEST_FILE}: missing (the writer did not close?); counts are the records' own")
    lengths = np.asarray(list(steps.values()), dtype=np.float64)
    episodes_per_source: Counter = Counter(source for source, _ in steps)
    out: dict[str, Any] = {
        "root": str(root),
        "records": records,
        "unreadable": unreadable,
        "unreadable_examples": first_unreadable,
        "folder_issues": folder_issues,
        "images": images,
        "episodes": len(steps),
        "steps_per_episode": (
            {
                "mean": float(lengths.mean()),
                "min": int(lengths.min()),
                "median": float(np.median(lengths)),
                "max": int(lengths.max()),
            }
            if len(lengths)
            else {}
        ),
        "domains": _counter(domains),
        "sources": _counter(sources),
        "action_types": _counter(types),
        "episodes_per_source": _counter(episodes_per_source),
        "action_types_per_source": {s: _counter(c) for s, c in sorted(types_per_source.items())},
        "continuous": {},
        "discrete": {s: dict(c.most_common()) for s, c in sorted(discrete.items())},
    }
    for source, acc in sorted(continuous.items()):
        stats = acc.result()
        out["continuous"][source] = {
            "names": list(stats.names),
            "count": stats.count,
            "mean": stats.mean,
            "std": stats.std,
            "min": stats.min,
            "max": stats.max,
            "p01": stats.q01,
            "p99": stats.q99,
            "quantiles_exact": stats.quantiles_exact,
            "other_dimensions_skipped": source in mixed_dimensions,
        }
    return out


def _table(counts: dict[str, int], total: int, indent: str = "  ") -> list[str]:
    width = max((len(k) for k in counts), default=0)
    return [
        f"{indent}{k:<{width}}  {n:>9,}  {100 * n / total:5.1f}%" if total else f"{indent}{k}  {n}"
        for k, n in counts.items()
    ]


def format_stats(stats: dict[str, Any]) -> str:
    """A human-readable summary of ``dataset_stats``."""
    n = stats["records"]
    out = [f"dataset {stats['root']}: {n:,} records, {stats['episodes']:,} episodes, {stats['images']:,} images"]
    if stats["unreadable"]:
        out.append(f"  {stats['unreadable']:,} unreadable record(s) not counted below; run `omniactor data validate`:")
        out += [f"    {example}" for example in stats["unreadable_examples"]]
    for issue in stats.get("folder_issues", []):
        out.append(f"  {issue}")
    spe = stats["steps_per_episode"]
    if spe:
        out.append(
            f"steps per episode: mean {spe['mean']:.1f}, min {spe['min']}, median {spe['median']:g}, max {spe['max']}"
        )
    for title, key in (("domains", "domains"), ("sources", "sources"), ("action types", "action_types")):
        out.append(f"{title}:")
        out += _table(stats[key], n)
    for source, s in stats["continuous"].items():
        exact = "" if s["quantiles_exact"] else " (quantiles from a uniform sample)"
        out.append(f"continuous actions of {source} ({s['count']:,}){exact}:")
        out.append(f"  {'dim':<10} {'mean':>9} {'std':>9} {'min':>9} {'p01':>9} {'p99':>9} {'max':>9}")
        for i, name in enumerate(s["names"]):
            values = (s["mean"][i], s["std"][i], s["min"][i], s["p01"][i], s["p99"][i], s["max"][i])
            out.append(f"  {name:<10} " + " ".join(f"{v:>9.4f}" for v in values))
        if s["other_dimensions_skipped"]:
            out.append("  (some actions had other dimensions and are not in these statistics)")
    for source, freq in stats["discrete"].items():
        out.append(f"discrete actions of {source}:")
        out += _table(freq, sum(freq.values()))
    return "\n".join(out)
