"""The unified sample format: one ShareGPT record per agent step, in dataset folders.

- ``sample``: ``Sample`` (system, conversations, images, domain, typed action, meta) and ``check_record``.
- ``domains``: known domains (gui, embodied, discrete, plus declared ones) and their action kinds.
- ``prompts``: default system prompts, the human turn, ``build_sample``.
- ``manifest``: ``manifest.json`` (counts, action spaces, normalisation statistics).
- ``io``: ``DatasetWriter`` (images, shard rotation, append) and ``DatasetReader`` / ``iter_records``.
- ``validate``: ``validate_dataset`` -> ``ValidationReport``; ``stats``: ``dataset_stats``.
- ``hf_export``: ``export_to_hf`` (needs ``omniactor[hf]``); ``example``: ``write_example_dataset``.

Importing this package needs numpy and Pillow only; ``datasets`` is imported by the export.
"""

from .domains import ACTION_KINDS, DEFAULT_DOMAINS, action_kind, known_domains
from .io import (
    DatasetFormatError,
    DatasetReader,
    DatasetWriter,
    NotADatasetError,
    Record,
    iter_records,
    shard_paths,
)
from .manifest import ActionStats, Manifest, ManifestError, SourceInfo, load_manifest
from .prompts import build_sample, human_turn, system_prompt
from .sample import IMAGE_MARKER, Problem, Sample, SampleError, check_record
from .stats import dataset_stats, format_stats
from .validate import Issue, ValidationReport, format_report, validate_dataset

__all__ = [
    "ACTION_KINDS",
    "ActionStats",
    "DEFAULT_DOMAINS",
    "DatasetFormatError",
    "DatasetReader",
    "DatasetWriter",
    "IMAGE_MARKER",
    "Issue",
    "Manifest",
    "ManifestError",
    "NotADatasetError",
    "Problem",
    "Record",
    "Sample",
    "SampleError",
    "SourceInfo",
    "ValidationReport",
    "action_kind",
    "build_sample",
    "check_record",
    "dataset_stats",
    "export_to_hf",
    "format_report",
    "format_stats",
    "human_turn",
    "iter_records",
    "known_domains",
    "load_manifest",
    "shard_paths",
    "system_prompt",
    "validate_dataset",
    "write_example_dataset",
]


def __getattr__(name: str):
    # Lazy: the export pulls in `datasets`; the example draws with PIL (cheap, but not needed to read data).
    if name == "export_to_hf":
        from .hf_export import export_to_hf

        return export_to_hf
    if name == "write_example_dataset":
        from .example import write_example_dataset

        return write_example_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
