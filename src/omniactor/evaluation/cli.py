"""``omniactor eval``: success rates of an agent (or the scripted expert) in real environments."""

from __future__ import annotations

import argparse
import sys

from ..errors import EXIT_ERROR, error_message


def cmd_eval(args: argparse.Namespace) -> int:
    from ..cli import json_object_arg
    from .online import EvalConfig, EvalError, evaluate

    token = None
    if args.server:
        if args.checkpoint or args.sample or args.unconstrained or args.device:
            print("error: with --server the agent and its decoding are the server's: leave out --checkpoint, "
                  "--sample, --unconstrained and --device (start the server with them)", file=sys.stderr)
            return EXIT_ERROR
        if args.token_file:
            from ..serving.cli import read_token

            token = read_token(args.token_file)
    options = {"constrained": not args.unconstrained, "do_sample": args.sample, "temperature": args.temperature,
               "top_k": args.top_k, "seed": args.seed}
    if args.device:
        options["device"] = args.device
    config = EvalConfig(env=args.env, tasks=args.tasks, episodes=args.episodes, out=args.out,
                        checkpoint=args.checkpoint, policy=args.policy, workers=args.workers, seed=args.seed,
                        split=args.split, env_config=json_object_arg(args.env_config, "--env-config", '{"cameras": []}'),
                        domain=args.domain, save_episodes=args.save_episodes, agent_options=options,
                        progress=not args.no_progress, server=args.server, token=token,
                        actions=[a.strip() for a in args.actions.split(",")] if args.actions else None)
    try:
        results = evaluate(config)
    except (EvalError, KeyError) as err:  # an unknown environment or task is a KeyError with a did-you-mean
        print(f"error: {error_message(err)}", file=sys.stderr)
        return EXIT_ERROR
    width = max(len(t) for t in results["tasks"])
    for task, numbers in results["tasks"].items():
        low, high = numbers["ci95"]
        print(f"{task:<{width}}  {numbers['successes']:>4}/{numbers['episodes']:<4} {numbers['success_rate']:6.1%}"
              f"  [{low:.0%}, {high:.0%}]  mean steps {numbers['mean_steps']:.1f}")
    print(f"mean success over tasks: {results['mean_success_rate']:.1%}; results in {args.out}/results.json, "
          f"report.md, success.png")
    return 0


def add_eval_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="success rates of a trained agent (or the expert) in real environments",
        description="Rolls the agent of --checkpoint (a training run's final/ folder) out in real environments "
        "on seeds of the test split (disjoint from the seeds demonstrations are collected on), one batched "
        "generation per step for all running environments, and writes results.json (per task: successes, "
        "success rate with a Wilson 95%% interval, mean steps, failures by cause), report.md and success.png. "
        "--policy expert runs the scripted experts through the same harness. Re-running continues where a "
        "previous run stopped.")
    p.add_argument("--env", required=True, help="environment (see `omniactor envs list`)")
    p.add_argument("--tasks", default="all", help="comma-separated tasks, a task set (e.g. MT10) or 'all'")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task (default 10)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--checkpoint", help="the agent: a training run's final/ folder")
    p.add_argument("--server", metavar="URL", help="the agent behind `omniactor serve` at URL, instead of --checkpoint")
    p.add_argument("--token-file", help="the server's bearer token (with --server)")
    p.add_argument("--policy", choices=["agent", "expert"], default="agent", help="who acts (default: agent)")
    p.add_argument("--workers", type=int, default=1, help="environment processes (the agent batches over them)")
    p.add_argument("--seed", type=int, default=0, help="first seed of the split (default 0)")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"],
                   help="whose seeds to run (default test; train = the seeds `omniactor collect` uses)")
    p.add_argument("--env-config", help="adapter settings as JSON, as for `omniactor collect`")
    p.add_argument("--domain", help="the model's domain that acts here (default: the environment's domain)")
    p.add_argument("--save-episodes", type=int, default=0, metavar="N",
                   help="save a GIF and an image strip of the first N episodes of each task")
    p.add_argument("--actions", metavar="A,B,...",
                   help="act only by these of the domain's discrete actions (a classification head's; the others "
                   "get probability 0), e.g. left,right,forward for BabyAI's GoTo levels")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (with --sample)")
    p.add_argument("--top-k", type=int, default=50, help="sample among the k best valid tokens (with --sample)")
    p.add_argument("--unconstrained", action="store_true",
                   help="let the model write anything (answers that do not decode become a no-op, counted)")
    p.add_argument("--device", help="torch device for the model (default: CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_eval)
