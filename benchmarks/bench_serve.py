"""The policy server under load, against the same agent in process, in one run.

A tiny-preset checkpoint (``omniactor train``, 60 steps on the example dataset: the code path
of a real checkpoint, answering with short actions as a trained agent does) is served by a
real ``omniactor serve`` process on a loopback port. Then:

- **in process, one by one**: ``Agent.act`` on the same requests, one after another (the
  baseline a user without a server would have);
- **in process, batched**: at 16 clients, each step of all 16 in one ``act_batch`` call: the
  most the server's batching can gain on this machine (it is the same call);
- **through the server**: 1, 4, 16 and 64 concurrent clients, each with its own session and a
  fixed number of acts, stopping by itself. Per level: throughput, p50/p99 latency, errors and
  the mean batch size the server formed (from its ``/metrics``). At 1 and 16 clients the
  in-process and server runs alternate over ``--rounds`` rounds, so that the machine's slow
  spells fall on both sides of the comparison;
- **soak**: ``--soak`` acts from 16 clients; the server's resident memory after the first
  tenth and at the end.

Goals: 0 errors; at 1 client the server adds at most 15% latency; at 16 clients throughput
is at least 3x one-by-one in process; memory flat over the soak.

    python benchmarks/bench_serve.py --json                  # the full run (~15 min on 2 cores)
    python benchmarks/bench_serve.py --quick --json          # a smoke run

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

DOMAINS = ("gui", "embodied", "discrete")
TOKEN = "bench-token-0123456789abcdef"
TRAIN_STEPS = 60


def make_checkpoint(root: Path) -> Path:
    from omniactor.data.example import write_example_dataset
    from omniactor.training.config import load_config
    from omniactor.training.loop import train

    write_example_dataset(root / "data", episodes_per_domain=2, seed=0)
    domains = ("domains={gui: {action_tokenizer: {name: gui_location, grid: 8}, history: 2, image_size: 56}, "
               "embodied: {action_tokenizer: {name: uniform, num_bins: 16}, history: 2, image_size: 56}, "
               "discrete: {action_tokenizer: discrete_semlang, history: 2, image_size: 56}}")
    # 60 steps (~25 s): enough for the short answers of a trained agent. An untrained one sometimes writes a
    # 100-token app name, 10x an act's time, and in a batch every row waits for the longest answer
    train(load_config(None, [f"data=[{root / 'data'}]", f"output_dir={root / 'run'}", f"max_steps={TRAIN_STEPS}",
                             domains, "system_prompt=none", f"cache_dir={root / 'cache'}", "learning_rate=3e-3"]),
          progress=False)
    return root / "run" / "final"


def start_server(checkpoint: Path, root: Path, max_batch: int, max_wait_ms: float | None) -> tuple[Any, str]:
    token_file = root / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    process = subprocess.Popen(
        [sys.executable, "-m", "omniactor.cli", "serve", "--checkpoint", str(checkpoint), "--port", "0",
         "--token-file", str(token_file), "--max-batch", str(max_batch), "--max-sessions", "4096",
         *(["--max-wait-ms", str(max_wait_ms)] if max_wait_ms is not None else [])], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    url = line.split(" on ", 1)[1].split()[0]
    import httpx

    for _ in range(400):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    return process, url


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def requests_for(client_index: int, count: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(client_index)
    domain = DOMAINS[client_index % len(DOMAINS)]
    return [(domain, rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)) for _ in range(count)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def in_process(agent: Any, clients: int, per_client: int, batched: bool = False) -> dict[str, float]:
    """The same acts as ``clients`` clients of ``per_client`` acts each (their domains, images and
    growing histories) in this process: one by one, the clients' steps interleaved, or (``batched``)
    each step of all clients in one ``act_batch`` call, the most a server's batching can reach."""
    work = [requests_for(i, per_client) for i in range(clients)]
    episodes = [agent.start("do the task", w[0][0]) for w in work]
    latencies = []
    started = time.perf_counter()
    for step in range(per_client):
        if batched:
            t = time.perf_counter()
            agent.act_batch(episodes, [requests[step][1] for requests in work])
            latencies += [time.perf_counter() - t] * clients
            continue
        for episode, requests in zip(episodes, work):
            t = time.perf_counter()
            agent.act_batch([episode], [requests[step][1]])
            latencies.append(time.perf_counter() - t)
    return {"latencies": latencies, "seconds": time.perf_counter() - started}


