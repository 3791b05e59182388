"""benchmarks/bench_gpu.py: its CPU dry run end to end, its no-GPU answer, and its batch search."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_gpu.py"


def run_script(*args: str, tmp_path: Path) -> tuple[dict, dict]:
    """Run the script; (the JSON of its last stdout line, the JSON it wrote to --out)."""
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    return json.loads(last), json.loads(out.read_text())


def load_module():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    """One torch thread, as the dry run takes (a shared 2-core machine runs it several times faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_dry_run_measures_every_row_and_case(tmp_path):
    result, written = run_script("--dry-run", "--json", tmp_path=tmp_path)
    assert result == written
    assert result["benchmark"] == "gpu" and result["dry_run"] is True
    assert result["preset"] == "tiny-qwen2-vl" and result["device"] == "cpu"
    assert "stopped" not in result and "skipped" not in result
    assert '"error"' not in json.dumps(result)  # no part, row or case failed
    assert result["attention"]["text"] == "sdpa" and result["attention"]["vision"] == "sdpa"
    assert result["machine"]["torch"] == torch.__version__ and result["machine"]["gpu"] is None

    train = result["train"]
    assert train["gradient_checkpointing"] is True and train["batch"] == 2
    assert train["answer_tokens"] > 1 and train["sequence_tokens"] > train["answer_tokens"]
    rows = train["rows"]
    assert list(rows) == ["dense", "omniactor", "hard", "lora", "dense_again"]
    for name, row in rows.items():
        for key in ("step_s", "forward_s", "backward_s", "optimizer_s", "tokens_per_s", "ratio_to_dense"):
            assert row[key] > 0, (name, key, row)
        assert row["step_s"] == pytest.approx(row["forward_s"] + row["backward_s"] + row["optimizer_s"], rel=0.2)
        assert row["peak_memory_gib"] is None and row["cpu_process_max_rss_gib"] > 0  # no GPU: labelled, not faked
        assert 0 < row["trained_parameters"] <= row["trainable_parameters"] <= row["parameters"]
    # the MoE variants hold more weights than dense; a homogeneous batch trains one domain's experts only
    assert rows["dense"]["parameters"] < rows["omniactor"]["parameters"] < rows["hard"]["parameters"]
    assert rows["omniactor"]["trained_parameters"] < rows["omniactor"]["parameters"]
    assert rows["lora"]["lora_rank"] == 16 and rows["lora"]["trainable_parameters"] < rows["omniactor"]["parameters"]
    assert train["dense_drift"] > 0

    cases = result["act"]["cases"]
    assert set(cases) == {"libero_7_bins", "gui_text", "regression_head"}
    assert result["act"]["invalid_answers"] == 0  # constrained: every answer decodes
    for name, runs in cases.items():
        assert set(runs) == {"1", "8"}
        for run in runs.values():
            assert run["actions_per_s"] > 0 and run["ttft_ms"] > 0 and run["inputs_ms"] > 0
            if name == "regression_head":
                assert run["answer_tokens"] == 0 and run["constraint_overhead"] is None
            else:
                assert run["answer_tokens"] >= 2 and run["per_token_ms"] > 0 and run["constraint_overhead"] > 0
                assert run["ttft_ms"] <= run["constrained_ms"]  # both read off the same constrained calls
    assert cases["libero_7_bins"]["1"]["answer_tokens"] == 8  # 7 bins + end of turn

    goals = result["goals"]
    assert set(goals["actions_per_s_at_batch_1"]) == set(cases)
    assert goals["moe_train_ratio"] == rows["omniactor"]["ratio_to_dense"]
    assert goals["worst_constraint_overhead"] > 0 and isinstance(goals["constraint_goal_met"], bool)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU: the script would measure it")
def test_without_a_gpu_it_says_so_and_skips(tmp_path):
    result, _ = run_script("--json", tmp_path=tmp_path)
    assert result["skipped"] is True and "no CUDA device" in result["reason"]
    assert "train" not in result and "act" not in result


def test_a_spent_budget_stops_it_with_what_was_measured(capsys, one_thread):
    bench = load_module()
    result = bench.main(["--dry-run", "--skip-act", "--budget-s", "0"])
    assert "--budget-s 0 spent" in result["stopped"]
    assert result["train"]["rows"] == {} and "act" not in result
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result


def test_batch_search_takes_the_largest_batch_that_fits(monkeypatch, one_thread):
    """The GPU path: batches that run out of memory are freed and the next smaller one is tried."""
    bench = load_module()
    args = bench.parse_args(["--dry-run", "--max-batch", "16"])
    args.batch, args.steps, args.shared_layers = None, 1, 2
    real_step = bench.train_step
    tried = []

    def step(model, batch, optimizer, clock):
        size = batch["input_ids"].shape[0]
        tried.append(size)
        if size > 6:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real_step(model, batch, optimizer, clock)

    monkeypatch.setattr(bench, "train_step", step)
    from omniactor.models.local_tokenizer import build_local_processor

    samples = bench.gui_samples(build_local_processor("qwen2-vl", image_size=224), 16, 56)
    state: dict = {}
    row = bench.train_row(args, "hard", 0, samples, bench.Clock("cpu"), state)
    assert state["batch"] == row["batch"] == 6
    assert [t["batch"] for t in state["batch_search"]] == [16, 12, 8, 6]
    assert [t["fits"] for t in state["batch_search"]] == [False, False, False, True]
    assert tried[:4] == [16, 12, 8, 6] and set(tried[4:]) == {6}
