"""``expert_coef``: the environment's scripted expert labels the states the agent reaches (DAgger),
and the update adds the SFT loss toward those labels.

The labels come from the environment workers: followed, they replay the expert's own episode;
after a deviation the BabyAI bot and Meta-World's policies go on labelling, a scripted plan
(MiniWoB++) goes on while the agent does what it would have done (a click anywhere on the same
element) and stops after anything else. The loss is the SFT loss of each adapter, and it pulls
the policy to the label."""

from __future__ import annotations

import pytest
import torch

from omniactor.actions import (
    BABYAI_ACTIONS,
    XYZ_GRIPPER,
    Click,
    ContinuousAction,
    DiscreteAction,
    Point,
    TypeText,
)
from omniactor.evaluation.online import EXPERT_ACTION, EnvWorker
from omniactor.rl.learner import Learner, trainable_parameters

from ..action_adapters.test_log_probs import DOMAINS, build_agent
from ..envs.conftest import require
from .test_learner import config_for, rollouts


def expert_episode(env_name, task, seed, env_config):
    """The actions of the expert's own episode of ``seed`` (as ``omniactor collect`` runs it)."""
    from omniactor.data.collect.episode import Job, run_episode
    from omniactor.envs.registry import make_env, make_expert

    with make_env(env_name, task, **env_config) as env:
        episode = run_episode(env, make_expert(env_name, env), Job(task, 0, seed, "train"))
    assert episode.success
    return episode.actions


def follow(worker, task, seed, prefix=()):
    """Take ``prefix``'s actions, then each label, to the end: the actions taken, the labels seen
    (None where the expert gave none) and whether the episode succeeded."""
    status, (observation, _) = worker.call("reset", task, seed)
    assert status == "ok"
    taken, labels = [], []
    while True:
        label = observation.extra.get(EXPERT_ACTION)
        labels.append(label)
        action = prefix[len(taken)] if len(taken) < len(prefix) else label
        taken.append(action)
        status, (observation, terminated, truncated, success, _) = worker.call("step", action)
        assert status == "ok"
        if terminated or truncated:
            return taken, labels, success


@pytest.mark.parametrize("env_name,task,env_config", [
    ("babyai", "GoToLocal", {}),
    ("metaworld", "reach-v3", {"image_size": 32}),
])
def test_following_the_labels_replays_the_experts_own_episode(env_name, task, env_config):
    require(env_name)
    worker = EnvWorker(env_name, env_config, expert_labels=True)
    try:
        taken, _labels, success = follow(worker, task, 7)
    finally:
        worker.close()
    assert success and taken == expert_episode(env_name, task, 7, env_config)


def test_the_babyai_bot_labels_every_state_after_the_agent_strays():
    require("babyai")
    worker = EnvWorker("babyai", {}, expert_labels=True)
    astray = [DiscreteAction("left")] * 3 + [DiscreteAction("forward")] * 2
    try:
        taken, labels, success = follow(worker, "GoToLocal", 3, prefix=astray)
    finally:
        worker.close()
    assert taken[:5] == astray and success  # the bot replans from where the agent went and finishes the task
    assert all(isinstance(label, DiscreteAction) and label.name in BABYAI_ACTIONS for label in labels)


def test_a_scripted_plan_labels_while_the_agent_does_what_it_would_do():
    require("miniwob")
    worker = EnvWorker("miniwob", {}, expert_labels=True)
    try:
        status, (observation, _) = worker.call("reset", "enter-text", 0)
        first = observation.extra[EXPERT_ACTION]  # a click on the text field, near its centre
        assert isinstance(first, Click)
        elsewhere = Click(Point(first.point.x + 0.02, first.point.y))  # another point of the same field
        taken, labels, success = follow(worker, "enter-text", 0, prefix=[elsewhere])
        assert success and taken[0] == elsewhere and all(label is not None for label in labels)
        assert isinstance(labels[1], TypeText)  # then the solver's own steps: type, submit

        status, (observation, _) = worker.call("reset", "enter-text", 0)
        status, (observation, *_) = worker.call("step", Click(Point(0.02, 0.98)))  # off the field
        assert status == "ok" and EXPERT_ACTION not in observation.extra  # the plan no longer holds
    finally:
        worker.close()


def test_workers_without_expert_labels_send_none():
    require("babyai")
    worker = EnvWorker("babyai", {})
    try:
        status, (observation, _) = worker.call("reset", "GoToLocal", 0)
    finally:
        worker.close()
    assert status == "ok" and observation.extra == {}


# ---------------------------------------------------------------------------- the loss


def labelled(batch, label_of):
    for trajectory in batch.trajectories:
        for step in trajectory.steps:
            step.expert_action = label_of(step)
    return batch


def taken_action(agent, step):
    adapter = agent.adapters[step.record.domain]
    if adapter.writes_answer:
        return adapter.decode(step.record.ids, agent.end_id, agent.tokenizer).action
    return adapter.to_action(step.record.value)


