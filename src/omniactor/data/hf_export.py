"""Export a dataset folder to a Hugging Face ``datasets.Dataset`` (saved with ``save_to_disk``).

Columns: ``system``, ``conversations`` (list of ``{from, value}``), ``images`` (list of the
``Image`` feature, bytes embedded so the export stands alone), ``domain``, ``action`` (the
action JSON as a string, so GUI, continuous and discrete actions share one schema),
``source``, ``episode``, ``step`` and ``meta`` (the whole meta as a JSON string).
Records are streamed through ``Dataset.from_generator``, so memory stays flat; a bad
record stops the export with its ``file:line`` (run ``omniactor data validate`` first).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import OmniactorError, error_message
from .io import DatasetFormatError, DatasetReader, require_dataset
from .manifest import load_manifest
from .sample import Sample

INSTALL_HINT = "exporting to Hugging Face datasets needs the 'datasets' package: pip install 'omniactor[hf]'"


def _require_datasets() -> Any:
    try:
        import datasets
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return datasets


def hf_features() -> Any:
    """The ``datasets.Features`` of an export."""
    datasets = _require_datasets()
    string = datasets.Value("string")
    return datasets.Features(
        {
            "system": string,
            "conversations": [{"from": string, "value": string}],
            "images": [datasets.Image()],
            "domain": string,
            "action": string,
            "source": string,
            "episode": string,
            "step": datasets.Value("int64"),
            "meta": string,
        }
    )


def hf_row(sample: Sample, root: Path) -> dict[str, Any]:
    """One export row of ``sample`` (image bytes read from the dataset folder ``root``)."""
    record = sample.to_json()
    return {
        "system": record["system"],
        "conversations": record["conversations"],
        "images": [{"bytes": (root / rel).read_bytes(), "path": rel} for rel in sample.images],
        "domain": record["domain"],
        "action": json.dumps(record["action"], ensure_ascii=False),
        "source": sample.source,
        "episode": str(sample.episode),
        "step": sample.step,
        "meta": json.dumps(record["meta"], ensure_ascii=False),
    }


def _rows(root: str) -> Iterator[dict[str, Any]]:
    for record in DatasetReader(root).records():
        try:
            yield hf_row(record.sample, Path(root))
        except OSError as err:
            sample = record.sample
            raise DatasetFormatError(f"{Path(root) / record.location}: cannot read an image of episode "
                                     f"{sample.episode}, step {sample.step}: {error_message(err)}") from None


def export_to_hf(root: str | os.PathLike, out_dir: str | os.PathLike) -> Any:
    """Write the dataset folder ``root`` as a ``datasets.Dataset`` to ``out_dir``; returns it, loaded from there."""
    datasets = _require_datasets()
    root = require_dataset(root)
    load_manifest(root)  # a corrupt manifest stops the export here, not inside the generator
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    cache = tempfile.mkdtemp(prefix=".hf-export-cache-", dir=out_dir.parent)
    try:
        try:
            dataset = datasets.Dataset.from_generator(
                _rows, features=hf_features(), cache_dir=cache, gen_kwargs={"root": str(root)}
            )
        except Exception as err:  # datasets wraps generator errors; surface ours with its file:line
            if isinstance(err.__cause__, OmniactorError):
                raise err.__cause__ from None
            raise
        dataset.save_to_disk(str(out_dir))
        del dataset
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return datasets.load_from_disk(str(out_dir))
