"""LeRobot datasets, format v3.0: many episodes per parquet / MP4 file, found through metadata.

Layout (``SRC`` is the dataset root)::

    meta/info.json                         codebase_version "v3.0", fps, features, data_path, video_path
    meta/stats.json                        per-feature min / max / mean / std ...
    meta/tasks.parquet                     task string -> task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: episode_index, tasks, length,
                                           data/chunk_index, data/file_index,
                                           videos/<key>/{chunk_index, file_index, from_timestamp, to_timestamp}
    data/chunk-000/file-000.parquet        one row per frame: action, observation.state, episode_index,
                                           frame_index, task_index, image features (struct of PNG bytes)
    videos/<key>/chunk-000/file-000.mp4    video features: episodes back to back, from_timestamp..to_timestamp

Each frame becomes one ``embodied`` sample: the ``action`` vector (dimension names from
``info.json``, made lower_snake_case, or ``action_names``), the chosen cameras (``video``
features decoded with PyAV, ``image`` features passed through as stored) and
``observation.state`` in ``meta.state``. The declared action space is the range in
``stats.json`` (or of the data when it has none); the manifest accumulates the statistics
and normalisers as for every continuous source. Float32 values are written as the shortest
decimals that read back as the same float32 (``0.1``, not ``0.10000000149011612``).

Memory. A v3 data file holds many episodes (up to ``data_files_size_in_mb``, 100 MB by
default, more with image features) and is often a single row group. It is never read
whole: ``_DataFile`` reads it forward in batches of about 1 MB, only the columns needed,
starting at the first row group that can hold the episode (row-group statistics), and
keeps at most one batch beyond the current episode. Memory therefore depends on the
episode length, not on the size of the file or of the dataset (reading the data file
whole, as this converter once did, made its peak grow 1.7x from a 1x to a 10x source in
``benchmarks/bench_convert.py``). This relies on v3's layout: an episode's rows are
contiguous and episodes ascend within a file. Rows out of place that the single pass
misses leave their episode shorter than the ``length`` in ``meta/episodes/``: it is skipped
as ``length_mismatch``, never cut silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...actions import EEF_DELTA_GRIPPER, ContinuousAction, ContinuousSpace
from ..prompts import build_sample
from .base import (
    BaseOptions,
    Converter,
    PendingEpisode,
    Skip,
    SkippedEpisode,
    SourceError,
    Step,
    Unit,
    float32_list,
    option,
    prepare_image,
    require,
    snake_names,
)

_NAME_PRESETS = {"eef_delta_gripper": EEF_DELTA_GRIPPER}


@dataclass(frozen=True)
class LeRobotOptions(BaseOptions):
    cameras: tuple[str, ...] = option((), "image/video features to use, in order (default: the first in info.json)")
    action_key: str = option("action", "the feature holding the action vector")
    action_names: tuple[str, ...] = option(
        (), "action dimension names (default: info.json's; 'eef_delta_gripper' for x,y,z,roll,pitch,yaw,gripper)"
    )
    state_key: str | None = option("observation.state", "feature copied into meta.state ('none': no state)")
    rotate_180: bool = option(False, "rotate images 180 degrees")


def _f32(value: float) -> float:
    return float(str(np.float32(value)))


class _DataFile:
    """One data parquet file read forward, an episode at a time, in batches of about
    ``batch_bytes``: the memory an episode takes, whatever the size of the file.

    ``episode(e)`` returns episode ``e``'s rows (the ``columns`` present in the file).
    Episodes asked for in ascending order (the order of ``units()``) cost one pass over
    the file; asking for an earlier one restarts the pass from the row group that holds it.
    """

    def __init__(self, path: Path, columns: Sequence[str], batch_bytes: int = 1 << 20):
        import pyarrow.parquet as pq

        # buffer_size > 0: pages are read as they are decoded, not whole column chunks at once
        self.file = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
        names = self.file.schema_arrow.names
        if "episode_index" not in names:
            raise Skip("missing_field", f"{path.name} has no episode_index column")
        self.columns = list(dict.fromkeys(["episode_index", *(c for c in columns if c in names)]))
        meta = self.file.metadata
        rows = max(1, meta.num_rows)
        row_bytes = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)) / rows
        self.batch_rows = int(min(4096, max(4, batch_bytes // max(1.0, row_bytes))))
        self._batches: Iterator[Any] | None = None
        self._pending: Any = None  # rows read past the last episode returned
        self._last: int | None = None

    def _first_row_group(self, episode: int) -> int:
        """The first row group whose statistics allow ``episode`` (0 without statistics)."""
        meta = self.file.metadata
        column = self.file.schema_arrow.get_field_index("episode_index")
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(column).statistics
            if stats is None or not stats.has_min_max or stats.max >= episode:
                return i
        return meta.num_row_groups

    def episode(self, episode: int) -> Any:
        import pyarrow as pa

        if self._batches is None or (self._last is not None and episode <= self._last):
            start = self._first_row_group(episode)
            groups = list(range(start, self.file.metadata.num_row_groups))
            self._batches = self.file.iter_batches(
                batch_size=self.batch_rows, row_groups=groups, columns=self.columns, use_threads=False
            ) if groups else iter(())
            self._pending = None
        parts = []
        while True:
            batch, self._pending = self._pending, None
            if batch is None:
                batch = next(self._batches, None)
            if batch is None:
                break
            index = batch.column("episode_index").to_numpy(zero_copy_only=False)
            mine = np.flatnonzero(index == episode)
            if mine.size and mine[-1] - mine[0] + 1 == mine.size:
                parts.append(batch.slice(mine[0], mine.size))  # contiguous, as v3 writes: no copy
            elif mine.size:
                parts.append(batch.filter(pa.array(index == episode)))
            later = np.flatnonzero(index > episode)
            if later.size:  # the episode ends in this batch: keep the rest (a view) for the next call
                self._pending = batch.slice(later[0])
                break
        self._last = episode
        schema = self.file.schema_arrow
        if not parts:
            return pa.Table.from_batches([], schema=pa.schema([schema.field(c) for c in self.columns]))
        return pa.Table.from_batches(parts)


class LeRobotConverter(Converter):
    name = "lerobot"
    domain = "embodied"
    summary = "LeRobot v3.0 dataset folders (parquet frames, MP4 or image features) -> embodied samples"
    layout = "SRC: a LeRobot v3.0 dataset root (meta/info.json, meta/episodes/, data/, videos/)"
    Options = LeRobotOptions
    options: LeRobotOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._info: dict[str, Any] | None = None
        self._space: ContinuousSpace | None = None
        self._tasks: dict[int, str] | None = None
        self._data: tuple[str, _DataFile] | None = None
        self._videos: dict[str, tuple[str, Any]] = {}

    # -- metadata

    @property
    def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = json.loads((self.src / "meta" / "info.json").read_text(encoding="utf-8"))
        return self._info

    @property
    def features(self) -> dict[str, Any]:
        return self.info.get("features", {})

    def cameras(self) -> list[str]:
        visual = [k for k, v in self.features.items() if v.get("dtype") in ("video", "image")]
        if self.options.cameras:
            return list(self.options.cameras)
        return visual[:1]

    def check_source(self) -> None:
        require("pyarrow")
        info_path = self.src / "meta" / "info.json"
        if not info_path.is_file():
            raise SourceError(f"{self.src}: no meta/info.json ({self.layout})")
        version = str(self.info.get("codebase_version", ""))
        if not version.startswith("v3"):
            raise SourceError(f"{self.src}: codebase_version {version!r}; this converter reads LeRobot v3.0 datasets")
        if not list((self.src / "meta" / "episodes").rglob("*.parquet")):
            raise SourceError(f"{self.src}: no meta/episodes/*/*.parquet ({self.layout})")
        if self.options.action_key not in self.features:
            known = ", ".join(self.features)
            raise SourceError(f"{self.src}: no feature {self.options.action_key!r} (features: {known})")
        state = self.options.state_key
        if state is not None and state not in self.features:
            raise SourceError(f"{self.src}: no feature {state!r}; pass --state-key none to keep no state")
        cameras = self.cameras()
        if not cameras:
            raise SourceError(f"{self.src}: no image or video features to take images from")
        for camera in cameras:
            if self.features.get(camera, {}).get("dtype") not in ("video", "image"):
                raise SourceError(f"{self.src}: {camera!r} is not an image or video feature")
            if self.features[camera]["dtype"] == "video":
                require("av", "av (PyAV)")
        self.action_names()

    def action_names(self) -> tuple[str, ...]:
        feature = self.features[self.options.action_key]
        dim = int(np.prod(feature.get("shape") or [1]))
        names = self.options.action_names
        if len(names) == 1 and names[0] in _NAME_PRESETS:
            names = _NAME_PRESETS[names[0]]
        if not names:
            raw = feature.get("names")
            if isinstance(raw, dict):
                raw = next((v for v in raw.values() if isinstance(v, list)), None)
            names = tuple(raw) if isinstance(raw, list) and len(raw) == dim else tuple(f"a{i}" for i in range(dim))
        if len(names) != dim:
            raise SourceError(f"{len(names)} action names given for a {dim}-D action")
        return snake_names(names)

    def action_spaces(self) -> dict[str, ContinuousSpace]:
        if self._space is None:
            stats_path = self.src / "meta" / "stats.json"
            stats = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.is_file() else {}
            bounds = stats.get(self.options.action_key, {})
            if "min" in bounds and "max" in bounds:
                low, high = np.asarray(bounds["min"], float).ravel(), np.asarray(bounds["max"], float).ravel()
            else:
                low, high = self._data_range()
            # Values are written as shortest float32 decimals; the same map keeps the bounds (it is monotonic).
            low = np.array([_f32(v) for v in low])
            high = np.array([_f32(v) for v in high])
            flat = high <= low
            low[flat] -= np.maximum(1e-6, 1e-6 * np.abs(low[flat]))
            high[flat] += np.maximum(1e-6, 1e-6 * np.abs(high[flat]))
            self._space = ContinuousSpace(self.action_names(), tuple(low), tuple(high))
        return {self.source: self._space}

    def _data_range(self) -> tuple[np.ndarray, np.ndarray]:
        import pyarrow.parquet as pq

        low = high = None
        for path in sorted((self.src / "data").rglob("*.parquet")):
            for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=[self.options.action_key]):
                column = batch.column(0)
                values = np.asarray(column.to_pylist(), dtype=np.float64).reshape(len(column), -1)
                if len(values):
                    low = values.min(0) if low is None else np.minimum(low, values.min(0))
                    high = values.max(0) if high is None else np.maximum(high, values.max(0))
        if low is None:
            raise SourceError(f"{self.src}: no frames in data/")
        return low, high

    def tasks(self) -> dict[int, str]:
        if self._tasks is None:
            import pyarrow.parquet as pq

            self._tasks = {}
            path = self.src / "meta" / "tasks.parquet"
            if path.is_file():
                table = pq.read_table(path)
                text = "task" if "task" in table.column_names else next(
                    (c for c in table.column_names if c != "task_index"), None)
                if text is not None and "task_index" in table.column_names:
                    self._tasks = dict(zip(table["task_index"].to_pylist(), map(str, table[text].to_pylist())))
        return self._tasks

    # -- units and episodes

    def units(self) -> list[Unit]:
        import pyarrow.parquet as pq

        rows: list[dict[str, Any]] = []
        cameras = [c for c in self.cameras() if self.features[c]["dtype"] == "video"]
        for path in sorted((self.src / "meta" / "episodes").rglob("*.parquet")):
            table = pq.read_table(path)
            keep = ["episode_index", "length", "tasks", "data/chunk_index", "data/file_index"]
            for camera in cameras:
                keys = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
                keep += [f"videos/{camera}/{k}" for k in keys]
            present = [c for c in keep if c in table.column_names]
            rows += table.select(present).to_pylist()
        rows.sort(key=lambda r: r["episode_index"])
        return [Unit(f"episode {r['episode_index']}", int(r.get("length") or 1), r) for r in rows]

    def episodes(self, unit: Unit) -> Iterator[PendingEpisode | SkippedEpisode]:
        row = unit.data
        episode = str(row["episode_index"])
        yield PendingEpisode(episode, lambda: self._steps(episode, row))

    def _columns(self) -> list[str]:
        """The data columns a sample needs (image features embed their pictures in the data file)."""
        opts = self.options
        wanted = [opts.action_key, "frame_index", "task_index"]
        if opts.state_key is not None:
            wanted.append(opts.state_key)
        wanted += [c for c in self.cameras() if self.features[c]["dtype"] == "image"]
        return list(dict.fromkeys(wanted))

    def _frames_table(self, row: dict[str, Any]) -> Any:
        try:
            path = self.src / self.info["data_path"].format(
                chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
        except KeyError as err:
            raise Skip("missing_field", f"episode metadata lacks {err}") from None
        if self._data is None or self._data[0] != str(path):
            if not path.is_file():
                raise Skip("missing_file", f"{path} does not exist")
            self._data = (str(path), _DataFile(path, self._columns()))
        frames = self._data[1].episode(int(row["episode_index"]))
        for column in self._columns():
            if column not in frames.column_names and column not in ("frame_index", "task_index"):
                raise Skip("missing_field", f"{path.name} has no column {column!r}")
        if "frame_index" in frames.column_names:
            frames = frames.sort_by("frame_index")
        return frames

    def _video_frames(self, camera: str, row: dict[str, Any], length: int) -> list[np.ndarray]:
        av = require("av", "av (PyAV)")
        prefix = f"videos/{camera}/"
        try:
            path = self.src / self.info["video_path"].format(
                video_key=camera, chunk_index=row[prefix + "chunk_index"], file_index=row[prefix + "file_index"])
            start = float(row[prefix + "from_timestamp"])
        except KeyError as err:
            raise Skip("missing_field", f"episode metadata lacks {err}") from None
        fps = float(self.info.get("fps") or 0) or None
        cached = self._videos.get(camera)
        if cached is None or cached[0] != str(path):
            if cached is not None:
                cached[1].close()
            if not path.is_file():
                raise Skip("missing_file", f"{path} does not exist")
            self._videos[camera] = cached = (str(path), av.open(str(path)))
        container = cached[1]
        stream = container.streams.video[0]
        container.seek(max(0, int(start / stream.time_base)), stream=stream, backward=True, any_frame=False)
        found: dict[int, np.ndarray] = {}
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            offset = float(frame.pts * stream.time_base) - start
            index = round(offset * fps) if fps else len(found)
            if index >= length:
                break
            if index >= 0 and index not in found:
                found[index] = frame.to_ndarray(format="rgb24")
        missing = [i for i in range(length) if i not in found]
        if missing:
            raise Skip("video_frames_missing", f"{camera}: {len(missing)} of {length} frames not in {path.name}")
        return [found[i] for i in range(length)]

    def _steps(self, episode: str, row: dict[str, Any]) -> list[Step]:
        opts = self.options
        frames = self._frames_table(row)
        length = frames.num_rows
        if length == 0:
            raise Skip("empty_episode", "no frames in the data file")
        if row.get("length") is not None and int(row["length"]) != length:
            raise Skip("length_mismatch", f"metadata says {row['length']} frames, data has {length}")
        actions = np.asarray(frames[opts.action_key].to_pylist(), dtype=np.float32).reshape(length, -1)
        if not np.isfinite(actions).all():
            raise Skip("non_finite_action", "NaN or infinite action values")
        states = None
        if opts.state_key is not None:
            states = np.asarray(frames[opts.state_key].to_pylist(), dtype=np.float32).reshape(length, -1)
        images: list[list[Any]] = []
        for camera in self.cameras():
            if self.features[camera]["dtype"] == "video":
                images.append(self._video_frames(camera, row, length))
            else:
                column = frames[camera].to_pylist()
                encoded = [v.get("bytes") if isinstance(v, dict) else v for v in column]
                if any(not isinstance(v, (bytes, bytearray)) for v in encoded):
                    raise Skip("missing_image", f"{camera}: a frame without embedded image bytes")
                images.append(encoded)
        tasks = self.tasks()
        task_ids = frames["task_index"].to_pylist() if "task_index" in frames.column_names else [None] * length
        fallback = (row.get("tasks") or [""])[0]
        names = self.action_names()
        space = self.action_spaces()[self.source]
        steps = []
        for t in range(length):
            instruction = tasks.get(task_ids[t], fallback) if task_ids[t] is not None else fallback
            if not instruction:
                raise Skip("missing_task", f"frame {t} has no task text")
            pictures = []
            for camera_frames in images:
                image = camera_frames[t]
                if opts.rotate_180:
                    image = np.rot90(image if isinstance(image, np.ndarray) else _decode(image), 2)
                pictures.append(prepare_image(image, opts))
            meta: dict[str, Any] = {"frame": t}
            if states is not None:
                meta["state"] = float32_list(states[t])
            sample = build_sample(
                domain="embodied",
                instruction=instruction,
                action=ContinuousAction(tuple(float32_list(actions[t])), names),
                source=self.source,
                episode=episode,
                step=t,
                num_images=len(pictures),
                space=space,
                **meta,
            )
            steps.append(Step(sample, pictures))
        return steps


def _decode(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))

