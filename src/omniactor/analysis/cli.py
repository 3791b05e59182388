"""``omniactor analyze update-similarity | features``: where to split, measured."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import EXIT_ERROR, error_message

_UPDATE_DESCRIPTION = """\
Parameter-update similarity (OmniActor): for every decoder layer and projection (q, k, v, o,
gate, up, down), the cosine between the runs' parameter deltas from the common base, plus
attention / FFN / whole-layer aggregates, read layer by layer from memory-mapped safetensors
(a 7B model never sits in memory whole). Proposes K (the shared layers) by a documented rule
(docs/analysis.md) and writes to --out: update_similarity.csv / .json, the FFN and attention
figures (PNG), the per-layer curve with K, and split.yaml (variant: omniactor, shared_layers:
K) for `omniactor train --config`. More than two runs: pairwise matrices per layer, and the
curve takes the lowest pair.

Compare finished runs:
  omniactor analyze update-similarity --base BASE --runs gui=RUN1/final,embodied=RUN2/final --out DIR
Or let the probe fine-tune the base once per dataset first (resumable), then compare:
  omniactor analyze update-similarity --probe --base tiny --data gui=DATA1,embodied=DATA2 --out DIR \\
      --train-config configs/tiny/dense-mixed.yaml --steps 50 learning_rate=1e-3
