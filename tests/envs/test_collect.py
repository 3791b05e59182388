"""``omniactor collect`` against the real environments: workers, determinism, resume, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from omniactor.data import iter_records, validate_dataset
from omniactor.data.collect import CollectConfig, CollectError, collect
from tests.envs.conftest import require, run_cli

pytestmark = pytest.mark.env

BABYAI = {"env": "babyai", "env_config": {"image_size": [32, 32]}, "progress": False}


def episodes_of(root) -> dict[str, list]:
    """Episode key -> its records' (step, action, success) in step order."""
    out: dict[str, list] = {}
    for record in iter_records(root):
        meta = record.sample.meta
        out.setdefault(meta["episode"], []).append((meta["step"], record.sample.answer, meta["success"]))
    return {key: sorted(steps) for key, steps in out.items()}


def assert_whole_episodes(root, expect_success: bool = True) -> dict[str, list]:
    report = validate_dataset(root)
    assert report.ok, [str(i) for i in report.issues[:5]]
    episodes = episodes_of(root)
    for key, steps in episodes.items():
        assert [s for s, _, _ in steps] == list(range(len(steps))), f"episode {key} is not whole"
        if expect_success:
            assert all(ok for _, _, ok in steps), key
    return episodes


def test_two_workers_match_one_and_validate(tmp_path):
    require("babyai")
    tasks = ("GoToLocal", "PickupLoc")
    from omniactor.envs.registry import resolve_tasks

    tasks = tuple(resolve_tasks("babyai", ",".join(tasks)))
    two = collect(CollectConfig(tasks=tasks, episodes=3, out=str(tmp_path / "two"), workers=2, seed=4, **BABYAI))
    one = collect(CollectConfig(tasks=tasks, episodes=3, out=str(tmp_path / "one"), workers=1, seed=4, **BABYAI))
    assert not two.worker_errors and not one.worker_errors
    for summary in (one, two):
        for task in tasks:
            t = summary.tasks[task]
            assert (t.episodes, t.successes, t.new, t.skipped) == (3, 3, 3, 0)
    a = assert_whole_episodes(tmp_path / "one")
    b = assert_whole_episodes(tmp_path / "two")
    assert a == b and len(a) == 6  # same seeds, same episodes, whatever the workers
    record = next(iter_records(tmp_path / "one")).sample
    assert record.meta["task"] in tasks and record.meta["split"] == "train" and "state" in record.meta
    assert (
        "Previous actions"
        in next(r for r in iter_records(tmp_path / "one") if r.sample.meta["step"] == 1).sample.prompt
    )

    test = collect(
        CollectConfig(tasks=tasks[:1], episodes=3, out=str(tmp_path / "one"), split="test", seed=4, **BABYAI)
    )
    assert test.tasks[tasks[0]].new == 3  # the test split's seeds are new episodes
    assert len(assert_whole_episodes(tmp_path / "one")) == 9


def contents(root) -> dict[tuple[str, int], tuple]:
    """(episode, step) -> everything training reads of the record: prompt, answer, state, image bytes."""
    out = {}
    for record in iter_records(root):
        sample = record.sample
        images = tuple((Path(root) / image).read_bytes() for image in sample.images)
        state = json.dumps(sample.meta.get("state"))
        out[(sample.episode, sample.step)] = (sample.prompt, sample.answer, state, images)
    return out


def test_two_collections_hold_the_same_records_whatever_the_workers_timing(tmp_path):
    """Which worker runs which episode, and so the shards' order, is timing; the records are not."""
    require("babyai")
    from omniactor.envs.registry import resolve_tasks

    tasks = tuple(resolve_tasks("babyai", "GoToRedBall,GoToLocal"))
    settings = {**BABYAI, "env_config": {"image_size": [32, 32], "state_format": "onehot"}}
    for out in ("a", "b"):
        collect(CollectConfig(tasks=tasks, episodes=4, out=str(tmp_path / out), workers=2, **settings))
    a, b = contents(tmp_path / "a"), contents(tmp_path / "b")
    assert len(a) > 8 and a == b


