"""The domain block: every combination that cannot work is refused at load time with the domain,
the key and the fix; the flat keys of older configs become the same blocks, with one note."""

import pytest

from omniactor.action_adapters.spec import ActionTokenizerConfig, DomainConfig
from omniactor.training.config import ConfigError, TrainConfig, config_help, load_config

#: (what is wrong, the domains block, words the message must hold)
INVALID = [
    ("pointer on a tokenizer without grid cells",
     {"gui": {"action_tokenizer": "gui_text", "output": "pointer"}},
     ["domains.gui.output", "gui_location", "output: tokens"]),
    ("regression head on discrete actions",
     {"discrete": {"action_tokenizer": "discrete_semlang", "output": "regression_head"}},
     ["domains.discrete.output", "classification_head", "discrete"]),
    ("regression head on GUI actions",
     {"gui": {"action_tokenizer": "gui_location", "output": "regression_head"}},
     ["domains.gui.output", "gui actions"]),
    ("classification head on continuous motions",
     {"embodied": {"action_tokenizer": {"name": "uniform", "num_bins": 8}, "output": "classification_head"}},
     ["domains.embodied.output", "discrete tokenizer", "regression_head"]),
    ("classification head on GUI actions",
     {"gui": {"action_tokenizer": "gui_text", "output": "classification_head"}},
     ["domains.gui.output", "output: tokens"]),
    ("an output that does not exist",
     {"gui": {"output": "pointers"}},
     ["domains.gui.output", "'pointers'", "tokens, pointer, regression_head, classification_head"]),
    ("an unknown tokenizer",
     {"embodied": {"action_tokenizer": {"name": "uniforn"}}},
     ["domains.embodied.action_tokenizer.name", "did you mean 'uniform'"]),
    ("a domain of its own without a tokenizer",
     {"arm": {"output": "regression_head"}},
     ["domains.arm.action_tokenizer", "missing"]),
    ("a negative history",
     {"gui": {"history": -1}},
     ["domains.gui.history", "0 or more"]),
    ("a zero image size",
     {"gui": {"image_size": 0}},
     ["domains.gui.image_size", "null"]),
    ("a history of the wrong type",
     {"gui": {"history": "two"}},
     ["domains.gui.history"]),
    ("a key the block does not have",
     {"gui": {"outputs": "tokens"}},
     ["domains.gui", "outputs"]),
    ("a block that is not a mapping",
     {"gui": "pointer"},
     ["domains.gui", "not a domain block"]),
    ("two image pointers",
     {"phone": {"action_tokenizer": "gui_location", "output": "pointer"},
      "web": {"action_tokenizer": "gui_location", "output": "pointer"}},
     ["one image pointer", "output: tokens"]),
    ("no domain at all",
     {},
     ["no domain given"]),
]


@pytest.mark.parametrize("domains,words", [(d, w) for _, d, w in INVALID], ids=[name for name, _, _ in INVALID])
def test_every_invalid_combination_is_refused_with_the_domain_the_key_and_the_fix(tmp_path, domains, words):
    import yaml

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"domains": domains}))
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    for word in words:
        assert word in str(refused.value), (word, str(refused.value))


def test_flat_keys_beside_a_block_are_refused():
    with pytest.raises(ConfigError, match="beside the domains block"):
        load_config(None, ["domains={gui: {output: tokens}}", "history=2"])


def test_the_flat_keys_of_an_older_config_give_the_same_blocks_with_one_note(capsys):
    old = load_config(None, ["domains=[gui, embodied, discrete]", "action_tokenizers.gui.name=gui_location",
                             "action_tokenizers.gui.args={grid: 16}", "image_pointer=gui", "prompt_copy=true",
                             "regression_heads=[embodied]", "classification_heads=[discrete]",
                             "state_domains=[embodied, discrete]", "history={gui: 2, embodied: 0, discrete: 1}",
                             "image_size={gui: 224, embodied: 112, discrete: 64}"])
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("note: the flat key(s)") and "deprecated" in note[0]
    new = load_config(None, [(
        "domains={gui: {action_tokenizer: {name: gui_location, grid: 16}, output: pointer, copy: true, history: 2, "
        "image_size: 224}, embodied: {action_tokenizer: {name: uniform, num_bins: 256}, output: regression_head, "
        "copy: true, state: true, history: 0, image_size: 112}, discrete: {action_tokenizer: discrete_semlang, "
        "output: classification_head, copy: true, state: true, history: 1, image_size: 64}}")])
    assert capsys.readouterr().err == ""  # the block form: no note
    assert old.blocks == new.blocks
    assert old.blocks["gui"] == DomainConfig(ActionTokenizerConfig("gui_location", {"grid": 16}), "pointer",
                                             copy=True, history=2, image_size=224)
    assert old.domains_with("regression_head") == ["embodied"] and old.state_domain_names == ["embodied", "discrete"]


def test_a_flat_key_naming_a_domain_that_is_not_there_is_refused():
    with pytest.raises(ConfigError, match="regression_heads names \\['arm'\\]"):
        TrainConfig(domains=["gui"], regression_heads=["arm"])


def test_list_keys_documents_the_block(capsys):
    from omniactor.cli import main

    assert main(["train", "--list-keys"]) == 0
    listed = capsys.readouterr().out
    for key in ("domains.<d>.action_tokenizer", "domains.<d>.output", "domains.<d>.copy", "domains.<d>.state",
                "domains.<d>.history", "domains.<d>.image_size"):
        assert key in listed and key in config_help()
    assert "tokens | pointer | regression_head | classification_head" in listed
    assert listed.index("domains.<d>.output") < listed.index("image_pointer")  # the deprecated keys come last
