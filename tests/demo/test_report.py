"""The demo's report: each domain's 95% interval, the episode counts behind it, what the run depends on."""

import json

from omniactor.demo.plan import FULL, QUICK
from omniactor.demo.report import domain_intervals, reproducibility, summary_line, write_report
from omniactor.evaluation.results import summarize, wilson_interval


def test_the_full_plan_puts_every_domain_within_ten_points():
    for env in FULL.envs:
        episodes = env.eval_episodes * len(env.tasks)
        for successes in range(episodes + 1):  # at any rate
            low, high = wilson_interval(successes, episodes)
            rate = successes / episodes
            assert max(rate - low, high - rate) <= 0.10, (env.env, successes, episodes)


def fake_results(plan, rate_of):
    """``{"trained": {env: results}, "untrained": ...}`` with ``rate_of(name, task)`` successes per task."""
    out = {}
    for name, count in (("trained", "eval_episodes"), ("untrained", "baseline_episodes")):
        out[name] = {}
        for env in plan.envs:
            n = getattr(env, count)
            episodes = [{"task": t, "success": i < round(rate_of(name, t) * n), "steps": 1, "cause": "failed"}
                        for t in env.tasks for i in range(n)]
            out[name][env.env] = {"restarts": 0, "torch_threads": 1, **summarize(episodes, env.tasks)}
    return out


def test_the_report_gives_each_domains_interval_and_what_the_run_depends_on(tmp_path):
    results = fake_results(FULL, lambda name, task: 0.8 if name == "trained" else 0.0)
    intervals = domain_intervals(FULL, results)
    assert intervals["embodied"]["trained"]["episodes"] == 102 and intervals["gui"]["untrained"]["episodes"] == 50
    assert intervals["discrete"]["trained"]["ci95"] == [round(v, 4) for v in wilson_interval(160, 200)]
    collected = {env.env: {"restarts": 1 if env.env == "miniwob" else 0,
                           "tasks": {t: {"steps_written": 5, "episodes": env.demos, "success_rate": 1.0}
                                     for t in env.tasks}} for env in FULL.envs}
    run = tmp_path / "runs" / "omniactor"
    run.mkdir(parents=True)
    (run / "runtime.jsonl").write_text(json.dumps({"step": 0, "torch": "2.x", "torch_threads": 2,
                                                   "cpu": "AMD EPYC", "cpu_capability": "AVX2"}) + "\n")
    facts = reproducibility(tmp_path, collected, results)
    assert facts["train_threads"] == [2] and facts["eval_threads"] == [1] and facts["collect_restarts"]["miniwob"] == 1
    experts = {env.env: {t: 1.0 for t in env.tasks} for env in FULL.envs}
    report = write_report(tmp_path, FULL, collected, results, experts, {"total": 1.0}).read_text()
    assert "| gui | 80% | 75%-84% | 0% | 0%-7% | 100% | 250 / 50 |" in report
    assert "fewer episodes per task" in report and "## Reproducibility" in report
    assert "2 torch thread(s)" in report and "Environment restarts" in report and ": 1." in report
    assert "torch 2.x on AMD EPYC (AVX2 kernels)" in report
    line = summary_line(FULL, {d: {"trained": 0.8} for d in FULL.domains}, intervals)
    assert "80% of MiniWoB++ episodes (95% interval 75%-84%, 250 episodes)" in line and "102 episodes" in line
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["intervals"] == json.loads(json.dumps(intervals)) and saved["reproducibility"]["torch"] == "2.x"


def test_the_quick_plan_stays_small():
    assert sum(env.eval_episodes * len(env.tasks) for env in QUICK.envs) <= 8
