"""``omniactor.fileio``: atomic files and whole-or-absent JSON lines under a failing disk."""

from __future__ import annotations

import errno
import json
import os

import pytest

from omniactor.data import load_manifest, shard_paths, validate_dataset
from omniactor.data.example import write_example_dataset
from omniactor.data.io import DatasetWriter, iter_records
from omniactor.errors import error_message
from omniactor.fileio import JsonLinesAppender, naming, read_json_lines, write_text_atomic


def _disk_full_after(monkeypatch, budget: int) -> None:
    """``os.write`` writes ``budget`` more bytes, then fails as a full disk (ENOSPC)."""
    real = os.write
    left = [budget]

    def write(fd, data):
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done = real(fd, bytes(data)[: left[0]])
        left[0] -= done
        return done

    monkeypatch.setattr(os, "write", write)


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_text_atomic(path, '{"old": true}\n')
    _disk_full_after(monkeypatch, 5)
    with pytest.raises(OSError) as raised:
        write_text_atomic(path, json.dumps({"new": list(range(100))}))
    assert raised.value.errno == errno.ENOSPC and error_message(raised.value).startswith(f"{path}: ")
    assert path.read_text() == '{"old": true}\n' and os.listdir(tmp_path) == ["results.json"]


def test_an_appended_line_is_whole_or_absent_and_a_cut_tail_is_dropped(tmp_path, monkeypatch):
    path = tmp_path / "episodes.jsonl"
    with JsonLinesAppender(path) as lines:
        lines.append({"key": "a"})
        _disk_full_after(monkeypatch, 4)
        with pytest.raises(OSError, match="No space"):
            lines.append({"key": "b", "pad": "x" * 100})
    monkeypatch.undo()
    assert path.read_bytes() == b'{"key": "a"}\n'  # the cut part was taken back
    path.write_bytes(b'{"key": "a"}\n{"key": "b", "pa')  # what a kill mid-write would leave
    assert read_json_lines(path) == ([{"key": "a"}], 1)
    with JsonLinesAppender(path) as lines:
        assert lines.dropped == 1
        lines.append({"key": "c"})
    assert read_json_lines(path) == ([{"key": "a"}, {"key": "c"}], 0)
    path.write_bytes(b'{"key": "a"}')  # whole, only its newline missing: kept
    with JsonLinesAppender(path) as lines:
        assert lines.dropped == 0
    assert read_json_lines(path) == ([{"key": "a"}], 0)


def test_naming_turns_a_library_write_error_into_an_os_error_naming_the_file(tmp_path):
    with pytest.raises(OSError) as raised, naming(tmp_path / "model.safetensors", also=(RuntimeError,)):
        raise RuntimeError("Error while serializing: I/O error: File too large (os error 27)")
    assert raised.value.errno == errno.EFBIG and str(tmp_path / "model.safetensors") in error_message(raised.value)


def test_a_dataset_writer_stopped_by_a_full_disk_leaves_the_folder_as_committed(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_example_dataset(root, episodes_per_domain=1, seed=0)
    before = [r.sample.to_json() for r in iter_records(root)]
    shards_before, manifest_before = shard_paths(root), (root / "manifest.json").read_bytes()
    samples = [r.sample for r in iter_records(root)]
    writer = DatasetWriter(root, append=True, shard_size=3)
    for sample in samples[:4]:  # a shard closed and a second one begun
        writer.write(sample)
    _disk_full_after(monkeypatch, 10)
    with pytest.raises(OSError) as raised:
        writer.write(samples[4])
        writer.close()
    monkeypatch.undo()
    assert "shards/shard-" in error_message(raised.value)
    writer.close()  # merges nothing
    assert shard_paths(root) == shards_before and (root / "manifest.json").read_bytes() == manifest_before
    assert [r.sample.to_json() for r in iter_records(root)] == before and validate_dataset(root).ok
    assert load_manifest(root).num_records == len(before)
