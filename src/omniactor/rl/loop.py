"""``omniactor rl``: GEA's second stage, top to bottom.

``run(config)``:
1. loads the SFT agent (``init``), freezes what RL must not touch (``learner.trainable_parameters``),
   optionally wraps the trainable projections in LoRA;
2. evaluates it on ``test`` seeds (``omniactor eval``'s harness, in ``eval/before/<domain>``);
3. per iteration: rollouts on the ``train``/``validation`` seeds (``rollout.collect``), the
   PPO/GRPO update (``learner.Learner``), one ``metrics.jsonl`` line and TensorBoard scalars
   per domain, a progress bar with return and success, and a checkpoint every ``save_every``
   iterations (written to a temporary folder and renamed: complete or absent);
4. saves the agent to ``final/`` and evaluates it again on the same test seeds
   (``eval/after/<domain>``); ``report.md``, ``results.json`` and ``rl.png`` (success and
   return per iteration) sum it up.

Re-running the same command continues from the newest checkpoint: the trained parameters, both
optimizers and the iteration. The rollouts of an iteration depend only on the parameters, the
seed and the iteration (the episodes' seeds and sampling streams are derived from them), so a
run killed at any point and resumed reaches the parameters of an uninterrupted run (on the same
machine and thread count). Several processes (``accelerate launch`` / ``torchrun``): each runs
its own environment workers on its share of the episodes, the gradients are summed over
processes (``learner.Collective``), and the first process writes the outputs.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import OmniactorError
from ..fileio import JsonLinesAppender, read_json_lines, write_text_atomic
from .config import RLConfig, save_config, to_plain
from .learner import Collective, Learner, RLError, trainable_parameters
from .rollout import TaskOutcomes

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "rl_state.json"
METRICS_FILE = "metrics.jsonl"
#: keys a resumed run may change (they do not change what an iteration computes)
RESUMABLE_CHANGES = ("iterations", "save_every", "keep_checkpoints", "evaluate_before")


# ---------------------------------------------------------------------------- checkpoints


def complete_checkpoints(out: Path) -> list[Path]:
    from ..training.loop import complete_checkpoints as complete

    return complete(out, STATE_FILE)


def save_checkpoint(out: Path, learner: Learner, iteration: int, keep: int,
                    outcomes: dict[str, TaskOutcomes] | None = None) -> Path:
    final = out / f"{CHECKPOINT_PREFIX}{iteration:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({**learner.state_dict(), "torch_rng": torch.random.get_rng_state()}, tmp / "learner.pt")
    (tmp / STATE_FILE).write_text(json.dumps({"iteration": iteration, "task_outcomes": {
        domain: o.counts for domain, o in (outcomes or {}).items()}}))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in complete_checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, learner: Learner) -> tuple[int, dict[str, TaskOutcomes]]:
    """The iteration a checkpoint was saved after, and each domain's rollout outcomes so far."""
    state = torch.load(path / "learner.pt", map_location="cpu", weights_only=False)
    learner.load_state_dict(state)
    torch.random.set_rng_state(state["torch_rng"])
    saved = json.loads((path / STATE_FILE).read_text())
    outcomes = {domain: TaskOutcomes(counts) for domain, counts in saved.get("task_outcomes", {}).items()}
    return int(saved["iteration"]), outcomes


def check_same_run(out: Path, config: RLConfig) -> None:
    """A resumed run must be the same run: refuse an output folder written with other settings."""
    import yaml

    written = out / "config.yaml"
    if not written.exists():
        return
    before = yaml.safe_load(written.read_text()) or {}
    now = json.loads(json.dumps(to_plain(config)))
    changed = sorted(k for k in set(before) | set(now) if k not in RESUMABLE_CHANGES and before.get(k) != now.get(k))
    if changed:
        raise RLError(f"{out} holds an RL run with other settings ({', '.join(changed)}); give another "
                      "output_dir or delete it")


# ---------------------------------------------------------------------------- evaluation


