"""``omniactor demo --study``: the paper's Table 2 at small scale, on the demo's data and budget.

Six training recipes, each run with several seeds on the same collected demonstrations
and the same number of steps, then evaluated on the same unseen seeds:

- ``gui-only`` / ``ea-only``: the dense model trained on one domain's data alone;
- ``mixed-dense`` (the paper's EA&GUI): one dense model on everything;
- ``hard``: every decoder layer, norm and head separated per domain (no sharing);
- ``router``: a learned per-token router over the domain experts in layers K+1..L;
- ``omniactor``: layers 1..K shared, K+1..L and heads separated, routed by domain.

The table gives mean and spread (sample standard deviation over seeds) of the mean
success per domain. The paper (Qwen2-VL-7B, AndroidControl / GUI Odyssey / LIBERO) found
OmniActor > hard > mixed dense on both GUI and embodied tasks; ``study_markdown`` states
whether this run agrees, whatever it finds.
"""

from __future__ import annotations

import itertools
import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from .plan import DemoPlan

#: recipe name -> TrainConfig overrides (domains: which data it trains on)
RECIPES: dict[str, dict[str, Any]] = {
    "gui-only": {"variant": "dense", "domains": ["gui"]},
    "ea-only": {"variant": "dense", "domains": ["embodied"]},
    "mixed-dense": {"variant": "dense"},
    "hard": {"variant": "hard"},
    "router": {"variant": "router"},
    "omniactor": {"variant": "omniactor"},
}
#: the paper's ordering (best first) on both GUI and embodied benchmarks
PAPER_ORDER = ("omniactor", "hard", "mixed-dense")


def recipe_settings(plan: DemoPlan, recipe: str, seed: int) -> dict[str, Any]:
    settings = dict(RECIPES[recipe])
    names = settings.get("domains", list(plan.train["domains"]))
    settings["domains"] = {d: plan.train["domains"][d] for d in names}  # the plan's blocks of the recipe's domains
    settings["seed"] = seed
    settings["max_steps"] = plan.study_steps
    return settings


def run_study(plan: DemoPlan, out: Path, seeds: int, progress: bool) -> dict[str, Any]:
    """Train and evaluate every recipe x seed (each reused when done); returns the table's numbers."""
    from .pipeline import evaluate_agent, train_config, train_run

    study_plan = replace(plan, envs=tuple(replace(env, eval_episodes=env.study_episodes) for env in plan.envs))
    runs: dict[str, list[dict[str, float]]] = {}
    for recipe in RECIPES:
        for seed in range(seeds):
            name = f"study-{recipe}-seed{seed}"
            print(f"[study] {name}", flush=True)
            final = train_run(train_config(plan, out, name, **recipe_settings(plan, recipe, seed)), progress)
            results = evaluate_agent(study_plan, final, out / "eval" / name, "eval_episodes", progress)
            runs.setdefault(recipe, []).append(
                {env.domain: results[env.env]["mean_success_rate"] for env in plan.envs if env.env in results})
    table = summarize_study(runs)
    (out / "study.json").write_text(json.dumps({"runs": runs, "table": table, "steps": plan.study_steps,
                                                "seeds": seeds}, indent=2) + "\n")
    plot_study(table, out / "study.png")
    return {"runs": runs, "table": table, "steps": plan.study_steps, "seeds": seeds}


def summarize_study(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{recipe: {domain: {mean, std, n}}}`` over seeds."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for recipe, per_seed in runs.items():
        for domain in sorted({d for run in per_seed for d in run}):
            values = [run[domain] for run in per_seed if domain in run]
            table.setdefault(recipe, {})[domain] = {
                "mean": round(statistics.fmean(values), 4),
                "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0, "n": len(values)}
    return table


def agrees_with_paper(table: dict[str, dict[str, dict[str, float]]], domain: str) -> bool | None:
    """Whether the means of omniactor > hard > mixed-dense hold in ``domain`` (None if missing)."""
    means = [table.get(r, {}).get(domain, {}).get("mean") for r in PAPER_ORDER]
    if any(m is None for m in means):
        return None
    return all(a > b for a, b in itertools.pairwise(means))


def study_markdown(study: dict[str, Any]) -> str:
    table = study["table"]
    domains = sorted({d for row in table.values() for d in row})
    lines = ["## Study: the paper's variants at small scale", "",
             (f"{study['seeds']} seed(s) per recipe, {study['steps']} training steps each, the same data; "
             "mean success per domain, mean ± sample standard deviation over seeds."), "",
             "| recipe | " + " | ".join(domains) + " |", "|---|" + "---:|" * len(domains)]
    for recipe, row in table.items():
        cells = [f"{row[d]['mean']:.0%} ± {row[d]['std']:.0%}" if d in row else "-" for d in domains]
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    lines += ["", "![study](study.png)", ""]
    for domain in domains:
        verdict = agrees_with_paper(table, domain)
        if verdict is None:
            continue
        lines.append(f"- {domain}: the paper's ordering omniactor > hard > mixed-dense "
                     f"{'holds' if verdict else 'does not hold'} in this run.")
    return "\n".join(lines)


def plot_study(table: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = sorted({d for row in table.values() for d in row})
    recipes = list(table)
    width = 0.8 / max(len(recipes), 1)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for k, recipe in enumerate(recipes):
        xs = [i + (k - (len(recipes) - 1) / 2) * width for i in range(len(domains))]
        means = [table[recipe].get(d, {}).get("mean", 0.0) for d in domains]
        stds = [table[recipe].get(d, {}).get("std", 0.0) for d in domains]
        ax.bar(xs, means, width, yerr=stds, capsize=2, label=recipe)
    ax.set_xticks(range(len(domains)))
    ax.set_xticklabels(domains)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean success")
    ax.set_title("recipes of the paper's Table 2 (small scale)", fontsize=10)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
