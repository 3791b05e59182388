"""Real faults in a child process: a full disk (``RLIMIT_FSIZE``) and SIGKILL, during ``collect``,
``convert``, ``eval`` and ``train``.

Each command runs as the real CLI in a child. A full disk must end as one ``error: <file>: ...``
line with exit status 2 (no traceback) and leave the previous state intact; a kill may leave
uncommitted work, never a committed record half-written. Re-running without the fault must
validate and reach exactly what an uninterrupted run gives (same records by content, same
per-episode results, same final parameters). Fault points are deterministic: byte limits at
fixed fractions of the files the command writes, and kills once the k-th record (k drawn from
``random.Random(0)``) is seen on disk, plus a kill at the very start and one during the final
write. The counts (faults injected, results validated, records lost) are printed at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from omniactor.data import iter_records, load_manifest
from omniactor.data.io import iter_lines, parse_line, shard_paths

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
COUNTS: Counter = Counter()
RNG = random.Random(0)
#: the child resets SIGXFSZ to its default (Python ignores it): a write past the limit kills it
_XFSZ_KILLS = ("import runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_DFL); "
               "sys.argv[0] = 'omniactor'; runpy.run_module('omniactor.cli', run_name='__main__')")


def summary_line() -> str:
    """The counts so far (printed after the session by ``tests/conftest.py``)."""
    return (f"fault tests: {COUNTS['faults']} faults injected ({COUNTS['fsize']} full disk, {COUNTS['xfsz']} killed "
            f"by SIGXFSZ, {COUNTS['kill']} SIGKILL), {COUNTS['validated']} results validated, "
            f"{COUNTS['lost']} records lost, {COUNTS['duplicated']} duplicated")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"), "OMNIACTOR_DEBUG": ""}


def _limit(size: int | None, xfsz_kills: bool = False):
    def pre() -> None:
        if size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL if xfsz_kills else signal.SIG_IGN)
    return pre


def _argv(args: list[str], xfsz_kills: bool = False) -> list[str]:
    if xfsz_kills:
        return [sys.executable, "-c", _XFSZ_KILLS, *args]
    return [sys.executable, "-m", "omniactor.cli", *args]


def run(args: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(_argv(args), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def full_disk(args: list[str], size: int, under: Path) -> str:
    """Run under a file-size limit of ``size`` bytes: it must fail as a full disk does, naming a file."""
    done = subprocess.run(_argv(args), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600,
                          preexec_fn=_limit(size))
    COUNTS["faults"] += 1
    COUNTS["fsize"] += 1
    assert done.returncode == 2, f"limit {size}: exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-4000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(under) in errors[0] and "large" in errors[0], done.stderr[-2000:]
    return errors[0]


def killed_by_xfsz(args: list[str], size: int) -> None:
    """Run under a file-size limit with SIGXFSZ's default action: the write past it kills the child."""
    done = subprocess.run(_argv(args, xfsz_kills=True), cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=600, preexec_fn=_limit(size, xfsz_kills=True))
    COUNTS["faults"] += 1
    COUNTS["xfsz"] += 1
    assert done.returncode == -signal.SIGXFSZ, f"exit {done.returncode}\n{done.stderr[-3000:]}"


