"""The registry and CLI wiring: no environment is started here."""

from __future__ import annotations

import pytest

from omniactor.envs import base, registry
from tests.envs.conftest import run_cli


def test_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, omniactor.envs, omniactor.envs.cli, omniactor.data.collect, omniactor.envs.registry as r\n"
        "[r.get_spec(n).adapter() for n in r.env_names()]\n"
        "heavy = ('metaworld', 'mujoco', 'miniwob', 'selenium', 'minigrid', 'gymnasium')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_adapter_honours_the_contract():
    for name in registry.env_names():
        spec = registry.get_spec(name)
        adapter = spec.adapter()
        assert issubclass(adapter.ENV_CLASS, base.Env)
        assert adapter.ENV_CLASS.name == name and adapter.ENV_CLASS.domain == spec.domain
        for fn in ("tasks", "task_sets", "resolve_task", "make_expert"):
            assert callable(getattr(adapter, fn)), (name, fn)


def test_unknown_names_suggest_the_closest():
    with pytest.raises(KeyError, match="did you mean 'metaworld'"):
        registry.get_spec("metaworl")
    with pytest.raises(KeyError, match="did you mean 'reach-v3'"):
        registry.resolve_tasks("metaworld", "reech-v3")


def test_missing_dependencies_name_the_install_hint(monkeypatch):
    spec = registry.EnvSpec(
        "fake", "gui", "a fake env", "babyai", ("no_such_module_xyz",), programs=(("no-such-program-xyz",),)
    )
    assert spec.missing() == ["python package 'no_such_module_xyz'", "program no-such-program-xyz"]
    hint = spec.install_hint()
    assert "pip install 'omniactor[envs]'" in hint and "install_system_deps.sh" in hint
    with pytest.raises(base.DependencyNotInstalled, match="omniactor\\[envs\\]"):
        spec.require()


def test_metaworld_tasks_and_sets_need_no_simulator():
    tasks = registry.resolve_tasks("metaworld", "all")
    assert len(tasks) == 50 and tasks[0] == "assembly-v3"
    assert registry.resolve_tasks("metaworld", "MT10")[:2] == ["reach-v3", "push-v3"]
    assert registry.resolve_tasks("metaworld", "reach,push-v3,reach") == ["reach-v3", "push-v3"]
    from omniactor.envs.metaworld import INSTRUCTIONS

    assert all(text and text == text.strip() for text in INSTRUCTIONS.values())


@pytest.mark.parametrize(
    "text, size", [("224", (224, 224)), (64, (64, 64)), ("210x160", (210, 160)), (None, None), ([32, 48], (32, 48))]
)
def test_image_sizes(text, size):
    assert base.parse_image_size(text) == size


@pytest.mark.parametrize("text", ["big", "1x2x3", "4"])
def test_bad_image_sizes(text):
    with pytest.raises(ValueError):
        base.parse_image_size(text)


def test_split_seeds_are_disjoint():
    from omniactor.data.collect import CollectConfig, plan_jobs

    seeds = {}
    for split in ("train", "validation", "test"):
        config = CollectConfig(env="babyai", tasks=("a", "b"), episodes=1000, out="x", split=split, seed=7)
        seeds[split] = {job.seed for job in plan_jobs(config)}
        assert len(plan_jobs(config)) == 2000
    assert not seeds["train"] & seeds["validation"] and not seeds["validation"] & seeds["test"]
    with pytest.raises(ValueError):
        CollectConfig(env="babyai", tasks=("a",), episodes=1, out="x", split="dev")


def test_cli_parses_collect(cli_parser):
    args = cli_parser.parse_args(
        [
            "collect",
            "--env",
            "metaworld",
            "--tasks",
            "MT10",
            "--episodes",
            "3",
            "--out",
            "d",
            "--workers",
            "2",
            "--seed",
            "5",
            "--image-size",
            "128",
            "--keep-failed",
        ]
    )
    assert (args.env, args.tasks, args.episodes, args.workers, args.seed, args.image_size) == (
        "metaworld",
        "MT10",
        3,
        2,
        5,
        "128",
    )
    assert args.keep_failed and callable(args.handler)


def test_envs_list_shows_every_environment(cli_parser, capsys):
    assert run_cli(cli_parser, ["envs", "list"]) == 0
    out = capsys.readouterr().out
    for name in registry.env_names():
        assert f"{name}  [" in out
    assert "reach-v3" in out and "MT10 (10)" in out
    for name in registry.env_names():
        if registry.get_spec(name).missing():
            assert "install:" in out


def test_collect_rejects_unknown_tasks(cli_parser, tmp_path, capsys):
    assert (
        run_cli(
            cli_parser,
            ["collect", "--env", "metaworld", "--tasks", "nope", "--episodes", "1", "--out", str(tmp_path / "d")],
        )
        == 2
    )
    assert "unknown Meta-World task 'nope'" in capsys.readouterr().err
