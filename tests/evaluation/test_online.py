"""``omniactor eval``: the expert through the harness reproduces its rates; a trained agent gets a full report."""

import json

import pytest

from omniactor.envs.experts.evaluate import evaluate_expert
from omniactor.evaluation.online import EvalConfig, EvalError, compare_runs, evaluate
from omniactor.evaluation.results import pooled_interval, summarize_task, wilson_interval

from ..envs.conftest import require

EXPERT_CASES = [
    ("babyai", "GoToLocal", 6, {}),
    ("metaworld", "reach-v3", 3, {"cameras": []}),
    ("miniwob", "click-checkboxes", 3, {}),
]


@pytest.mark.env
@pytest.mark.parametrize("env,task,episodes,env_config", EXPERT_CASES, ids=[c[0] for c in EXPERT_CASES])
def test_the_harness_reproduces_the_experts_rates_on_the_same_seeds(tmp_path, env, task, episodes, env_config):
    require(env)
    results = evaluate(EvalConfig(env=env, tasks=[task], episodes=episodes, out=str(tmp_path), policy="expert",
                                  workers=2, split="train", env_config=env_config, progress=False))
    reference = evaluate_expert(env, task, episodes, env_config=env_config)
    (numbers,) = results["tasks"].values()
    assert (numbers["successes"], numbers["episodes"]) == (reference.successes, reference.episodes)
    assert numbers["mean_steps"] == pytest.approx(reference.mean_steps, abs=0.01)
    assert numbers["successes"] == episodes  # the experts solve these


@pytest.mark.env
def test_a_trained_agent_gets_results_report_chart_and_episode_pictures_and_runs_resume(tmp_path, trained_checkpoint):
    require("babyai")
    config = {"env": "babyai", "tasks": ["GoToRedBall"], "out": str(tmp_path / "eval"),
              "checkpoint": str(trained_checkpoint[0]), "workers": 2, "env_config": {"max_steps": 3},
              "save_episodes": 1, "progress": False}
    results = evaluate(EvalConfig(episodes=3, **config))
    out = tmp_path / "eval"
    numbers = results["tasks"]["BabyAI-GoToRedBall-v0"]
    assert numbers["episodes"] == 3 and 0 <= numbers["success_rate"] <= 1
    assert sum(numbers["failures"].values()) == 3 - numbers["successes"]
    assert results["decoding"]["constrained"] and results["decoding"]["invalid_answers"] == 0
    assert json.loads((out / "results.json").read_text())["tasks"] == results["tasks"]
    assert "| BabyAI-GoToRedBall-v0 |" in (out / "report.md").read_text()
    assert (out / "success.png").stat().st_size > 1000
    assert (out / "episodes" / "BabyAI-GoToRedBall-v0-0.gif").exists()
    # a line cut by a crash: that episode runs again; re-running with more episodes runs only the new ones
    lines = (out / "episodes.jsonl").read_text().splitlines()
    (out / "episodes.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])
    resumed = evaluate(EvalConfig(episodes=4, **config))
    records = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()[:2]]
    kept = (out / "episodes.jsonl").read_text().splitlines()  # the cut line is cut off and counted
    assert len(records) == 2 and len(kept) == 4 and json.loads((out / "results.json").read_text())["episodes"] == 4
    assert resumed["cut_lines_dropped"] == 1
    with pytest.raises(EvalError, match="other settings"):
        evaluate(EvalConfig(episodes=4, **{**config, "seed": 7}))


@pytest.mark.env
def test_a_sampled_evaluation_is_the_same_with_one_or_two_environments_and_when_resumed(tmp_path, trained_checkpoint):
    """Each episode samples from its own stream: neither the batch it shares (one environment
    process or two) nor a resumed run changes an episode's actions."""
    require("babyai")
    config = {"env": "babyai", "tasks": ["GoToRedBall"], "checkpoint": str(trained_checkpoint[0]),
              "env_config": {"max_steps": 6}, "agent_options": {"do_sample": True, "seed": 0}, "progress": False}
    evaluate(EvalConfig(episodes=4, out=str(tmp_path / "two"), workers=2, **config))
    evaluate(EvalConfig(episodes=2, out=str(tmp_path / "one"), workers=1, **config))
    evaluate(EvalConfig(episodes=4, out=str(tmp_path / "one"), workers=1, **config))  # resumed: 2 more
    assert compare_runs(tmp_path / "one", tmp_path / "two") == {"episodes": 4, "same": 4, "different": []}
    lines = (tmp_path / "two" / "episodes.jsonl").read_text().splitlines()
    assert len({json.loads(line)["trajectory"] for line in lines}) == 4  # the episodes' streams differ


