"""A random-weight tiny OmniActor agent (no training, no download): four domains, four action tokenizers."""

from dataclasses import replace

import numpy as np
import pytest

DOMAINS = ("gui", "gui_grid", "embodied", "discrete")


def build_random_agent(text_limit: int = 8, classification: bool = False, **options):
    """``classification``: BabyAI's domain acts by a classification head (as in the demo)."""
    from omniactor.actions import BABYAI_ACTIONS, XYZ_GRIPPER, ContinuousAction
    from omniactor.actions.tokenizers import build_action_tokenizer
    from omniactor.agent import Agent, AgentSettings, DomainSettings
    from omniactor.models.heterogeneity import HeterogeneityConfig, convert
    from omniactor.models.presets import build_model, get_preset
    from omniactor.models.vocabulary import add_action_vocabulary

    preset = replace(get_preset("tiny"), num_layers=2, hidden_size=64, num_heads=2, num_kv_heads=1,
                     intermediate_size=128, vision_depth=1, vision_hidden_size=32, vision_intermediate_size=64,
                     shared_layers=1)
    model, processor = build_model(preset, seed=0)
    rng = np.random.default_rng(0)
    embodied = build_action_tokenizer("uniform", num_bins=16).fit(
        [ContinuousAction(tuple(rng.uniform(-1, 1, 4).round(3).tolist()), XYZ_GRIPPER) for _ in range(64)])
    tokenizers = {"gui": build_action_tokenizer("gui_text"), "gui_grid": build_action_tokenizer("gui_location", grid=8),
                  "embodied": embodied, "discrete": build_action_tokenizer("discrete_semlang", names=BABYAI_ACTIONS)}
    for tokenizer in tokenizers.values():
        add_action_vocabulary(model, processor.tokenizer, tokenizer)
    if classification:
        from omniactor.models.chat import add_adapters

        add_adapters(model, processor.tokenizer, classification_sizes={"discrete": len(BABYAI_ACTIONS)})
    convert(model, HeterogeneityConfig("omniactor", shared_layers=1, domains=DOMAINS))
    outputs = {"discrete": "classification_head"} if classification else {}
    settings = AgentSettings({d: DomainSettings(outputs.get(d, "tokens"), history=2, image_size=56) for d in DOMAINS})
    return Agent(model, processor, tokenizers, settings, max_text_chars=text_limit, **options)


@pytest.fixture(scope="session")
def random_agent():
    return build_random_agent()


def random_image(seed: int, size: int = 56) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
