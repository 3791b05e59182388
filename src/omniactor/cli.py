"""The ``omniactor`` command: one entry point, one subcommand per job.

Each subcommand module registers itself with ``add_*_commands(subparsers)`` and imports
its heavy dependencies inside its handler, so ``omniactor --help`` stays instant. ``main``
runs the handler through ``errors.run_command``: every known error (``OmniactorError``,
``OSError``) becomes ``error: <message>`` and exit status 2, never a traceback
(``OMNIACTOR_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import EPILOG, EXIT_FOUND_PROBLEMS, UsageError, run_command

Handler = Callable[[argparse.Namespace], int]


def json_object_arg(text: str | None, flag: str = "--config", example: str = '{"grid": 32}') -> dict:
    """A flag's JSON-object value (``{}`` when not given); anything else is a ``UsageError`` naming the flag."""
    if not text:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"{flag} must be a JSON object, e.g. '{example}': {err}") from None
    if not isinstance(config, dict):
        raise UsageError(f"{flag} must be a JSON object, e.g. '{example}'")
    return config


def _actions_parse(args: argparse.Namespace) -> int:
    from .actions import ActionParseError, action_to_json, format_action, parse_action

    try:
        action = parse_action(args.text)
    except ActionParseError as err:  # the answer of this command, not a failure to run: exit 1
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FOUND_PROBLEMS
    print(format_action(action))
    print(json.dumps(action_to_json(action), ensure_ascii=False))
    return 0


def _actions_encode(args: argparse.Namespace) -> int:
    from .actions import format_action, parse_action
    from .actions.tokenizers import build_action_tokenizer

    config = json_object_arg(args.config)
    try:
        tokenizer = build_action_tokenizer(args.tokenizer, **config)
    except (KeyError, TypeError) as err:  # an unknown tokenizer or argument
        raise UsageError(f"--tokenizer {args.tokenizer} --config {args.config or '{}'}: "
                         f"{err.args[0] if isinstance(err, KeyError) and err.args else err}") from None
    encoded = tokenizer.encode(parse_action(args.text))
    decoded = tokenizer.decode(encoded)

    print(f"encoded: {encoded}")
    print(f"decoded: {format_action(decoded)}")
    return 0


def _actions_tokenizers(args: argparse.Namespace) -> int:
    from .actions import tokenizers

    print(tokenizers.__doc__.strip())
    return 0


def add_actions_commands(subparsers: argparse._SubParsersAction) -> None:
    actions = subparsers.add_parser("actions", help="parse, format and tokenize actions")
    sub = actions.add_subparsers(dest="actions_command", required=True, metavar="COMMAND")

    parse = sub.add_parser("parse", help="parse action text (or a variant) and print its canonical text and JSON")
    parse.add_argument("text", help="for example 'pyautogui.click(x=634, y=927)'")
    parse.set_defaults(handler=_actions_parse)

    encode = sub.add_parser("encode", help="encode an action with an action tokenizer and decode it back")
    encode.add_argument("text", help="canonical action text, e.g. 'click(x=0.5, y=0.25)'")
    encode.add_argument("--tokenizer", required=True, help="tokenizer name (see `omniactor actions tokenizers`)")
    encode.add_argument("--config", help="tokenizer arguments as JSON, e.g. '{\"grid\": 32, \"fine\": 4}'")
    encode.set_defaults(handler=_actions_encode)

    listing = sub.add_parser("tokenizers", help="list the action tokenizers",
                             description="Lists every registered action tokenizer: its name (for configs and "
                             "`omniactor actions encode --tokenizer`), what it emits (codes or text) and what it is.")
    listing.set_defaults(handler=_actions_tokenizers)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out, quick=args.quick, study=args.study, progress=not args.no_progress, seeds=args.seeds,
                    rl=args.rl)


def add_demo_command(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="the main job: collect demonstrations, train one agent, evaluate it in real environments, report",
        description="Collects expert demonstrations from MiniWoB++ (headless Chromium), Meta-World (MuJoCo) and "
        "BabyAI, trains one OmniActor agent (tiny preset) on all of them, evaluates it and the same model untrained "
        "on unseen seeds, and writes report.md, results.json and PNGs. About 30 minutes on a 2-core CPU; --quick "
        "takes a few minutes. Re-running continues where it stopped (every stage's outputs are reused).",
    )
    demo.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    demo.add_argument("--quick", action="store_true", help="a few minutes: fewer tasks, demonstrations and steps")
    demo.add_argument("--study", action="store_true",
                      help="also run the paper's comparison (GUI-only, EA-only, mixed dense, hard, router, "
                      "OmniActor) with --seeds seeds each on the same data and budget")
    demo.add_argument("--rl", action="store_true",
                      help="then improve the trained agent by online RL in the same environments (omniactor rl) and "
                      "evaluate it again on the same test episodes (docs/rl.md)")
    demo.add_argument("--seeds", type=int, default=3, help="seeds per recipe of --study (default 3)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omniactor",
        description="One vision-language agent for 2D GUIs and 3D embodied worlds.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"omniactor {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .analysis.cli import add_analyze_commands
    from .data.cli import add_data_commands
    from .data.converters.cli import add_convert_command
    from .envs.cli import add_collect_command, add_envs_commands
    from .evaluation.cli import add_eval_command
    from .evaluation.offline import add_eval_offline_command
    from .models.cli import add_model_commands
    from .rl.cli import add_rl_command
    from .serving.cli import add_serve_command
    from .training.cli import add_train_command

    add_data_commands(subparsers)
    add_convert_command(subparsers)
    add_envs_commands(subparsers)
    add_collect_command(subparsers)
    add_actions_commands(subparsers)
    add_train_command(subparsers)
    add_model_commands(subparsers)
    add_eval_command(subparsers)
    add_eval_offline_command(subparsers)
    add_rl_command(subparsers)
    add_analyze_commands(subparsers)
    add_serve_command(subparsers)
    add_demo_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status (2 with ``error: ...`` on stderr for a known error)."""
    args = build_parser().parse_args(argv)
    return run_command(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