def test_wilson_interval_and_task_summary():
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)  # not (0, 0): 10 failures do not prove 0%
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    episodes = [{"success": True, "steps": 4, "cause": None}, {"success": False, "steps": 10, "cause": "timeout"},
                {"success": False, "steps": 2, "cause": "refused_action", "invalid": 1, "actions": 2}]
    numbers = summarize_task(episodes)
    assert numbers["success_rate"] == pytest.approx(1 / 3, abs=1e-4) and numbers["mean_steps"] == pytest.approx(5.33)
    assert numbers["failures"] == {"timeout": 1, "refused_action": 1} and numbers["invalid_actions"] == 1
    # a domain: its tasks' episodes pooled (30 per task: the 95% interval within +-10 points at any rate)
    pooled = pooled_interval({"a": {"successes": 15, "episodes": 32}, "b": {"successes": 17, "episodes": 32},
                              "c": {"successes": 16, "episodes": 32}})
    assert (pooled["successes"], pooled["episodes"]) == (48, 96)
    assert pooled["ci95"] == [round(v, 4) for v in wilson_interval(48, 96)] and pooled["ci95"][1] - 0.5 < 0.1


def test_bad_settings_are_refused_with_the_fix(tmp_path):
    with pytest.raises(EvalError, match="--checkpoint"):
        evaluate(EvalConfig(env="babyai", tasks=["GoToRedBall"], episodes=1, out=str(tmp_path), progress=False))
    with pytest.raises(EvalError, match="policy"):
        evaluate(EvalConfig(env="babyai", tasks=["GoToRedBall"], episodes=1, out=str(tmp_path), policy="random"))


def test_actions_restrict_only_a_classification_head(tmp_path, trained_checkpoint):
    require("babyai")  # the example model's discrete domain answers by tokens
    with pytest.raises(EvalError, match="only a classification head"):
        evaluate(EvalConfig(env="babyai", tasks=["GoToRedBall"], episodes=1, out=str(tmp_path), progress=False,
                            checkpoint=str(trained_checkpoint[0]), actions=["left", "right"]))


@pytest.mark.env
def test_an_agent_acts_in_libero_through_the_same_harness(tmp_path):
    require("libero")
    from dataclasses import replace

    import numpy as np

    from omniactor.actions import EEF_DELTA_GRIPPER, ContinuousAction
    from omniactor.actions.tokenizers import build_action_tokenizer
    from omniactor.agent import Agent, AgentSettings, DomainSettings
    from omniactor.models.heterogeneity import HeterogeneityConfig, convert
    from omniactor.models.presets import build_model, get_preset
    from omniactor.models.vocabulary import add_action_vocabulary

    preset = replace(get_preset("tiny"), num_layers=2, hidden_size=64, num_heads=2, num_kv_heads=1,
                     intermediate_size=128, vision_depth=1, vision_hidden_size=32, vision_intermediate_size=64)
    model, processor = build_model(preset, seed=0)
    rng = np.random.default_rng(0)
    tokenizer = build_action_tokenizer("uniform", num_bins=16).fit(
        [ContinuousAction(tuple(rng.uniform(-1, 1, 7).round(3).tolist()), EEF_DELTA_GRIPPER) for _ in range(64)])
    add_action_vocabulary(model, processor.tokenizer, tokenizer)
    convert(model, HeterogeneityConfig("omniactor", shared_layers=1, domains=("embodied",)))
    agent = Agent(model, processor, {"embodied": tokenizer}, AgentSettings({"embodied": DomainSettings(history=2, image_size=56)}))
    results = evaluate(EvalConfig(env="libero", tasks=["libero_10:0"], episodes=2, out=str(tmp_path), workers=1,
                                  env_config={"max_steps": 3, "image_size": 64}, progress=False), agent=agent)
    (numbers,) = results["tasks"].values()
    assert numbers["episodes"] == 2 and numbers["mean_steps"] == 3.0 and numbers["failures"] == {"timeout": 2}
    assert results["decoding"] == {"constrained": True, "do_sample": False, "invalid_answers": 0, "answers": 6}


def test_an_evaluation_written_before_a_new_setting_existed_still_resumes(tmp_path):
    from omniactor.evaluation.online import CONFIG_FILE, _finished

    config = EvalConfig(env="babyai", tasks=["GoToRedBall"], episodes=1, out=str(tmp_path))
    older = {k: v for k, v in config.identity().items() if k != "server"}  # written before --server existed
    (tmp_path / CONFIG_FILE).write_text(json.dumps(older))
    assert _finished(tmp_path, config) == {}
    (tmp_path / CONFIG_FILE).write_text(json.dumps({**older, "seed": 5}))
    with pytest.raises(EvalError, match=r"other settings \(seed\)"):
        _finished(tmp_path, config)
