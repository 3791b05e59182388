"""DatasetWriter / DatasetReader: round-trip, images, rotation, append, refusals."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from omniactor.actions import ContinuousAction, ContinuousSpace, DiscreteAction, DiscreteSpace, Point
from omniactor.actions.gui import Click
from omniactor.data import (
    DatasetFormatError,
    DatasetReader,
    DatasetWriter,
    NotADatasetError,
    SampleError,
    build_sample,
    iter_records,
    load_manifest,
    validate_dataset,
)

SPACE = ContinuousSpace.symmetric(("x", "y", "gripper"))


def gui(step: int, episode: str = "e0", x: float = 0.5):
    return build_sample(
        domain="gui", instruction="tap", action=Click(Point(x, 0.5)), source="web", episode=episode, step=step
    )


def robot(step: int, values=(0.1, -0.2, 1.0), episode: str = "r0"):
    return build_sample(
        domain="embodied",
        instruction="reach",
        action=ContinuousAction(values, ("x", "y", "gripper")),
        source="arm",
        episode=episode,
        step=step,
        space=SPACE,
    )


def pixels(value: int = 7) -> np.ndarray:
    return np.full((6, 10, 3), value, dtype=np.uint8)


def test_round_trip_with_locations(tmp_path):
    root = tmp_path / "ds"
    written = []
    with DatasetWriter(root) as writer:
        for step in range(3):
            written.append(writer.write(gui(step, x=0.1 * (step + 1)), images=[pixels(step)]))
    assert [(r.file, r.line) for r in written] == [("shards/shard-00000.jsonl", i) for i in (1, 2, 3)]
    records = list(iter_records(root))
    assert [r.sample for r in records] == [r.sample for r in written]
    assert [(r.file, r.line) for r in records] == [(r.file, r.line) for r in written]
    assert records[1].sample.images == ["images/00000/000001_0.png"]
    reader = DatasetReader(root)
    assert len(reader) == 3
    (image,) = reader.load_images(records[2].sample)
    assert image.size == (10, 6) and image.getpixel((0, 0)) == (2, 2, 2)
    assert json.loads((root / "dataset_info.json").read_text())["omniactor"]["formatting"] == "sharegpt"


def test_images_from_pil_array_bytes_and_files(tmp_path):
    encoded = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(encoded, "JPEG")
    source_file = tmp_path / "shot.webp"
    Image.new("RGB", (5, 5), "blue").save(source_file, "WEBP")
    sample = gui(0)
    sample.conversations[0]["value"] = "<image><image><image><image><image>" + sample.conversations[0]["value"][7:]
    root = tmp_path / "ds"
    with DatasetWriter(root) as writer:
        record = writer.write(
            sample,
            images=[Image.new("L", (3, 3)), pixels(), np.zeros((2, 2), np.uint8), encoded.getvalue(), source_file],
        )
    assert [p.rsplit(".", 1)[1] for p in record.sample.images] == ["png", "png", "png", "jpg", "webp"]
    assert (root / record.sample.images[3]).read_bytes() == encoded.getvalue()  # bytes kept as they were
    assert validate_dataset(root, images="decode").ok


def test_jpeg_format_option(tmp_path):
    with DatasetWriter(tmp_path / "ds", image_format="jpeg") as writer:
        record = writer.write(gui(0), images=[Image.new("RGBA", (4, 4))])
    assert record.sample.images[0].endswith(".jpg")
    assert Image.open(tmp_path / "ds" / record.sample.images[0]).format == "JPEG"


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((4, 4, 2), np.uint8), "(H, W, 3)"),
        (b"not an image", "not an encoded"),
        (12, "PIL image"),
    ],
)
def test_bad_images_are_refused_before_anything_is_written(tmp_path, bad, words):
    root = tmp_path / "ds"
    with DatasetWriter(root) as writer:
        with pytest.raises((ValueError, TypeError), match=words.replace("(", r"\(").replace(")", r"\)")):
            writer.write(gui(0), images=[bad])
    assert load_manifest(root).num_records == 0
    assert list((root / "shards").iterdir()) == []


def test_rotation_by_record_count(tmp_path):
    root = tmp_path / "ds"
    with DatasetWriter(root, shard_size=2) as writer:
        for step in range(5):
            writer.write(gui(step), images=[pixels()])
    manifest = load_manifest(root)
    assert manifest.shards == {
        "shards/shard-00000.jsonl": 2,
        "shards/shard-00001.jsonl": 2,
        "shards/shard-00002.jsonl": 1,
    }
    assert sorted(p.name for p in (root / "images").iterdir()) == ["00000", "00001", "00002"]
    assert [r.sample.step for r in iter_records(root)] == [0, 1, 2, 3, 4]


def test_append_continues_shard_numbers_and_adds_counts(tmp_path):
    root = tmp_path / "ds"
    with DatasetWriter(root, shard_size=2, action_spaces={"arm": SPACE}) as writer:
        for step in range(3):
            writer.write(gui(step), images=[pixels()])
        writer.write(robot(0, (0.0, 0.0, -1.0)), images=[pixels()])
    with pytest.raises(FileExistsError, match="append=True"):
        DatasetWriter(root)
    with DatasetWriter(root, append=True, shard_size=2) as writer:
        writer.write(robot(1, (1.0, -1.0, 1.0)), images=[pixels()])
        writer.write(gui(0, episode="e1"), images=[pixels()])
        with pytest.raises(SampleError, match="outside"):  # the declared space is remembered from the manifest
            writer.write(robot(2, (3.0, 0.0, 0.0)), images=[pixels()])
    manifest = load_manifest(root)
    assert list(manifest.shards) == [f"shards/shard-0000{i}.jsonl" for i in range(3)]
    assert manifest.shards["shards/shard-00002.jsonl"] == 2
    assert manifest.num_records == 6
    assert manifest.counts() == {
        "domain": {"embodied": 2, "gui": 4},
        "source": {"arm": 2, "web": 4},
        "action_type": {"click": 4, "continuous": 2},
    }
    stats = manifest.sources["arm"].action_stats
    assert stats.count == 2 and stats.min == [0.0, -1.0, -1.0] and stats.max == [1.0, 0.0, 1.0]
    assert manifest.action_space("arm") == SPACE
    assert validate_dataset(root).ok


def test_two_writers_at_once_claim_different_shards(tmp_path):
    root = tmp_path / "ds"
    first = DatasetWriter(root, append=True)
    second = DatasetWriter(root, append=True)
    first.write(gui(0, episode="a"), images=[pixels()])
    second.write(gui(0, episode="b"), images=[pixels()])
    first.write(gui(1, episode="a"), images=[pixels()])
    second.close()
    first.close()
    manifest = load_manifest(root)
    assert manifest.shards == {"shards/shard-00000.jsonl": 2, "shards/shard-00001.jsonl": 1}
    assert manifest.sources["web"].records == 3
    assert validate_dataset(root).ok


def test_invalid_samples_are_refused_with_every_reason(tmp_path):
    root = tmp_path / "ds"
    with DatasetWriter(root, action_spaces={"grid": DiscreteSpace(("left", "right"))}) as writer:
        with pytest.raises(SampleError, match=r"1 <image> marker\(s\) in the human turns but 0"):
            writer.write(gui(0))  # one marker but no images, and none given
        with pytest.raises(SampleError, match=r"1 <image> marker\(s\) in the human turns but 2"):
            writer.write(gui(0), images=[pixels(), pixels()])
        wrong_domain = gui(0)
        wrong_domain.domain = "embodied"
        with pytest.raises(SampleError, match="expects continuous actions"):
            writer.write(wrong_domain, images=[pixels()])
        hop = build_sample(
            domain="discrete", instruction="go", action=DiscreteAction("jump"), source="grid", episode="d", step=0
        )
        with pytest.raises(SampleError, match="not in the action set"):
            writer.write(hop, images=[pixels()])
        with pytest.raises(SampleError, match="does not exist"):
            writer.write(
                build_sample(
                    domain="gui",
                    instruction="t",
                    action=Click(Point(0, 0)),
                    source="web",
                    episode="e",
                    step=0,
                    images=["images/nope.png"],
                )
            )
        nan_meta = gui(0)
        nan_meta.meta["score"] = float("nan")
        with pytest.raises(SampleError, match="JSON"):
            writer.write(nan_meta, images=[pixels()])
        writer.write(robot(0), images=[pixels()])
        with pytest.raises(SampleError, match="dimensions"):
            writer.write(
                build_sample(
                    domain="embodied",
                    instruction="r",
                    action=ContinuousAction((0.0,), ("z",)),
                    source="arm",
                    episode="r0",
                    step=1,
                ),
                images=[pixels()],
            )
        with pytest.raises(SampleError, match="is in domain 'embodied'"):
            writer.write(
                build_sample(
                    domain="discrete",
                    instruction="r",
                    action=DiscreteAction("left"),
                    source="arm",
                    episode="r0",
                    step=1,
                ),
                images=[pixels()],
            )
    assert load_manifest(root).num_records == 1
    assert validate_dataset(root).ok


def test_declared_domains(tmp_path):
    root = tmp_path / "ds"
    with DatasetWriter(root, domains={"navigation": "discrete"}) as writer:
        writer.write(
            build_sample(
                domain="navigation",
                instruction="go",
                action=DiscreteAction("forward"),
                source="habitat",
                episode="n",
                step=0,
            ),
            images=[pixels()],
        )
    assert load_manifest(root).known_domains()["navigation"] == "discrete"
    assert validate_dataset(root).ok


def test_writer_closes_and_counts_even_when_the_block_raises(tmp_path):
    root = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with DatasetWriter(root) as writer:
            writer.write(gui(0), images=[pixels()])
            raise RuntimeError("collector crashed")
    assert load_manifest(root).num_records == 1
    assert not (root / "manifest.lock").exists()


def test_reader_raises_with_location_or_warns_and_counts(small_dataset, edit_line):
    edit_line(small_dataset / "shards/shard-00000.jsonl", 2, lambda record: b"{broken")
    with pytest.raises(DatasetFormatError, match=r"shards/shard-00000.jsonl:2: not valid JSON"):
        list(iter_records(small_dataset))
    reader = DatasetReader(small_dataset, errors="warn")
    with pytest.warns(UserWarning, match="shard-00000.jsonl:2"):
        samples = list(reader)
    assert [s.domain for s in samples] == ["gui", "discrete"]
    assert reader.skipped == 1


def test_not_a_dataset(tmp_path):
    with pytest.raises(NotADatasetError):
        DatasetReader(tmp_path)
    with pytest.raises(NotADatasetError):
        DatasetReader(tmp_path / "missing")


def test_samples_may_point_at_images_already_in_the_folder(tmp_path):
    root = tmp_path / "ds"
    (root / "images" / "raw").mkdir(parents=True)
    Image.new("RGB", (3, 3)).save(root / "images" / "raw" / "a.png")
    sample = build_sample(
        domain="gui",
        instruction="t",
        action=Click(Point(0.5, 0.5)),
        source="web",
        episode="e",
        step=0,
        images=["images/raw/a.png"],
    )
    with DatasetWriter(root) as writer:
        record = writer.write(sample)
    assert record.sample.images == ["images/raw/a.png"]
    assert validate_dataset(root).ok
