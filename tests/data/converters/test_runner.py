"""The runner: parallel workers, whole episodes, resume after interruptions, the lock, the registry."""

from __future__ import annotations

import json

import pytest

from omniactor.data import load_manifest, shard_paths, validate_dataset
from omniactor.data.converters import Unit, convert, get_converter, list_converters
from omniactor.data.converters.gui_odyssey import GuiOdysseyConverter
from omniactor.data.converters.runner import ConversionLocked, conversion_lock, split_units


def _key(record: dict) -> tuple:
    meta = {k: v for k, v in record["meta"].items()}
    return meta["episode"], meta["step"], json.dumps(record["action"], sort_keys=True), json.dumps(meta, sort_keys=True)


def test_parallel_workers_write_the_same_records(android_control_src, tmp_path, read_records):
    one = convert("android_control", android_control_src.path, tmp_path / "one")
    two = convert("android_control", android_control_src.path, tmp_path / "two", workers=2)
    assert two.workers == 2 and two.episodes_converted == one.episodes_converted
    assert sorted(map(_key, read_records(tmp_path / "one"))) == sorted(map(_key, read_records(tmp_path / "two")))
    assert validate_dataset(tmp_path / "two").ok
    assert len(load_manifest(tmp_path / "two").shards) == 2  # one writer per worker, one folder


def test_resuming_with_other_options_is_refused(gui_odyssey_src, tmp_path):
    from omniactor.data.converters.gui_odyssey import GuiOdysseyOptions
    from omniactor.data.converters.runner import OptionsChanged

    out = tmp_path / "out"
    convert("gui_odyssey", gui_odyssey_src.path, out, limit=1)
    with pytest.raises(OptionsChanged, match="history: 4 -> 0"):
        convert("gui_odyssey", gui_odyssey_src.path, out, GuiOdysseyOptions(history=0))
    convert("gui_odyssey", gui_odyssey_src.path, out, GuiOdysseyOptions(history=0, source_name="odyssey_h0"))
    assert convert("gui_odyssey", gui_odyssey_src.path, out, workers=1).episodes_already_done == 1


def test_rerun_resumes_and_limit(gui_odyssey_src, tmp_path, read_records):
    out = tmp_path / "out"
    first = convert("gui_odyssey", gui_odyssey_src.path, out, limit=2)
    assert first.episodes_converted == 2
    second = convert("gui_odyssey", gui_odyssey_src.path, out)
    assert second.episodes_already_done == 2 and second.episodes_converted == len(gui_odyssey_src.episodes) - 2
    third = convert("gui_odyssey", gui_odyssey_src.path, out)
    assert third.episodes_converted == 0 and third.episodes_already_done == len(gui_odyssey_src.episodes)
    rows = read_records(out)
    assert len(rows) == len({(r["meta"]["episode"], r["meta"]["step"]) for r in rows}) == gui_odyssey_src.steps
    assert validate_dataset(out).ok


class _FailsMidEpisode(GuiOdysseyConverter):
    """Fails while writing the third episode's second step (as a full disk or a kill would)."""

    fail_on = 2

    def _steps(self, episode, data):
        steps = super()._steps(episode, data)
        if sorted(self.src.joinpath("annotations").glob("*.json"))[self.fail_on].stem == episode:
            steps[1].images = [object()]  # the writer refuses it after step 0 is written
        return steps


class _InterruptedBetweenEpisodes(GuiOdysseyConverter):
    def _steps(self, episode, data):
        if sorted(self.src.joinpath("annotations").glob("*.json"))[2].stem == episode:
            raise KeyboardInterrupt
        return super()._steps(episode, data)


def test_interruption_inside_an_episode_leaves_nothing_half_written(gui_odyssey_src, tmp_path, read_records):
    out = tmp_path / "out"
    with pytest.raises(TypeError):
        convert(_FailsMidEpisode, gui_odyssey_src.path, out, checkpoint_every=1)
    listed = set(load_manifest(out).shards)
    orphans = [rel for rel in shard_paths(out) if rel not in listed]
    assert len(listed) == 2 and len(orphans) == 1  # two checkpointed episodes, one abandoned half episode
    summary = convert("gui_odyssey", gui_odyssey_src.path, out)
    assert summary.removed_after_interruption == orphans and summary.episodes_already_done == 2
    assert summary.episodes_converted == len(gui_odyssey_src.episodes) - 2
    assert validate_dataset(out).ok
    rows = read_records(out)
    assert len(rows) == len({(r["meta"]["episode"], r["meta"]["step"]) for r in rows}) == gui_odyssey_src.steps


def test_interruption_between_episodes_keeps_finished_ones(gui_odyssey_src, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        convert(_InterruptedBetweenEpisodes, gui_odyssey_src.path, out)
    assert load_manifest(out).num_records > 0 and validate_dataset(out).ok  # the writer closed cleanly
    summary = convert("gui_odyssey", gui_odyssey_src.path, out)
    assert summary.episodes_already_done == 2 and summary.removed_after_interruption == []


def test_lock_and_foreign_unlisted_shards(gui_odyssey_src, tmp_path):
    out = tmp_path / "out"
    with conversion_lock(out), pytest.raises(ConversionLocked):
        convert("gui_odyssey", gui_odyssey_src.path, out)
    foreign = tmp_path / "foreign"
    (foreign / "shards").mkdir(parents=True)
    (foreign / "shards" / "shard-00000.jsonl").write_text("")
    with pytest.raises(RuntimeError, match="does not list"):
        convert("gui_odyssey", gui_odyssey_src.path, foreign)
    assert (foreign / "shards" / "shard-00000.jsonl").exists()  # not ours: never deleted


def test_split_units_balances_contiguous_blocks():
    units = [Unit(str(i), size) for i, size in enumerate([5, 1, 1, 1, 1, 1, 5, 5])]
    blocks = split_units(units, 2)
    assert [u for b in blocks for u in b] == units and len(blocks) == 2
    assert abs(sum(u.size for u in blocks[0]) - sum(u.size for u in blocks[1])) <= 5
    assert split_units(units[:1], 4) == [units[:1]]
    assert [len(b) for b in split_units(units[:3], 3)] == [1, 1, 1]


def test_registry():
    assert list_converters() == ["android_control", "gui_odyssey", "lerobot", "libero"]
    for name in list_converters():
        cls = get_converter(name)
        assert cls.name == name and cls.summary and cls.layout and cls.domain in ("gui", "embodied")
    with pytest.raises(KeyError, match="did you mean 'libero'"):
        get_converter("liber0")
