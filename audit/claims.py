"""What a submission.json claims, read leniently from the many historical key spellings.

Shared by the context and the folder, caps and statistics rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def num(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, str):
        x = x.replace(",", "").strip()
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _seed(x: Any) -> int | None:
    v = num(x)
    return int(v) if v is not None and v == int(v) else None


def per_seed(sub: Mapping[str, Any] | None, field: str) -> dict[int, float]:
    """Per-seed claims of `field` (val_bpb, val_loss, bytes_total, train_time_s, ...)."""
    if not sub:
        return {}
    out: dict[int, float] = {}
    for key in (f"{field}_by_seed", f"{field}s_by_seed", f"seed_{field}", f"per_seed_{field}"):
        table = sub.get(key)
        if isinstance(table, Mapping):
            for s, v in table.items():
                seed, value = _seed(s), num(v)
                if seed is not None and value is not None:
                    out[seed] = value
    for key in ("seed_results", "seeds_results", "results", "per_seed", "runs", "seeds"):
        table = sub.get(key)
        rows: list[tuple[Any, Any]] = []
        if isinstance(table, Mapping):
            rows = list(table.items())
        elif isinstance(table, list):
            rows = [(r.get("seed") if isinstance(r, Mapping) else None, r) for r in table]
        for s, row in rows:
            if not isinstance(row, Mapping):
                if field == "val_bpb" and _seed(s) is not None and num(row) is not None:
                    out[_seed(s)] = num(row)  # type: ignore[index,assignment]
                continue
            seed = _seed(row.get("seed", s))
            value = _row_value(row, field)
            if seed is not None and value is not None:
                out.setdefault(seed, value)
    return out


_ALIASES = {
    "val_bpb": ("val_bpb", "bpb", "final_val_bpb"),
    "val_loss": ("val_loss", "loss"),
    "bytes_total": ("bytes_total", "artifact_bytes", "total_bytes", "bytes", "size_bytes"),
    # Unitless "eval_time"/"train_time" are left out: logs of the time used ms and s alike.
    "train_time_s": ("train_time_s", "train_seconds", "training_time_s"),
    "eval_time_s": ("eval_time_s", "eval_seconds", "evaluation_time_s"),
}
_BYTES_KEYS = (
    "bytes_total",
    "bytes_total_max",
    "artifact_bytes",
    "artifact_bytes_max",
    "artifact_bytes_mean",
    "total_bytes",
    "bytes_max",
    "submission_bytes",
    "total_submission_bytes",
    "artifact_size_bytes",
)
_SECONDS_KEYS = {
    "train_time_s": ("training_time_seconds", "train_seconds", "train_time_seconds"),
    "eval_time_s": ("eval_seconds", "eval_time_seconds", "evaluation_time_seconds"),
}
_MS_ALIASES = {
    "train_time_s": ("train_time_ms", "train_ms"),
    "eval_time_s": ("eval_time_ms", "eval_ms"),
}


def _row_value(row: Mapping[str, Any], field: str) -> float | None:
    for k in _ALIASES.get(field, (field,)):
        v = num(row.get(k))
        if v is not None:
            return v
    for k in _MS_ALIASES.get(field, ()):
        v = num(row.get(k))
        if v is not None:
            return v / 1000.0
    return None


def claimed_bytes(sub: Mapping[str, Any] | None) -> list[tuple[str, float]]:
    """(key, value) of every byte-total claim at top level and per seed."""
    if not sub:
        return []
    out = []
    for key in _BYTES_KEYS:
        v = num(sub.get(key))
        if v is not None:
            out.append((key, v))
    for seed, v in sorted(per_seed(sub, "bytes_total").items()):
        out.append((f"seed {seed}", v))
    return out


def claimed_times(sub: Mapping[str, Any] | None, field: str) -> list[tuple[str, float]]:
    """(key, seconds) of train or eval time claims (`field` is train_time_s or eval_time_s)."""
    if not sub:
        return []
    out = []
    base = field[: -len("_s")]
    for key in (field, f"{base}_max_s", *_SECONDS_KEYS.get(field, ())):
        v = num(sub.get(key))
        if v is not None:
            out.append((key, v))
    for key in (f"{base}_ms", f"{base}_ms_max"):
        v = num(sub.get(key))
        if v is not None:
            out.append((key, v / 1000.0))
    for seed, v in sorted(per_seed(sub, field).items()):
        out.append((f"seed {seed}", v))
    for key in (f"{base}_ms_by_seed",):
        table = sub.get(key)
        if isinstance(table, Mapping):
            for s, v in table.items():
                if num(v) is not None:
                    out.append((f"seed {s}", num(v) / 1000.0))  # type: ignore[operator]
    return out


def claimed_std(sub: Mapping[str, Any] | None) -> float | None:
    if not sub:
        return None
    for key in ("val_bpb_std", "std", "val_bpb_stddev", "bpb_std"):
        v = num(sub.get(key))
        if v is not None:
            return v
    return None
