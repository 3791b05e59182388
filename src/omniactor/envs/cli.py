"""``omniactor envs list`` and ``omniactor collect``.

The top-level CLI calls ``add_envs_commands(subparsers)`` and ``add_collect_command(subparsers)``;
handlers import environments only when they run.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from ..errors import EXIT_ERROR, error_message


def cmd_envs_list(args: argparse.Namespace) -> int:
    from .registry import env_names, get_spec, task_sets

    names = [args.env] if args.env else env_names()
    for name in names:
        try:
            spec = get_spec(name)
        except KeyError as err:
            print(f"error: {error_message(err)}", file=sys.stderr)
            return EXIT_ERROR
        missing = spec.missing()
        status = "ready" if not missing else f"missing {', '.join(missing)} -- install: {spec.install_hint()}"
        print(f"{spec.name}  [{spec.domain}]  {status}")
        print(f"  {spec.description}")
        try:
            tasks = spec.adapter().tasks()
            sets = task_sets(name)
        except ImportError:
            print("  tasks: (install the environment to list them)")
            continue
        print("  task sets: " + ", ".join(f"{k} ({len(v)})" for k, v in sets.items()))
        body = ", ".join(tasks)
        print(textwrap.fill(body, width=100, initial_indent=f"  tasks ({len(tasks)}): ", subsequent_indent="    "))
    return 0


def add_envs_commands(subparsers: argparse._SubParsersAction) -> None:
    envs = subparsers.add_parser("envs", help="environments: list them, their tasks and whether they are installed")
    sub = envs.add_subparsers(dest="envs_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="every environment, its tasks, and its dependencies (with install hints)")
    listing.add_argument("env", nargs="?", help="only this environment")
    listing.set_defaults(handler=cmd_envs_list)

    check = sub.add_parser("check-experts", help="measure the scripted expert's success rate per task")
    check.add_argument("--env", required=True, help="environment name")
    check.add_argument("--tasks", required=True, help="comma-separated tasks, a task set or 'all'")
    check.add_argument("--episodes", type=int, default=20, help="episodes per task (default 20)")
    check.add_argument("--seed", type=int, default=0, help="first seed (the train split's seeds; default 0)")
    check.add_argument("--workers", type=int, default=1, help="tasks run in this many processes (default 1)")
    check.add_argument("--env-config", help="adapter settings as JSON, e.g. '{\"cameras\": []}' for no rendering")
    check.add_argument("--markdown", action="store_true", help="print a Markdown table")
    check.add_argument("--json", action="store_true", help="print one JSON line at the end")
    check.set_defaults(handler=cmd_check_experts)


def cmd_check_experts(args: argparse.Namespace) -> int:
    from .experts.evaluate import evaluate_experts
    from .registry import get_spec, resolve_tasks

    try:
        get_spec(args.env).require()  # DependencyNotInstalled: errors.run_command prints it
        tasks = resolve_tasks(args.env, args.tasks)
        env_config = json.loads(args.env_config) if args.env_config else {}
    except (KeyError, ValueError) as err:  # an unknown environment or task, --env-config not JSON
        print(f"error: {error_message(err)}", file=sys.stderr)
        return EXIT_ERROR

    def show(report) -> None:
        if not args.markdown:
            print(
                f"{report.task}: {report.successes}/{report.episodes} ({report.rate:.1%}), "
                f"{report.mean_steps:.1f} steps/episode, {report.seconds:.1f}s",
                flush=True,
            )

    reports = evaluate_experts(args.env, tasks, args.episodes, args.seed, env_config, args.workers, on_report=show)
    if args.markdown:
        print("| task | success | rate | mean steps |\n|---|---:|---:|---:|")
        for r in reports:
            print(f"| {r.task} | {r.successes}/{r.episodes} | {r.rate:.1%} | {r.mean_steps:.1f} |")
    total = sum(r.successes for r in reports), sum(r.episodes for r in reports)
    print(
        f"all: {total[0]}/{total[1]} ({total[0] / max(total[1], 1):.1%}); "
        f"tasks below 95%: {', '.join(r.task for r in reports if r.rate < 0.95) or 'none'}"
    )
    if args.json:
        print(json.dumps({"env": args.env, "tasks": [r.to_json() for r in reports]}))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from ..data.collect import CollectConfig, collect
    from .base import parse_image_size
    from .registry import resolve_tasks

    try:
        tasks = resolve_tasks(args.env, args.tasks)
        env_config = json.loads(args.env_config) if args.env_config else {}
        if not isinstance(env_config, dict):
            raise ValueError("--env-config must be a JSON object")
        if args.image_size:
            size = parse_image_size(args.image_size)
            env_config["image_size"] = list(size)
        if args.max_steps:
            env_config["max_steps"] = args.max_steps
        config = CollectConfig(
            env=args.env,
            tasks=tuple(tasks),
            episodes=args.episodes,
            out=args.out,
            workers=args.workers,
            seed=args.seed,
            split=args.split,
            env_config=env_config,
            keep_failed=args.keep_failed,
            history=args.history,
            progress=not args.no_progress,
        )
        summary = collect(config)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished episodes are committed in {args.out}; "
            "run the same command again to collect the rest",
            file=sys.stderr,
        )
        return 130
    except (KeyError, ValueError) as err:  # CollectError, DependencyNotInstalled: errors.run_command prints them
        print(f"error: {error_message(err)}", file=sys.stderr)
        return EXIT_ERROR
    print(summary.format())
    if args.json:
        print(json.dumps(summary.to_json()))
    return 1 if summary.worker_errors else 0


def add_collect_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "collect",
        help="run an environment's scripted expert and write its episodes as unified samples",
        description="Runs the expert of ENV on each task for N episodes (deterministic seeds, parallel "
        "workers) and writes one sample per step into OUT. Episodes are committed whole; running the "
        "same command again skips finished episodes and discards what an interrupted run left half done.",
    )
    p.add_argument("--env", required=True, help="environment name (see `omniactor envs list`)")
    p.add_argument("--tasks", required=True, help="comma-separated task names, a task set (MT10, MT50, ...) or 'all'")
    p.add_argument("--episodes", type=int, required=True, help="episodes per task")
    p.add_argument("--out", required=True, help="dataset folder (created, or continued)")
    p.add_argument("--workers", type=int, default=1, help="worker processes, each with its own environment (default 1)")
    p.add_argument(
        "--seed", type=int, default=0, help="base seed: episode i has seed split_offset + seed + i (default 0)"
    )
    p.add_argument(
        "--split",
        default="train",
        choices=("train", "validation", "test"),
        help="seed range: train, validation and test never share an episode (default train)",
    )
    p.add_argument("--image-size", help="rendered image size, N or HxW (default: the environment's own)")
    p.add_argument("--max-steps", type=int, help="step limit of an episode (default: the environment's own)")
    p.add_argument("--env-config", help='more adapter settings as JSON, e.g. \'{"cameras": ["corner2"]}\'')
    p.add_argument("--history", type=int, default=8, help="previous actions shown in each prompt (default 8)")
    p.add_argument(
        "--keep-failed", action="store_true", help="also write episodes the expert failed (meta.success false)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="also print the summary as one JSON line")
    p.set_defaults(handler=cmd_collect)
