"""The Agent from a training run's final/ folder: the training prompt, the history, several episodes at once."""

import json

import numpy as np
import pytest

from omniactor.actions import ContinuousAction, DiscreteAction, GuiAction
from omniactor.agent import Agent, AgentError
from omniactor.envs.base import Observation


def observation(instruction: str, domain: str, seed: int = 0) -> Observation:
    image = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return Observation({"main": image}, instruction, domain, 0)


@pytest.fixture(scope="module")
def agent(trained_checkpoint):
    return Agent.from_pretrained(trained_checkpoint[0])


def test_final_folder_records_how_the_model_was_asked(trained_checkpoint):
    settings = json.loads((trained_checkpoint[0] / "agent.json").read_text())
    assert settings["format"] == 2 and list(settings["domains"]) == ["gui", "embodied", "discrete"]
    assert {d["history"] for d in settings["domains"].values()} == {2}
    assert {d["image_size"] for d in settings["domains"].values()} == {56}
    assert settings["domains"]["gui"]["system_prompt"].startswith("You are a GUI agent")


def test_act_returns_each_domains_typed_action_and_keeps_the_history(agent):
    kinds = {"gui": GuiAction.__args__, "embodied": ContinuousAction, "discrete": DiscreteAction}
    for domain, kind in kinds.items():
        agent.reset("do the task", domain)
        actions = [agent.act(observation("do the task", domain, i)) for i in range(3)]
        assert all(isinstance(a, kind) for a in actions)
        assert agent.episode.actions == actions
    _, text = agent.prompt("discrete", "go", agent.episode.actions)
    assert text.count("\n") == 4 and "Previous actions:\n1. discrete(" in text  # only the last 2 are shown


def test_act_batch_keeps_one_history_per_episode(agent):
    episodes = [agent.start("task a", "gui"), agent.start("task b", "discrete")]
    for step in range(2):
        agent.act_batch(episodes, [observation("task a", "gui", step), observation("task b", "discrete", step)])
    assert [len(e.actions) for e in episodes] == [2, 2]
    assert isinstance(episodes[1].actions[0], DiscreteAction)


def test_predict_sample_answers_a_recorded_step(agent, trained_checkpoint):
    from omniactor.data import DatasetReader

    reader = DatasetReader(trained_checkpoint[1])
    sample = next(s for s in reader if s.domain == "embodied")
    action = agent.predict_sample(sample, reader.load_images(sample), [])
    assert isinstance(action, ContinuousAction) and len(action.values) == len(sample.action.values)


def test_clear_errors_for_unknown_domains_and_folders(agent, tmp_path):
    with pytest.raises(AgentError, match="no domain 'web'"):
        agent.start("x", "web")
    with pytest.raises(AgentError, match="reset"):
        Agent(agent.model, agent.processor, agent.action_tokenizers, agent.settings).act(observation("x", "gui"))
    with pytest.raises(AgentError, match="no config.json"):
        Agent.from_pretrained(tmp_path)
