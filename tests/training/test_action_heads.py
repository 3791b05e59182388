"""Training with action heads (regression, classification), an image pointer and a size per domain,
then acting with them."""

import json

import numpy as np
import pytest
import torch

from omniactor.actions import ContinuousAction, DiscreteAction, GuiAction
from omniactor.agent import Agent
from omniactor.data.example import write_example_dataset
from omniactor.envs.base import Observation
from omniactor.training.config import load_config
from omniactor.training.loop import DataError, train

#: the demo's kind of model at test size: a pointer for clicks, a regression head for motions and a
#: classification head for BabyAI's actions
BLOCKS = {"gui": {"action_tokenizer": {"name": "gui_location", "grid": 4}, "output": "pointer", "history": 1,
                  "image_size": 56},
          "embodied": {"action_tokenizer": {"name": "uniform", "num_bins": 16}, "output": "regression_head",
                       "history": 1, "image_size": 28},
          "discrete": {"action_tokenizer": {"name": "discrete_semlang"}, "output": "classification_head",
                       "history": 1, "image_size": 28}}


def _config(root, steps, domains=None, **extra):
    overrides = {"data": f"[{root / 'data'}]", "output_dir": str(root / "run"), "max_steps": steps,
                 "batch_size": 4, "save_every": steps, "log_every": 1, "cache_dir": str(root / "cache"),
                 "learning_rate": 3e-3, "domains": json.dumps(domains or BLOCKS), **extra}
    return load_config(None, [f"{k}={v}" for k, v in overrides.items()])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    write_example_dataset(root / "data", episodes_per_domain=3, seed=0)
    train(_config(root, 8, head_learning_rate=1e-2), progress=False)
    return root


def test_the_head_is_trained_beside_the_tokens(run):
    records = [json.loads(line) for line in (run / "run" / "metrics.jsonl").read_text().splitlines()]
    mse = [r["loss/head_mse/embodied"] for r in records if "loss/head_mse/embodied" in r]
    assert mse and all(np.isfinite(mse))
    ce = [r["loss/head_ce/discrete"] for r in records if "loss/head_ce/discrete" in r]
    assert ce and all(np.isfinite(ce))
    settings = json.loads((run / "run" / "final" / "agent.json").read_text())["domains"]
    assert {d: s["output"] for d, s in settings.items()} == {"gui": "pointer", "embodied": "regression_head",
                                                            "discrete": "classification_head"}
    assert {d: s["image_size"] for d, s in settings.items()} == {"gui": 56, "embodied": 28, "discrete": 28}
    untrained = run / "untrained"
    config = _config(run, 0)
    config.output_dir = str(untrained)
    train(config, progress=False)
    before = Agent.from_pretrained(untrained / "final").model.omniactor_adapters
    after = Agent.from_pretrained(run / "run" / "final").model.omniactor_adapters
    for name in ("regression_embodied", "classification_discrete", "pointer"):
        changed = [not torch.equal(a, b) for (key, a), b in zip(before[name].named_parameters(),
                                                                  after[name].parameters()) if key != "log_std"]
        assert changed and all(changed), name  # every weight of the heads and of the pointer moved
    from omniactor.models.adapters import INITIAL_LOG_STD

    # the regression head's policy spread is RL's to learn: SFT leaves it where it starts
    assert torch.allclose(after["regression_embodied"].log_std, torch.tensor(INITIAL_LOG_STD))