def kill_when(args: list[str], ready, what: str, timeout: float = 300.0) -> None:
    """Start the child, SIGKILL its whole process group as soon as ``ready()`` holds (polled)."""
    child = subprocess.Popen(_argv(args), cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if child.poll() is not None:
                pytest.fail(f"{what}: the run ended (exit {child.returncode}) before the kill point\n"
                            f"{child.stdout.read()[-3000:]}")
            assert time.monotonic() < deadline, f"{what}: kill point not reached in {timeout:.0f}s"
            time.sleep(0.005)
    finally:
        with_group = child.poll() is None
        if with_group:
            os.killpg(child.pid, signal.SIGKILL)  # its committer / workers / environments too
        child.wait()
        child.stdout.close()
    assert with_group, what
    COUNTS["faults"] += 1
    COUNTS["kill"] += 1


# ---------------------------------------------------------------------------- datasets


def dataset_content(root: Path) -> Counter:
    """Every record with its images as content hashes (shard and image names depend on the run)."""
    out: Counter = Counter()
    for record in iter_records(root):
        data = record.sample.to_json()
        data["images"] = [hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in data["images"]]
        out[json.dumps(data, sort_keys=True)] += 1
    return out


def committed_content(root: Path) -> Counter:
    """The records of the shards the manifest lists, each whole and as many as it says (the committed
    state after a fault; unlisted shards are uncommitted work a kill left, removed on resume)."""
    manifest = load_manifest(root)
    if manifest is None:
        return Counter()
    listed = set(manifest.shards)
    assert listed <= set(shard_paths(root)), "the manifest lists a shard that is not there"
    counts: Counter = Counter()
    out: Counter = Counter()
    for line in iter_lines(root):
        if line.file not in listed:
            continue
        counts[line.file] += 1
        data = parse_line(line, root).to_json()  # raises for a cut or broken line
        data["images"] = [hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in data["images"]]
        out[json.dumps(data, sort_keys=True)] += 1
    assert dict(counts) == {k: v for k, v in manifest.shards.items() if v}, "shard line counts differ from manifest"
    return out


def validate(root: Path) -> None:
    done = subprocess.run(_argv(["data", "validate", str(root)]), cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def check_final(root: Path, expected: Counter) -> None:
    validate(root)
    got = dataset_content(root)
    lost, extra = expected - got, got - expected
    COUNTS["validated"] += 1
    COUNTS["lost"] += sum(lost.values())
    COUNTS["duplicated"] += sum(extra.values())
    assert not lost and not extra, f"{sum(lost.values())} record(s) lost, {sum(extra.values())} extra"


def check_kept(before: Counter, after: Counter, expected: Counter) -> None:
    """Nothing committed before a fault is gone after it, and nothing committed is not in the full result."""
    lost = before - after
    COUNTS["lost"] += sum(lost.values())
    assert not lost, f"{sum(lost.values())} committed record(s) lost by the fault"
    assert not (after - expected), "a committed record that an uninterrupted run does not have"


def _largest_shard(root: Path) -> int:
    return max((root / rel).stat().st_size for rel in shard_paths(root))


# ---------------------------------------------------------------------------- collect


def test_collect_survives_a_full_disk_and_kills(tmp_path):
    pytest.importorskip("minigrid")
    base = ["collect", "--env", "babyai", "--tasks", "BabyAI-GoToRedBall-v0", "--image-size", "32", "--no-progress"]

    def collect(out: Path, episodes: int) -> list[str]:
        return [*base, "--episodes", str(episodes), "--out", str(out)]

    straight = tmp_path / "straight"
    run(collect(straight, 8))
    expected = dataset_content(straight)
    out = tmp_path / "faulty"
    run(collect(out, 3))  # the previous state every fault must leave intact
    shard = _largest_shard(straight)
    for fraction in (0.02, 0.3, 0.6, 0.9):  # byte limits inside the new shard, its images and the manifest
        before = committed_content(out)
        full_disk(collect(out, 8), int(fraction * shard * 5 / 8), out)
        after = committed_content(out)
        assert after == before, f"limit at {fraction:.0%}: the committed records changed"
        validate(out)  # a failed writer removes what it wrote: the folder is exactly as before
        COUNTS["validated"] += 1

    images = out / "images"
    count_images = lambda: sum(1 for _ in images.rglob("*.png"))  # noqa: E731
    committed = count_images()
    points = [("at the start", lambda: (out / ".collect" / "lock").exists())]
    points += [(f"after image {k}", lambda k=k: count_images() >= committed + k)
               for k in sorted(RNG.sample(range(1, 20), 2))]
    commits = out / ".collect" / "commits"
    points.append(("during the commit", lambda: len(list(commits.glob("*.json"))) > 1))
    for what, ready in points:
        before = committed_content(out)
        kill_when(collect(out, 8), ready, f"collect killed {what}")
        check_kept(before, committed_content(out), expected)
    run(collect(out, 8))
    check_final(out, expected)


# ---------------------------------------------------------------------------- convert


@pytest.fixture(scope="module")
def odyssey(tmp_path_factory):
    from omniactor.data.converters.fake_sources import write_gui_odyssey

    return write_gui_odyssey(tmp_path_factory.mktemp("odyssey") / "GUI-Odyssey", episodes=6)


def test_convert_survives_a_full_disk_and_kills(tmp_path, odyssey):
    def convert(out: Path, *extra: str) -> list[str]:
        return ["convert", "gui_odyssey", "--src", str(odyssey.path), "--out", str(out), "--checkpoint-every", "1",
                "--json", *extra]

    straight = tmp_path / "straight"
    run(convert(straight))
    expected = dataset_content(straight)
    out = tmp_path / "faulty"
    run(convert(out, "--limit", "1"))
    ledger = out / ".convert" / "gui_odyssey"
    sizes = sorted(p.stat().st_size for p in straight.rglob("*") if p.is_file() and ".convert" not in p.parts)
    for size in (sizes[len(sizes) // 4], sizes[len(sizes) // 2], sizes[-1] // 2):  # images, ledger, shards, manifest
        before = committed_content(out)
        full_disk(convert(out), max(size, 64), out)
        check_kept(before, committed_content(out), expected)
        validate(out)
        COUNTS["validated"] += 1
    before = committed_content(out)
    killed_by_xfsz(convert(out), sizes[-1] // 2)
    check_kept(before, committed_content(out), expected)

    old: set[Path] = set()

    def ledger_lines() -> int:  # the lines this run's ledger holds
        return sum(p.read_bytes().count(b"\n") for p in ledger.glob("ledger-*.jsonl") if p not in old)

    points = [("at the start", lambda: True)]
    points += [(f"after ledger line {k}", lambda k=k: ledger_lines() >= k) for k in sorted(RNG.sample(range(1, 4), 2))]
    for what, ready in points:
        old = set(ledger.glob("ledger-*.jsonl"))
        before = committed_content(out)
        kill_when(convert(out), ready, f"convert killed {what}")
        check_kept(before, committed_content(out), expected)
    run(convert(out))
    check_final(out, expected)


# ---------------------------------------------------------------------------- eval


def _episodes(out: Path) -> dict[str, dict]:
    """episodes.jsonl by key; every line must be whole JSON except a cut last line."""
    lines = (out / "episodes.jsonl").read_bytes().split(b"\n") if (out / "episodes.jsonl").exists() else []
    records = {}
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            assert i == len(lines) - 1, f"a broken line {i + 1} that is not the last"
            continue
        records[record["key"]] = record
    return records


def test_eval_survives_a_full_disk_and_kills(tmp_path):
    pytest.importorskip("minigrid")

    def evaluate(out: Path) -> list[str]:
        return ["eval", "--env", "babyai", "--tasks", "BabyAI-GoToRedBall-v0", "--episodes", "8", "--policy",
                "expert", "--workers", "1", "--no-progress", "--env-config", '{"image_size": [32, 32]}',
                "--out", str(out)]

    straight = tmp_path / "straight"
    run(evaluate(straight))
    expected = _episodes(straight)
    line = max(len(json.dumps(r)) for r in expected.values())
    out = tmp_path / "faulty"
    config = (straight / "eval_config.json").stat().st_size
    for size in (config - 10, config + 2 * line, config + 4 * line):  # its config, then episodes.jsonl
        before = _episodes(out)
        full_disk(evaluate(out), size, out)
        after = _episodes(out)
        assert all(after.get(k) == v for k, v in before.items()), "a finished episode was lost"
        assert not (out / "episodes.jsonl").exists() or (out / "episodes.jsonl").read_bytes().endswith(b"\n")
    killed_by_xfsz(evaluate(out), 6 * line)  # a cut last line
    points = [("at the start", lambda: (out / "eval_config.json").exists())]
    points += [(f"after episode {k}", lambda k=k: len(_episodes(out)) >= k) for k in sorted(RNG.sample(range(1, 8), 2))]
    points.append(("during the final write", lambda: len(_episodes(out)) >= 8))
    for what, ready in points:
        before = _episodes(out)
        kill_when(evaluate(out), ready, f"eval killed {what}")
        assert all(_episodes(out).get(k) == v for k, v in before.items()), f"{what}: a finished episode was lost"
    run(evaluate(out))
    got = _episodes(out)
    lost = [k for k in expected if k not in got]
    COUNTS["lost"] += len(lost)
    COUNTS["validated"] += 1
    assert not lost and got == expected
    results = json.loads((out / "results.json").read_text())
    assert results["tasks"] == json.loads((straight / "results.json").read_text())["tasks"]


# ---------------------------------------------------------------------------- train


def test_train_survives_a_full_disk_and_kills(tmp_path):
    import torch

    from omniactor.data.example import write_example_dataset
    from omniactor.models.checkpoint import read_state_dict
    from tests.training.conftest import tiny_overrides

    data = tmp_path / "data"
    write_example_dataset(data, episodes_per_domain=3, seed=0)

    def train(out: Path) -> list[str]:
        return ["train", "--no-progress", *tiny_overrides(data, out, max_steps=4, save_every=2, keep_checkpoints=1)]

    straight = tmp_path / "straight" / "run"
    run(train(straight))
    out = tmp_path / "faulty" / "run"
    weights = (straight / "checkpoint-0000004" / "model.safetensors").stat().st_size
    for size in (100_000, weights // 2):  # the preprocessed cache, then the first checkpoint
        full_disk(train(out), size, out.parent)
        assert not list(out.glob("checkpoint-*")) and not (out / "final").exists()
        assert not list(out.parent.glob("cache/*.tmp-*")), "a partial cache folder was left"
    killed_by_xfsz(train(out), 100_000)
    points = [("at the start", lambda: (out / "config.yaml").exists()),
              ("after the first checkpoint", lambda: (out / "checkpoint-0000002").is_dir()),
              ("during the final write", lambda: (out / "final.tmp").is_dir())]
    for what, ready in points:
        kill_when(train(out), ready, f"train killed {what}")
        for folder in out.glob("checkpoint-*"):  # a checkpoint folder is complete or not there
            assert folder.name.endswith((".tmp", ".tmp-old")) or (folder / "trainer_state.json").exists()
    run(train(out))
    a, b = read_state_dict(straight / "final"), read_state_dict(out / "final")
    COUNTS["validated"] += 1
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resumed parameters differ"
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-0000004"]
