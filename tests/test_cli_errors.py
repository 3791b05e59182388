"""Every `omniactor` command that reads a dataset, a checkpoint or a config, against a table of
broken inputs: a clear message naming the file (and line and field), the exit status of the
convention (1 ran and found problems, 2 could not run: ``error: ...``), and never a traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from omniactor.cli import main
from omniactor.data.example import write_example_dataset
from omniactor.data.io import MAX_LINE_BYTES
from omniactor.errors import DEBUG_ENV

SHARD = "shards/shard-00000.jsonl"


def _lines(root: Path) -> list[str]:
    return (root / SHARD).read_text(encoding="utf-8").split("\n")


def _rewrite(root: Path, index: int, edit) -> None:
    """Line ``index`` (0-based) of the first shard, as edited JSON (``edit`` changes the parsed record)."""
    lines = _lines(root)
    record = json.loads(lines[index])
    edit(record)
    lines[index] = json.dumps(record)  # Python's json writes NaN / Infinity literals
    (root / SHARD).write_text("\n".join(lines), encoding="utf-8")


def _first(root: Path, action_type: str) -> int:
    return next(i for i, line in enumerate(_lines(root)) if f'"type": "{action_type}"' in line)


def _corrupt_manifest(root: Path) -> None:
    (root / "manifest.json").write_text('{"format": "omniactor-sharegpt", "version": 1, "shards": {', encoding="utf-8")


def _non_utf8(root: Path) -> None:
    data = (root / SHARD).read_bytes()
    at = data.index(b'"system": "') + len(b'"system": "')
    (root / SHARD).write_bytes(data[:at] + b"\xff\xfe" + data[at:])


def _nan_action(root: Path) -> None:
    _rewrite(root, _first(root, "continuous"), lambda r: r["action"]["values"].__setitem__(0, float("nan")))


def _infinity_action(root: Path) -> None:
    _rewrite(root, _first(root, "click"), lambda r: r["action"].__setitem__("x", float("inf")))


def _long_line(root: Path) -> None:  # a record over MAX_LINE_BYTES (16 MiB): 50 MB of system prompt
    _rewrite(root, 0, lambda r: r.__setitem__("system", "x" * 50_000_000))


def _missing_image(root: Path) -> None:
    (root / json.loads(_lines(root)[0])["images"][0]).unlink()


def _outside_image(root: Path) -> None:
    _rewrite(root, 0, lambda r: r.__setitem__("images", ["../../etc/passwd"]))


def _absolute_image(root: Path) -> None:
    _rewrite(root, 0, lambda r: r.__setitem__("images", ["/etc/passwd"]))


BREAK = {
    "corrupt_manifest": _corrupt_manifest,
    "missing_manifest": lambda root: (root / "manifest.json").unlink(),
    "empty_shard": lambda root: (root / SHARD).write_bytes(b""),
    "non_utf8": _non_utf8,
    "nan_action": _nan_action,
    "infinity_action": _infinity_action,
    "long_line": _long_line,
    "missing_image": _missing_image,
    "outside_image": _outside_image,
    "absolute_image": _absolute_image,
}

# what each broken input's message must say (besides the file)
SAYS = {
    "corrupt_manifest": "manifest.json: not valid JSON",
    "missing_manifest": "manifest.json: missing",
    "empty_shard": "says 16 records but the file has 0 lines",
    "non_utf8": "not UTF-8 text (invalid start byte at byte",
    "nan_action": "(episode embodied-000, step 0): action.values[0] (x): is NaN",
    "infinity_action": "(episode gui-000, step 0): action.x: is Infinity",
    "long_line": f"the line is 47.7 MiB, over the {MAX_LINE_BYTES / 2**20:g} MiB",
    "missing_image": "images/00000/000000_0.png",
    "outside_image": "'../../etc/passwd' points outside the dataset folder",
    "absolute_image": "'/etc/passwd' is absolute",
    "planted_faults": "shards/shard-0000",  # `data example --faults`: four bad records, each named by file:line
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """``kind -> folder``: the example dataset broken one way per kind (built once per module)."""
    base = tmp_path_factory.mktemp("broken")
    good = base / "good"
    write_example_dataset(good, episodes_per_domain=1, seed=0)  # 18 records: shard 0 holds 16
    folders = {"good": good}
    for kind, brk in BREAK.items():
        folders[kind] = base / kind
        shutil.copytree(good, folders[kind])
        brk(folders[kind])
    assert main(["data", "example", "--out", str(base / "planted_faults"), "--faults", "--episodes", "1"]) == 0
    folders["planted_faults"] = base / "planted_faults"
    predictions = base / "predictions.jsonl"
    predictions.write_text(json.dumps({"source": "example_gui", "episode": "gui-000", "step": 0,
                                       "prediction": "click(x=0.5, y=0.2188)"}) + "\n")
    folders["predictions"] = predictions
    return folders


def _commands(folder: Path, out: Path, predictions: Path, checkpoint: Path | None) -> dict[str, list[str]]:
    return {
        "data validate": ["data", "validate", str(folder)],
        "data stats": ["data", "stats", str(folder)],
        "data export-hf": ["data", "export-hf", str(folder), "--out", str(out / "hf")],
        "train": ["train", f"data=[{folder}]", f"output_dir={out / 'run'}", "max_steps=1", "batch_size=2",
                  "--no-progress"],  # every broken input stops it before the model is built
        "eval-offline": ["eval-offline", "--predictions", str(predictions), "--data", str(folder), "--protocol",
                         "osatlas", "--out", str(out / "eval"), "--no-progress"],
        "analyze features": ["analyze", "features", "--checkpoint", str(checkpoint), "--data",
                             f"gui={folder},embodied={folder}", "--samples", "2", "--layers", "0", "--out",
                             str(out / "features"), "--no-progress"],  # images are opened after the model loads
    }


# (command, broken input) -> exit status; a reporting command lists findings (1), the others
# refuse (2); 0 where the command does not need what is broken (stats counts what it skips and
# says so; scoring saved predictions opens no image)
OK = 0
EXPECTED = {("data validate", kind): 1 for kind in SAYS}
EXPECTED.update({("data stats", kind): OK for kind in SAYS} | {("data stats", "corrupt_manifest"): 2})
EXPECTED.update({(command, kind): 2 for command in ("data export-hf", "train", "eval-offline", "analyze features")
                 for kind in SAYS})
EXPECTED.update({("data export-hf", "missing_manifest"): OK, ("eval-offline", "missing_manifest"): OK,
                 ("eval-offline", "missing_image"): OK})
# a run that reads a manifest-less folder to the end would load the checkpoint: not an error case
SKIPPED = {("analyze features", "missing_manifest")}
# nothing to say: the command opens no image, or needs no manifest to read the records
SILENT = {("data stats", "missing_image"), ("eval-offline", "missing_image"), ("data export-hf", "missing_manifest"),
          ("eval-offline", "missing_manifest")}
CASES = [pair for pair in EXPECTED if pair not in SKIPPED]


@pytest.mark.parametrize(("command", "kind"), CASES, ids=[f"{c}-{k}" for c, k in CASES])
def test_a_broken_dataset_gives_a_clear_message_never_a_traceback(command, kind, datasets, tmp_path, capsys, request):
    if command == "data export-hf":
        pytest.importorskip("datasets")
    folder = datasets[kind]
    checkpoint = request.getfixturevalue("trained_checkpoint")[0] if command == "analyze features" else None
    code = main(_commands(folder, tmp_path, datasets["predictions"], checkpoint)[command])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == EXPECTED[(command, kind)], out + err
    message = {1: out, 2: err}.get(code, out + err)
    if code == 2:  # (after any progress bar)
        assert re.search(r"(^|\n)error: ", err) and str(folder) in err, err
    if (command, kind) not in SILENT:
        assert SAYS[kind] in message, message
        # the file and line, or (an image opened later) the record
        if kind not in ("corrupt_manifest", "missing_manifest"):
            assert SHARD in message or "episode gui-000, step 0: images[0]" in message, message
    if command == "data stats" and code == OK and (command, kind) not in SILENT:
        assert "warning: " in err and f"omniactor data validate {folder}" in err  # said where --json readers look


def test_stats_json_counts_what_it_skipped(datasets, capsys):
    assert main(["data", "stats", str(datasets["empty_shard"]), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["records"] == 2 and stats["folder_issues"] == [
        f"{SHARD}: manifest.json says 16 records but the file has 0 lines (an empty file: was the disk full?)"]
    assert main(["data", "stats", str(datasets["long_line"]), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["records"] == 17 and stats["unreadable"] == 1 and "47.7 MiB" in stats["unreadable_examples"][0]


def test_a_corrupt_manifest_while_collecting_is_named(datasets, tmp_path, capsys):
    from omniactor.envs.registry import get_spec

    if get_spec("babyai").missing():
        pytest.skip("collect needs BabyAI (minigrid)")
    shutil.copytree(datasets["corrupt_manifest"], tmp_path / "d")
    code = main(["collect", "--env", "babyai", "--tasks", "BabyAI-GoToLocal-v0", "--episodes", "1",
                 "--out", str(tmp_path / "d"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "manifest.json: not valid JSON" in err


# ---------------------------------------------------------------------------- checkpoints


def _missing_shard(final: Path) -> str:
    """The checkpoint as two safetensors shards behind an index, the second one lost."""
    from safetensors import safe_open

    with safe_open(str(final / "model.safetensors"), "pt") as handle:
        keys = list(handle.keys())
    (final / "model.safetensors").rename(final / "model-00001-of-00002.safetensors")
    weight_map = {k: f"model-0000{1 + i % 2}-of-00002.safetensors" for i, k in enumerate(keys)}
    (final / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return "model.safetensors.index.json are missing: model-00002-of-00002.safetensors"


def _truncated_shard(final: Path) -> str:
    data = (final / "model.safetensors").read_bytes()
    (final / "model.safetensors").write_bytes(data[: len(data) // 2])
    return "model.safetensors: cannot be read as safetensors"


def _no_config(final: Path) -> str:
    (final / "config.json").unlink()
    return "no config.json"


CHECKPOINT_BREAK = {"missing_shard": _missing_shard, "truncated_shard": _truncated_shard, "no_config": _no_config}


def _checkpoint_commands(checkpoint: Path, good: Path, data: Path, out: Path) -> dict[str, list[str]]:
    return {
        "export": ["export", str(checkpoint), str(out / "dense"), "--domain", "gui"],
        "eval-offline": ["eval-offline", "--checkpoint", str(checkpoint), "--data", str(data), "--protocol",
                         "osatlas", "--out", str(out / "eval"), "--no-progress"],
        "analyze features": ["analyze", "features", "--checkpoint", str(checkpoint), "--data",
                             f"gui={data},embodied={data}", "--samples", "2", "--layers", "0", "--out",
                             str(out / "features"), "--no-progress"],
        "analyze update-similarity": ["analyze", "update-similarity", "--base", str(checkpoint), "--runs",
                                      f"gui={good},embodied={good}", "--out", str(out / "us"), "--no-progress"],
        "eval": ["eval", "--env", "babyai", "--tasks", "BabyAI-GoToLocal-v0", "--episodes", "1", "--checkpoint",
                 str(checkpoint), "--out", str(out / "online"), "--no-progress"],
    }


CHECKPOINT_CASES = [(c, k) for c in ("export", "eval-offline", "analyze features", "analyze update-similarity", "eval")
                    for k in CHECKPOINT_BREAK if not (k == "no_config" and c.startswith("analyze"))]


@pytest.mark.parametrize(("command", "kind"), CHECKPOINT_CASES, ids=[f"{c}-{k}" for c, k in CHECKPOINT_CASES])
def test_a_broken_checkpoint_is_named_with_the_file(command, kind, trained_checkpoint, tmp_path, capsys):
    if command == "eval":
        from omniactor.envs.registry import get_spec

        if get_spec("babyai").missing():
            pytest.skip("eval needs BabyAI (minigrid)")
    final, data = trained_checkpoint
    broken = tmp_path / "final"
    shutil.copytree(final, broken)
    says = CHECKPOINT_BREAK[kind](broken)
    code = main(_checkpoint_commands(broken, final, data, tmp_path)[command])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 2 and err.startswith("error: ") and str(broken) in err and says in err, err


# ---------------------------------------------------------------------------- train configs


@pytest.mark.parametrize(("overrides", "yaml_text", "says"), [
    (["max_steps=abc"], None, "config.max_steps: 'abc' is not a whole number"),
    ([], 'batch_size: "x"\n', ".batch_size: 'x' is not a whole number"),
    ([], "domains: gui\n", ".domains: 'gui' is not a list of texts"),
    (["history={gui: two}"], None, "config.history.gui: 'two' is not a whole number"),
    (["skip_invalid=maybe"], None, "config.skip_invalid: 'maybe' is not true or false"),
    ([], "max_steps: [1\n", "not a valid YAML config"),
    (["data=[{path: x, weight: heavy}]"], None, "config.data[0].weight: 'heavy' is not a number"),
], ids=["override", "yaml-string", "yaml-list", "nested", "bool", "bad-yaml", "source"])
def test_a_config_with_a_wrong_type_names_the_key_and_the_type(overrides, yaml_text, says, tmp_path, capsys):
    args = ["train", *overrides]
    if yaml_text is not None:
        (tmp_path / "run.yaml").write_text(yaml_text)
        args += ["--config", str(tmp_path / "run.yaml")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and "Traceback" not in err, err


def test_a_missing_config_file_is_named(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.yaml'}: No such file or directory\n"


# ---------------------------------------------------------------------------- a real process; debugging


@pytest.mark.parametrize("args", [["data", "stats", "{corrupt_manifest}"], ["train", "max_steps=abc"]],
                         ids=["stats-corrupt-manifest", "train-wrong-type"])
def test_a_real_process_prints_one_error_line_and_no_traceback(args, datasets):
    argv = [a.format(corrupt_manifest=datasets["corrupt_manifest"]) for a in args]
    env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    done = subprocess.run([sys.executable, "-m", "omniactor.cli", *argv], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_the_debug_variable_lets_the_traceback_through(datasets, monkeypatch):
    from omniactor.data.manifest import ManifestError

    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ManifestError, match="not valid JSON"):
        main(["data", "stats", str(datasets["corrupt_manifest"])])


def test_the_help_tells_the_exit_statuses_and_the_debug_variable(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 done; 1 ran and found problems" in text and f"{DEBUG_ENV}=1" in text
