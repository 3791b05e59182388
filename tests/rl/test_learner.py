"""The RL update on a random 7-domain agent (every adapter): scores equal the recorded ones,
only the RL domain's parameters move, and two processes compute what one computes."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

from omniactor.rl.algorithms import grpo_advantages
from omniactor.rl.config import RLConfig, RolloutConfig
from omniactor.rl.learner import Collective, Learner, RLError, trainable_parameters
from omniactor.rl.rollout import RolloutBatch, RolloutJob, Step, Trajectory

from ..action_adapters.test_log_probs import DOMAINS, build_agent, observation


def rollouts(agent, domain, episodes=4, steps=3, seed=0):
    """Sampled episodes of ``domain`` on random observations, rewarded for the unlikely actions."""
    agent.set_decoding(do_sample=True, temperature=1.0, top_k=10**6, seed=seed)
    trajectories = []
    for e in range(episodes):
        job = RolloutJob("task", e, 1000 + e, group=e // 2, sample=e % 2)
        episode = agent.start("type 'ab' and go", domain, seed=job.key)
        trajectory = Trajectory(job, domain)
        for t in range(steps):
            answer = agent.act_batch([episode], [observation(domain, 10 * e + t)], details=True)[0]
            reward = -answer.record.log_prob  # differs between samples: every group has an advantage
            last = t == steps - 1
            trajectory.steps.append(Step(answer.record, reward, last and e % 2 == 0, last and e % 2 == 1, t))
        if e % 2 == 1:
            trajectory.bootstrap = (domain, "type 'ab' and go", [observation(domain, 99).image], list(episode.actions),
                                    observation(domain, 99).state)
        trajectories.append(trajectory)
    agent.set_decoding()
    return RolloutBatch(domain, trajectories, 0, 0, 0.0)


def config_for(domain, **overrides):
    settings = {"init": "x", "domains": {domain: RolloutConfig(env="babyai", episodes=4)}, "epochs": 2,
                "minibatches": 2, "learning_rate": 1e-2, "value_warmup": 0, "seed": 0}
    settings.update(overrides)
    return RLConfig(**settings)


@pytest.fixture(scope="module")
def agent():
    return build_agent()


@pytest.mark.parametrize("domain", list(DOMAINS))
def test_the_learner_scores_each_act_as_it_was_recorded(agent, domain):
    batch = rollouts(agent, domain, episodes=2, steps=2)
    records = [s.record for t in batch.trajectories for s in t.steps]
    learner = Learner(agent, config_for(domain), {})
    scored = learner.score(records, grad=False)
    assert scored.log_probs.tolist() == pytest.approx([r.log_prob for r in records], abs=1e-5)
    assert scored.hidden.shape == (len(records), agent.model.get_input_embeddings().weight.shape[1])
    assert torch.isfinite(scored.entropies).all()


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("algorithm", ["ppo", "grpo"])
@pytest.mark.parametrize("domain", ["grid_world", "codes", "arm"])
def test_an_update_moves_only_the_rl_domains_parameters(domain, algorithm):
    agent = build_agent()
    pointer = next(d for d, (_, output) in DOMAINS.items() if output == "pointer")
    parameters = trainable_parameters(agent.model, [domain], list(DOMAINS), pointer, train_shared=False)
    assert parameters and all(f".experts.{domain}." in n or domain in n for n in parameters)
    before = snapshot(agent.model)
    others = [d for d in DOMAINS if d != domain]
    greedy_before = [d.action for d in agent.act_batch([agent.start("go", d) for d in others],
                                                       [observation(d, 5) for d in others], details=True)]
    learner = Learner(agent, config_for(domain, algorithm=algorithm), parameters)
    statistics = learner.update([rollouts(agent, domain)], iteration=0)
    assert statistics["approx_kl"] >= 0 and 0 <= statistics["clip_fraction"] <= 1
    assert ("value_loss" in statistics) == (algorithm == "ppo")
    after = snapshot(agent.model)
    moved = [n for n in before if not torch.equal(before[n], after[n])]
    assert moved and set(moved) <= set(parameters)
    for name in before:  # everything outside the domain: bit-identical
        if name not in parameters:
            assert torch.equal(before[name], after[name]), name
    greedy_after = [d.action for d in agent.act_batch([agent.start("go", d) for d in others],
                                                      [observation(d, 5) for d in others], details=True)]
    assert greedy_after == greedy_before


@pytest.mark.parametrize("domain", list(DOMAINS))
def test_a_policy_gradient_step_makes_the_better_episodes_acts_likelier(domain):
    """One on-policy GRPO step: the log-probabilities move along the advantages (a sign error fails it).

    Adam's first step is ``lr * sign(gradient)`` per parameter, so to first order it raises the
    advantage-weighted sum of the acts' log-probabilities by ``lr * |gradient|_1``.
    """
    agent = build_agent()
    pointer = next(d for d, (_, output) in DOMAINS.items() if output == "pointer")
    parameters = trainable_parameters(agent.model, [domain], list(DOMAINS), pointer, train_shared=False)
    batch = rollouts(agent, domain)
    records = [s.record for t in batch.trajectories for s in t.steps]
    learner = Learner(agent, config_for(domain, algorithm="grpo", epochs=1, minibatches=1, learning_rate=1e-5,
                                        head_learning_rate=1e-5), parameters)
    before = learner.score(records, grad=False).log_probs.double()
    learner.update([batch], iteration=0)
    after = learner.score(records, grad=False).log_probs.double()
    advantages = grpo_advantages(torch.tensor([t.episode_return for t in batch.trajectories]),
                                 torch.tensor([t.job.group for t in batch.trajectories]))
    per_act = torch.cat([torch.full((len(t.steps),), float(a), dtype=torch.float64)
                         for t, a in zip(batch.trajectories, advantages)])
    assert per_act.abs().sum() > 0
    assert float((per_act * (after - before)).sum()) > 0, (per_act, after - before)


def policy_gradient(learner, items, total, parameters):
    """The gradient of ``items``' policy loss divided by ``total``, flattened over ``parameters``."""
    learner.agent.model.zero_grad(set_to_none=False)
    learner._backward(items, total, {})
    return torch.cat([p.grad.flatten().clone() for p in parameters.values() if p.grad is not None])


