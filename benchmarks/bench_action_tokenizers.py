"""Uniform bins vs residual VQ: reconstruction error, tokens per action, fit time, speed.

    python benchmarks/bench_action_tokenizers.py [--json] [--data DIR] [--n 50000] [--seed 0] [--quick]
                                                 [--noise 0.01] [--joint-steps 500]

Data: a fixed, seeded set of 7-D actions (6-DoF end-effector delta + gripper) from smooth,
correlated trajectories: per episode, three latent signals (sums of sinusoids plus
smoothed integrated noise) are mixed through a fixed random 6x3 matrix, squashed by tanh,
scaled per dimension (translations 0.9, rotations 0.25, like LIBERO's units) and given
small independent noise (``--noise``, relative to each dimension's scale); the gripper is
-1/+1, switching 1-3 times per episode. Train and held-out sets are split by episode
(every 10th episode is held out).

``--data DIR`` also reads a dataset folder of the project's unified format (``*.jsonl``
shards, one sample per line, ``"action": {"type": "continuous", "names": [...],
"values": [...]}``; other lines are skipped and counted) and runs the same comparison on
each set of dimension names found there (held-out: every 10th episode by
``meta.source``/``meta.episode``, else the last 10% of the lines).

Compared: ``UniformBinTokenizer`` with K in {64, 128, 256, 1024} bins (D tokens per
action) and ``ResidualVQTokenizer`` with 1..8 codebooks of 512 codes (that many tokens),
fitted with its defaults; plus two variants of 7 codebooks: the same tokenizer encoding with
a beam search of 4 (``rvq-7 beam 4``) and one trained GEA-style, encoder + RVQ + decoder
jointly for ``--joint-steps`` steps first (``rvq-7 joint``). ``--quick``: 4,000 actions,
1/2/7 codebooks, a few steps of each fit phase (a smoke run of ~10-20 s).
Errors are absolute reconstruction errors on the held-out actions in normalised units:
each dimension's train min..max mapped to [-1, 1] (uniform-K's mean error on uniform data
is 1/(2K), e.g. ~0.002 for 256 bins). Throughput uses the batched array APIs.

The table goes to stdout; the LAST line printed is one JSON object with every result and
the summary (``rvq7_beats_uniform256``, ``fewest_rvq_tokens_matching_uniform256``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from omniactor.actions.continuous import ActionNormalizer
from omniactor.actions.tokenizers.uniform import UniformBinTokenizer

UNIFORM_BINS = (64, 128, 256, 1024)
RVQ_LEVELS = tuple(range(1, 9))
CODEBOOK_SIZE = 512
HELD_OUT_EVERY = 10


# -- data ---------------------------------------------------------------------------------------
def make_trajectories(n: int = 50_000, seed: int = 0, noise: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 7)`` actions and their episode ids, from smooth correlated trajectories."""
    rng = np.random.default_rng(seed)
    latent = 3
    mix = rng.normal(size=(6, latent)) / np.sqrt(latent)
    scale = np.array([0.9, 0.9, 0.9, 0.25, 0.25, 0.25])
    kernel = np.ones(15) / 15
    rows, episodes, total, episode = [], [], 0, 0
    while total < n:
        length = int(rng.integers(120, 281))
        t = np.arange(length)[:, None] / length
        z = np.zeros((length, latent))
        for k in range(3):  # three sinusoids per latent, higher ones weaker
            freq = rng.uniform(0.3, 3.0, size=latent)
            phase = rng.uniform(0, 2 * np.pi, size=latent)
            amp = rng.uniform(0.2, 0.8, size=latent) / (k + 1)
            z += amp * np.sin(2 * np.pi * freq * t + phase)
        walk = np.cumsum(rng.normal(size=(length, latent)) * 0.03, axis=0)  # integrated noise, smoothed
        z += np.stack([np.convolve(walk[:, j], kernel, mode="same") for j in range(latent)], axis=1)
        arm = np.tanh(z @ mix.T) * scale
        arm += noise * scale * rng.normal(size=arm.shape)
        gripper = -np.ones(length)
        for flip in np.sort(rng.integers(10, length - 10, size=int(rng.integers(1, 4)))):
            gripper[flip:] *= -1
        rows.append(np.concatenate([arm, gripper[:, None]], axis=1))
        episodes.append(np.full(length, episode))
        total += length
        episode += 1
    return np.concatenate(rows)[:n], np.concatenate(episodes)[:n]


