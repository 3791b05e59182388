"""The demo's report: what training bought, per task and per domain, and how training went.

``results.json`` holds every number; ``report.md`` shows them with three pictures:
``success.png`` (trained vs untrained per task, the expert's rate as a dashed ceiling),
``domains.png`` (the same per domain) and ``training.png`` (training loss per domain).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .plan import DemoPlan


def training_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """``{domain: [(step, loss), ...]}`` from a run's ``metrics.jsonl``."""
    curves: dict[str, list[tuple[int, float]]] = {}
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return curves
    for line in path.read_text().splitlines():
        record = json.loads(line)
        for key, value in record.items():
            if key.startswith("loss/domain/"):
                curves.setdefault(key.split("/")[-1], []).append((record["step"], value))
    return curves


def plot_training(curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for domain, points in sorted(curves.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], label=domain)
    ax.set_xlabel("step")
    ax.set_ylabel("answer-token loss")
    ax.set_yscale("log")
    ax.set_title("training loss per domain", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def domain_summary(plan: DemoPlan, results: dict[str, dict[str, Any]], experts: dict[str, dict[str, float]]
                   ) -> dict[str, dict[str, float]]:
    """Mean success over each domain's tasks, for the trained and untrained agents and the expert."""
    out = {}
    for env in plan.envs:
        row = {}
        for name, by_env in results.items():
            if env.env in by_env:
                row[name] = by_env[env.env]["mean_success_rate"]
        rates = list(experts.get(env.env, {}).values())
        row["expert"] = round(sum(rates) / len(rates), 4) if rates else 0.0
        out[env.domain] = row
    return out


def write_report(out: Path, plan: DemoPlan, collected: dict[str, Any], results: dict[str, dict[str, Any]],
                 experts: dict[str, dict[str, float]], timings: dict[str, float],
                 study: dict[str, Any] | None = None) -> Path:
    from ..evaluation.results import plot_success

    domains = domain_summary(plan, results, experts)
    per_task = {name: {task: numbers for env in by_env.values() for task, numbers in env["tasks"].items()}
                for name, by_env in results.items()}
    ceiling = {task: rate for env in experts.values() for task, rate in env.items()}
    plot_success(per_task, out / "success.png", title=f"demo ({plan.name}): success on unseen seeds",
                 ceiling=ceiling)
    plot_success({name: {d: {"success_rate": row[name], "ci95": [row[name], row[name]]} for d, row in domains.items()
                         if name in row} for name in results}, out / "domains.png", title="mean success per domain",
                 ceiling={d: row["expert"] for d, row in domains.items()})
    curves = training_curves(out / "runs" / "omniactor")
    if curves:
        plot_training(curves, out / "training.png")
    data = {"plan": plan.name, "domains": domains, "results": results, "expert": experts,
            "collected": {env: {"records": sum(t["steps_written"] for t in s["tasks"].values()),
                                "episodes": sum(t["episodes"] for t in s["tasks"].values())}
                          for env, s in collected.items()},
            "timings_s": timings, "train": plan.train, "study": study}
    (out / "results.json").write_text(json.dumps(data, indent=2) + "\n")

    lines = [f"# omniactor demo ({plan.name})", "",
             ("One OmniActor agent (tiny preset, layer-heterogeneity MoE) trained on expert demonstrations from "
             "MiniWoB++ (web pages in headless Chromium), Meta-World (a simulated Sawyer arm in MuJoCo) and BabyAI, "
             "then evaluated by acting in the same environments on seeds it never saw (the test split), with "
             "constrained decoding. The untrained model has the same shape, vocabulary and action tokenizers, "
             "with random weights. The expert's rate is its success on the collected (train) seeds: the ceiling "
             "of imitation."), "",
             "## Success per domain", "", "| domain | trained | untrained | expert |", "|---|---:|---:|---:|"]
    for domain, row in domains.items():
        lines.append(f"| {domain} | {row.get('trained', 0):.0%} | {row.get('untrained', 0):.0%} | {row['expert']:.0%} |")
    lines += ["", "![success per domain](domains.png)", "", "## Success per task", "",
              "| environment | task | trained | 95% interval | untrained | expert | episodes (trained / untrained) |",
              "|---|---|---:|---|---:|---:|---|"]
    for env in plan.envs:
        trained = results.get("trained", {}).get(env.env, {}).get("tasks", {})
        untrained = results.get("untrained", {}).get(env.env, {}).get("tasks", {})
        for task, numbers in trained.items():
            base = untrained.get(task, {})
            low, high = numbers["ci95"]
            lines.append(f"| {env.env} | {task} | {numbers['success_rate']:.0%} | {low:.0%}-{high:.0%} | "
                         f"{base.get('success_rate', 0):.0%} | {experts.get(env.env, {}).get(task, 0):.0%} | "
                         f"{numbers['episodes']} / {base.get('episodes', 0)} |")
    lines += ["", "![success per task](success.png)", ""]
    if curves:
        lines += ["## Training", "", (f"{plan.train['max_steps']} steps of {plan.train['batch_size']} samples "
                  f"(domain-homogeneous batches, learning rate {plan.train['learning_rate']})."), "",
                  "![training loss per domain](training.png)", ""]
    lines += ["## Data", "", "| environment | tasks | expert episodes | records |", "|---|---|---:|---:|"]
    for env in plan.envs:
        c = data["collected"].get(env.env, {})
        lines.append(f"| {env.env} | {', '.join(env.tasks)} | {c.get('episodes', 0)} | {c.get('records', 0)} |")
    if study:
        from .study import study_markdown

        lines += ["", study_markdown(study)]
    lines += ["", "## Time", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {stage} | {seconds:.0f} |" for stage, seconds in timings.items()]
    lines += ["", ("Every number is in `results.json`; per-environment details (failures by cause, GIFs of the "
              "first episode of each task) are under `eval/`."), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
