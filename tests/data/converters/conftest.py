"""Fake sources in the real file formats (written once per session; converters only read them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from omniactor.data.converters.fake_sources import (
    FakeSource,
    write_android_control,
    write_gui_odyssey,
    write_lerobot,
    write_libero,
)


@pytest.fixture(scope="session")
def android_control_src(tmp_path_factory) -> FakeSource:
    return write_android_control(tmp_path_factory.mktemp("ac") / "android_control", episodes=6, files=2)


@pytest.fixture(scope="session")
def gui_odyssey_src(tmp_path_factory) -> FakeSource:
    return write_gui_odyssey(tmp_path_factory.mktemp("odyssey") / "GUI-Odyssey", episodes=5)


@pytest.fixture(scope="session")
def libero_src(tmp_path_factory) -> FakeSource:
    pytest.importorskip("h5py")
    root = tmp_path_factory.mktemp("libero") / "libero_90"
    first = write_libero(root / "KITCHEN_SCENE1_put_the_bowl_on_the_plate_demo.hdf5", demos=3, steps=10, seed=0)
    second = write_libero(root / "LIVING_ROOM_SCENE2_open_the_drawer_demo.hdf5", demos=2, steps=8, seed=1,
                          instruction="open the drawer")
    return FakeSource(root, {**first.episodes, **second.episodes})  # ids: file path under SRC / demo


@pytest.fixture(scope="session")
def lerobot_video_src(tmp_path_factory) -> FakeSource:
    pytest.importorskip("pyarrow")
    pytest.importorskip("av")
    return write_lerobot(tmp_path_factory.mktemp("lerobot") / "so100_video", episodes=3, steps=6, video=True)


@pytest.fixture(scope="session")
def lerobot_image_src(tmp_path_factory) -> FakeSource:
    pytest.importorskip("pyarrow")
    return write_lerobot(tmp_path_factory.mktemp("lerobot") / "so100_images", episodes=2, steps=5, video=False)


@pytest.fixture
def read_records():
    """``read_records(root)``: every record of a dataset folder as JSON, in shard order."""
    from omniactor.data import iter_records

    def read(root: Path) -> list[dict]:
        return [r.sample.to_json() for r in iter_records(root)]

    return read