def test_advantage_floor_zero_reinforces_only_the_better_episodes():
    """With ``advantage_floor: 0`` the worse episodes' acts add nothing to the gradient: it equals the
    gradient of the better episodes alone, divided by every step's count as before."""
    agent = build_agent()
    parameters = trainable_parameters(agent.model, ["codes"], list(DOMAINS), "grid", train_shared=False)
    batch = rollouts(agent, "codes")
    items = Learner(agent, config_for("codes", algorithm="grpo"), parameters).prepare([batch])["codes"]
    learner = Learner(agent, config_for("codes", algorithm="grpo", advantage_floor=0.0), parameters)
    raised = learner.prepare([batch])["codes"]
    assert min(i.advantage for i in items) < 0 < max(i.advantage for i in items)
    assert [i.advantage for i in raised] == [max(i.advantage, 0.0) for i in items]

    better = [i for i in raised if i.advantage > 0]
    gradient = policy_gradient(learner, raised, len(items), parameters)
    torch.testing.assert_close(gradient, policy_gradient(learner, better, len(items), parameters), rtol=1e-5, atol=1e-8)
    assert gradient.abs().sum() > 0
    with pytest.raises(ValueError, match="advantage_floor: 0.5 must be at most 0"):
        config_for("codes", advantage_floor=0.5)


def test_loss_average_episodes_weighs_each_step_by_its_episodes_length():
    agent = build_agent()
    parameters = trainable_parameters(agent.model, ["codes"], list(DOMAINS), "grid", train_shared=False)
    batch = rollouts(agent, "codes")  # 4 episodes of 3 steps

    def gradient(average):
        learner = Learner(agent, config_for("codes", algorithm="grpo", loss_average=average), parameters)
        items = learner._prepare(batch)
        return items, policy_gradient(learner, items, sum(i.weight for i in items), parameters)

    # equal lengths: the weighted mean is the plain one
    _, by_steps = gradient("steps")
    _, by_episodes = gradient("episodes")
    torch.testing.assert_close(by_episodes, by_steps, rtol=1e-5, atol=1e-7)
    batch.trajectories[0].steps = batch.trajectories[0].steps[:1]
    items, _ = gradient("episodes")
    assert [i.weight for i in items] == [1.0] + [pytest.approx(1 / 3)] * 9
    with pytest.raises(ValueError, match="loss_average: 'tokens' is not one of"):
        config_for("codes", loss_average="tokens")


def test_value_warmup_trains_only_the_value_head():
    agent = build_agent()
    parameters = trainable_parameters(agent.model, ["grid_world"], list(DOMAINS), "grid", train_shared=False)
    before = snapshot(agent.model)
    learner = Learner(agent, config_for("grid_world", value_warmup=1), parameters)
    heads_before = {n: p.detach().clone() for n, p in learner.value_heads.named_parameters()}
    learner.update([rollouts(agent, "grid_world")], iteration=0)
    assert all(torch.equal(before[n], p) for n, p in agent.model.named_parameters())
    assert any(not torch.equal(heads_before[n], p) for n, p in learner.value_heads.named_parameters())


