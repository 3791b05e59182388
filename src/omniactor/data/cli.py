"""``omniactor data ...``: validate, inspect, export and demo dataset folders.

The top-level CLI calls ``add_data_commands(subparsers)``; every handler is stored as
``handler`` on its parser and returns the process exit code. ``python -m omniactor.data.cli``
runs these commands alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..errors import EPILOG, EXIT_ERROR, EXIT_FOUND_PROBLEMS, run_command

EXIT_OK = 0
EXIT_INVALID = EXIT_FOUND_PROBLEMS  # validate: a bad record is a finding
# a folder that is no dataset, a corrupt manifest, an unreadable record: `error: ...`, exit 2 (errors.run_command)


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import format_report, validate_dataset

    report = validate_dataset(args.dir, images=args.images, progress=True)
    print(format_report(report, args.dir))
    return EXIT_OK if report.ok else EXIT_INVALID


def cmd_stats(args: argparse.Namespace) -> int:
    from .stats import dataset_stats, format_stats

    stats = dataset_stats(args.dir, progress=True)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    problems = [f"{stats['unreadable']:,} unreadable record(s) not counted"] if stats["unreadable"] else []
    problems += [f"{len(stats['folder_issues'])} folder-level issue(s)"] if stats["folder_issues"] else []
    if problems:  # counted and shown above; said again where a --json reader looks
        print(f"warning: {' and '.join(problems)}; `omniactor data validate {args.dir}` lists every problem",
              file=sys.stderr)
    return EXIT_OK


def cmd_export_hf(args: argparse.Namespace) -> int:
    from .hf_export import export_to_hf

    try:
        dataset = export_to_hf(args.dir, args.out)
    except ImportError as err:  # `datasets` is optional: the message says how to install it
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {len(dataset):,} rows to {args.out} (load with datasets.load_from_disk)")
    return EXIT_OK


def cmd_example(args: argparse.Namespace) -> int:
    from .example import write_example_dataset

    example = write_example_dataset(args.out, episodes_per_domain=args.episodes, seed=args.seed, faults=args.faults)
    print(f"wrote {example.records} records to {args.out}")
    for fault in example.faults:
        print(
            f"planted {fault.kind}: {fault.file}:{fault.line} "
            f"(episode {fault.episode}, step {fault.step}): {fault.detail}"
        )
    return EXIT_OK


def add_data_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``data validate|stats|export-hf|example`` on the top-level CLI's subparsers."""
    data = subparsers.add_parser(
        "data",
        help="check, inspect and export datasets in the unified sample format",
        description="Dataset folders hold JSONL shards (one ShareGPT sample per line), images and manifest.json.",
        epilog=EPILOG,
    )
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate",
        help="check every record; list each bad one as file:line (episode, step): problem",
        description="Check every record of a dataset folder: JSON well-formed, fields and types, <image> markers "
        "equal to the number of images, image files present and decodable, action parseable and in range, "
        "domain known. Exit 0 when valid, 1 when any record (or the manifest) is bad, 2 when DIR is not a dataset "
        "folder.",
    )
    validate.add_argument("dir", metavar="DIR", help="the dataset folder")
    validate.add_argument(
        "--images",
        choices=("exists", "verify", "decode"),
        default="verify",
        help="how hard to check image files: present only, PIL's cheap integrity check (default), or a full decode",
    )
    validate.set_defaults(handler=cmd_validate)

    stats = commands.add_parser(
        "stats",
        help="counts per domain/source/action type and action statistics",
        description="Counts per domain, source and action type; episodes and steps per episode; per-dimension "
        "statistics of continuous actions (mean, std, min, max, p01, p99) and frequencies of discrete actions.",
    )
    stats.add_argument("dir", metavar="DIR", help="the dataset folder")
    stats.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")
    stats.set_defaults(handler=cmd_stats)

    export = commands.add_parser(
        "export-hf",
        help="export to a Hugging Face datasets folder (save_to_disk); needs omniactor[hf]",
        description="Write DIR as a datasets.Dataset with images embedded and actions as JSON strings.",
    )
    export.add_argument("dir", metavar="DIR", help="the dataset folder")
    export.add_argument(
        "--out", required=True, metavar="OUT", help="where to save the Hugging Face dataset (new or empty folder)"
    )
    export.set_defaults(handler=cmd_export_hf)

    example = commands.add_parser(
        "example",
        help="write a small synthetic dataset of all three domains (optionally with planted faults)",
        description="Write GUI, embodied and discrete example episodes into a new dataset folder. With --faults, "
        "plant a missing image, an out-of-range action, an <image> marker mismatch and a truncated last line.",
    )
    example.add_argument("--out", required=True, metavar="DIR", help="the new dataset folder")
    example.add_argument("--faults", action="store_true", help="plant the four faults `data validate` must find")
    example.add_argument("--episodes", type=int, default=2, help="episodes per domain (default 2)")
    example.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    example.set_defaults(handler=cmd_example)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omniactor")
    add_data_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return run_command(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
