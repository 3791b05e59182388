"""``omniactor rl`` end to end in real BabyAI: outputs, isolation of the other domains, the
config's errors, and a run killed mid-way that resumes to the parameters of a straight run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from omniactor.models.checkpoint import read_state_dict
from omniactor.rl.config import load_config
from omniactor.training.config import ConfigError

from ..envs.conftest import require

REPO = Path(__file__).resolve().parents[2]


def settings(checkpoint, out, **extra):
    values = {"init": str(checkpoint), "output_dir": str(out), "iterations": 2, "workers": 1, "epochs": 1,
              "minibatches": 2, "learning_rate": 1e-3, "value_warmup": 0, "domains.discrete.env": "babyai",
              "domains.discrete.tasks": "[GoToRedBall]", "domains.discrete.episodes": 2,
              "domains.discrete.env_config": "{max_steps: 6}", "domains.discrete.eval_episodes": 0}
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def test_a_run_writes_its_outputs_and_leaves_the_other_domains_bit_identical(tmp_path, trained_checkpoint):
    require("babyai")
    from omniactor.rl.loop import run

    checkpoint, data = trained_checkpoint
    config = load_config(None, settings(checkpoint, tmp_path / "rl", **{"domains.discrete.eval_episodes": 1,
                                                                         "sft_coef": 0.1, "sft_data": f"[{data}]",
                                                                         "expert_coef": 0.5}))
    result = run(config, progress=False)
    out = tmp_path / "rl"
    for name in ("config.yaml", "metrics.jsonl", "report.md", "results.json", "rl.png", "final/agent.json",
                 "eval/before/discrete/results.json", "eval/after/discrete/results.json",
                 "rollouts/iter-000001/discrete/episodes.jsonl"):
        assert (out / name).exists(), name
    assert (out / "tensorboard").is_dir() and len(list(out.glob("checkpoint-*"))) == 2
    # the encoded demonstrations are cached beside the run, where other runs of the folder reuse them
    assert len(list((tmp_path / ".omniactor-cache").glob("*/index.json"))) == 1 and not list(out.glob(".*"))
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics] == [0, 1]
    for key in ("success/discrete", "return/discrete", "episode_length/discrete", "policy_loss", "value_loss",
                "entropy", "approx_kl", "clip_fraction", "explained_variance", "rollout_s", "rollout_s/discrete", "update_s", "sft_loss", "expert_loss"):
        assert key in metrics[0], key
    assert metrics[0]["episodes/discrete"] == 2
    shares = {k.split("/")[-1]: v for k, v in metrics[0].items() if k.startswith("actions/discrete/")}
    assert shares and set(shares) <= {"left", "right", "forward", "pickup", "drop", "toggle", "done"}
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert metrics[0]["expert_labelled/discrete"] == 1.0  # the BabyAI bot labels every state the agent reaches
    assert result["domains"]["discrete"]["before"]["episodes"] == 1
    before, after = read_state_dict(checkpoint), read_state_dict(out / "final")
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert changed and all(".experts.discrete." in n for n in changed), changed[:5]


def test_the_config_refuses_what_cannot_run(tmp_path, capsys):
    with pytest.raises(ConfigError, match="split.*test seeds are kept"):
        load_config(None, ["init=x", "domains.discrete.env=babyai", "domains.discrete.split=test"])
    with pytest.raises(ConfigError, match="did you mean 'episodes'"):
        load_config(None, ["init=x", "domains.discrete.env=babyai", "domains.discrete.episode=3"])
    with pytest.raises(ConfigError, match="multiple of group_size"):
        load_config(None, ["init=x", "algorithm=grpo", "group_size=4", "domains.discrete.env=babyai",
                           "domains.discrete.episodes=6"])
    with pytest.raises(ConfigError, match="algorithm"):
        load_config(None, ["init=x", "algorithm=a2c", "domains.discrete.env=babyai"])
    with pytest.raises(ConfigError, match="init"):
        load_config(None, ["domains.discrete.env=babyai"])
    with pytest.raises(ConfigError, match="sft_data"):
        load_config(None, ["init=x", "sft_coef=0.1", "domains.discrete.env=babyai"])
    with pytest.raises(ConfigError, match="init_std.*above 0"):
        load_config(None, ["init=x", "domains.embodied.env=metaworld", "domains.embodied.init_std=0"])
    with pytest.raises(ConfigError, match="desired_kl.*above 0"):
        load_config(None, ["init=x", "desired_kl=0", "domains.discrete.env=babyai"])
    with pytest.raises(ConfigError, match="learning_rate.*number"):
        load_config(None, ["init=x", "learning_rate=fast", "domains.discrete.env=babyai"])
    from omniactor.cli import main

    assert main(["rl", "--list-keys"]) == 0
    listed = capsys.readouterr().out
    assert "domains.<d>.env" in listed and "sft_coef" in listed and "train_shared" in listed


def test_actions_restrict_only_a_classification_head(tmp_path, trained_checkpoint):
    """The example model's discrete domain answers by tokens: a restriction is refused, by name."""
    from omniactor.rl.loop import RLError, run

    checkpoint, _ = trained_checkpoint
    config = load_config(None, settings(checkpoint, tmp_path / "rl", **{"domains.discrete.actions": "[left, right]"}))
    with pytest.raises(RLError, match=r"domains\.discrete\.actions: .*only a classification head"):
        run(config, progress=False)


