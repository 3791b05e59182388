"""``omniactor train --config FILE [key=value ...]``."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import EPILOG, run_command


def _train(args: argparse.Namespace) -> int:
    from .config import config_help, load_config

    if args.list_keys:
        for key, text in config_help().items():
            print(f"{key:24} {text}")
        return 0
    config = load_config(args.config, args.overrides)  # a ConfigError names the key: `error: ...`, exit 2
    from .loop import train

    result = train(config, progress=not args.no_progress)  # so does a DataError, before training starts
    print(json.dumps(result))
    return 0


def add_train_command(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="supervised fine-tuning of a (tiny or 7B) model on mixed GUI + embodied data",
        description="Runs the YAML config with key=value overrides (dotted keys for nested values, e.g. "
        "action_tokenizers.embodied.name=rvq). Several processes: `accelerate launch -m omniactor.training.cli "
        "--config ...` or torchrun. Re-running the same command resumes from the newest checkpoint. "
        "`--list-keys` lists every key with its meaning.",
        epilog=EPILOG,
    )
    train.add_argument("--config", help="YAML run config (see configs/)")
    train.add_argument("overrides", nargs="*", help="key=value overrides, e.g. variant=hard max_steps=200")
    train.add_argument("--list-keys", action="store_true", help="list the config keys and exit")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omniactor")
    add_train_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