def evaluate_domain(agent: Any, config: RLConfig, domain: str, out: Path, progress: bool) -> dict[str, Any]:
    """The agent on ``domain``'s test seeds (greedy unless ``eval_decoding`` says otherwise)."""
    from ..evaluation.online import EvalConfig, evaluate

    rollout = config.domains[domain]
    recording, agent.record = agent.record, False
    try:
        return evaluate(EvalConfig(env=rollout.env, tasks=list(rollout.tasks) or ["all"], episodes=rollout.eval_episodes,
                                   out=str(out), split="test", seed=config.seed, env_config=dict(rollout.env_config),
                                   domain=domain, agent_options=dict(rollout.eval_decoding), workers=config.workers,
                                   progress=progress), agent=agent)
    finally:
        agent.record = recording


def evaluate_all(agent: Any, config: RLConfig, out: Path, stage: str, progress: bool) -> dict[str, Any]:
    return {d: evaluate_domain(agent, config, d, out / "eval" / stage / d, progress)
            for d, r in config.domains.items() if r.eval_episodes > 0}


# ---------------------------------------------------------------------------- the run


def apply_lora(model: Any, settings: dict[str, Any], parameters: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """LoRA on the trainable linear projections (``parameters``' modules); the trainable heads
    stay fully trained. Returns the new trainable parameters (names as in the PEFT model)."""
    from peft import LoraConfig, get_peft_model
    from torch import nn

    chosen_modules = {name.rsplit(".", 1)[0] for name in parameters}
    targets = [name for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and name in chosen_modules and "omniactor_adapters" not in name]
    if not targets:
        raise RLError("lora: no linear projection among the trainable parameters")
    heads = {name for name in parameters if "omniactor_adapters." in name}
    peft_model = get_peft_model(model, LoraConfig(r=settings.get("r", 16), lora_alpha=settings.get("alpha", 32),
                                                  lora_dropout=0.0, target_modules=targets))
    trainable = {}
    for name, parameter in peft_model.named_parameters():
        plain = name.replace("base_model.model.", "", 1)
        keep = "lora_" in name or plain in heads
        parameter.requires_grad_(keep)
        if keep:
            trainable[name] = parameter
    return peft_model, trainable


def task_metrics(batch: Any, tasks: list[str], collective: Collective) -> dict[str, tuple[float, float]]:
    """Per task of the domain: its rollout episodes and successes this iteration, over every process."""
    counts = batch.task_counts()
    totals = collective.sum(torch.tensor([counts.get(t, (0, 0)) for t in tasks], dtype=torch.float64)).tolist()
    return {task: (episodes, successes) for task, (episodes, successes) in zip(tasks, totals) if episodes}


def domain_metrics(batch: Any, collective: Collective, expert_labels: bool = False) -> dict[str, float]:
    """Success, return and length of a domain's rollouts, over every process (and the share of
    steps the expert labelled, with ``expert_labels``)."""
    trajectories = batch.trajectories
    totals = collective.sum(torch.tensor([
        len(trajectories), sum(t.success for t in trajectories), sum(t.episode_return for t in trajectories),
        sum(len(t.steps) for t in trajectories), batch.restarts, batch.env_failures, batch.expert_labelled],
        dtype=torch.float64)).tolist()
    episodes = max(totals[0], 1.0)
    metrics = {"episodes": totals[0], "success": totals[1] / episodes, "return": totals[2] / episodes,
               "episode_length": totals[3] / episodes, "env_steps": totals[3], "env_restarts": totals[4],
               "env_failures": totals[5]}
    if expert_labels:
        metrics["expert_labelled"] = totals[6] / max(totals[3], 1.0)  # the share of steps the expert labelled
    return metrics


def action_kinds(action_tokenizer: Any) -> tuple[str, ...]:
    """The kinds of action ``action_shares`` counts for a domain: a discrete space's action names,
    then the GUI action types (a continuous action has no kinds to count)."""
    from ..actions import GUI_ACTION_TYPES, DiscreteSpace

    space = getattr(action_tokenizer, "space", None)
    names = tuple(space.names) if isinstance(space, DiscreteSpace) else ()
    return tuple(dict.fromkeys(names + tuple(GUI_ACTION_TYPES)))  # a discrete action named like a GUI type counts once


def action_kind(action: Any) -> str:
    """A discrete action's name, otherwise the action's type (click, type, ..., continuous)."""
    from ..actions import DiscreteAction

    return action.name if isinstance(action, DiscreteAction) else action.type


def action_shares(batch: Any, kinds: Sequence[str], collective: Collective) -> dict[str, float]:
    """The share of a domain's rollout acts of each kind in ``kinds``, over every process (the kinds
    never taken are left out). A policy gradient that mostly pushes down the acts taken moves a
    softmax's mass onto the others, no-ops included: this is where it shows."""
    counts = Counter(action_kind(s.action) for t in batch.trajectories for s in t.steps if s.action is not None)
    totals = collective.sum(torch.tensor([float(counts.get(k, 0)) for k in kinds], dtype=torch.float64)).tolist()
    acts = sum(totals)
    return {kind: count / acts for kind, count in zip(kinds, totals) if count} if acts else {}


def set_initial_spreads(agent: Any, config: RLConfig) -> None:
    """Each ``domains.<d>.init_std``: the regression head's ``log_std`` set to its log (a resumed
    run then loads the checkpoint's own)."""
    for domain, rollout in config.domains.items():
        if rollout.init_std is None:
            continue
        adapter = agent.adapters[domain]
        if adapter.output != "regression_head":
            raise RLError(f"domains.{domain}.init_std: the domain's output is {adapter.output!r}; init_std sets "
                          "the spread of a regression head's Gaussian (remove it for this domain)")
        with torch.no_grad():
            adapter.head(agent.model).log_std.fill_(math.log(rollout.init_std))


def resume(out: Path, config: RLConfig, learner: Learner, say: Callable[[str], None],
           main: bool) -> tuple[int, dict[str, TaskOutcomes]]:
    """The iteration to start from and the task outcomes so far: the last complete checkpoint's, or none.

    The metrics of the iterations after that checkpoint are dropped: they are computed again.
    """
    start = 0
    outcomes = {d: TaskOutcomes() for d in config.domains}
    checkpoints = complete_checkpoints(out)
    if checkpoints:
        start, saved = load_checkpoint(checkpoints[-1], learner)
        outcomes.update(saved)
        say(f"resuming from {checkpoints[-1]} (iteration {start})")
    if main:
        kept, _ = read_json_lines(out / METRICS_FILE)
        kept = [m for m in kept if m["iteration"] < start]
        write_text_atomic(out / METRICS_FILE, "".join(json.dumps(m) + "\n" for m in kept))
    return start, outcomes


def iteration_record(config: RLConfig, iteration: int, batches: list[Any], statistics: dict[str, float],
                     update_s: float, tasks: dict[str, list[str]], outcomes: dict[str, TaskOutcomes],
                     collective: Collective, kinds: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """One line of ``metrics.jsonl``: the update's statistics, each domain's and task's rollouts, the
    share of each kind of action (``kinds``: ``action_kinds`` per domain), the times.

    Adds the iteration's per-task outcomes to ``outcomes`` (what ``task_sampling: failures`` reads).
    """
    rollout_s = sum(b.seconds for b in batches)
    record: dict[str, Any] = {"iteration": iteration, **statistics, "rollout_s": round(rollout_s, 2),
                              "update_s": round(update_s, 2),
                              "update_share": round(update_s / max(update_s + rollout_s, 1e-9), 3),
                              "warmup": config.algorithm == "ppo" and iteration < config.value_warmup}
    for batch in batches:
        record.update({f"{k}/{batch.domain}": v
                       for k, v in domain_metrics(batch, collective, bool(config.expert_coef_of(batch.domain))).items()})
        record[f"rollout_s/{batch.domain}"] = round(batch.seconds, 2)  # this process's, as rollout_s
        record.update({f"actions/{batch.domain}/{kind}": round(share, 4)
                       for kind, share in action_shares(batch, kinds[batch.domain], collective).items()})
        per_task = task_metrics(batch, tasks[batch.domain], collective)
        outcomes[batch.domain].add(per_task)
        for task, (episodes, successes) in per_task.items():
            record[f"episodes/{batch.domain}/{task}"] = episodes
            record[f"success/{batch.domain}/{task}"] = successes / episodes
    record["env_steps_per_s"] = round(sum(record[f"env_steps/{d}"] for d in config.domains) / max(rollout_s, 1e-9), 2)
    return record


def run(config: RLConfig, progress: bool = True) -> dict[str, Any]:
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from ..agent import Agent
    from ..envs.registry import get_spec, resolve_tasks
    from ..evaluation.online import EnvWorker
    from ..training.loop import save_final
    from .rollout import collect, plan_iteration

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    collective = Collective(accelerator)
    main = accelerator.is_main_process
    out = Path(config.output_dir)
    check_same_run(out, config)  # on every process: none waits for one that stopped
    accelerator.wait_for_everyone()
    tasks = {}
    for domain, rollout in config.domains.items():
        spec = get_spec(rollout.env)
        missing = spec.missing()
        if missing:
            raise RLError(f"domains.{domain}.env: {rollout.env!r} cannot run here: missing {', '.join(missing)}; "
                          f"install with: {spec.install_hint()}")
        tasks[domain] = resolve_tasks(rollout.env, list(rollout.tasks) or ["all"])

    device = accelerator.device if torch.cuda.is_available() else None
    agent = Agent.from_pretrained(config.init, device=str(device) if device is not None else None, record=True)
    unknown = [d for d in config.domains if d not in agent.settings.domains]
    if unknown:
        raise RLError(f"domains: the model has no domain {unknown[0]!r} (its domains: {agent.settings.names})")
    for domain, rollout in config.domains.items():
        if rollout.actions:  # before the first evaluation: before and after act alike
            try:
                agent.restrict_actions(domain, rollout.actions)
            except OmniactorError as err:
                raise RLError(f"domains.{domain}.{err}") from None
    set_initial_spreads(agent, config)  # before the reference copy: kl_coef then measures the means' drift
    if main:  # written once the run can start: a mistyped init leaves no run behind to be refused
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
    pointer_domain = next((d for d, s in agent.settings.domains.items() if s.output == "pointer"), None)
    kinds = {d: action_kinds(agent.adapters[d].action_tokenizer) for d in config.domains}
    parameters = trainable_parameters(agent.model, list(config.domains), agent.settings.names, pointer_domain,
                                      config.train_shared)
    reference = None
    if config.kl_coef:
        reference = copy.deepcopy(agent.model).eval().requires_grad_(False)
    if config.lora:
        agent.model, parameters = apply_lora(agent.model, config.lora, parameters)
    writes = [d for d in config.domains if agent.adapters[d].writes_answer]
    if config.temperature != 1.0 and writes:
        raise RLError(f"temperature: {config.temperature} with {writes} writing answers; their log-probabilities are "
                      "those of the temperature-1 softmax (under the constraint), so sample them at temperature 1")
    learner = Learner(agent, config, parameters, collective, reference)

    before: dict[str, Any] = {}
    if main and config.evaluate_before:  # the starting agent, before any checkpoint is loaded
        before = evaluate_all(agent, config, out, "before", progress)
    accelerator.wait_for_everyone()

    start, outcomes = resume(out, config, learner, accelerator.print, main)

    writer = None
    if main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))
    workers = {d: [EnvWorker(r.env, dict(r.env_config), expert_labels=bool(config.expert_coef_of(d)))
                   for _ in range(config.workers)] for d, r in config.domains.items()}
    bar = tqdm(total=config.iterations, initial=start, desc=f"rl ({config.algorithm})", unit="it",
               disable=not (progress and main), dynamic_ncols=True)
    top_k = int(agent.vocab_size)  # the whole distribution: the sampled policy is the one scored
    try:
        for iteration in range(start, config.iterations):
            agent.record = True
            agent.set_decoding(do_sample=True, temperature=config.temperature, top_k=top_k, seed=config.seed)
            batches = []
            for domain, rollout in config.domains.items():
                jobs = plan_iteration(config, rollout, tasks[domain], iteration, collective.rank, collective.world,
                                      outcomes[domain])
                folder = out / "rollouts" / f"iter-{iteration:06d}" / (domain if collective.world == 1
                                                                         else f"{domain}-rank{collective.rank}")
                batches.append(collect(agent, domain, rollout, jobs, workers[domain], folder))
            started = time.perf_counter()
            statistics = learner.update(batches, iteration)
            update_s = time.perf_counter() - started
            record = iteration_record(config, iteration, batches, statistics, update_s, tasks, outcomes, collective,
                                      kinds)
            if main:
                with JsonLinesAppender(out / METRICS_FILE) as f:
                    f.append(record)
                for key, value in record.items():
                    if isinstance(value, (int, float)) and key != "iteration":
                        writer.add_scalar(key, value, iteration)
            bar.set_postfix({**{f"success/{d}": f"{record[f'success/{d}']:.2f}" for d in config.domains},
                             **{f"return/{d}": f"{record[f'return/{d}']:.2f}" for d in config.domains}}, refresh=False)
            bar.update(1)
            done = iteration + 1
            if main and (done % config.save_every == 0 or done == config.iterations):
                save_checkpoint(out, learner, done, config.keep_checkpoints, outcomes)
            accelerator.wait_for_everyone()
    finally:
        bar.close()
        for pool in workers.values():
            for worker in pool:
                worker.close()
        if writer is not None:
            writer.close()

    result: dict[str, Any] = {"iterations": config.iterations, "output_dir": str(out)}
    if main:
        save_final(agent.model, agent.processor, agent.action_tokenizers, out / "final", agent.settings)
        trained = Agent.from_pretrained(out / "final", device=str(device) if device is not None else None)
        if start < config.iterations:  # this run trained: an earlier run's evaluation is of another agent
            shutil.rmtree(out / "eval" / "after", ignore_errors=True)
        after = evaluate_all(trained, config, out, "after", progress)
        result.update(write_report(out, config, before, after))
    accelerator.wait_for_everyone()
    return result