def summary(runs: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    """One row from runs of one kind (rounds pooled): throughput over all their acts and seconds."""
    latencies = [x for run in runs for x in run["latencies"]]
    return {"clients": clients, "requests": len(latencies), "rounds": len(runs),
            "throughput": len(latencies) / sum(run["seconds"] for run in runs),
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


def batch_totals(client: Any) -> tuple[float, float]:
    text = client.http.get("/metrics").text
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("omniactor_batch_size_sum"):
            total = float(line.split()[-1])
        elif line.startswith("omniactor_batch_size_count"):
            count = float(line.split()[-1])
    return total, count


def load(url: str, clients: int, per_client: int) -> dict[str, Any]:
    from omniactor.serving import Client

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    monitor = Client(url, token=TOKEN)
    before = batch_totals(monitor)

    def run(index: int) -> None:
        own = Client(url, token=TOKEN)
        work = requests_for(index, per_client)
        try:
            session = own.new_session("do the task", work[0][0])
            for _, image in work:
                t = time.perf_counter()
                try:
                    own.act(session, image)
                    with lock:
                        latencies.append(time.perf_counter() - t)
                except Exception as err:  # noqa: BLE001 - counted and reported
                    with lock:
                        errors.append(repr(err)[:200])
            own.close_session(session)
        finally:
            own.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    after = batch_totals(monitor)
    monitor.close()
    return {"latencies": latencies, "seconds": seconds, "errors": errors,
            "batched_acts": after[0] - before[0], "batches": after[1] - before[1]}


def served(runs: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    """``summary`` of server runs, with their errors and the mean batch the server formed."""
    row = summary(runs, clients)
    errors = [e for run in runs for e in run["errors"]]
    batches = sum(run["batches"] for run in runs)
    row.update(requests=row["requests"] + len(errors), errors=len(errors), first_errors=errors[:3],
               mean_batch=sum(run["batched_acts"] for run in runs) / batches if batches else float("nan"))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,4,16,64", help="concurrency levels")
    parser.add_argument("--requests", type=int, default=512, help="acts per level (split over its clients)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="the compared levels alternate in-process and server runs over this many rounds")
    parser.add_argument("--soak", type=int, default=10_000, help="acts of the memory soak (16 clients)")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=None, help="the server's batching window (default: its own)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few requests, a short soak")
    parser.add_argument("--json", action="store_true", help="(kept for `make bench`; the last line is JSON anyway)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.rounds, args.soak, args.clients = 64, 2, 64, "1,4,16"
    levels = [int(c) for c in args.clients.split(",")]
    compared = sorted({1, 16} & set(levels))
    rounds = max(1, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = make_checkpoint(root)
        from omniactor.agent import Agent

        agent = Agent.from_pretrained(checkpoint)
        in_process(agent, 1, 2)  # warm-up
        process, url = start_server(checkpoint, root, args.max_batch, args.max_wait_ms)
        try:
            load(url, 1, 4)  # warm-up
            rows, baseline, ceiling = [], {}, {}
            for clients in levels:
                # one round: the level's acts in process (one by one; at 16 also batched), then through the
                # server, so that the machine's slow spells fall on both sides; both sides run the same acts
                # (images, domains and growing histories)
                per_round = rounds if clients in compared else 1
                acts = max(1, args.requests // per_round // clients)
                local, local_batched, remote = [], [], []
                for _ in range(per_round):
                    if clients in compared:
                        local.append(in_process(agent, clients, acts))
                        if clients > 1:
                            local_batched.append(in_process(agent, clients, acts, batched=True))
                    remote.append(load(url, clients, acts))
                row = served(remote, clients)
                rows.append(row)
                line = (f"{clients:>3} clients: {row['throughput']:7.1f} acts/s  p50 {row['p50_ms']:7.1f} ms  "
                        f"p99 {row['p99_ms']:7.1f} ms  errors {row['errors']}  mean batch {row['mean_batch']:.1f}")
                if local:
                    baseline[clients] = summary(local, clients)
                    line += (f"\n     in process, one by one: {baseline[clients]['throughput']:7.1f} acts/s  "
                             f"p50 {baseline[clients]['p50_ms']:7.1f} ms  -> server {row['throughput'] / baseline[clients]['throughput']:.2f}x")
                if local_batched:
                    ceiling[clients] = summary(local_batched, clients)
                    line += (f"\n     in process, {clients} per act_batch (the batching ceiling): "
                             f"{ceiling[clients]['throughput']:7.1f} acts/s "
                             f"({ceiling[clients]['throughput'] / baseline[clients]['throughput']:.2f}x one by one)")
                print(line, flush=True)
            del agent
            soak_clients = 16
            first = served([load(url, soak_clients, max(1, args.soak // 10 // soak_clients))], soak_clients)
            rss_first = rss_mb(process.pid)
            rest = served([load(url, soak_clients, max(1, (args.soak - args.soak // 10) // soak_clients))], soak_clients)
            rss_last = rss_mb(process.pid)
            print(f"soak: {first['requests'] + rest['requests']} acts, errors {first['errors'] + rest['errors']}, "
                  f"server memory {rss_first:.0f} MB after {first['requests']} -> {rss_last:.0f} MB at the end")
        finally:
            process.terminate()
            process.wait(timeout=30)
    one = next((r for r in rows if r["clients"] == 1), None)
    sixteen = next((r for r in rows if r["clients"] == 16), None)
    result = {
        "benchmark": "serve", "cpu_count": os.cpu_count(), "rounds": rounds,
        "in_process_one_by_one": list(baseline.values()), "in_process_batched": list(ceiling.values()), "levels": rows,
        "latency_overhead_1_client": one["p50_ms"] / baseline[1]["p50_ms"] - 1 if one and 1 in baseline else None,
        "throughput_ratio_16_clients": sixteen["throughput"] / baseline[16]["throughput"]
        if sixteen and 16 in baseline else None,
        "batching_ceiling_16": ceiling[16]["throughput"] / baseline[16]["throughput"] if 16 in ceiling else None,
        "errors": sum(r["errors"] for r in rows) + first["errors"] + rest["errors"],
        "soak": {"requests": first["requests"] + rest["requests"], "rss_mb_after_first_tenth": rss_first,
                 "rss_mb_at_end": rss_last, "growth_mb": rss_last - rss_first},
    }
    result["goals"] = {"no_errors": result["errors"] == 0,
                       "overhead_at_most_15pct": result["latency_overhead_1_client"] is not None
                       and result["latency_overhead_1_client"] <= 0.15,
                       "throughput_16_at_least_3x": result["throughput_ratio_16_clients"] is not None
                       and result["throughput_ratio_16_clients"] >= 3}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
