"""``task_sampling: failures``: an iteration's episodes go to the tasks the agent fails."""

from __future__ import annotations

import pytest

from omniactor.rl.config import load_config
from omniactor.rl.rollout import OUTCOME_DECAY, TaskOutcomes, failure_weighted_tasks, plan_iteration
from omniactor.training.config import ConfigError

TASKS = ["a", "b", "c"]


def config(sampling, episodes=10, **extra):
    overrides = {"init": "run/final", "task_sampling": sampling, "domains.gui.env": "miniwob",
                 "domains.gui.tasks": "[a, b, c]", "domains.gui.episodes": episodes, **extra}
    return load_config(None, [f"{k}={v}" for k, v in overrides.items()])


def test_no_outcomes_yet_share_the_episodes_evenly():
    assert failure_weighted_tasks(TASKS, 6, TaskOutcomes()) == ["a", "b", "c", "a", "b", "c"]
    assert failure_weighted_tasks(TASKS, 4, TaskOutcomes()) == ["a", "b", "c", "a"]  # a tie goes to the earlier task


def test_the_failed_task_gets_the_spare_episodes_and_each_task_keeps_one():
    outcomes = TaskOutcomes()
    outcomes.add({"a": (8, 8), "b": (8, 0), "c": (8, 4)})
    # failure rates 0.1, 0.9, 0.5: the 7 spare episodes' shares 0.47, 4.2, 2.33 give 0, 4, 2, and the one left
    # goes to the largest remainder (a's 0.47)
    order = failure_weighted_tasks(TASKS, 10, outcomes)
    assert order == ["a", "b", "c", "a", "b", "c", "b", "c", "b", "b"]
    assert [order.count(t) for t in TASKS] == [2, 5, 3]


def test_fewer_episodes_than_tasks_go_to_the_most_failed_tasks():
    outcomes = TaskOutcomes()
    outcomes.add({"a": (8, 8), "b": (8, 0), "c": (8, 2)})
    assert failure_weighted_tasks(TASKS, 2, outcomes) == ["b", "c"]


def test_older_outcomes_weigh_half_as_much_per_iteration():
    outcomes = TaskOutcomes()
    outcomes.add({"a": (4, 0)})
    outcomes.add({"a": (4, 4), "b": (2, 1)})
    assert outcomes.counts["a"] == [OUTCOME_DECAY * 4 + 4, OUTCOME_DECAY * 0 + 4]
    assert outcomes.failure_rate("a") == pytest.approx(1 - 5 / 8)
    assert outcomes.failure_rate("unseen") == 0.5


def test_plan_iteration_keeps_its_seeds_and_only_reassigns_tasks():
    outcomes = TaskOutcomes()
    outcomes.add({"a": (8, 8), "b": (8, 0), "c": (8, 8)})
    uniform = plan_iteration(config("uniform"), config("uniform").domains["gui"], TASKS, 3)
    weighted = plan_iteration(config("failures"), config("failures").domains["gui"], TASKS, 3, outcomes=outcomes)
    assert [j.seed for j in uniform] == [j.seed for j in weighted]  # the same episodes' seeds, iteration 3's own
    assert [j.task for j in weighted].count("b") == 7  # 1 + 5.73 of the 7 spare, + the largest remainder
    assert [j.task for j in uniform].count("b") == 3
    # two processes split the same jobs between them
    halves = [plan_iteration(config("failures"), config("failures").domains["gui"], TASKS, 3, r, 2, outcomes)
              for r in (0, 1)]
    assert sorted(j.key for h in halves for j in h) == sorted(j.key for j in weighted)


def test_grpo_weighs_whole_groups():
    outcomes = TaskOutcomes()
    outcomes.add({"a": (8, 8), "b": (8, 0), "c": (8, 8)})
    chosen = config("failures", episodes=16, algorithm="grpo", group_size=4)
    jobs = plan_iteration(chosen, chosen.domains["gui"], TASKS, 0, outcomes=outcomes)
    assert [j.task for j in jobs] == ["a"] * 4 + ["b"] * 4 + ["c"] * 4 + ["b"] * 4


def test_an_unknown_sampling_is_refused():
    with pytest.raises(ConfigError, match="task_sampling: 'worst' is not one of"):
        config("worst")


def test_a_checkpoint_keeps_the_outcomes_for_a_resumed_run(tmp_path):
    from omniactor.rl.loop import load_checkpoint, save_checkpoint

    class Learner:  # what a checkpoint asks of the learner
        def __init__(self):
            self.state = {"weights": 1}

        def state_dict(self):
            return dict(self.state)

        def load_state_dict(self, state):
            self.state = {"weights": state["weights"]}

    outcomes = {"gui": TaskOutcomes()}
    outcomes["gui"].add({"a": (4, 1), "b": (4, 4)})
    outcomes["gui"].add({"a": (4, 2)})
    path = save_checkpoint(tmp_path, Learner(), 2, keep=2, outcomes=outcomes)
    iteration, loaded = load_checkpoint(path, Learner())
    assert iteration == 2 and loaded["gui"].counts == outcomes["gui"].counts
    assert failure_weighted_tasks(["a", "b"], 5, loaded["gui"]) == failure_weighted_tasks(["a", "b"], 5, outcomes["gui"])