def test_the_expert_loss_of_a_head_is_its_sft_loss():
    agent = build_agent()
    for domain in ("grid_world", "arm"):
        batch = labelled(rollouts(agent, domain, episodes=2, steps=2), lambda s: taken_action(agent, s))
        learner = Learner(agent, config_for(domain, expert_coef=1.0), {})
        items = learner._prepare(batch)  # the steps, their labels encoded
        scored = learner.score([i.record for i in items], grad=False)
        losses = learner.expert_losses(items, scored.hidden).tolist()
        distributions = agent.score([i.record for i in items])
        if domain == "grid_world":  # cross-entropy of the class taken: its negative log-probability
            assert losses == pytest.approx([-i.record.log_prob for i in items], abs=1e-5)
        else:  # the MSE of the head's motion (the Gaussian's mode) to the motion taken
            expected = [float(((d.mode()[0].cpu() - i.record.value.clamp(-1, 1)) ** 2).mean())
                        for d, i in zip(distributions, items)]
            assert losses == pytest.approx(expected, abs=1e-4)


LABELS = {
    "grid_world": DiscreteAction("toggle"),
    "codes": DiscreteAction("pickup"),
    "arm": ContinuousAction((0.5, -0.5, 0.25, 1.0), XYZ_GRIPPER),
}


@pytest.mark.parametrize("domain", list(LABELS))
def test_the_expert_term_pulls_the_policy_to_the_label(domain):
    agent = build_agent()
    pointer = next(d for d, (_, output) in DOMAINS.items() if output == "pointer")
    parameters = trainable_parameters(agent.model, [domain], list(DOMAINS), pointer, train_shared=False)
    batch = labelled(rollouts(agent, domain), lambda s: LABELS[domain])
    learner = Learner(agent, config_for(domain, expert_coef=10.0, algorithm="grpo"), parameters)

    def expert_loss():
        items = learner._prepare(batch)  # the steps, their labels encoded
        with torch.no_grad():
            return float(learner.expert_losses(items, learner.score([i.record for i in items], grad=False).hidden).mean())

    before = expert_loss()
    statistics = learner.update([batch], iteration=0)
    assert 0 < statistics["expert_loss"] < before  # the mean over the minibatches, as the policy moved
    assert statistics[f"expert_loss/{domain}"] == statistics["expert_loss"]  # its one domain's
    assert expert_loss() < 0.8 * before


def test_no_label_no_expert_term():
    agent = build_agent()
    learner = Learner(agent, config_for("grid_world", expert_coef=1.0), {})
    statistics = learner.update([rollouts(agent, "grid_world", episodes=2, steps=2)], iteration=0)
    assert "expert_loss" not in statistics


def test_a_domain_weighs_its_expert_term_itself():
    from omniactor.rl.config import RolloutConfig

    agent = build_agent()
    batch = labelled(rollouts(agent, "grid_world", episodes=2, steps=2), lambda s: LABELS["grid_world"])
    off = config_for("grid_world", expert_coef=1.0,
                     domains={"grid_world": RolloutConfig(env="babyai", episodes=4, expert_coef=0.0)})
    assert off.expert_coef_of("grid_world") == 0.0
    assert "expert_loss" not in Learner(agent, off, {}).update([batch], iteration=0)
    on = config_for("grid_world", domains={"grid_world": RolloutConfig(env="babyai", episodes=4, expert_coef=2.0)})
    assert on.expert_coef_of("grid_world") == 2.0
    assert "expert_loss" in Learner(agent, on, {}).update([batch], iteration=0)


def test_a_label_the_tokenizer_cannot_encode_is_skipped_and_counted():
    agent = build_agent()
    batch = rollouts(agent, "codes", episodes=2, steps=2)
    labelled(batch, lambda s: DiscreteAction("pickup"))
    batch.trajectories[0].steps[0].expert_action = Click(Point(0.5, 0.5))  # no click in a BabyAI action space
    learner = Learner(agent, config_for("codes", expert_coef=1.0), {})
    statistics = learner.update([batch], iteration=0)
    assert statistics["expert_unencodable"] == 1 and "expert_loss" in statistics


def test_without_the_surrogate_only_the_expert_term_moves_the_policy():
    agent = build_agent()
    pointer = next(d for d, (_, output) in DOMAINS.items() if output == "pointer")
    parameters = trainable_parameters(agent.model, ["grid_world"], list(DOMAINS), pointer, train_shared=False)
    before = {n: p.detach().clone() for n, p in parameters.items()}
    batch = rollouts(agent, "grid_world", episodes=2, steps=2)
    Learner(agent, config_for("grid_world", policy_coef=0.0, algorithm="grpo"), parameters).update([batch], 0)
    assert all(torch.equal(before[n], p) for n, p in parameters.items())  # no label, no surrogate: no gradient
    labelled(batch, lambda s: LABELS["grid_world"])
    Learner(agent, config_for("grid_world", policy_coef=0.0, expert_coef=1.0, algorithm="grpo"),
            parameters).update([batch], 0)
    assert any(not torch.equal(before[n], p) for n, p in parameters.items())