def read_dataset(directory: Path) -> tuple[dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]], int]:
    """Continuous actions of a unified-format folder: {names: (values, held-out mask)}, skipped count."""
    shards = sorted(directory.rglob("*.jsonl"))
    if not shards:
        raise SystemExit(f"no *.jsonl shards under {directory}")
    found: dict[tuple[str, ...], list[tuple[list[float], Any]]] = {}
    skipped = 0
    for shard in shards:
        with shard.open() as lines:
            for line in lines:
                if not line.strip():
                    continue
                try:
                    sample = json.loads(line)
                    action = sample["action"]
                    if action.get("type") != "continuous":
                        raise ValueError("not continuous")
                    names, values = tuple(action["names"]), [float(v) for v in action["values"]]
                    if len(names) != len(values) or not values or not np.all(np.isfinite(values)):
                        raise ValueError("malformed")
                except (ValueError, KeyError, TypeError, AttributeError):
                    skipped += 1
                    continue
                meta = sample.get("meta") or {}
                episode = (meta.get("source"), meta.get("episode")) if meta.get("episode") is not None else None
                found.setdefault(names, []).append((values, (str(shard), episode)))
    out = {}
    for names, items in found.items():
        values = np.asarray([v for v, _ in items], dtype=np.float64)
        keys = [k for _, k in items]
        episodes = {k: i for i, k in enumerate(dict.fromkeys(keys))} if all(k[1] is not None for k in keys) else {}
        if len(episodes) >= HELD_OUT_EVERY:
            held = np.array([episodes[k] % HELD_OUT_EVERY == 0 for k in keys])
        else:  # no usable episodes: hold out the last 10% of the lines
            held = np.arange(len(values)) >= int(len(values) * (1 - 1 / HELD_OUT_EVERY))
        out[names] = (values, held)
    return out, skipped


# -- measuring ----------------------------------------------------------------------------------
def throughput(fn: Callable[[], Any], items: int, min_seconds: float = 0.2) -> float:
    """Items per second of ``fn`` (repeated until ``min_seconds`` have passed)."""
    fn()  # warm-up
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return items * runs / elapsed