def test_a_dense_model_needs_train_shared():
    from torch import nn

    model = nn.Linear(2, 2)
    with pytest.raises(RLError, match="train_shared: true"):
        trainable_parameters(model, ["gui"], ["gui", "embodied"], None, train_shared=False)


# ---------------------------------------------------------------------------- two processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Accelerated:
    """What ``Collective`` needs of an Accelerator, over an initialised gloo group."""

    def __init__(self, rank, world):
        self.process_index, self.num_processes = rank, world

    def reduce(self, tensor, reduction="sum"):
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor


def _update_in_process(rank, world, port, domain, out):
    import torch.distributed as dist

    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        agent = build_agent()
        batch = rollouts(agent, domain, episodes=4)  # every process samples the same episodes, keeps its groups
        batch.trajectories = [t for t in batch.trajectories if t.job.group % world == rank]
        parameters = trainable_parameters(agent.model, [domain], list(DOMAINS), "grid", train_shared=False)
        collective = Collective(_Accelerated(rank, world)) if world > 1 else Collective()
        learner = Learner(agent, config_for(domain), parameters, collective)
        learner.update([batch], iteration=0)
        if rank == 0:
            torch.save({n: p.detach() for n, p in parameters.items()}, out)
    finally:
        if world > 1:
            # both ranks done before either tears gloo down: a rank that exits while the other
            # still talks to it aborts with "terminate called without an active exception"
            dist.barrier()
            dist.destroy_process_group()


@pytest.mark.parametrize("domain", ["grid_world", "codes"])
def test_two_processes_give_the_parameters_of_one_on_the_same_rollouts(tmp_path, domain):
    context = mp.get_context("spawn")
    one = context.Process(target=_update_in_process, args=(0, 1, 0, domain, tmp_path / "one.pt"))
    one.start()
    one.join(300)
    assert one.exitcode == 0
    port = _free_port()
    two = [context.Process(target=_update_in_process, args=(r, 2, port, domain, tmp_path / "two.pt"))
           for r in range(2)]
    for p in two:
        p.start()
    for p in two:
        p.join(300)
        assert p.exitcode == 0
    a, b = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    initial = snapshot(build_agent().model)
    assert a.keys() == b.keys()
    moved = max((a[n] - initial[n]).abs().max().item() for n in a)
    worst = max((a[n] - b[n]).abs().max().item() for n in a)
    # only the order of float sums differs; Adam's g / sqrt(v) magnifies it where a gradient is
    # near 0 (measured: 0.5% of the largest move at lr 1e-2 and at 1e-4; a wrong normalisation
    # over processes would be tens of percent)
    assert moved > 0 and worst < 0.02 * moved, (worst, moved)


def test_lora_trains_the_domains_projections_and_merges_into_them_alone():
    from omniactor.rl.loop import apply_lora

    agent = build_agent()
    before = snapshot(agent.model)
    parameters = trainable_parameters(agent.model, ["codes"], list(DOMAINS), "grid", train_shared=False)
    agent.model, parameters = apply_lora(agent.model, {"r": 4, "alpha": 8}, parameters)
    assert any("lora_" in n for n in parameters) and all("lora_" in n or "codes" in n for n in parameters)
    learner = Learner(agent, config_for("codes", learning_rate=1e-2), parameters)
    learner.update([rollouts(agent, "codes")], iteration=0)
    merged = agent.model.merge_and_unload()
    after = snapshot(merged)
    assert after.keys() == before.keys()
    moved = [n for n in before if not torch.equal(before[n], after[n])]
    assert moved and all(".experts.codes." in n for n in moved), moved[:4]


def test_each_domain_may_have_its_own_learning_rates():
    agent = build_agent()
    parameters = trainable_parameters(agent.model, ["arm", "grid_world"], list(DOMAINS), "grid", train_shared=False)
    config = config_for("arm", head_learning_rate=1e-3)
    config.domains = {"arm": RolloutConfig(env="metaworld", learning_rate=2e-5, head_learning_rate=1e-5),
                      "grid_world": RolloutConfig(env="babyai")}
    learner = Learner(agent, config, parameters)
    names = {id(p): n for n, p in parameters.items()}
    rates = {names[id(p)]: group["lr"] for group in learner.optimizer.param_groups for p in group["params"]}
    assert rates.keys() == parameters.keys()
    for name, rate in rates.items():
        if "regression_arm" in name:
            assert rate == 1e-5, name
        elif ".experts.arm." in name:
            assert rate == 2e-5, name
        elif "classification_grid_world" in name:
            assert rate == 1e-3, name
        else:
            assert ".experts.grid_world." in name and rate == config.learning_rate, name


