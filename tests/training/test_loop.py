"""End-to-end training runs of the tiny preset on CPU: parameters move, resume is exact, DDP matches."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from omniactor.models.checkpoint import read_state_dict
from omniactor.training.config import load_config
from omniactor.training.data import collect_items
from omniactor.training.loop import build_model, fit_action_tokenizers, train

from .conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[2]


def run_cli(overrides: list[str], env_extra: dict | None = None, launcher: list[str] | None = None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = (launcher or [sys.executable, "-m"]) + ["omniactor.training.cli", "--no-progress", *overrides]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return read_state_dict(out / "final")


def test_a_few_steps_change_every_trainable_parameter(tmp_path, example_data):
    from omniactor.models.heterogeneity import HeterogeneityConfig, convert

    config = load_config(None, tiny_overrides(example_data, tmp_path / "run", max_steps=12, save_every=12))
    train(config, progress=False)
    items, _ = collect_items(config.data, config.domains)
    model, processor, shared = build_model(config)  # the same initial model, rebuilt
    fit_action_tokenizers(config, items, model, processor)
    convert(model, HeterogeneityConfig(config.variant, shared_layers=shared, domains=tuple(config.domains)))
    before = model.state_dict()
    after = final_weights(tmp_path / "run")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    unchanged = [n for n in names if torch.equal(before[n], after[n])]
    assert unchanged == []
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/domain/gui", "loss/domain/embodied", "loss/domain/discrete"} <= set().union(*metrics)
    assert (tmp_path / "run" / "config.yaml").exists() and (tmp_path / "run" / "tensorboard").is_dir()
    assert sorted(p.name for p in (tmp_path / "run" / "final" / "action_tokenizers").iterdir()) == [
        "discrete", "embodied", "gui"]


def test_a_run_killed_mid_way_resumes_to_the_same_parameters(tmp_path, example_data):
    settings = dict(max_steps=6, save_every=2, keep_checkpoints=2)
    straight = run_cli(tiny_overrides(example_data, tmp_path / "straight", **settings))
    assert straight.wait(timeout=600) == 0, straight.stdout.read()

    victim = run_cli(tiny_overrides(example_data, tmp_path / "killed", **settings))
    deadline = time.time() + 600
    while not list((tmp_path / "killed").glob("checkpoint-0000002")) and time.time() < deadline:
        time.sleep(0.2)
        assert victim.poll() is None, victim.stdout.read()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "final").exists()
    resumed = run_cli(tiny_overrides(example_data, tmp_path / "killed", **settings))
    output = resumed.stdout.read()
    assert resumed.wait(timeout=600) == 0, output
    assert "resuming from" in output
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert len(list((tmp_path / "killed").glob("checkpoint-*"))) == 2  # only the newest two are kept


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path, example_data):
    settings = dict(max_steps=3, save_every=3, variant="omniactor")
    single = run_cli(tiny_overrides(example_data, tmp_path / "one", **settings))
    assert single.wait(timeout=600) == 0, single.stdout.read()
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                "-m"]
    ddp = run_cli(tiny_overrides(example_data, tmp_path / "two", **settings), launcher=launcher)
    output = ddp.stdout.read()
    assert ddp.wait(timeout=600) == 0, output
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    # the same global batch, the loss normalised by the global token count: only the order of
    # floating-point sums differs between one process and two
    worst = max((a[n].float() - b[n].float()).abs().max().item() for n in a)
    assert worst < 1e-4, worst


def test_held_out_loss_falls_for_every_domain(tmp_path, example_data):
    from omniactor.data.example import write_example_dataset

    held_out = tmp_path / "held_out"
    write_example_dataset(held_out, episodes_per_domain=2, seed=7)
    config = load_config(None, tiny_overrides(example_data, tmp_path / "run", max_steps=40, save_every=40,
                                              eval_data=f"[{held_out}]", eval_every=40, learning_rate=3e-3))
    from omniactor.training import loop

    items, _ = collect_items(config.data, config.domains)
    model, processor, shared = build_model(config)
    tokenizers = fit_action_tokenizers(config, items, model, processor)
    from omniactor.models.heterogeneity import HeterogeneityConfig, convert
    from omniactor.training.data import SampleEncoder

    convert(model, HeterogeneityConfig(config.variant, shared_layers=shared, domains=tuple(config.domains)))
    encoder = SampleEncoder(processor, tokenizers, config.history, config.image_size, config.system_prompt)
    before = loop.evaluate_loss(config, model, processor, encoder, tmp_path / "cache")
    after = train(config, progress=False)["eval"]
    for domain in ("gui", "embodied", "discrete"):
        assert after[domain] < before[domain], (domain, before, after)


def test_lora_trains_adapters_and_the_new_action_rows_then_merges(tmp_path, example_data):
    from omniactor.models.checkpoint import load_pretrained

    config = load_config(None, tiny_overrides(example_data, tmp_path / "run", max_steps=2, save_every=2,
                                              lora="{r: 4}"))
    train(config, progress=False)
    model = load_pretrained(tmp_path / "run" / "final")  # merged: a plain omniactor checkpoint
    assert not any("lora" in name for name in model.state_dict())


def test_the_record_order_of_the_files_does_not_change_training(tmp_path, example_data):
    """Collectors write episodes in the order their workers finish them; two trainings on the
    same records in another file order must give bitwise the same model."""
    import hashlib
    import shutil

    ordered, shuffled = tmp_path / "ordered", tmp_path / "shuffled"
    shutil.copytree(example_data, ordered)
    for shard in (ordered / "shards").glob("*.jsonl"):  # states whose float sums depend on their order
        records = [json.loads(line) for line in shard.read_text().splitlines()]
        for record in records:
            if record["domain"] == "embodied":
                digest = hashlib.sha256(f"{record['meta']['episode']}/{record['meta']['step']}".encode()).digest()
                record["meta"]["state"] = [b / 7.3 for b in digest[:5]]
        shard.write_text("".join(json.dumps(r) + "\n" for r in records))
    shutil.copytree(ordered, shuffled)
    for shard in (shuffled / "shards").glob("*.jsonl"):
        lines = shard.read_text().splitlines(keepends=True)
        shard.write_text("".join(lines[::-1]))
    settings = dict(max_steps=3, save_every=3, variant="omniactor", state_domains="[embodied]")
    for data, out in ((ordered, "a"), (shuffled, "b")):
        train(load_config(None, tiny_overrides(data, tmp_path / out, **settings)), progress=False)
    a, b = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert a.keys() == b.keys()
    assert [n for n in a if not torch.equal(a[n], b[n])] == []


def test_each_start_records_what_its_float_sums_depend_on(tmp_path):
    import json

    import torch

    from omniactor.training.loop import RUNTIME_FILE, record_runtime

    record_runtime(tmp_path, 0, 1, "cpu")
    record_runtime(tmp_path, 7, 1, "cpu")  # a resumed start adds a line
    lines = [json.loads(line) for line in (tmp_path / RUNTIME_FILE).read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 7]
    assert lines[0]["torch_threads"] == torch.get_num_threads() and lines[0]["torch"] == torch.__version__
    assert lines[0]["cpu"] and lines[0]["cpu"] != "unknown"
    assert lines[0]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