def compare(train: np.ndarray, held: np.ndarray, rvq_kwargs: dict[str, Any], levels: tuple[int, ...],
            joint_steps: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """One row per tokenizer: tokens, error on ``held`` in normalised units, fit time, speed.

    Besides uniform-K and rvq-Q (the tokenizer's default fit), two variants of 7 codebooks:
    ``rvq-7 beam 4`` (the same tokenizer encoding with a beam search of 4) and
    ``rvq-7 joint`` (``joint_steps`` of GEA-style joint encoder/RVQ/decoder training first).
    """
    reference = ActionNormalizer.fit(train, "minmax")
    half_span = (np.asarray(reference.high) - np.asarray(reference.low)) / 2
    live = half_span > 1e-12

    def errors(decoded: np.ndarray) -> tuple[float, float]:
        err = np.abs(decoded - held)[:, live] / half_span[live]
        return float(err.mean()), float(err.max())

    rows = []
    for bins in UNIFORM_BINS:
        start = time.perf_counter()
        tok = UniformBinTokenizer(bins).fit(train)
        fit_s = time.perf_counter() - start
        codes = tok.bin_array(held)
        mean, worst = errors(tok.unbin_array(codes))
        rows.append({
            "tokenizer": f"uniform-{bins}", "kind": "uniform", "tokens_per_action": int(train.shape[1]),
            "num_codes": bins, "mean_abs_error": mean, "max_abs_error": worst, "fit_s": fit_s,
            "encode_per_s": throughput(lambda: tok.bin_array(held), len(held)),
            "decode_per_s": throughput(lambda: tok.unbin_array(codes), len(held)),
        })
        log(_row_text(rows[-1]))
    from omniactor.actions.tokenizers.vq import ResidualVQTokenizer

    def rvq_row(label: str, kind: str, tok: ResidualVQTokenizer, fit_s: float) -> dict[str, Any]:
        codes = tok.encode_array(held)
        mean, worst = errors(tok.decode_array(codes))
        local = codes - np.arange(tok.num_quantizers) * CODEBOOK_SIZE
        used = [len(np.unique(local[:, level])) / CODEBOOK_SIZE for level in range(tok.num_quantizers)]
        row = {
            "tokenizer": label, "kind": kind, "tokens_per_action": tok.num_quantizers,
            "num_codes": tok.num_codes, "mean_abs_error": mean, "max_abs_error": worst, "fit_s": fit_s,
            "encode_per_s": throughput(lambda: tok.encode_array(held), len(held)),
            "decode_per_s": throughput(lambda: tok.decode_array(codes), len(held)),
            "held_out_codes_used": [round(u, 3) for u in used],
        }
        log(_row_text(row))
        return row

    def fit(q: int, **overrides: Any) -> tuple[ResidualVQTokenizer, float]:
        start = time.perf_counter()
        tok = ResidualVQTokenizer(num_quantizers=q, codebook_size=CODEBOOK_SIZE, **{**rvq_kwargs, **overrides})
        tok.fit(train)
        return tok, time.perf_counter() - start

    for q in levels:
        tok, fit_s = fit(q)
        rows.append(rvq_row(f"rvq-{q}x{CODEBOOK_SIZE}", "rvq", tok, fit_s))
        if q == 7:  # the same codes, found by a beam search of 4 (encode-time option)
            tok.beam_size = 4
            rows.append(rvq_row("rvq-7 beam 4", "rvq_beam4", tok, fit_s))
    if 7 in levels and joint_steps:  # GEA-style joint training of encoder + RVQ + decoder first
        tok, fit_s = fit(7, steps=joint_steps)
        rows.append(rvq_row("rvq-7 joint", "rvq_joint", tok, fit_s))
    return rows


def summarise(rows: list[dict[str, Any]], dim: int) -> dict[str, Any]:
    uniform256 = next(r for r in rows if r["tokenizer"] == "uniform-256")["mean_abs_error"]
    rvq = {r["tokens_per_action"]: r["mean_abs_error"] for r in rows if r["kind"] == "rvq"}
    matching = [q for q, err in sorted(rvq.items()) if err <= uniform256]
    return {
        "uniform256_mean_abs_error": uniform256,
        "uniform256_tokens_per_action": dim,
        "rvq_at_same_tokens_mean_abs_error": rvq.get(dim),
        "rvq_at_same_tokens_beats_uniform256": (rvq[dim] < uniform256) if dim in rvq else None,
        "fewest_rvq_tokens_matching_uniform256": matching[0] if matching else None,
    }


HEADER = (f"{'tokenizer':<14} {'tokens':>6} {'codes':>6} {'mean |err|':>11} {'max |err|':>10} "
          f"{'fit s':>7} {'encode/s':>10} {'decode/s':>10}")


def _row_text(row: dict[str, Any]) -> str:
    return (f"{row['tokenizer']:<14} {row['tokens_per_action']:>6} {row['num_codes']:>6} "
            f"{row['mean_abs_error']:>11.6f} {row['max_abs_error']:>10.5f} {row['fit_s']:>7.1f} "
            f"{row['encode_per_s']:>10.3g} {row['decode_per_s']:>10.3g}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--data", type=Path, help="a unified-format dataset folder (*.jsonl shards) to compare on too")
    parser.add_argument("--n", type=int, default=50_000, help="synthetic actions (default 50000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and of RVQ training")
    parser.add_argument("--noise", type=float, default=0.01, help="synthetic per-step noise, relative to each scale")
    parser.add_argument("--joint-steps", type=int, default=500,
                        help="steps of the 'rvq-7 joint' row (GEA-style joint training; 0: no such row)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4000 actions, RVQ 1/2/7 codebooks, few steps")
    args = parser.parse_args(argv)

    def log(text: str) -> None:
        if not args.json:
            print(text, flush=True)

    try:
        import torch  # noqa: F401
        import vector_quantize_pytorch  # noqa: F401
    except ImportError:
        raise SystemExit("the RVQ tokenizer needs torch and vector-quantize-pytorch: pip install 'omniactor[vq]'")

    n = min(args.n, 4000) if args.quick else args.n
    rvq_kwargs: dict[str, Any] = {"seed": args.seed}
    levels = RVQ_LEVELS
    if args.quick:
        rvq_kwargs.update(batch_size=256, kmeans_iters=2, refine_passes=1, decoder_steps=20)
        levels = (1, 2, 7)
        args.joint_steps = min(args.joint_steps, 10)

    datasets = []
    values, episodes = make_trajectories(n, args.seed, args.noise)
    held = episodes % HELD_OUT_EVERY == 0
    sets = [("synthetic", values, held, {"n": n, "seed": args.seed, "noise": args.noise,
                                         "episodes": int(episodes.max() + 1)})]
    skipped = None
    if args.data is not None:
        found, skipped = read_dataset(args.data)
        for names, (vals, mask) in sorted(found.items(), key=lambda kv: -len(kv[1][0])):
            if mask.sum() == 0 or (~mask).sum() < 2:
                log(f"skipping {args.data} actions with dimensions {list(names)}: only {len(vals)}")
                continue
            sets.append((f"{args.data}:{','.join(names)}", vals, mask, {"names": list(names)}))

    for name, vals, mask, info in sets:
        train, test = vals[~mask], vals[mask]
        log(f"\n{name}: {len(train):,} train / {len(test):,} held-out actions of {vals.shape[1]} dimensions "
            f"(errors on held-out actions, normalised units [-1, 1])")
        log(HEADER)
        rows = compare(train, test, rvq_kwargs, levels, args.joint_steps, log)
        summary = summarise(rows, vals.shape[1])
        datasets.append({"name": name, **info, "n_train": len(train), "n_held_out": len(test),
                         "dim": int(vals.shape[1]), "rows": rows, "summary": summary})
        log(f"RVQ at {vals.shape[1]} tokens beats uniform-256 mean error: "
            f"{summary['rvq_at_same_tokens_beats_uniform256']}; fewest RVQ tokens matching it: "
            f"{summary['fewest_rvq_tokens_matching_uniform256']}")

    synthetic = datasets[0]["summary"]
    result = {
        "benchmark": "action_tokenizers",
        "quick": args.quick,
        "error_units": "normalised [-1, 1] (train min..max per dimension), held-out actions",
        "rvq_settings": {"codebook_size": CODEBOOK_SIZE, **rvq_kwargs, "joint_steps": args.joint_steps},
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "torch_threads": __import__("torch").get_num_threads()},
        "datasets": datasets,
        "data_skipped_lines": skipped,
        "rvq7_beats_uniform256": synthetic["rvq_at_same_tokens_beats_uniform256"],
        "fewest_rvq_tokens_matching_uniform256": synthetic["fewest_rvq_tokens_matching_uniform256"],
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