def test_rerun_skips_finished_episodes_and_checks_settings(tmp_path):
    require("babyai")
    out = str(tmp_path / "d")
    first = collect(CollectConfig(tasks=("BabyAI-GoToLocal-v0",), episodes=2, out=out, **BABYAI))
    assert first.tasks["BabyAI-GoToLocal-v0"].new == 2
    again = collect(CollectConfig(tasks=("BabyAI-GoToLocal-v0",), episodes=4, out=out, **BABYAI))
    task = again.tasks["BabyAI-GoToLocal-v0"]
    assert (task.skipped, task.new, task.episodes) == (2, 2, 4)
    assert len(assert_whole_episodes(out)) == 4
    with pytest.raises(CollectError, match="different|holds episodes collected with"):
        collect(CollectConfig(tasks=("BabyAI-GoToLocal-v0",), episodes=4, out=out, history=2, **BABYAI))


def test_uncommitted_shards_are_discarded(tmp_path):
    require("babyai")
    out = tmp_path / "d"
    collect(CollectConfig(tasks=("BabyAI-GoToLocal-v0",), episodes=2, out=str(out), **BABYAI))
    # what a writer killed mid-batch leaves: a shard (here half an episode) the manifest does not list
    lines = (out / "shards" / "shard-00000.jsonl").read_text().splitlines()
    (out / "shards" / "shard-00007.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    assert not validate_dataset(out).ok
    summary = collect(CollectConfig(tasks=("BabyAI-GoToLocal-v0",), episodes=3, out=str(out), **BABYAI))
    assert summary.discarded_shards == ["shards/shard-00007.jsonl"]
    assert len(assert_whole_episodes(out)) == 3
    assert list((out / ".collect" / "discarded").glob("*/shard-00007.jsonl"))


def test_killed_run_resumes(tmp_path):
    require("babyai")
    out = tmp_path / "d"
    script = (
        "from omniactor.data.collect import CollectConfig, collect\n"
        f"collect(CollectConfig(env='babyai', tasks=('BabyAI-GoToObjMaze-v0',), episodes=400, out={str(out)!r}, "
        "env_config={'image_size': [32, 32]}, progress=False, commit_steps=20))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    commits = out / ".collect" / "commits"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(commits.glob("*.json"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(list(commits.glob("*.json"))) >= 2, "the run committed nothing in 2 minutes"
    summary = collect(CollectConfig(tasks=("BabyAI-GoToObjMaze-v0",), episodes=30, out=str(out), **BABYAI))
    task = summary.tasks["BabyAI-GoToObjMaze-v0"]
    assert task.skipped > 0 and task.episodes == 30
    episodes = assert_whole_episodes(out)
    assert len(episodes) == task.successes


def test_failed_episodes_are_counted_and_left_out(tmp_path):
    require("babyai")
    config = dict(BABYAI, env_config={"image_size": [32, 32], "max_steps": 3})
    out = tmp_path / "d"
    summary = collect(CollectConfig(tasks=("BabyAI-GoToObjMaze-v0",), episodes=4, out=str(out), **config))
    task = summary.tasks["BabyAI-GoToObjMaze-v0"]
    assert task.episodes == 4 and task.failed_excluded == 4 - task.successes > 0
    assert len(episodes_of(out)) == task.successes if (out / "manifest.json").exists() else task.successes == 0
    kept = collect(
        CollectConfig(tasks=("BabyAI-GoToObjMaze-v0",), episodes=4, out=str(tmp_path / "k"), keep_failed=True, **config)
    )
    assert kept.tasks["BabyAI-GoToObjMaze-v0"].failed_kept == task.failed_excluded
    episodes = assert_whole_episodes(tmp_path / "k", expect_success=False)
    assert len(episodes) == 4 and sum(not steps[0][2] for steps in episodes.values()) == task.failed_excluded


def test_a_second_collector_is_refused(tmp_path):
    require("babyai")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "d" / ".collect").mkdir(parents=True)
        (tmp_path / "d" / ".collect" / "lock").write_text(str(sleeper.pid))
        with pytest.raises(CollectError, match="another collect run"):
            collect(CollectConfig(tasks=("BabyAI-GoToLocal-v0",), episodes=1, out=str(tmp_path / "d"), **BABYAI))
    finally:
        sleeper.kill()
        sleeper.wait()
    # a lock left by a dead process is taken over
    summary = collect(CollectConfig(tasks=("BabyAI-GoToLocal-v0",), episodes=1, out=str(tmp_path / "d"), **BABYAI))
    assert summary.tasks["BabyAI-GoToLocal-v0"].episodes == 1


def test_metaworld_collect_cli(tmp_path, cli_parser, capsys):
    require("metaworld")
    out = str(tmp_path / "mw")
    code = run_cli(
        cli_parser,
        [
            "collect",
            "--env",
            "metaworld",
            "--tasks",
            "reach,button-press",
            "--episodes",
            "2",
            "--out",
            out,
            "--image-size",
            "32",
            "--no-progress",
            "--json",
        ],
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "reach-v3" in text and "100.0%" in text
    summary = json.loads(text.strip().splitlines()[-1])
    assert summary["tasks"]["reach-v3"]["success_rate"] == 1.0
    episodes = assert_whole_episodes(out)
    assert len(episodes) == 4
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    assert manifest["sources"]["metaworld"]["action_space"]["names"] == ["x", "y", "z", "gripper"]
    assert run_cli(cli_parser, ["data", "validate", out]) == 0


def test_miniwob_collect_two_workers(tmp_path, cli_parser, capsys):
    require("miniwob")
    out = str(tmp_path / "wob")
    code = run_cli(
        cli_parser,
        [
            "collect",
            "--env",
            "miniwob",
            "--tasks",
            "click-test,enter-text",
            "--episodes",
            "2",
            "--out",
            out,
            "--workers",
            "2",
            "--no-progress",
        ],
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert "click-test" in text and "enter-text" in text
    episodes = assert_whole_episodes(out)
    assert len(episodes) == 4
    assert any(answer.startswith("type(") for steps in episodes.values() for _, answer, _ in steps)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, frontier = [], [pid]
    while frontier:
        for child in children.get(frontier.pop(), []):
            out.append(child)
            frontier.append(child)
    return out


def _kill_browsers() -> int:
    killed = 0
    for pid in _descendants(os.getpid()):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if name.startswith("chrom") and "driver" not in name:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def test_browser_killed_mid_collection_is_restarted(tmp_path):
    require("miniwob")
    out = tmp_path / "wob"
    killed = []

    def on_event(event):
        if event["type"] == "episode" and not killed:
            killed.append(True)
            threading.Timer(0.05, lambda: killed.append(_kill_browsers())).start()

    summary = collect(
        CollectConfig(env="miniwob", tasks=("login-user",), episodes=5, out=str(out), progress=False),
        on_event=on_event,
    )
    assert killed[-1] > 0, "no browser process was found to kill"
    assert summary.restarts >= 1 and not summary.worker_errors
    task = summary.tasks["login-user"]
    assert task.episodes == 5 and task.successes == 5
    assert len(assert_whole_episodes(out)) == 5


def test_png_encoder_round_trips_and_public_names_stay():
    """The direct PNG encoder of small frames gives what Pillow reads back bit for bit, and the
    names other modules import from ``omniactor.data.collect`` survive its split into modules."""
    import io

    import numpy as np
    from PIL import Image

    import omniactor.data.collect as collect_module
    from omniactor.data.collect.png import FAST_PNG_PIXELS, encode_png, encode_png_fast

    rng = np.random.default_rng(0)
    for shape in [(5, 7), (5, 7, 1), (9, 4, 3), (3, 8, 4), (64, 64, 3)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        for data in (encode_png_fast(image, 1), encode_png(image, 6)):
            back = np.asarray(Image.open(io.BytesIO(data)))
            assert back.shape == image.shape[:2] + (() if image.ndim == 2 or shape[2] == 1 else (shape[2],))
            assert (back == image.reshape(back.shape)).all(), shape
    big = rng.integers(0, 256, (FAST_PNG_PIXELS // 100 + 1, 101, 3), dtype=np.uint8)  # Pillow's path
    assert (np.asarray(Image.open(io.BytesIO(encode_png(big, 1)))) == big).all()
    with pytest.raises(ValueError, match="uint8"):
        encode_png_fast(np.zeros((4, 4, 3), np.float32))
    for name in ("Job", "episode_seed", "run_episode", "SPLIT_OFFSETS", "CollectConfig", "CollectError", "collect"):
        assert hasattr(collect_module, name), name
