"""Versions side by side: their metrics, and the configuration keys whose values differ.

    table = compare_versions(ModelStore(), "gvae", ["1", "2", "production"])
    print(table.format())
    python -m model_store compare 1 2 production [--all]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .registry import ModelStore

METRIC_KEYS = ("test_neg_elbo", "test_iw_nll", "iw_k", "epochs_total", "train_seconds")
CONFIG_SECTIONS = (("model", "model_config"), ("training", "training_config"), ("launch", "launch"))
_MISSING = object()


def flat_config(meta: dict[str, Any]) -> dict[str, Any]:
    """model_config, training_config and launch of a version's metadata as `model.x` / `training.y` / ... keys."""
    flat: dict[str, Any] = {}
    for prefix, key in CONFIG_SECTIONS:
        for name, value in (meta.get(key) or {}).items():
            flat[f"{prefix}.{name}"] = value
    return flat


def format_value(value: Any) -> str:
    """A config or metric value as a short table cell: floats to 4 significant digits (metrics to 2 decimals)."""
    if value is _MISSING or value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if abs(value) >= 10:
            return f"{value:.2f}"
        return f"{value:.1f}" if value.is_integer() else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value) if value != "" else '""'


@dataclass
class Comparison:
    versions: list[int]
    metrics: list[list[str]]  # [metric, value per version]
    config: list[list[str]]  # [config key, value per version]: the keys that differ (or all of them)

    def format(self) -> str:
        """A plain-text table: metrics first, then the configuration, columns aligned across both."""
        header = ["", *(f"v{v}" for v in self.versions)]
        config_title = ["configuration", *([""] * len(self.versions))]
        rows = [header, *self.metrics, config_title, *(self.config or [["(identical)", *[""] * len(self.versions)]])]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        split = 1 + len(self.metrics)
        return "\n".join([*lines[:split], "", *lines[split:]])


def compare_versions(store: ModelStore, name: str, refs: list[str], *, all_keys: bool = False) -> Comparison:
    """Metrics of each version, and every config key whose value differs (every key with `all_keys`).
    A key missing from a version (an older one) shows as '-' and counts as a difference."""
    metas = [store.metadata(name, ref) for ref in refs]
    metrics = [[key, *(format_value((m.get("metrics") or {}).get(key, _MISSING)) for m in metas)]
               for key in METRIC_KEYS]
    configs = [flat_config(m) for m in metas]
    config = []
    for key in sorted(set().union(*configs)):
        values = [c.get(key, _MISSING) for c in configs]
        distinct = {"<missing>" if v is _MISSING else json.dumps(v, sort_keys=True) for v in values}
        if all_keys or len(distinct) > 1:
            config.append([key, *(format_value(v) for v in values)])
    return Comparison(versions=[m["version"] for m in metas], metrics=metrics, config=config)
