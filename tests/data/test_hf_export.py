"""Export to Hugging Face datasets, and LLaMA-Factory-style loading of the shards."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from omniactor.data import DatasetFormatError, iter_records
from omniactor.data.hf_export import export_to_hf

datasets = pytest.importorskip("datasets")


def test_export_round_trip(example_dir, tmp_path):
    dataset = export_to_hf(example_dir, tmp_path / "hf")
    records = list(iter_records(example_dir))
    assert len(dataset) == len(records) == 38
    again = datasets.load_from_disk(str(tmp_path / "hf"))
    for row, record in zip(again, records, strict=True):
        sample = record.sample
        assert json.loads(row["action"]) == sample.to_json()["action"]
        assert json.loads(row["meta"]) == sample.meta
        assert (row["source"], row["episode"], row["step"]) == (sample.source, sample.episode, sample.step)
        assert row["conversations"] == sample.conversations and row["system"] == sample.system
        assert row["domain"] == sample.domain
        (image,) = row["images"]
        with open(example_dir / sample.images[0], "rb") as f:
            from PIL import Image

            original = Image.open(f).convert("RGB")
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(original))
    assert not list(tmp_path.glob(".hf-export-cache-*"))


def test_export_stops_at_a_bad_record_with_its_location(example_dir, tmp_path):
    (example_dir / "images/00000/000003_0.png").unlink()
    with pytest.raises(DatasetFormatError, match=r"shards/shard-00000.jsonl:4: cannot read an image"):
        export_to_hf(example_dir, tmp_path / "hf")


def test_export_refuses_a_non_empty_target(example_dir, tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "x").write_text("keep me")
    with pytest.raises(FileExistsError):
        export_to_hf(example_dir, tmp_path / "hf")


def test_shards_load_as_plain_json_like_llamafactory_does(example_dir):
    files = sorted(str(p) for p in (example_dir / "shards").glob("*.jsonl"))
    dataset = datasets.load_dataset("json", data_files=files, split="train")
    assert len(dataset) == 38
    assert {"system", "conversations", "images"} <= set(dataset.column_names)
    info = json.loads((example_dir / "dataset_info.json").read_text())["omniactor"]
    assert info["file_name"] == "shards" and info["columns"]["messages"] == "conversations"


def test_import_hint_when_datasets_is_missing(example_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'omniactor\[hf\]'"):
        export_to_hf(example_dir, tmp_path / "hf")
