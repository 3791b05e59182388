"""The demo's report: what training bought, per task and per domain, and how training went.

``results.json`` holds every number; ``report.md`` shows them with three pictures:
``success.png`` (trained vs untrained per task, the expert's rate as a dashed ceiling),
``domains.png`` (the same per domain) and ``training.png`` (training loss per domain).
Each domain's rate comes with its 95% interval (``domain_intervals``), and the report says what
the run's numbers depend on besides the code and the plan (``reproducibility``).
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


def domain_intervals(plan: DemoPlan, results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{domain: {trained|untrained: {successes, episodes, ci95}}}``: the Wilson 95% interval of each
    domain's episodes pooled over its tasks (``evaluation.results.pooled_interval``)."""
    from ..evaluation.results import pooled_interval

    return {env.domain: {name: pooled_interval(by_env[env.env]["tasks"]) for name, by_env in results.items()
                         if env.env in by_env} for env in plan.envs}


def summary_line(plan: DemoPlan, domains: dict[str, dict[str, float]], intervals: dict[str, dict[str, Any]]) -> str:
    """One sentence of the trained agent's rate, interval and episodes per domain (the README's line)."""
    names = {"miniwob": "MiniWoB++", "metaworld": "Meta-World", "babyai": "BabyAI"}
    parts = []
    for env in plan.envs:
        pooled = intervals.get(env.domain, {}).get("trained")
        if pooled is None:
            continue
        low, high = pooled["ci95"]
        parts.append(f"{domains[env.domain]['trained']:.0%} of {names.get(env.env, env.env)} episodes "
                     f"(95% interval {low:.0%}-{high:.0%}, {pooled['episodes']} episodes)")
    return "The trained agent succeeds on " + ", ".join(parts) + "." if parts else ""


