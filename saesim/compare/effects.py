"""Effect sizes of tidy score records: each scored metric's value over its null mean, as a difference and a z.

A record is one row of a tidy grid or bootstrap table (a dict, or a
DataFrame of them); a metric ``m`` is *scored* when the record holds
``m_null_mean`` and ``m_null_std`` beside ``m``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["as_float", "effect_sizes", "scored_metrics"]


def effect_sizes(record):
    """Value - null mean (``<m>_effect``) and z (``<m>_effect_z``) for every metric with a null.

    Accepts one tidy record (dict) or a table (DataFrame) and returns the same
    kind with the columns added. Where a bootstrap CI is present the effect's
    CI (``<m>_effect_ci_low`` / ``_high``: the score's CI minus the null mean)
    is added; where a random-subset null is present, ``<m>_subset_effect``.
    """
    if isinstance(record, pd.DataFrame):
        if record.empty:
            return record.copy()
        rows = [effect_sizes(row) for row in record.to_dict("records")]
        return pd.DataFrame.from_records(rows, index=record.index)
    out = dict(record)
    for metric in scored_metrics(record):
        value, mean = as_float(record.get(metric)), as_float(record.get(f"{metric}_null_mean"))
        std = as_float(record.get(f"{metric}_null_std"))
        out[f"{metric}_effect"] = value - mean
        out[f"{metric}_effect_z"] = (value - mean) / std if std > 0 else np.nan
        if f"{metric}_ci_low" in record:
            out[f"{metric}_effect_ci_low"] = as_float(record[f"{metric}_ci_low"]) - mean
            out[f"{metric}_effect_ci_high"] = as_float(record[f"{metric}_ci_high"]) - mean
        if f"{metric}_subset_null_mean" in record:
            out[f"{metric}_subset_effect"] = value - as_float(record[f"{metric}_subset_null_mean"])
    return out


def as_float(value) -> float:
    """``value`` as a float; NaN for None or anything that is not a number."""
    try:
        return float(value) if value is not None else np.nan
    except (TypeError, ValueError):
        return np.nan


def scored_metrics(record) -> list[str]:
    """The metrics of ``record`` (a mapping) with a null mean and spread, in the record's order."""
    # A scored metric has a null mean and spread (the authors'-k SVCCA beside SVCCA has no spread column).
    return [key[: -len("_null_mean")] for key in record if key.endswith("_null_mean")
            and not key.endswith("_subset_null_mean") and f"{key[: -len('_null_mean')]}_null_std" in record]
