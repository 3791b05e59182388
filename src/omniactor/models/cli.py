"""``omniactor export``: one domain's path of a checkpoint as a plain dense checkpoint."""

from __future__ import annotations

import argparse


def _export(args: argparse.Namespace) -> int:
    from .checkpoint import export_dense

    out = export_dense(args.checkpoint, args.domain, args.out)  # a CheckpointError: `error: ...`, exit 2
    print(f"wrote the {args.domain} path of {args.checkpoint} as a plain checkpoint to {out}")
    return 0


def add_model_commands(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        "export",
        help="write one domain's path (shared layers + its layers and head) as a plain dense checkpoint",
        description="The exported folder loads with plain transformers (no omniactor code), so each domain "
        "can be served by any engine that serves the base architecture. Processor and tokenizer files are "
        "copied along.",
    )
    export.add_argument("checkpoint", help="an omniactor checkpoint folder")
    export.add_argument("out", help="output folder")
    export.add_argument("--domain", required=True, help="the domain whose path to export, e.g. gui")
    export.set_defaults(handler=_export)
