"""``omniactor convert SOURCE --src PATH --out DIR [...]``: one subcommand per registered converter.

Each converter's options come from its ``Options`` dataclass (one ``--flag`` per field,
with the field's help), next to the options every conversion takes (workers, limit, ...).
The top-level CLI calls ``add_convert_command(subparsers)``; ``python -m
omniactor.data.converters.cli`` runs it alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Sequence
from typing import Any

from ...errors import EXIT_ERROR, OmniactorError, run_command

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, EXIT_ERROR


def _option_argument(parser: argparse.ArgumentParser, item: dataclasses.Field, hint: Any) -> None:
    """One ``--name`` for a dataclass field: bools as --x/--no-x, Literals as choices,
    tuples as comma-separated lists, ``X | None`` accepting 'none'."""
    flag = "--" + item.name.replace("_", "-")
    help_text = item.metadata.get("help", "")
    default = item.default
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    kwargs: dict[str, Any] = {"dest": item.name, "default": default}
    if base is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
        parser.add_argument(flag, help=f"{help_text} (default: {'on' if default else 'off'})", **kwargs)
        return
    shown = ",".join(default) if isinstance(default, tuple) else default
    suffix = "" if "default" in help_text else f" (default: {'none' if shown in (None, '') else shown})"
    if typing.get_origin(base) is typing.Literal:
        kwargs["choices"] = typing.get_args(base)
    elif typing.get_origin(base) is tuple:
        kwargs["type"] = lambda text: () if text.strip().lower() == "none" else tuple(
            part.strip() for part in text.split(",") if part.strip())
        kwargs["metavar"] = "A,B,..."
    elif base in (int, float):
        kwargs["type"] = (lambda text, t=base: None if text.lower() == "none" else t(text)) if optional else base
    elif optional:
        kwargs["type"] = lambda text: None if text.lower() == "none" else text
    parser.add_argument(flag, help=help_text + suffix, **kwargs)


def _run(args: argparse.Namespace) -> int:
    from . import get_converter
    from .runner import convert

    cls = get_converter(args.converter)
    try:  # Options check combinations and formats (e.g. --image-size) in __post_init__
        options = cls.Options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls.Options)})
    except (TypeError, ValueError) as err:
        print(f"error: {args.converter} options: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        summary = convert(
            cls, args.src, args.out, options, workers=args.workers, limit=args.limit,
            checkpoint_every=args.checkpoint_every, shard_size=args.shard_size, progress=not args.json,
        )
    except OmniactorError:  # a bad source, a missing package, a locked or changed output: exit 2 (run_command)
        raise
    except (RuntimeError, ValueError) as err:  # a conversion that failed on the way
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    code = EXIT_FAILED if args.strict and summary.episodes_skipped else EXIT_OK
    if args.json:
        print(json.dumps(summary.to_json(), ensure_ascii=False))
    else:
        print(summary.format())
    if args.validate:
        from ..validate import format_report, validate_dataset

        report = validate_dataset(args.out, images="exists", progress=not args.json)
        print(format_report(report, args.out), file=sys.stderr if args.json else sys.stdout)
        code = code if report.ok else EXIT_FAILED
    elif not args.json:
        print(f"check the result with: omniactor data validate {args.out}")
    return code


def add_convert_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``convert SOURCE ...`` (one sub-command per converter) on the top-level subparsers."""
    from . import get_converter, list_converters

    convert = subparsers.add_parser(
        "convert",
        help="convert an outside dataset (AndroidControl, GUI Odyssey, LIBERO, LeRobot) into the unified format",
        description="Convert an outside dataset into a dataset folder of the unified sample format. Runs in "
        "parallel worker processes, writes whole episodes only, and resumes: re-running the same command skips "
        "the episodes already converted. Skipped episodes are counted with their reasons in the summary "
        "(also saved, with the resolved options, under OUT/.convert/SOURCE/). Exit codes: 0 done, 1 failed "
        "(or, with --strict, anything skipped; with --validate, an invalid result), 2 bad source or options.",
    )
    sources = convert.add_subparsers(dest="source", metavar="SOURCE", required=True)
    for name in list_converters():
        cls = get_converter(name)
        parser = sources.add_parser(
            name, help=cls.summary, description=f"{cls.summary}. {cls.layout}."
        )
        parser.add_argument("--src", required=True, metavar="PATH", help="the downloaded dataset: " + cls.layout)
        parser.add_argument("--out", required=True, metavar="DIR", help="the dataset folder to create or continue")
        parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
        parser.add_argument("--limit", type=int, default=None, help="convert at most about this many episodes")
        parser.add_argument(
            "--checkpoint-every", type=int, default=200,
            help="close and reopen each worker's writer every N episodes, bounding what an interruption loses "
            "(default: 200; 0: never)",
        )
        parser.add_argument("--shard-size", type=int, default=10_000, help="records per shard (default: 10000)")
        parser.add_argument("--validate", action="store_true", help="validate the whole folder afterwards")
        parser.add_argument("--strict", action="store_true", help="exit 1 if any episode was skipped")
        parser.add_argument("--json", action="store_true", help="print the summary as one JSON line, no progress bar")
        group = parser.add_argument_group(f"{name} options")
        hints = typing.get_type_hints(cls.Options)
        for item in dataclasses.fields(cls.Options):
            _option_argument(group, item, hints[item.name])
        parser.set_defaults(handler=_run, converter=name)
    return convert


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omniactor")
    add_convert_command(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return run_command(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