def run_cli(overrides):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "omniactor.rl.cli", "--no-progress", *overrides], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_run_killed_mid_way_resumes_to_the_parameters_of_a_straight_run(tmp_path, trained_checkpoint):
    require("babyai")
    checkpoint, _ = trained_checkpoint
    # two levels shared by their failures: the outcomes so far must survive the kill as well
    extra = {"iterations": 3, "task_sampling": "failures", "domains.discrete.tasks": "[GoToRedBall, GoToLocal]",
             "domains.discrete.episodes": 3}
    straight = run_cli(settings(checkpoint, tmp_path / "straight", **extra))
    assert straight.wait(timeout=600) == 0, straight.stdout.read()

    victim = run_cli(settings(checkpoint, tmp_path / "killed", **extra))
    deadline = time.time() + 600
    while not list((tmp_path / "killed").glob("checkpoint-000001")) and time.time() < deadline:
        time.sleep(0.1)
        assert victim.poll() is None, victim.stdout.read()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "final").exists()
    resumed = run_cli(settings(checkpoint, tmp_path / "killed", **extra))
    output = resumed.stdout.read()
    assert resumed.wait(timeout=600) == 0, output
    assert "resuming from" in output
    a, b = read_state_dict(tmp_path / "straight" / "final"), read_state_dict(tmp_path / "killed" / "final")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    lines = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in lines] == [0, 1, 2]  # an iteration run twice is recorded once
    same = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [m["return/discrete"] for m in lines] == [m["return/discrete"] for m in same]
    tasks = [{k: v for k, v in m.items() if k.startswith("episodes/discrete/")} for m in lines]
    assert tasks == [{k: v for k, v in m.items() if k.startswith("episodes/discrete/")} for m in same]
    assert all(sum(t.values()) == 3 for t in tasks)


def test_a_resumed_run_with_other_settings_is_refused(tmp_path, trained_checkpoint):
    from omniactor.rl.config import save_config
    from omniactor.rl.loop import RLError, check_same_run

    checkpoint, _ = trained_checkpoint
    out = tmp_path / "rl"
    out.mkdir()
    save_config(load_config(None, settings(checkpoint, out)), out / "config.yaml")
    check_same_run(out, load_config(None, settings(checkpoint, out, iterations=9)))  # more iterations: fine
    with pytest.raises(RLError, match="other settings \\(learning_rate\\)"):
        check_same_run(out, load_config(None, settings(checkpoint, out, learning_rate=0.5)))


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "rl").glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_rl_configs_load(path):
    config = load_config(path)
    assert config.domains and config.init


def test_two_processes_with_their_own_environments_reach_the_parameters_of_one(tmp_path, trained_checkpoint):
    require("babyai")
    checkpoint, _ = trained_checkpoint
    extra = {"iterations": 1, "domains.discrete.episodes": 4}
    single = run_cli(settings(checkpoint, tmp_path / "one", **extra))
    assert single.wait(timeout=600) == 0, single.stdout.read()
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547",
                "-m", "omniactor.rl.cli", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.Popen(launcher + settings(checkpoint, tmp_path / "two", **extra), cwd=REPO, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = two.stdout.read()
    assert two.wait(timeout=600) == 0, output
    # each process ran its own environment workers on half of the episodes
    assert sorted(p.name for p in (tmp_path / "two" / "rollouts" / "iter-000000").iterdir()) == [
        "discrete-rank0", "discrete-rank1"]
    one = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    both = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert one[0]["episodes/discrete"] == both[0]["episodes/discrete"] == 4
    assert one[0]["return/discrete"] == pytest.approx(both[0]["return/discrete"])  # the same episodes
    initial = read_state_dict(checkpoint)
    a, b = read_state_dict(tmp_path / "one" / "final"), read_state_dict(tmp_path / "two" / "final")
    moved = max((a[n].float() - initial[n].float()).abs().max().item() for n in a)
    worst = max((a[n].float() - b[n].float()).abs().max().item() for n in a)
    assert moved > 0 and worst < 0.02 * moved, (worst, moved)  # float order only (test_learner explains the bound)


def test_action_shares_count_each_kind_of_act_over_the_rollouts():
    from types import SimpleNamespace

    from omniactor.actions import Click, DiscreteAction, Point
    from omniactor.actions.tokenizers.discrete import DiscreteTokenTokenizer
    from omniactor.rl.learner import Collective
    from omniactor.rl.loop import action_kinds, action_shares

    kinds = action_kinds(DiscreteTokenTokenizer(["left", "right", "forward", "pickup"]))
    assert kinds[:4] == ("left", "right", "forward", "pickup") and "click" in kinds
    assert action_kinds(DiscreteTokenTokenizer(["wait", "go"])).count("wait") == 1

    def batch(*actions):
        steps = [SimpleNamespace(action=a) for a in actions]
        return SimpleNamespace(trajectories=[SimpleNamespace(steps=steps[:2]), SimpleNamespace(steps=steps[2:])])

    taken = batch(DiscreteAction("left"), DiscreteAction("forward"), DiscreteAction("forward"), None,
                  DiscreteAction("pickup"))
    assert action_shares(taken, kinds, Collective()) == {"left": 0.25, "forward": 0.5, "pickup": 0.25}
    assert action_shares(batch(Click(Point(0.5, 0.5))), kinds, Collective()) == {"click": 1.0}
    assert action_shares(batch(), kinds, Collective()) == {}
