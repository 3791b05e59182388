"""``omniactor rl --config FILE [key=value ...]``."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import EPILOG, run_command


def _rl(args: argparse.Namespace) -> int:
    from .config import config_help, load_config

    if args.list_keys:
        for key, text in config_help().items():
            print(f"{key:24} {text}")
        return 0
    config = load_config(args.config, args.overrides)  # a ConfigError names the key: `error: ...`, exit 2
    from .loop import run

    result = run(config, progress=not args.no_progress)
    print(json.dumps(result))
    return 0


def add_rl_command(subparsers: argparse._SubParsersAction) -> None:
    rl = subparsers.add_parser(
        "rl",
        help="online RL (PPO or GRPO) of a trained agent in the real environments, GEA's second stage",
        description="Starts from an SFT agent (init: RUN/final), samples episodes in the environments named per "
        "domain (their train or validation seeds), updates the agent by PPO or GRPO, and evaluates it before and "
        "after on test seeds. Runs the YAML config with key=value overrides (dotted keys, e.g. "
        "domains.discrete.episodes=32). Several processes: `accelerate launch -m omniactor.rl.cli --config ...` "
        "or torchrun. Re-running the same command resumes from the newest checkpoint. `--list-keys` lists every "
        "key with its meaning. See docs/rl.md.",
        epilog=EPILOG,
    )
    rl.add_argument("--config", help="YAML run config (see configs/rl/)")
    rl.add_argument("overrides", nargs="*", help="key=value overrides, e.g. algorithm=grpo iterations=20")
    rl.add_argument("--list-keys", action="store_true", help="list the config keys and exit")
    rl.add_argument("--no-progress", action="store_true", help="no progress bars")
    rl.set_defaults(handler=_rl)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omniactor")
    add_rl_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["rl", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
