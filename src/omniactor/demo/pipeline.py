"""The main job, end to end: collect -> train -> evaluate -> report.

1. **collect**: expert demonstrations from real MiniWoB++ pages (headless Chromium), the
   Meta-World robot (MuJoCo) and BabyAI, on the ``train`` seeds (``omniactor collect``);
2. **train**: one OmniActor agent (layer-heterogeneity MoE, tiny preset) on all of them
   (``omniactor train``), and the same model untrained (0 steps: the same vocabulary,
   tokenizers and shape, random weights) as the baseline;
3. **evaluate**: both agents act in the same environments on unseen ``test`` seeds
   (``omniactor eval``, constrained decoding);
4. **report**: ``report.md``, ``results.json`` and PNGs: success per task and per domain
   (trained, untrained, the expert's rate as the ceiling) and training curves per domain.

Every stage keeps its outputs under ``--out`` and is reused when complete (collection and
evaluation continue episode by episode, training from its last checkpoint), so re-running
the command continues where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from ..errors import OmniactorError
from .plan import PLANS, DemoPlan


class DemoError(OmniactorError, RuntimeError):
    """The demo cannot continue as asked (the message says what to change)."""


class Stages:
    """Named, timed stages; the timings go into the report."""

    def __init__(self, log: Any = print):
        self.timings: dict[str, float] = {}
        self.log = log

    def run(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.log(f"[{name}] ...", flush=True)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.timings[name] = round(time.perf_counter() - start, 1)
        self.log(f"[{name}] done in {self.timings[name]:.0f}s", flush=True)
        return result


def check_environments(plan: DemoPlan) -> None:
    """Refuse to start (with the install hint) if an environment cannot run here."""
    from ..envs.registry import get_spec

    problems = []
    for env in plan.envs:
        spec = get_spec(env.env)
        missing = spec.missing()
        if missing:
            problems.append(f"{env.env}: missing {', '.join(missing)} (install: {spec.install_hint()})")
    if problems:
        raise SystemExit("the demo needs its environments:\n  " + "\n  ".join(problems)
                         + "\n`make demo` installs all of them")


def collect_demos(plan: DemoPlan, out: Path, progress: bool) -> dict[str, Any]:
    """Expert demonstrations of every environment (resumed episode by episode)."""
    from ..data.collect import CollectConfig, collect
    from ..envs.registry import resolve_tasks

    summaries = {}
    for env in plan.envs:
        config = CollectConfig(env=env.env, tasks=tuple(resolve_tasks(env.env, list(env.tasks))), episodes=env.demos,
                               out=str(out / "data" / env.env), workers=plan.collect_workers,
                               env_config=env.collect_config, progress=progress)
        summary = collect(config)
        print(summary.format(), flush=True)
        if summary.worker_errors:
            raise SystemExit(f"collecting {env.env} failed: {summary.worker_errors[0]}; re-run to continue")
        summaries[env.env] = summary.to_json()
    return summaries


def train_config(plan: DemoPlan, out: Path, name: str, **overrides: Any) -> Path:
    """Write the run's config file (readable, re-usable with ``omniactor train --config``)."""
    settings = {**plan.train, **overrides}
    settings["data"] = [{"path": str(out / "data" / env.env), "weight": env.weight}
                        for env in plan.envs if env.domain in settings["domains"]]
    settings["output_dir"] = str(out / "runs" / name)
    settings["cache_dir"] = str(out / "cache")
    path = out / "runs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def train_run(config_path: Path, progress: bool) -> Path:
    """Train (or resume) the run of ``config_path``; its ``final/`` folder."""
    from ..training.config import load_config
    from ..training.loop import train

    config = load_config(config_path)
    run = Path(config.output_dir)
    final = run / "final"
    if (run / "config.yaml").exists() and load_config(run / "config.yaml") != config:
        raise DemoError(f"{run} was trained with other settings (e.g. --quick and the full demo share an --out); "
                        "give another --out or delete the folder")
    if not (final / "agent.json").exists():
        train(config, progress=progress)
    return final


def evaluate_agent(plan: DemoPlan, checkpoint: Path, out: Path, episodes_of: str, progress: bool,
                   save_episodes: int = 0) -> dict[str, Any]:
    """Success rates of the agent of ``checkpoint`` on every environment's test seeds."""
    from ..agent import Agent
    from ..evaluation.online import EvalConfig, evaluate

    agent = Agent.from_pretrained(checkpoint)
    results = {}
    for env in plan.envs:
        if env.domain not in agent.settings.domains:
            continue
        episodes = getattr(env, episodes_of)
        config = EvalConfig(env=env.env, tasks=list(env.tasks), episodes=episodes, out=str(out / env.env),
                            checkpoint=str(checkpoint), workers=plan.eval_workers, env_config=env.eval_config,
                            domain=env.domain, save_episodes=save_episodes, agent_options=dict(env.decoding),
                            progress=progress)
        results[env.env] = evaluate(config, agent=agent)
    return results