"""

_FEATURES_DESCRIPTION = """\
Feature similarity (OmniActor's second study): the prompts of --samples records per domain go
through each checkpoint; at each layer every sample is pooled to one hidden vector; writes the
sample-by-sample cosine heatmaps per layer, the mean cross-domain (gui~embodied) and
within-domain (gui~gui) cosine per layer (features.csv / .json, features_mean.png) and the
matrices (features.npz).
  omniactor analyze features --checkpoint base=BASE --checkpoint omni=RUN/final \\
      --data gui=DATA1,embodied=DATA2 --layers 0,2,4,7 --out DIR
"""


def _checkpoint_names(items: list[str]) -> dict[str, str]:
    """``name=DIR`` or ``DIR`` (named after the folder, or its run folder for ``.../final``)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            folder = Path(item)
            name, path = (folder.parent.name if folder.name == "final" else folder.name), item
        if name in out:
            raise ValueError(f"--checkpoint: two checkpoints named {name!r}; name them: --checkpoint NAME=DIR")
        out[name] = path
    return out


def _update_similarity(args: argparse.Namespace) -> int:
    from .domain_data import parse_labelled

    analysis = {"rule": args.rule, "fraction": args.fraction, "reference_layers": args.reference_layers,
                "min_level": args.min_level, "curve_scope": args.curve, "layers_prefix": args.layers_prefix}
    try:
        if args.probe:
            if args.runs or not args.data:
                raise ValueError("--probe takes --data label=DIR,... (the runs are its own), not --runs")
            from .probe import run_probe

            result, proposal, written = run_probe(
                args.base, parse_labelled(args.data, "--data"), args.out, steps=args.steps,
                train_config=args.train_config, overrides=args.overrides, seed=args.seed,
                progress=not args.no_progress, **analysis)
        else:
            if not args.runs or args.data or args.overrides or args.train_config:
                raise ValueError("give --runs label=CHECKPOINT,... (or --probe with --data and train settings)")
            from .report import analyze_checkpoints

            result, proposal, written = analyze_checkpoints(args.base, parse_labelled(args.runs), args.out,
                                                            progress=not args.no_progress, **analysis)
    except (ValueError, KeyError) as err:  # the analyses check their arguments with plain ones too
        print(f"error: {error_message(err)}", file=sys.stderr)
        return EXIT_ERROR
    if result.unchanged:
        shown = "; ".join(result.unchanged[:8])
        print(f"warning: {len(result.unchanged)} matri(x/ces) unchanged by a run (no similarity): {shown}",
              file=sys.stderr)
    print(f"update similarity ({args.curve} curve, lowest pair of {', '.join(result.runs)}):")
    print(proposal.evidence())
    for what, path in written.items():
        print(f"{what:>15}: {path}")
    return 0


def _features(args: argparse.Namespace) -> int:
    from .domain_data import parse_labelled
    from .features import feature_study, write_feature_report

    try:
        study = feature_study(_checkpoint_names(args.checkpoint), parse_labelled(args.data, "--data"), args.layers,
                              args.samples, args.pool, args.image_size or None, args.system_prompt, args.center,
                              progress=not args.no_progress)
        written = write_feature_report(study, args.out)
    except ValueError as err:  # plain ones too (a label, a layer list); OSError and the toolkit's: errors.run_command
        print(f"error: {error_message(err)}", file=sys.stderr)
        return EXIT_ERROR
    pairs = list(next(iter(next(iter(study.means.values())).values())))  # gui~gui, gui~embodied, ...
    print("mean feature cosine between the samples of two domains (and within one, diagonal left out):")
    print(f"{'checkpoint':>14} {'layer':>5}  " + "  ".join(f"{p:>20}" for p in pairs))
    for name, per_layer in study.means.items():
        for layer, means in per_layer.items():
            print(f"{name:>14} {layer:>5}  " + "  ".join(f"{means[p]:>20.4f}" for p in pairs))
    for what, path in written.items():
        print(f"{what:>15}: {path}")
    return 0


def add_analyze_commands(subparsers: argparse._SubParsersAction) -> None:
    analyze = subparsers.add_parser("analyze", help="where to split: parameter-update and feature similarity",
                                    description="Measurements that choose OmniActor's split depth K "
                                    "(docs/analysis.md): update-similarity (with --probe: from data to K in one "
                                    "command) and features.")
    sub = analyze.add_subparsers(dest="analyze_command", required=True, metavar="COMMAND")

    update = sub.add_parser("update-similarity", help="cosine of two fine-tunes' weight updates per layer; "
                            "proposes K", description=_UPDATE_DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    update.add_argument("--base", required=True, help="the base checkpoint folder both runs started from (with "
                        "--probe also a preset name, e.g. tiny)")
    update.add_argument("--runs", help="label=CHECKPOINT pairs, comma-separated: the fine-tuned runs (dense; an "
                        "OmniActor checkpoint is read as the labelled domain's path)")
    update.add_argument("--out", required=True, help="output folder (tables, figures, split.yaml)")
    update.add_argument("--rule", choices=("threshold", "changepoint"), default="threshold",
                        help="how K is read off the curve (default threshold; docs/analysis.md)")
    update.add_argument("--fraction", type=float, default=0.5, help="threshold rule: K is the first layer below "
                        "this fraction of the shallow layers' median similarity (default 0.5)")
    update.add_argument("--reference-layers", type=int, help="threshold rule: leading layers that define the "
                        "shallow level (default max(2, ceil(L/8)))")
    update.add_argument("--min-level", type=float, default=0.1, help="threshold rule: a shallow level below "
                        "this means the runs do not agree even there, and K = 0 (default 0.1)")
    update.add_argument("--curve", choices=("layer", "attention", "ffn"), default="layer",
                        help="which per-layer aggregate the rule reads (default: the whole layer)")
    update.add_argument("--layers-prefix", help="the decoder layer stack when a model has several, e.g. "
                        "model.language_model.layers")
    probe = update.add_argument_group("probe: fine-tune the base once per dataset, then compare")
    probe.add_argument("--probe", action="store_true", help="run the short fine-tunes first (resumable)")
    probe.add_argument("--data", help="label=DATASET pairs, comma-separated (a mixed folder: the label names the "
                       "domain to take)")
    probe.add_argument("--steps", type=int, default=50, help="optimizer steps per fine-tune (default 50)")
    probe.add_argument("--train-config", help="YAML train config for the other settings (tokenizers, lr, batch "
                       "size...); model, variant, domains, data and output_dir are the probe's")
    probe.add_argument("--seed", type=int, default=0, help="init seed of a preset base (default 0)")
    probe.add_argument("overrides", nargs="*", help="train key=value overrides, e.g. learning_rate=1e-3 batch_size=8")
    update.add_argument("--no-progress", action="store_true", help="no progress bars")
    update.set_defaults(handler=_update_similarity)

    features = sub.add_parser("features", help="hidden-feature similarity of the domains per layer (heatmaps)",
                              description=_FEATURES_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    features.add_argument("--checkpoint", action="append", required=True,
                          help="[NAME=]CHECKPOINT folder; repeat to compare several on the same samples")
    features.add_argument("--data", required=True, help="label=DATASET pairs, comma-separated")
    features.add_argument("--layers", help="comma-separated decoder layers, e.g. 0,3,7 (default: all)")
    features.add_argument("--samples", type=int, default=16, help="records per domain (default 16)")
    features.add_argument("--pool", choices=("mean", "last"), default="mean",
                          help="one vector per sample: mean over the prompt's tokens, or the last token (default mean)")
    features.add_argument("--center", action="store_true",
                          help="subtract the mean feature of all samples before the cosines")
    features.add_argument("--image-size", type=int, default=112,
                          help="images resized to this square size, as in training (0: as stored; default 112)")
    features.add_argument("--system-prompt", default="sample",
                          help="sample (each record's), none, or a text; match the run's training config")
    features.add_argument("--out", required=True, help="output folder")
    features.add_argument("--no-progress", action="store_true", help="no progress bars")
    features.set_defaults(handler=_features)