def test_ppo_normalises_advantages_per_domain():
    """Returns 1000x apart in scale (Meta-World's shaped reward beside a 0/1 outcome): each domain's
    advantages still reach mean 0 and std 1 over its own steps, and each domain reports the explained
    variance of its own values."""
    agent = build_agent()
    config = config_for("arm")
    config.domains = {"arm": RolloutConfig(env="metaworld"), "grid_world": RolloutConfig(env="babyai")}
    learner = Learner(agent, config, {})
    batches = [rollouts(agent, "arm", seed=1), rollouts(agent, "grid_world", seed=2)]
    for trajectory in batches[0].trajectories:
        for step in trajectory.steps:
            step.reward *= 1000.0
    prepared = learner.prepare(batches)
    for domain, items in prepared.items():
        advantages = torch.tensor([i.advantage for i in items], dtype=torch.float64)
        assert float(advantages.mean()) == pytest.approx(0.0, abs=1e-9), domain
        assert float(advantages.std(unbiased=False)) == pytest.approx(1.0, abs=1e-6), domain
    statistics = learner._statistics(prepared, {})
    assert {"explained_variance", "explained_variance/arm", "explained_variance/grid_world"} <= statistics.keys()


def test_desired_kl_moves_each_domains_rates_by_its_own_kl_within_their_range():
    agent = build_agent()
    parameters = trainable_parameters(agent.model, ["arm", "grid_world"], list(DOMAINS), "grid", train_shared=True)
    config = config_for("arm", desired_kl=0.01, head_learning_rate=1e-3)
    config.domains = {"arm": RolloutConfig(env="metaworld"), "grid_world": RolloutConfig(env="babyai")}
    learner = Learner(agent, config, parameters)
    groups = learner.optimizer.param_groups
    assert {g["domain"] for g in groups} == {"arm", "grid_world", None}  # None: the shared layers
    learner.adapt_learning_rates({"arm": [1.0, 10.0], "grid_world": [0.0, 10.0]})  # KL 0.1 > 2 x 0.01; 0 < 0.005
    for group in groups:
        expected = {"arm": 1 / 1.5, "grid_world": 1.5, None: 1.0}[group["domain"]]
        assert group["lr"] == pytest.approx(group["set_lr"] * expected), group["domain"]
    learner.adapt_learning_rates({"arm": [0.1, 10.0], "grid_world": [0.1, 10.0]})  # 0.01: within the band
    assert learner.learning_rate_scales() == pytest.approx({"learning_rate_scale/arm": 1 / 1.5,
                                                            "learning_rate_scale/grid_world": 1.5})
    for _ in range(20):
        learner.adapt_learning_rates({"arm": [5.0, 10.0], "grid_world": [0.0, 10.0]})
    assert learner.learning_rate_scales() == pytest.approx({"learning_rate_scale/arm": 0.01,
                                                            "learning_rate_scale/grid_world": 100.0})


@pytest.mark.parametrize("desired_kl, lower", [(1e-9, True), (1e3, False)])
def test_an_update_with_desired_kl_adapts_after_the_policy_has_moved(desired_kl, lower):
    agent = build_agent()
    parameters = trainable_parameters(agent.model, ["grid_world"], list(DOMAINS), "grid", train_shared=False)
    learner = Learner(agent, config_for("grid_world", desired_kl=desired_kl, epochs=1, minibatches=2), parameters)
    statistics = learner.update([rollouts(agent, "grid_world", episodes=6)], iteration=0)
    # two minibatches: the first scores the rollout policy itself (KL 0, no change), the second moves it
    assert statistics["learning_rate_scale/grid_world"] == pytest.approx(1 / 1.5 if lower else 1.5)
    fixed = Learner(agent, config_for("grid_world", epochs=1, minibatches=2), parameters)
    assert not any(k.startswith("learning_rate_scale") for k in fixed.update([rollouts(agent, "grid_world")], 0))


def test_init_std_sets_a_regression_heads_spread_and_refuses_other_outputs():
    import math

    from omniactor.rl.loop import set_initial_spreads

    agent = build_agent()
    head = agent.adapters["arm"].head(agent.model)
    before = head.log_std.detach().clone()
    config = config_for("arm")
    config.domains = {"arm": RolloutConfig(env="metaworld", init_std=0.3)}
    set_initial_spreads(agent, config)
    assert torch.allclose(head.log_std, torch.full_like(before, math.log(0.3)))
    assert not torch.allclose(head.log_std, before)
    parameters = trainable_parameters(agent.model, ["arm"], list(DOMAINS), "grid", train_shared=False)
    assert any(p is head.log_std for p in parameters.values())  # learned from there, and checkpointed
    config.domains = {"grid_world": RolloutConfig(env="babyai", init_std=0.3)}
    with pytest.raises(RLError, match="grid_world.init_std.*classification_head"):
        set_initial_spreads(agent, config)
