"""Which domain a ``label=DIR`` argument means, and a one-domain copy of a mixed folder.

Both studies take their data as ``gui=DIR,embodied=DIR``. A folder written by ``omniactor
collect`` holds one domain, and the label is then just a name. A folder holding several
domains (``omniactor data example``, a merged dataset) needs the label to name one of them:
``gui=DIR`` then means DIR's GUI records. Training refuses records of domains a run does not
have, so the probe fine-tunes on a one-domain copy (``write_domain_subset``).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path


def domain_counts(root: str | Path) -> dict[str, int]:
    """Records per domain of a dataset folder (from its manifest, else by reading the records)."""
    from ..data import DatasetReader, load_manifest

    manifest = load_manifest(root)
    if manifest is not None and manifest.sources:
        return manifest.counts()["domain"]
    counts: dict[str, int] = {}
    for sample in DatasetReader(root):
        counts[sample.domain] = counts.get(sample.domain, 0) + 1
    return dict(sorted(counts.items()))


def resolve_domain(label: str, root: str | Path) -> str:
    """The domain ``label=root`` stands for (the folder's only domain, or the one the label names)."""
    counts = domain_counts(root)
    if not counts:
        raise ValueError(f"{label}={root}: the folder holds no records")
    if len(counts) == 1:
        return next(iter(counts))
    if label in counts:
        return label
    raise ValueError(f"{label}={root}: the folder holds the domains {counts}; name the run after one of them "
                     f"(e.g. {next(iter(counts))}={root}) or give a folder of one domain")


def parse_labelled(text: str, what: str = "--runs") -> dict[str, str]:
    """``"gui=A,embodied=B"`` -> ``{"gui": "A", "embodied": "B"}`` (labels distinct, paths non-empty)."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, sep, path = item.partition("=")
        if not sep or not label.strip() or not path.strip():
            raise ValueError(f"{what}: {item!r} must look like label=PATH, e.g. gui=runs/gui/final")
        if label.strip() in out:
            raise ValueError(f"{what}: label {label.strip()!r} given twice")
        out[label.strip()] = path.strip()
    if len(out) < 2:
        raise ValueError(f"{what}: give at least two label=PATH pairs separated by commas, got {text!r}")
    return out


def write_domain_subset(root: str | Path, domain: str, out: str | Path) -> Path:
    """Copy ``root``'s records of ``domain`` (and their images) to ``out``; an existing complete copy is reused."""
    from ..data import DatasetReader, DatasetWriter

    out = Path(out)
    if (out / "manifest.json").exists():
        return out
    reader = DatasetReader(root)
    manifest = reader.manifest
    spaces: Mapping = {}
    declared: Mapping = {}
    if manifest is not None:
        spaces = {name: info.action_space for name, info in manifest.sources.items()
                  if info.action_space is not None and info.domain == domain}
        declared = manifest.domains
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with DatasetWriter(tmp, action_spaces=spaces, domains=declared) as writer:
        for sample in reader:
            if sample.domain == domain:
                writer.write(replace(sample, images=[]), reader.load_images(sample, mode=None))
    if writer.num_written == 0:
        shutil.rmtree(tmp)
        raise ValueError(f"{root}: no records of domain {domain!r}")
    tmp.rename(out)
    return out