def test_a_regression_head_with_the_state_skip_learns_a_state_to_motion_map():
    from omniactor.models.adapters import RegressionHead, StateProjector, predict_action

    torch.manual_seed(0)
    model = torch.nn.Module()
    model.omniactor_adapters = torch.nn.ModuleDict({"state": StateProjector(6, 8),
                                                    "regression_arm": RegressionHead(8, 2, state_dim=6)})
    model.omniactor_adapters["state"].set_statistics(np.full(6, 5.0), np.full(6, 2.0))
    weights = torch.randn(6, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(600):
        state = 5.0 + 2.0 * torch.randn(64, 6)
        target = torch.tanh((state - 5.0) / 2.0 @ weights)
        loss = RegressionHead.loss(predict_action(model, "arm", torch.zeros(64, 8), state), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.01


def test_a_classification_head_with_the_state_skip_learns_a_state_to_action_map():
    from omniactor.models.adapters import ClassificationHead, StateProjector, predict_action

    torch.manual_seed(0)
    model = torch.nn.Module()
    model.omniactor_adapters = torch.nn.ModuleDict({"state": StateProjector(6, 8),
                                                    "classification_grid": ClassificationHead(8, 3, state_dim=6)})
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(400):
        state = torch.randn(64, 6)
        target = state[:, :3].argmax(dim=1)  # the action is where the largest of three values sits
        loss = ClassificationHead.loss(predict_action(model, "grid", torch.zeros(64, 8), state), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    state = torch.randn(256, 6)
    accuracy = (predict_action(model, "grid", torch.zeros(256, 8), state).argmax(1) == state[:, :3].argmax(1))
    assert float(accuracy.float().mean()) > 0.9


def test_the_classification_head_picks_its_best_action_or_samples_it(run):
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    observation = Observation({"main": image}, "go to the goal", "discrete", 0)
    agent = Agent.from_pretrained(run / "run" / "final")
    head = agent.model.omniactor_adapters["classification_discrete"]
    space = agent.action_tokenizers["discrete"].space
    with torch.no_grad():  # make the head prefer the last action whatever it reads
        head.net[-1].weight.zero_()
        head.net[-1].bias.copy_(torch.arange(len(space.names), dtype=torch.float32) * 10)
    decided = agent.act_batch([agent.start("go to the goal", "discrete")], [observation], details=True)[0]
    assert decided.action == DiscreteAction(space.names[-1]) and decided.valid
    with torch.no_grad():  # a uniform head: sampling spreads, and a seed repeats it
        head.net[-1].bias.zero_()
    picks = []
    for _ in range(2):
        agent.set_decoding(do_sample=True, seed=3)
        picks.append([agent.act_batch([agent.start("go", "discrete")], [observation])[0].name for _ in range(20)])
    assert picks[0] == picks[1] and len(set(picks[0])) > 2
    by_tokens = Agent.from_pretrained(run / "run" / "final", use_heads=False)
    assert isinstance(by_tokens.act_batch([by_tokens.start("go", "discrete")], [observation])[0], DiscreteAction)


def test_the_agent_acts_by_the_head_and_can_still_write_the_tokens(run):
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    observation = Observation({"main": image}, "pick up the red block", "embodied", 0)
    by_head = Agent.from_pretrained(run / "run" / "final")
    by_tokens = Agent.from_pretrained(run / "run" / "final", use_heads=False)
    head_action, token_action = ([a.act_batch([a.start("pick up the red block", "embodied")], [observation],
                                              details=True)[0] for a in (by_head, by_tokens)])
    assert isinstance(head_action.action, ContinuousAction) and isinstance(token_action.action, ContinuousAction)
    assert head_action.valid and token_action.valid
    # the head's action is its tanh output mapped back through the tokenizer's range: not a bin centre
    tokenizer = by_head.action_tokenizers["embodied"]
    centres = tokenizer.unbin_array(np.arange(tokenizer.num_bins)[:, None].repeat(len(tokenizer.names), 1))
    assert not all(np.isclose(v, centres[:, d]).any() for d, v in enumerate(head_action.action.values))
    gui = by_head.act_batch([by_head.start("click OK", "gui")], [Observation({"main": image}, "click OK", "gui", 0)])
    assert isinstance(gui[0], GuiAction.__args__)


def test_the_pointer_is_saved_and_reloaded_with_its_weights(run):
    agent = Agent.from_pretrained(run / "run" / "final")
    pointer = agent.model.omniactor_adapters["pointer"]
    assert pointer.config.grid == 4 and float(pointer.bias.abs().sum()) > 0  # trained, then loaded
    assert hasattr(agent.model, "omniactor_pointer_hooks")


def test_prompt_end_states_read_the_position_before_the_first_label():
    from omniactor.training.loop import prompt_end_states

    hidden = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1)
    labels = torch.tensor([[-100, -100, 7, 8, -100], [-100, -100, -100, 9, -100]])
    assert prompt_end_states(hidden, labels)[:, 0].tolist() == [1.0, 7.0]


def _add_states(root, widths):
    """Give the records of ``widths``' domains a ``meta.state`` of that width."""
    for shard in (root / "shards").glob("*.jsonl"):
        lines = []
        for line in shard.read_text().splitlines():
            record = json.loads(line)
            width = widths.get(record["domain"])
            if width:
                record["meta"]["state"] = [float(record["meta"]["step"] + i) for i in range(width)]
            lines.append(json.dumps(record))
        shard.write_text("\n".join(lines) + "\n")


def test_states_of_different_widths_share_one_input_side_by_side(tmp_path):
    from omniactor.agent import AgentError

    write_example_dataset(tmp_path / "data", episodes_per_domain=2, seed=0)
    _add_states(tmp_path / "data", {"embodied": 5, "discrete": 3})
    blocks = {d: {**block, "state": d != "gui"} for d, block in BLOCKS.items()}
    train(_config(tmp_path, 2, blocks), progress=False)
    final = tmp_path / "run" / "final"
    settings = json.loads((final / "agent.json").read_text())["domains"]
    assert {d: s["state_width"] for d, s in settings.items()} == {"gui": None, "embodied": 5, "discrete": 3}
    agent = Agent.from_pretrained(final)
    projector = agent.model.omniactor_adapters["state"]
    assert projector.state_dim == 8
    assert projector.mean[5:].tolist() != [0.0, 0.0, 0.0]  # each slice standardised by its own domain's records
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    episodes = [agent.start("pick", "embodied"), agent.start("go", "discrete"), agent.start("click", "gui")]
    observations = [Observation({"main": image}, "pick", "embodied", 0, state=np.arange(5.0)),
                    Observation({"main": image}, "go", "discrete", 0, state=np.arange(3.0)),
                    Observation({"main": image}, "click", "gui", 0)]
    assert agent._state_batch([(e.domain, "", [], [], o.state) for e, o in zip(episodes, observations)]).tolist() == [
        [0, 1, 2, 3, 4, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 2], [0] * 8]
    assert len(agent.act_batch(episodes, observations)) == 3
    wrong = Observation({"main": image}, "go", "discrete", 0, state=np.arange(5.0))
    with pytest.raises(AgentError, match="'discrete' takes a state of 3 numbers"):
        agent.act_batch([agent.start("go", "discrete")], [wrong])


def test_a_domain_without_records_whose_tokenizer_needs_them_is_named(tmp_path):
    write_example_dataset(tmp_path / "data", episodes_per_domain=1, seed=0)
    config = _config(tmp_path, 1, {**BLOCKS, "web": {"action_tokenizer": {"name": "discrete_semlang"}}})
    with pytest.raises(DataError, match="domain 'web'.*no training record has this domain"):
        train(config, progress=False)


def test_a_checkpoint_in_the_flat_form_loads_with_one_note_and_acts_the_same(run, tmp_path, capsys):
    """A ``final/`` folder as written before the domain blocks: ``agent.json`` in the flat form and
    no policy spread (``log_std``) in the weights. It loads, says so in one line, and gives the
    same greedy actions in every domain as the folder in today's form."""
    import shutil

    from safetensors.torch import load_file, save_file

    old = tmp_path / "final"
    shutil.copytree(run / "run" / "final", old)
    blocks = json.loads((old / "agent.json").read_text())["domains"]
    (old / "agent.json").write_text(json.dumps({
        "domains": list(blocks), "history": {d: s["history"] for d, s in blocks.items()},
        "image_size": {d: s["image_size"] for d, s in blocks.items()},
        "system_prompts": {d: s["system_prompt"] for d, s in blocks.items()}, "state_widths": {},
        "regression_heads": ["embodied"], "classification_heads": ["discrete"]}))
    stripped = 0
    for weights in old.glob("*.safetensors"):
        tensors = load_file(weights)
        kept = {k: v for k, v in tensors.items() if not k.endswith(".log_std")}
        stripped += len(tensors) - len(kept)
        save_file(kept, weights, metadata={"format": "pt"})
    assert stripped == 1  # the embodied head's

    capsys.readouterr()
    agents = [Agent.from_pretrained(folder) for folder in (run / "run" / "final", old)]
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "flat form" in notes[0]
    assert agents[0].settings == agents[1].settings
    with torch.no_grad():  # the re-saved file moved the tensors after log_std off their 64-byte alignment, which
        for agent in agents:  # changes the last float bits of a matmul: compare both from fresh, aligned memory
            for parameter in agent.model.parameters():
                parameter.data = parameter.data.clone()
    for domain, instruction in (("gui", "click OK"), ("embodied", "pick up the red block"), ("discrete", "go")):
        for seed in range(3):
            image = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
            seen = Observation({"main": image}, instruction, domain, 0)
            actions = [a.act_batch([a.start(instruction, domain)], [seen])[0] for a in agents]
            assert actions[0] == actions[1], (domain, seed)
