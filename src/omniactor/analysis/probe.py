"""One command from data to K: save the base once, fine-tune it once per domain, compare.

``run_probe(base, {"gui": DIR, "embodied": DIR}, out)``:

1. the base: a local model folder is used as it is; a preset name (``tiny``) is built with
   ``seed`` and saved to ``<out>/base`` with its processor, so every run starts from the same
   weights on disk;
2. one short dense fine-tune per label (``omniactor train``'s ``train()``; the other settings
   from ``train_config`` and ``overrides``, e.g. ``configs/tiny/dense-mixed.yaml``) on that
   label's data (a one-domain copy under ``<out>/data/<label>`` when the folder is mixed),
   into ``<out>/runs/<label>``;
3. the comparison of ``<out>/runs/*/final`` against the base, the proposed K and the report
   (``report.write_update_report``) in ``<out>``, and ``<out>/probe.json`` with the settings
   and each run's first and last training loss (did the runs learn at all?).

Re-running the same command reuses the saved base, the finished runs and the data copies, and
resumes an interrupted run from its checkpoint. Changed settings are refused rather than
mixed with the old runs' results.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .domain_data import domain_counts, resolve_domain, write_domain_subset

PROBE_FILE = "probe.json"
BASE_STAMP = "omniactor_probe_base.json"


def prepare_base(base: str, out: Path, seed: int = 0) -> Path:
    """The base model folder: ``base`` itself when it is a folder, else the preset saved under ``<out>/base``."""
    if Path(base).is_dir():
        from .weights import read_model_config

        if "omniactor" in read_model_config(Path(base)):
            raise ValueError(f"--base {base} is an omniactor training output; the probe fine-tunes plain models: "
                             f"export it first (omniactor export {base} OUT --domain DOMAIN) and pass OUT")
        return Path(base)
    from ..models.checkpoint import save_pretrained
    from ..models.presets import build_model, get_preset

    preset = get_preset(base)  # unknown names fail with "did you mean"
    target = out / "base"
    stamp = {"preset": preset.name, "seed": seed}
    if (target / BASE_STAMP).exists():
        found = json.loads((target / BASE_STAMP).read_text())
        if found != stamp:
            raise ValueError(f"{target} holds the base {found}, not {stamp}: use another --out or delete it")
        return target
    model, processor = build_model(preset, seed=seed)
    tmp = target.with_name("base.tmp")
    save_pretrained(model, tmp, processor)
    (tmp / BASE_STAMP).write_text(json.dumps(stamp))
    tmp.rename(target)
    return target


def _plain(config: Any) -> Any:
    """A config as the YAML ``train`` writes reads back (tuples as lists, ...)."""
    import yaml

    from ..training.config import to_plain

    return yaml.safe_load(yaml.safe_dump(to_plain(config), sort_keys=False))


def run_configs(base_dir: Path, data: Mapping[str, str], out: Path, steps: int | None,
                train_config: str | None, overrides: Sequence[str]) -> dict[str, Any]:
    """One dense ``TrainConfig`` per label: same settings, that label's one-domain data."""
    from ..training.config import SourceConfig, load_config

    template = load_config(train_config, list(overrides))
    configs = {}
    for label, root in data.items():
        domain = resolve_domain(label, root)
        if len(domain_counts(root)) > 1:
            root = str(write_domain_subset(root, domain, out / "data" / label))
        if domain not in template.blocks:
            raise ValueError(f"{label}: no block for domain {domain!r} in the train config "
                             f"(domains.{domain}: {{action_tokenizer: ..., output: ...}})")
        configs[label] = dataclasses.replace(
            template, model=str(base_dir), variant="dense", domains={domain: template.blocks[domain]},
            data=[SourceConfig(path=str(root), name=label)], eval_data=[],
            output_dir=str(out / "runs" / label), max_steps=steps if steps is not None else template.max_steps)
    return configs


def _check_same_settings(config: Any, label: str) -> None:
    """A run folder may only be continued with the settings it was started with."""
    import yaml

    written = Path(config.output_dir) / "config.yaml"
    if not written.exists():
        return
    old, new = yaml.safe_load(written.read_text()), _plain(config)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:4])
        raise ValueError(f"run {label} in {config.output_dir} was started with other settings ({details}); "
                         "delete that folder or use another --out")


def _losses(run_dir: Path, domain: str) -> dict[str, float | None]:
    """First and last logged training loss of a run (from metrics.jsonl)."""
    values = []
    metrics = run_dir / "metrics.jsonl"
    for line in metrics.read_text().splitlines() if metrics.exists() else []:
        record = json.loads(line)
        if f"loss/domain/{domain}" in record:
            values.append(record[f"loss/domain/{domain}"])
    return {"loss_first": values[0] if values else None, "loss_last": values[-1] if values else None}


def run_probe(base: str, data: Mapping[str, str], out: str | Path, *, steps: int | None = 50,
              train_config: str | None = None, overrides: Sequence[str] = (), seed: int = 0,
              progress: bool = True, **analysis: Any) -> tuple[Any, Any, dict[str, Path]]:
    """Fine-tune ``base`` once per ``data`` label, compare the runs, propose K; see the module docstring.

    ``analysis``: the keyword arguments of ``report.analyze_checkpoints`` (rule, fraction, ...).
    """
    from ..training.loop import train
    from .report import analyze_checkpoints

    if len(data) < 2:
        raise ValueError(f"the probe needs at least two datasets (label=DIR), got {list(data)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base_dir = prepare_base(base, out, seed)
    configs = run_configs(base_dir, data, out, steps, train_config, overrides)
    runs: dict[str, Path] = {}
    summary: dict[str, Any] = {"base": str(base_dir), "runs": {}}
    for label, config in configs.items():
        _check_same_settings(config, label)
        final = Path(config.output_dir) / "final"
        if final.exists():
            print(f"probe: reusing the finished run {label} ({final})")
        else:
            print(f"probe: fine-tuning {label} on {config.data[0].path} ({config.max_steps} steps)")
            train(config, progress=progress)
        runs[label] = final
        domain = next(iter(config.blocks))
        summary["runs"][label] = {"data": config.data[0].path, "domain": domain, "final": str(final),
                                  "steps": config.max_steps, **_losses(Path(config.output_dir), domain)}
    result, proposal, written = analyze_checkpoints(base_dir, runs, out, progress=progress, **analysis)
    summary["shared_layers"] = proposal.shared_layers
    (out / PROBE_FILE).write_text(json.dumps(summary, indent=1))
    written["probe"] = out / PROBE_FILE
    return result, proposal, written
