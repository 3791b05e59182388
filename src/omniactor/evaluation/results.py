"""Success rates with their uncertainty, as ``results.json``, a ``report.md`` table and a bar chart.

Every online evaluation (``omniactor eval``, the demo, the study) reports through here, so
the numbers are computed one way: per task the successes over episodes with a Wilson 95%
interval (sensible at 0% and 100%, unlike the normal approximation), the mean episode
length, and the failures by cause; per evaluation the mean over tasks, with the Wilson
interval of all its episodes pooled (``pooled_interval``).
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..fileio import write_bytes_atomic, write_text_atomic

#: why an episode did not succeed
FAILURE_CAUSES = ("timeout", "failed", "refused_action", "expert_error", "env_error")


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default); ``(0, 1)`` for no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize_task(episodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-task numbers from episode records (``success``, ``steps``, ``cause``, ``invalid``, ``actions``)."""
    n = len(episodes)
    successes = sum(bool(e["success"]) for e in episodes)
    low, high = wilson_interval(successes, n)
    causes = Counter(e["cause"] for e in episodes if not e["success"])
    return {
        "episodes": n,
        "successes": successes,
        "success_rate": round(successes / n, 4) if n else 0.0,
        "ci95": [round(low, 4), round(high, 4)],
        "mean_steps": round(sum(e["steps"] for e in episodes) / n, 2) if n else 0.0,
        "failures": {cause: causes.get(cause, 0) for cause in FAILURE_CAUSES if causes.get(cause, 0)},
        "invalid_actions": sum(e.get("invalid", 0) for e in episodes),
        "actions": sum(e.get("actions", e["steps"]) for e in episodes),
    }


def pooled_interval(per_task: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Successes, episodes and the Wilson 95% interval of several tasks' episodes pooled.

    With as many episodes per task (as every demo evaluation has), the pooled rate is the mean
    over tasks, and the interval is conservative: tasks of different rates make the mean vary
    less than one binomial of the same size would."""
    successes = sum(int(t["successes"]) for t in per_task.values())
    episodes = sum(int(t["episodes"]) for t in per_task.values())
    low, high = wilson_interval(successes, episodes)
    return {"successes": successes, "episodes": episodes, "ci95": [round(low, 4), round(high, 4)]}


def summarize(episodes: Iterable[Mapping[str, Any]], tasks: Sequence[str] | None = None) -> dict[str, Any]:
    """``{"tasks": {task: numbers}, "mean_success_rate": ..., "episodes": ...}`` in ``tasks`` order."""
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for episode in episodes:
        by_task.setdefault(episode["task"], []).append(episode)
    order = list(tasks) if tasks is not None else sorted(by_task)
    per_task = {task: summarize_task(by_task.get(task, [])) for task in order}
    rates = [t["success_rate"] for t in per_task.values() if t["episodes"]]
    pooled = pooled_interval(per_task)
    return {
        "tasks": per_task,
        "mean_success_rate": round(sum(rates) / len(rates), 4) if rates else 0.0,
        "episodes": pooled["episodes"],
        "successes": pooled["successes"],
        "ci95": pooled["ci95"],
    }


def write_results(out: str | Path, results: Mapping[str, Any], title: str) -> None:
    """``results.json``, ``report.md`` and ``success.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")  # whole or the previous one
    write_text_atomic(out / "report.md", markdown_report(results, title, chart="success.png"))
    plot_success({title: results["tasks"]}, out / "success.png", title=title)


def markdown_report(results: Mapping[str, Any], title: str, chart: str | None = None) -> str:
    lines = [f"# {title}", ""]
    pooled = ("tasks", "mean_success_rate", "episodes", "successes", "ci95")
    meta = {k: v for k, v in results.items() if k not in pooled}
    if meta:
        lines += [f"- {k}: `{json.dumps(v) if not isinstance(v, str) else v}`" for k, v in meta.items()] + [""]
    lines += ["| task | success | 95% interval | episodes | mean steps | failures | invalid actions |",
              "|---|---:|---|---:|---:|---|---:|"]
    for task, t in results["tasks"].items():
        failures = ", ".join(f"{k} {v}" for k, v in t["failures"].items()) or "-"
        lines.append(f"| {task} | {t['success_rate']:.0%} | {t['ci95'][0]:.0%}-{t['ci95'][1]:.0%} | "
                     f"{t['episodes']} | {t['mean_steps']:.1f} | {failures} | {t['invalid_actions']} |")
    mean = f"Mean success over tasks: **{results['mean_success_rate']:.1%}** ({results['episodes']} episodes"
    if "ci95" in results:
        mean += f"; 95% interval of the pooled episodes {results['ci95'][0]:.0%}-{results['ci95'][1]:.0%}"
    mean += ")."
    lines += ["", mean, ""]
    if chart:
        lines += [f"![success rates]({chart})", ""]
    return "\n".join(lines)


def plot_success(series: Mapping[str, Mapping[str, Mapping[str, Any]]], path: str | Path, title: str = "",
                 ceiling: Mapping[str, float] | None = None) -> Path:
    """Grouped bars of success per task, one group member per series (e.g. trained / untrained),
    with the 95% intervals as error bars and an optional ceiling (the expert's rate) as ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(task for per_task in series.values() for task in per_task))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(tasks) * max(1, len(series)) ** 0.5 + 2), 3.6))
    for k, (name, per_task) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(tasks))]
        rates = [per_task.get(t, {}).get("success_rate", 0.0) for t in tasks]
        low = [r - per_task.get(t, {}).get("ci95", [r, r])[0] for t, r in zip(tasks, rates)]
        high = [per_task.get(t, {}).get("ci95", [r, r])[1] - r for t, r in zip(tasks, rates)]
        ax.bar(xs, rates, width, label=name, yerr=[low, high], capsize=2)
    if ceiling:
        labelled = False
        for i, task in enumerate(tasks):
            if task in ceiling:
                ax.hlines(ceiling[task], i - 0.45, i + 0.45, colors="black", linestyles="dashed", linewidth=1,
                          label=None if labelled else "expert")
                labelled = True
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate")
    if title:
        ax.set_title(title, fontsize=10)
    if len(series) > 1 or ceiling:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    picture = io.BytesIO()
    fig.savefig(picture, dpi=100, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    write_bytes_atomic(path, picture.getvalue())
    return path
