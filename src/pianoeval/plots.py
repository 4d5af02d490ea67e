"""Matplotlib figures written by stages (PNG; their data also goes to CSV for `dvc plots`)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# Fixed metadata so rerunning a stage writes the same PNG bytes.
PNG_META = {"Software": None}


def save(fig, path: str) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata=PNG_META)
    plt.close(fig)


def bar_chart_per_dimension(df: pd.DataFrame, path: str, *, title: str, value: str, group: str,
                            reference: dict[str, float] | None = None) -> None:
    """Grouped horizontal bars: one row per dimension (df order), one bar per ``group`` value.
    ``reference`` draws a marker per dimension (e.g. the noise ceiling)."""
    dims = list(dict.fromkeys(df["dimension"]))
    groups = list(dict.fromkeys(df[group]))
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(dims) * max(1, len(groups) / 2) + 1.5))
    h = 0.8 / len(groups)
    y = np.arange(len(dims))
    for i, g in enumerate(groups):
        sub = df[df[group] == g].set_index("dimension").reindex(dims)
        ax.barh(y + i * h - 0.4 + h / 2, sub[value].fillna(0.0), height=h, label=str(g))
    if reference:
        ax.scatter([reference.get(d, np.nan) for d in dims], y, marker="|", s=200, color="black", zorder=3,
                   label="noise ceiling")
    ax.set_yticks(y, dims)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(value)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    save(fig, path)
