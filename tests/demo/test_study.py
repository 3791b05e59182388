"""The study's table: mean and spread over seeds, and whether the paper's ordering holds."""

import pytest

from omniactor.demo.plan import FULL, QUICK
from omniactor.demo.study import RECIPES, agrees_with_paper, recipe_settings, study_markdown, summarize_study


def test_mean_and_sample_spread_over_seeds():
    runs = {"omniactor": [{"gui": 0.5, "embodied": 0.2}, {"gui": 0.7, "embodied": 0.4}],
            "gui-only": [{"gui": 0.6}, {"gui": 0.6}]}
    table = summarize_study(runs)
    assert table["omniactor"]["gui"] == {"mean": 0.6, "std": pytest.approx(0.1414, abs=1e-4), "n": 2}
    assert table["gui-only"] == {"gui": {"mean": 0.6, "std": 0.0, "n": 2}}


def test_the_papers_ordering_is_checked_not_assumed():
    table = summarize_study({"omniactor": [{"gui": 0.6}], "hard": [{"gui": 0.5}], "mixed-dense": [{"gui": 0.4}]})
    assert agrees_with_paper(table, "gui") is True
    table["hard"]["gui"]["mean"] = 0.7
    assert agrees_with_paper(table, "gui") is False
    assert agrees_with_paper(table, "embodied") is None
    text = study_markdown({"table": table, "seeds": 1, "steps": 10})
    assert "does not hold" in text and "| omniactor | 60% ± 0% |" in text


def test_recipes_train_on_their_domains_only_with_the_same_budget():
    from omniactor.training.config import TrainConfig

    for plan in (FULL, QUICK):
        for recipe in RECIPES:
            settings = recipe_settings(plan, recipe, seed=2)
            assert settings["max_steps"] == plan.study_steps and settings["seed"] == 2
            assert all(settings["domains"][d] == plan.train["domains"][d] for d in settings["domains"])
            TrainConfig(**settings)  # every recipe's blocks pass the checks
    assert list(recipe_settings(FULL, "gui-only", 0)["domains"]) == ["gui"]
    assert recipe_settings(FULL, "gui-only", 0)["domains"]["gui"]["output"] == "pointer"
    assert recipe_settings(FULL, "mixed-dense", 0)["domains"]["discrete"]["output"] == "classification_head"
    assert list(recipe_settings(FULL, "ea-only", 0)["domains"]) == ["embodied"]
    assert recipe_settings(FULL, "ea-only", 0)["domains"]["embodied"]["output"] == "regression_head"
    assert recipe_settings(FULL, "hard", 0)["variant"] == "hard"
