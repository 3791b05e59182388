"""Real-environment tests: marked ``env`` (select with ``-m env``, leave out with ``-m "not env"``);
each is skipped, with the install hint, when its environment is not installed."""

from __future__ import annotations

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "env: runs a real environment (browser, simulator, grid world)")


def require(name: str) -> None:
    """Skip the calling test when environment ``name`` cannot run here."""
    from omniactor.envs.registry import get_spec

    spec = get_spec(name)
    missing = spec.missing()
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)}: {spec.install_hint()}")


@pytest.fixture
def cli_parser():
    """An ``omniactor``-like parser with the envs, collect and data commands."""
    import argparse

    from omniactor.data.cli import add_data_commands
    from omniactor.envs.cli import add_collect_command, add_envs_commands

    parser = argparse.ArgumentParser(prog="omniactor")
    sub = parser.add_subparsers(dest="command", required=True)
    add_envs_commands(sub)
    add_collect_command(sub)
    add_data_commands(sub)
    return parser


def run_cli(parser, argv: list[str]) -> int:
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)
