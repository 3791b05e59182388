"""Small, format-exact fake copies of each outside dataset, for tests, benchmarks and trying the CLI.

Each ``write_*`` builds the real file layout (GZIP TFRecords with real CRC-32C framing,
annotation JSON, LIBERO HDF5 groups, a LeRobot v3 folder with parquet and MP4) from
synthetic content, and returns what it wrote so a test can check the conversion against it.
Nothing is downloaded.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .protobuf import field_bytes, field_varint
from .tfrecord import encode_example, write_records


@dataclass
class FakeSource:
    """What a ``write_*`` produced: the path to convert and the episodes (id -> number of steps)."""

    path: Path
    episodes: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return sum(self.episodes.values())


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _screen(size: tuple[int, int], boxes: list[tuple[int, int, int, int]], seed: int,
            detail: float = 0.0) -> Image.Image:
    """A flat phone screen with boxes; ``detail`` (0-1) of its height is noise, like photos in real
    screenshots (PNG cannot compress it, so file sizes come out realistic)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, (245, 245, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, size[0], size[1] // 24], fill=(30, 30, 30))
    for box in boxes:
        draw.rectangle(box, fill=tuple(int(c) for c in rng.integers(60, 220, 3)), outline=(0, 0, 0))
    rows = int(size[1] * detail)
    if rows:
        image.paste(Image.fromarray(rng.integers(0, 256, (rows, size[0], 3), dtype=np.uint8)), (0, size[1] - rows))
    return image


# ---------------------------------------------------------------------------- AndroidControl


def _a11y_forest(size: tuple[int, int], boxes: list[tuple[int, int, int, int]], labels: list[str]) -> bytes:
    """An ``AndroidAccessibilityForest``: one window whose tree has a root and one clickable node per box."""

    def rect(box: tuple[int, int, int, int]) -> bytes:
        return b"".join(field_varint(n, v) for n, v in zip((1, 2, 3, 4), box))

    root = field_varint(1, 0) + field_bytes(2, rect((0, 0, *size))) + field_bytes(3, "android.widget.FrameLayout")
    nodes = [root]
    for i, (box, label) in enumerate(zip(boxes, labels), 1):
        nodes.append(
            field_varint(1, i) + field_bytes(2, rect(box)) + field_bytes(3, "android.widget.Button")
            + field_bytes(7, label) + field_varint(14, 1) + field_varint(23, 1)
        )
    tree = b"".join(field_bytes(1, node) for node in nodes)
    window = field_bytes(1, rect((0, 0, *size))) + field_varint(6, 1) + field_bytes(11, tree)
    return field_bytes(1, window)


def android_control_episode(episode_id: int, seed: int, size: tuple[int, int] = (108, 240),
                            detail: float = 0.0) -> dict[str, list]:
    """The features of one fake AndroidControl episode (every action type appears over a few episodes)."""
    rng = np.random.default_rng(seed)
    width, height = size
    labels = ["Search", "Settings", "Compose", "Send"]
    plan = [
        {"action_type": "open_app", "app_name": "Gmail"},
        "click",
        {"action_type": "input_text", "text": f"hello {episode_id}"},
        {"action_type": "scroll", "direction": ["down", "up", "left", "right"][episode_id % 4]},
        "long_press",
        {"action_type": "navigate_back"},
        {"action_type": "wait"},
        {"action_type": "navigate_home"},
    ]
    length = 3 + episode_id % 4
    plan = plan[:length]
    screenshots, trees, actions, instructions = [], [], [], []
    for step in range(len(plan) + 1):
        boxes = []
        for row in range(len(labels)):
            top = int(height * (0.15 + 0.18 * row)) + int(rng.integers(0, 6))
            boxes.append((8, top, width - 8, top + height // 10))
        screenshots.append(_png(_screen(size, boxes, seed * 100 + step, detail)))
        trees.append(_a11y_forest(size, boxes, labels))
        if step == len(plan):
            break
        action = plan[step]
        if isinstance(action, str):
            x0, y0, x1, y1 = boxes[int(rng.integers(0, len(boxes)))]
            action = {"action_type": action, "x": int((x0 + x1) / 2), "y": int((y0 + y1) / 2)}
        actions.append(json.dumps(action))
        instructions.append(f"do step {step} ({action['action_type']})")
    return {
        "episode_id": [episode_id],
        "goal": [f"Fake goal number {episode_id}"],
        "screenshots": screenshots,
        "screenshot_widths": [width] * len(screenshots),
        "screenshot_heights": [height] * len(screenshots),
        "accessibility_trees": trees,
        "actions": actions,
        "step_instructions": instructions,
    }


def write_android_control(
    root: str | Path, episodes: int = 4, files: int = 1, seed: int = 0, size: tuple[int, int] = (108, 240),
    detail: float = 0.0,
) -> FakeSource:
    """``android_control-0000k-of-0000n`` GZIP TFRecords (episodes spread over ``files``) and ``splits.json``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    source = FakeSource(root)
    per_file: list[list[bytes]] = [[] for _ in range(files)]
    ids = [1000 + i for i in range(episodes)]
    for i, episode_id in enumerate(ids):
        features = android_control_episode(episode_id, seed + i, size, detail)
        per_file[i % files].append(encode_example(features))
        source.episodes[str(episode_id)] = len(features["actions"])
    for k, records in enumerate(per_file):
        write_records(root / f"android_control-{k:05d}-of-{files:05d}", records, "gzip")
    half = len(ids) // 2
    (root / "splits.json").write_text(json.dumps({"train": ids[:half], "validation": [], "test": ids[half:]}))
    return source


# ---------------------------------------------------------------------------- GUI Odyssey


def write_gui_odyssey(root: str | Path, episodes: int = 3, seed: int = 0, size: tuple[int, int] = (108, 240),
                      sam2: bool = True, detail: float = 0.0) -> FakeSource:
    """``annotations/*.json``, ``screenshots/*.png`` and ``splits/random_split.json``."""
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "screenshots").mkdir(parents=True, exist_ok=True)
    (root / "splits").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    source = FakeSource(root)
    names = []
    kinds = ["CLICK", "TEXT", "SCROLL", "LONG_PRESS", "CLICK_KEY", "COMPLETE"]
    for e in range(episodes):
        episode_id = f"{seed:02d}{e:04d}abcd"
        length = 3 + e % 3
        steps = []
        for s in range(length):
            kind = "COMPLETE" if s == length - 1 else kinds[(e + s) % (len(kinds) - 1)]
            shot = f"{episode_id}_{s}.png"
            x, y = int(rng.integers(100, 900)), int(rng.integers(100, 900))
            box = [max(0, x - 60), max(0, y - 30), min(1000, x + 60), min(1000, y + 30)]
            pixels = [(b * size[i % 2]) // 1000 for i, b in enumerate(box)]
            _screen(size, [tuple(pixels)], e * 100 + s, detail).save(root / "screenshots" / shot)
            step: dict[str, Any] = {"step": s, "screenshot": shot, "action": kind, "info": "", "ps": ""}
            if kind == "CLICK" or kind == "LONG_PRESS":
                step["info"] = [[x, y]]
                if sam2:
                    step["sam2_bbox"] = box
            elif kind == "CLICK_KEY":
                step["action"], step["info"] = "CLICK", ["KEY_HOME", "KEY_BACK", "KEY_APPSELECT"][s % 3]
            elif kind == "TEXT":
                step["info"] = f"query {e}"
            elif kind == "SCROLL":
                step["info"] = [[500, 800], [500, 200]] if s % 2 else [[800, 500], [200, 500]]
            step["low_level_instruction"] = f"low level {s}"
            steps.append(step)
        data = {
            "episode_id": episode_id,
            "device_info": {"product": "sdk", "release_version": "14", "sdk_version": "34", "h": size[1],
                            "w": size[0], "device_name": "Small Phone"},
            "task_info": {"category": "Multi_Apps", "app": ["Chrome", "Notes"], "meta_task": "do {}",
                          "task": f"do thing {e}", "instruction": f"Use Chrome then Notes to do thing {e}"},
            "step_length": length,
            "steps": steps,
        }
        (root / "annotations" / f"{episode_id}.json").write_text(json.dumps(data))
        names.append(f"{episode_id}.json")
        source.episodes[episode_id] = length
    (root / "splits" / "random_split.json").write_text(json.dumps({"train": names[1:], "test": names[:1]}))
    return source


# ---------------------------------------------------------------------------- LIBERO


def write_libero(path: str | Path, demos: int = 2, steps: int = 12, size: int = 32, seed: int = 0,
                 instruction: str = "put the bowl on the plate", detail: float = 0.0) -> FakeSource:
    """One LIBERO-layout HDF5 file (``data/demo_N/{actions, obs/...}``, ``problem_info``/``env_args`` attrs)."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    source = FakeSource(path)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps(
            {"problem_name": "libero_kitchen_tabletop_manipulation", "domain_name": "robosuite",
             "language_instruction": instruction})
        data.attrs["env_args"] = json.dumps({"type": 1, "env_name": "Libero_Kitchen_Tabletop_Manipulation",
                                             "env_kwargs": {"camera_heights": size, "camera_widths": size}})
        data.attrs["num_demos"] = demos
        data.attrs["total"] = demos * steps
        for d in range(demos):
            group = data.create_group(f"demo_{d}")
            actions = np.clip(rng.normal(0, 0.4, (steps, 7)), -1, 1)
            actions[:, 6] = np.where(np.arange(steps) < steps // 2, -1.0, 1.0)
            actions[0, :6] = 0.0  # a no-op first step, as teleoperation often starts
            group.create_dataset("actions", data=actions)
            obs = group.create_group("obs")
            frames = np.zeros((steps, size, size, 3), np.uint8)
            frames[:, : size // 2] = 200  # bright top half: a 180-degree rotation moves it down
            frames[:, :, :, 0] = np.arange(steps, dtype=np.uint8)[:, None, None] * 10
            rows = int(size * detail)  # textured bottom rows: realistic PNG sizes
            if rows:
                frames[:, size - rows:] = rng.integers(0, 256, (steps, rows, size, 3), dtype=np.uint8)
            obs.create_dataset("agentview_rgb", data=frames)
            obs.create_dataset("eye_in_hand_rgb", data=255 - frames)
            obs.create_dataset("ee_states", data=rng.normal(0, 0.1, (steps, 6)))
            obs.create_dataset("gripper_states", data=rng.uniform(0, 0.04, (steps, 2)))
            obs.create_dataset("joint_states", data=rng.normal(0, 1, (steps, 7)))
            group.create_dataset("dones", data=(np.arange(steps) == steps - 1).astype(np.uint8))
            group.create_dataset("rewards", data=(np.arange(steps) == steps - 1).astype(np.uint8))
            group.attrs["num_samples"] = steps
            source.episodes[f"{path.stem}/demo_{d}"] = steps
    return source


# ---------------------------------------------------------------------------- LeRobot v3


def _lerobot_frames(first: int, count: int, size: int, detail: float, seed: int) -> np.ndarray:
    """Frames ``first .. first + count - 1`` of a fake LeRobot camera: a flat grey level per frame
    (survives lossy video coding, so a test can tell frames apart) and, with ``detail``, that
    fraction of rows as noise (realistic PNG sizes for image features)."""
    frames = np.empty((count, size, size, 3), np.uint8)
    for k in range(count):
        frames[k] = ((first + k) * 7) % 200 + 20
    rows = int(size * detail)
    if rows:
        rng = np.random.default_rng(seed * 1_000_003 + first)
        frames[:, size - rows:] = rng.integers(0, 256, (count, rows, size, 3), dtype=np.uint8)
    return frames


def write_lerobot(root: str | Path, episodes: int = 3, steps: int = 8, size: int = 32, fps: int = 10,
                  video: bool = True, seed: int = 0, tasks: tuple[str, ...] = ("pick the cube", "open the drawer"),
                  detail: float = 0.0, row_group_episodes: int | None = None, keep_frames: bool = True,
                  ) -> FakeSource:
    """A LeRobot v3.0 folder: all episodes in ``data/chunk-000/file-000.parquet`` and, with ``video``,
    back to back in ``videos/observation.images.front/chunk-000/file-000.mp4`` (H.264 via PyAV); without
    it the camera is an ``image`` feature stored as PNG bytes in the parquet file.

    The data file is one row group, as LeRobot's own writer (one ``to_parquet`` of the whole
    file) leaves it, unless ``row_group_episodes`` asks for one row group per that many
    episodes. Frames are made and encoded one episode at a time, so large fakes (benchmarks)
    need little memory; ``keep_frames=False`` also leaves them out of ``extra["frames"]``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    rng = np.random.default_rng(seed)
    camera = "observation.images.front"
    for folder in ("meta/episodes/chunk-000", "data/chunk-000"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    source = FakeSource(root, extra={"camera": camera, "frames": {}})
    total = episodes * steps
    actions = rng.uniform(-1, 1, (total, 6)).astype(np.float32)
    states = rng.normal(0, 1, (total, 6)).astype(np.float32)
    features: dict[str, Any] = {
        "action": {"dtype": "float32", "shape": [6], "names": ["shoulder_pan", "shoulder_lift", "elbow_flex",
                                                               "wrist_flex", "wrist_roll", "Gripper"]},
        "observation.state": {"dtype": "float32", "shape": [6], "names": {"motors": [f"m{i}" for i in range(6)]}},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    if video:
        features[camera] = {"dtype": "video", "shape": [size, size, 3], "names": ["height", "width", "channels"],
                            "info": {"video.fps": fps, "video.codec": "h264", "video.pix_fmt": "yuv420p"}}
    else:
        features[camera] = {"dtype": "image", "shape": [size, size, 3], "names": ["height", "width", "channels"]}

    def episode_table(e: int, frames: np.ndarray) -> Any:
        rows = range(e * steps, (e + 1) * steps)
        columns: dict[str, Any] = {
            "action": [actions[i].tolist() for i in rows],
            "observation.state": [states[i].tolist() for i in rows],
            "timestamp": [float(i % steps) / fps for i in rows],
            "frame_index": [i % steps for i in rows],
            "episode_index": [e] * steps,
            "index": list(rows),
            "task_index": [e % len(tasks)] * steps,
        }
        if not video:
            columns[camera] = [{"bytes": _png(Image.fromarray(f)), "path": f"frame_{i:06d}.png"}
                               for i, f in zip(rows, frames)]
        return pa.table(columns)

    container = stream = None
    if video:
        import av

        path = root / "videos" / camera / "chunk-000" / "file-000.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(path), "w")
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "g": str(steps)}
    tables: list[Any] = []
    writer = None
    data_path = root / "data" / "chunk-000" / "file-000.parquet"
    try:
        for e in range(episodes):
            frames = _lerobot_frames(e * steps, steps, size, detail, seed)
            if container is not None:
                import av

                for k, picture in enumerate(frames):
                    frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                    frame.pts = e * steps + k
                    for packet in stream.encode(frame):
                        container.mux(packet)
            table = episode_table(e, frames)
            if row_group_episodes:
                tables.append(table)
                if len(tables) == row_group_episodes or e == episodes - 1:
                    merged = pa.concat_tables(tables)
                    if writer is None:
                        writer = pq.ParquetWriter(data_path, merged.schema)
                    writer.write_table(merged, row_group_size=merged.num_rows)
                    tables = []
            else:
                tables.append(table)
            source.episodes[str(e)] = steps
            if keep_frames:
                source.extra["frames"][str(e)] = frames
        if container is not None:
            for packet in stream.encode():
                container.mux(packet)
    finally:
        if container is not None:
            container.close()
        if writer is not None:
            writer.close()
    if not row_group_episodes:
        merged = pa.concat_tables(tables)
        pq.write_table(merged, data_path, row_group_size=max(1, merged.num_rows))
    info = {
        "codebase_version": "v3.0", "robot_type": "so100", "total_episodes": episodes, "total_frames": total,
        "total_tasks": len(tasks), "chunks_size": 1000, "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500, "fps": fps, "splits": {"train": f"0:{episodes}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4" if video else None,
        "features": features,
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    stats = {"action": {"min": actions.min(0).tolist(), "max": actions.max(0).tolist(),
                        "mean": actions.mean(0).tolist(), "std": actions.std(0).tolist(), "count": [total]}}
    (root / "meta" / "stats.json").write_text(json.dumps(stats))
    pq.write_table(pa.table({"task_index": list(range(len(tasks))), "__index_level_0__": list(tasks)}),
                   root / "meta" / "tasks.parquet")
    rows: dict[str, list] = {"episode_index": [], "tasks": [], "length": [], "data/chunk_index": [],
                             "data/file_index": [], "dataset_from_index": [], "dataset_to_index": []}
    if video:
        for key in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
            rows[f"videos/{camera}/{key}"] = []
    for e in range(episodes):
        rows["episode_index"].append(e)
        rows["tasks"].append([tasks[e % len(tasks)]])
        rows["length"].append(steps)
        rows["data/chunk_index"].append(0)
        rows["data/file_index"].append(0)
        rows["dataset_from_index"].append(e * steps)
        rows["dataset_to_index"].append((e + 1) * steps)
        if video:
            rows[f"videos/{camera}/chunk_index"].append(0)
            rows[f"videos/{camera}/file_index"].append(0)
            rows[f"videos/{camera}/from_timestamp"].append(e * steps / fps)
            rows[f"videos/{camera}/to_timestamp"].append((e + 1) * steps / fps)
    pq.write_table(pa.table(rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    source.extra["actions"] = actions
    return source