def rl_config(plan: DemoPlan, trained: Path, out: Path) -> Any:
    """The ``omniactor rl`` run of ``--rl``: each planned environment's domain, rolled out on its
    validation seeds with the evaluation's settings, evaluated after on the trained agent's test
    episodes (the demo's own evaluation is the "before")."""
    from ..rl.config import load_config

    assert plan.rl is not None
    domains = {env.domain: {"env": env.env, "tasks": list(env.tasks), "split": "validation",
                            "env_config": dict(env.eval_config), "episodes": plan.rl.episodes[env.env],
                            "reward_scale": plan.rl.reward_scale.get(env.env, 1.0),
                            **plan.rl.learning_rates.get(env.env, {}),
                            "eval_episodes": env.eval_episodes, "eval_decoding": dict(env.decoding)}
               for env in plan.envs if env.env in plan.rl.episodes}
    settings = {**plan.rl.settings, "init": str(trained), "output_dir": str(out / "rl"), "domains": domains,
                "evaluate_before": False, "workers": plan.eval_workers}
    if settings.get("sft_coef"):  # GEA's SFT term, on the demonstrations the agent was trained on
        settings["sft_data"] = [str(out / "data" / env.env) for env in plan.envs if env.env in plan.rl.episodes]
        settings["cache_dir"] = str(out / "cache")
    path = out / "rl.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return load_config(path)


def rl_stage(plan: DemoPlan, trained: Path, out: Path, progress: bool) -> dict[str, Any]:
    """RL of the trained agent, then its evaluation: ``{env: results}`` as ``evaluate_agent`` gives."""
    from ..rl.loop import run

    if plan.rl is None:
        raise DemoError(f"the {plan.name} plan has no RL stage")
    config = rl_config(plan, trained, out)
    run(config, progress=progress)
    return {rollout.env: json.loads((out / "rl" / "eval" / "after" / domain / "results.json").read_text())
            for domain, rollout in config.domains.items()}


def expert_rates(collected: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The expert's success on the collected (train) seeds: the ceiling of imitation."""
    return {env: {task: numbers["success_rate"] for task, numbers in summary["tasks"].items()}
            for env, summary in collected.items()}


def run_demo(out: str | Path = "outputs/demo", quick: bool = False, study: bool = False,
             progress: bool = True, seeds: int = 3, rl: bool = False) -> int:
    """The whole job; returns a process exit code. ``study`` adds the paper's comparison, ``rl`` online
    RL of the trained agent. Raises ``DemoError`` when it cannot continue as asked (the command line
    prints it as ``error: ...``)."""
    return _run(Path(out), quick, study, progress, seeds, rl)


def _run(out: Path, quick: bool, study: bool, progress: bool, seeds: int, rl: bool = False) -> int:
    from ..evaluation.online import EvalError

    os.environ.setdefault("MUJOCO_GL", "egl")
    plan = PLANS["quick" if quick else "full"]
    out.mkdir(parents=True, exist_ok=True)
    check_environments(plan)
    stages = Stages()
    started = time.perf_counter()
    collected = stages.run("collect", collect_demos, plan, out, progress)
    trained = stages.run("train", train_run, train_config(plan, out, "omniactor"), progress)
    untrained = stages.run("untrained model", train_run, train_config(plan, out, "untrained", max_steps=0), False)
    try:
        results = {
            "trained": stages.run("evaluate trained", evaluate_agent, plan, trained, out / "eval" / "trained",
                                  "eval_episodes", progress, save_episodes=1),
            "untrained": stages.run("evaluate untrained", evaluate_agent, plan, untrained,
                                    out / "eval" / "untrained", "baseline_episodes", progress),
        }
    except EvalError as err:
        raise DemoError(f"{err} (the evaluations in {out / 'eval'} belong to another plan)") from None
    if rl:
        results["after RL"] = stages.run("rl", rl_stage, plan, trained, out, progress)
    study_results = None
    if study:
        from .study import run_study

        study_results = stages.run("study", run_study, plan, out, seeds, progress)
    from .report import write_report

    stages.timings["total"] = round(time.perf_counter() - started, 1)
    report = write_report(out, plan, collected, results, expert_rates(collected), stages.timings, study_results)
    print(f"\nreport: {report}")
    written = json.loads((out / "results.json").read_text())
    for domain, numbers in written["domains"].items():
        low, high = written["intervals"][domain]["trained"]["ci95"]
        after = ""
        if "after RL" in numbers:
            rl_low, rl_high = written["intervals"][domain]["after RL"]["ci95"]
            after = f"   after RL {numbers['after RL']:.0%} ({rl_low:.0%}-{rl_high:.0%})"
        print(f"  {domain:<9} trained {numbers['trained']:.0%} ({low:.0%}-{high:.0%})   "
              f"untrained {numbers['untrained']:.0%}   expert {numbers['expert']:.0%}{after}")
    return 0