# ---------------------------------------------------------------------------- report


def summary_of(results: dict[str, Any]) -> dict[str, Any]:
    return {"success_rate": round(results["successes"] / max(results["episodes"], 1), 4),
            "ci95": results["ci95"], "episodes": results["episodes"],
            "tasks": {t: v["success_rate"] for t, v in results["tasks"].items()}}


def write_report(out: Path, config: RLConfig, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``results.json``, ``report.md`` and ``rl.png`` of the run."""
    metrics, _ = read_json_lines(out / METRICS_FILE)
    domains = {d: {"env": config.domains[d].env, "before": summary_of(before[d]) if d in before else None,
                   "after": summary_of(after[d]) if d in after else None} for d in config.domains}
    results = {"algorithm": config.algorithm, "init": config.init, "iterations": config.iterations,
               "rollout_seconds": round(sum(m["rollout_s"] for m in metrics), 1),
               "update_seconds": round(sum(m["update_s"] for m in metrics), 1), "domains": domains}
    write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    plot_progress(metrics, list(config.domains), out / "rl.png")
    lines = [f"# RL ({config.algorithm}) from `{Path(config.init).name}`", "",
             (f"{config.iterations} iterations; rollouts {results['rollout_seconds']:.0f} s, updates "
              f"{results['update_seconds']:.0f} s. Success on test seeds (Wilson 95% interval, episodes):"), "",
             "| domain | environment | before RL | after RL |", "|---|---|---|---|"]
    for domain, entry in domains.items():
        cells = [f"{e['success_rate']:.0%} ({e['ci95'][0]:.0%}-{e['ci95'][1]:.0%}, {e['episodes']})" if e else "-"
                 for e in (entry["before"], entry["after"])]
        lines.append(f"| {domain} | {entry['env']} | {cells[0]} | {cells[1]} |")
    lines += ["", "![success and return per iteration](rl.png)", ""]
    write_text_atomic(out / "report.md", "\n".join(lines))
    return results


def plot_progress(metrics: list[dict[str, Any]], domains: list[str], path: Path) -> None:
    """Rollout success (top) and return (bottom) per iteration, one column per domain (returns differ in scale)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import write_bytes_atomic

    figure, axes = plt.subplots(2, len(domains), figsize=(3.2 * len(domains) + 0.6, 5.0), squeeze=False)
    for column, domain in enumerate(domains):
        for row, (name, label) in enumerate((("success", "rollout success"), ("return", "rollout return"))):
            points = [(m["iteration"], m[f"{name}/{domain}"]) for m in metrics if f"{name}/{domain}" in m]
            ax = axes[row][column]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=f"C{column}")
            if name == "success":
                ax.set_ylim(0, 1.05)
                ax.set_title(domain, fontsize=10)
            ax.set_xlabel("iteration")
            if column == 0:
                ax.set_ylabel(label)
    figure.tight_layout()
    picture = io.BytesIO()
    figure.savefig(picture, dpi=100, format="png")
    plt.close(figure)
    write_bytes_atomic(path, picture.getvalue())