def reproducibility(out: Path, collected: dict[str, Any], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the numbers depend on besides the code, the plan and the seeds: torch, the CPU it
    trained on and its thread counts (training, acting), and the environment restarts (the one
    event that timing decides)."""
    runtime_file = out / "runs" / "omniactor" / "runtime.jsonl"
    starts = [json.loads(line) for line in runtime_file.read_text().splitlines()] if runtime_file.exists() else []
    acting = sorted({r["torch_threads"] for by_env in results.values() for r in by_env.values()
                     if "torch_threads" in r})
    return {"torch": starts[-1]["torch"] if starts else None,
            "cpu": starts[-1].get("cpu") if starts else None,
            "cpu_capability": starts[-1].get("cpu_capability") if starts else None,
            "train_threads": sorted({s["torch_threads"] for s in starts}), "train_starts": len(starts),
            "eval_threads": acting,
            "collect_restarts": {env: s.get("restarts", 0) for env, s in collected.items()},
            "eval_restarts": {name: {env: r.get("restarts", 0) for env, r in by_env.items()}
                              for name, by_env in results.items()}}


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def rl_lines(plan: DemoPlan, results: dict[str, dict[str, Any]], intervals: dict[str, dict[str, Any]],
             out: Path) -> list[str]:
    """The ``--rl`` section: each RL-trained domain before and after RL on the same test episodes."""
    rl_results = json.loads((out / "rl" / "results.json").read_text()) if (out / "rl" / "results.json").exists() \
        else {}
    lines = ["## Online RL (`--rl`)", "",
             (f"The trained agent after {rl_results.get('iterations', '?')} iterations of "
              f"{rl_results.get('algorithm', 'RL')} in the same environments (rollouts on validation seeds: "
              f"{rl_results.get('rollout_seconds', 0):.0f} s, updates {rl_results.get('update_seconds', 0):.0f} s), "
              "evaluated on the trained agent's test episodes (same seeds, decoding and settings). A difference "
              "counts only where the 95% intervals do not overlap."), "",
             "| domain | task | trained (SFT) | 95% interval | after RL | 95% interval | episodes | measured difference |",
             "|---|---|---:|---|---:|---|---:|---|"]
    for env in plan.envs:
        after_env = results["after RL"].get(env.env)
        if after_env is None:
            continue
        before_tasks = results["trained"][env.env]["tasks"]
        rows = [(task, before_tasks[task], numbers) for task, numbers in after_env["tasks"].items()]
        pooled_before, pooled_after = intervals[env.domain]["trained"], intervals[env.domain]["after RL"]
        rows.append(("all tasks", {"success_rate": pooled_before["successes"] / max(pooled_before["episodes"], 1),
                                   "ci95": pooled_before["ci95"], "episodes": pooled_before["episodes"]},
                     {"success_rate": pooled_after["successes"] / max(pooled_after["episodes"], 1),
                      "ci95": pooled_after["ci95"], "episodes": pooled_after["episodes"]}))
        for task, before, after in rows:
            verdict = "none (intervals overlap)" if overlap(before["ci95"], after["ci95"]) else (
                "higher" if after["success_rate"] > before["success_rate"] else "lower")
            lines.append(f"| {env.domain} | {task} | {before['success_rate']:.0%} | {before['ci95'][0]:.0%}-"
                         f"{before['ci95'][1]:.0%} | {after['success_rate']:.0%} | {after['ci95'][0]:.0%}-"
                         f"{after['ci95'][1]:.0%} | {after['episodes']} | {verdict} |")
    lines += ["", "RL's own report: `rl/report.md`; rollout success and return per iteration:", "",
              "![RL progress](rl/rl.png)", ""]
    return lines


def _reproducibility_lines(facts: dict[str, Any]) -> list[str]:
    def listed(values: list[Any]) -> str:
        return " and ".join(str(v) for v in values) or "unknown"

    restarts = sum(facts["collect_restarts"].values()) + sum(
        n for by_env in facts["eval_restarts"].values() for n in by_env.values())
    return ["## Reproducibility", "",
            (f"torch {facts['torch'] or 'unknown'} on {facts.get('cpu') or 'an unrecorded CPU'} "
             f"({facts.get('cpu_capability') or 'unknown'} kernels); training used {listed(facts['train_threads'])} "
             f"torch thread(s) ({facts['train_starts']} start(s)), acting {listed(facts['eval_threads'])} beside the "
             "environment processes. The same command on the same machine, with the same thread counts, gives the same "
             "numbers: demonstrations are fixed by their seeds, training reads them in episode order and its "
             "float sums are bitwise repeatable at a fixed thread count, and every evaluation episode has fixed "
             "seeds for its environment and for its sampled answers, whatever batch it acts in. Another thread "
             "count (e.g. `OMP_NUM_THREADS`) trains another model, and so may another CPU (torch picks its "
             "kernels by the CPU's vector instructions)."),
            "",
            (f"Environment restarts (a browser or simulator that died; its episode runs again from its seed): "
             f"{restarts}. `eval/*/*/episodes.jsonl` holds each episode's `trajectory` (a digest of its actions) "
             "to compare two runs episode by episode (`omniactor.evaluation.online.compare_runs`). "
             "docs/demo.md (Reproducibility) lists each source of variation and what remains."), ""]


def write_report(out: Path, plan: DemoPlan, collected: dict[str, Any], results: dict[str, dict[str, Any]],
                 experts: dict[str, dict[str, float]], timings: dict[str, float],
                 study: dict[str, Any] | None = None) -> Path:
    from ..evaluation.results import plot_success

    domains = domain_summary(plan, results, experts)
    intervals = domain_intervals(plan, results)
    facts = reproducibility(out, collected, results)
    per_task = {name: {task: numbers for env in by_env.values() for task, numbers in env["tasks"].items()}
                for name, by_env in results.items()}
    ceiling = {task: rate for env in experts.values() for task, rate in env.items()}
    plot_success(per_task, out / "success.png", title=f"demo ({plan.name}): success on unseen seeds",
                 ceiling=ceiling)
    per_domain = {name: {d: {"success_rate": row[name], "ci95": intervals[d][name]["ci95"]}
                         for d, row in domains.items() if name in row} for name in results}
    plot_success(per_domain, out / "domains.png", title="mean success per domain",
                 ceiling={d: row["expert"] for d, row in domains.items()})
    curves = training_curves(out / "runs" / "omniactor")
    if curves:
        plot_training(curves, out / "training.png")
    data = {"plan": plan.name, "domains": domains, "intervals": intervals, "results": results, "expert": experts,
            "collected": {env: {"records": sum(t["steps_written"] for t in s["tasks"].values()),
                                "episodes": sum(t["episodes"] for t in s["tasks"].values())}
                          for env, s in collected.items()},
            "timings_s": timings, "train": plan.train, "reproducibility": facts, "study": study}
    (out / "results.json").write_text(json.dumps(data, indent=2) + "\n")

    lines = [f"# omniactor demo ({plan.name})", "",
             ("One OmniActor agent (tiny preset, layer-heterogeneity MoE) trained on expert demonstrations from "
             "MiniWoB++ (web pages in headless Chromium), Meta-World (a simulated Sawyer arm in MuJoCo) and BabyAI, "
             "then evaluated by acting in the same environments on seeds it never saw (the test split), with "
             "constrained decoding. The untrained model has the same shape, vocabulary and action tokenizers, "
             "with random weights. The expert's rate is its success on the collected (train) seeds: the ceiling "
             "of imitation."), "",
             "## Success per domain", "",
             ("Each domain's rate is the mean over its tasks; its 95% interval is the Wilson interval of the "
              "domain's episodes pooled over its tasks (every task has as many episodes)."), "",
             "| domain | trained | 95% interval | untrained | 95% interval | expert | episodes (trained / untrained) |",
             "|---|---:|---|---:|---|---:|---|"]
    for domain, row in domains.items():
        cells = []
        for name in ("trained", "untrained"):
            pooled = intervals.get(domain, {}).get(name)
            low, high = pooled["ci95"] if pooled else (0.0, 1.0)
            cells.append(f"{row.get(name, 0):.0%} | {low:.0%}-{high:.0%}")
        episodes = " / ".join(str(intervals.get(domain, {}).get(name, {}).get("episodes", 0))
                              for name in ("trained", "untrained"))
        lines.append(f"| {domain} | {cells[0]} | {cells[1]} | {row['expert']:.0%} | {episodes} |")
    if any(env.baseline_episodes < env.eval_episodes for env in plan.envs):
        counts = ", ".join(f"{e.env} {e.eval_episodes} / {e.baseline_episodes}" for e in plan.envs)
        lines += ["", ("The untrained model acts on fewer episodes per task than the trained agent "
                       f"({counts}), which keeps the demo within its time; its intervals are wider.")]
    line = summary_line(plan, domains, intervals)
    if line:
        lines += ["", f"Summary: {line}"]
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
    if "after RL" in results:
        lines += rl_lines(plan, results, intervals, out)
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
    lines += ["", *_reproducibility_lines(facts)]
    lines += ["## Time", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {stage} | {seconds:.0f} |" for stage, seconds in timings.items()]
    lines += ["", ("Every number is in `results.json`; per-environment details (failures by cause, GIFs of the "
              "first episode of each task) are under `eval/`."), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
