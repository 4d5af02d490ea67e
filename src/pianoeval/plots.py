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
                            panel: str | None = None, reference: dict[str, float] | None = None,
                            reference_label: str = "noise ceiling") -> None:
    """Grouped horizontal bars: one row per dimension (df order), one bar per ``group`` value, one
    subplot per ``panel`` value. ``reference`` draws a marker per dimension (e.g. the noise ceiling)."""
    dims = list(dict.fromkeys(df["dimension"]))
    panels = list(dict.fromkeys(df[panel])) if panel else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 2, 0.3 * len(dims) + 1.5),
                             sharey=True, squeeze=False)
    y = np.arange(len(dims))
    lo = min(0.0, float(np.nanmin(df[value])))
    for ax, pv in zip(axes[0], panels):
        sub_df = df if pv is None else df[df[panel] == pv]
        groups = list(dict.fromkeys(sub_df[group]))
        h = 0.8 / len(groups)
        for i, g in enumerate(groups):
            sub = sub_df[sub_df[group] == g].set_index("dimension").reindex(dims)
            ax.barh(y + i * h - 0.4 + h / 2, sub[value].fillna(0.0), height=h, label=str(g))
        if reference:
            ax.scatter([reference.get(d, np.nan) for d in dims], y, marker="|", s=120, color="black", zorder=3,
                       label=reference_label)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlim(max(lo, -0.5) - 0.02, 1.0)
        ax.set_xlabel(value)
        if pv is not None:
            ax.set_title(str(pv), fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    axes[0, 0].set_yticks(y, dims)
    axes[0, 0].invert_yaxis()
    fig.suptitle(title)
    save(fig, path)


def grouped_bars(df: pd.DataFrame, path: str, *, category: str, group: str, value: str, low: str, high: str,
                 title: str) -> None:
    """Horizontal bars of ``value`` per ``category`` (rows, df order), one bar per ``group``, with
    [low, high] interval whiskers."""
    cats = list(dict.fromkeys(df[category]))
    groups = list(dict.fromkeys(df[group]))
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(cats) * max(1, len(groups) / 2) + 1.5))
    y = np.arange(len(cats))
    h = 0.8 / len(groups)
    for i, g in enumerate(groups):
        sub = df[df[group] == g].set_index(category).reindex(cats)
        err = np.vstack([sub[value] - sub[low], sub[high] - sub[value]])
        ax.barh(y + i * h - 0.4 + h / 2, sub[value], height=h, xerr=err, capsize=2, label=str(g))
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, cats)
    ax.invert_yaxis()
    ax.set_xlabel(value)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    save(fig, path)


def metric_panels(df: pd.DataFrame, path: str, *, title: str) -> None:
    """One panel per ``metric`` (df order), one horizontal bar per ``variant`` with [ci_low, ci_high]
    whiskers; a ``baseline`` column (NaN = none) draws a dashed line per panel (chance, a no-model baseline)."""
    metrics = list(dict.fromkeys(df["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 1.5, 0.42 * df["variant"].nunique() + 1.6),
                             sharey=True, squeeze=False)
    for ax, m in zip(axes[0], metrics):
        sub = df[df["metric"] == m]
        y = np.arange(len(sub))
        err = np.vstack([sub["value"] - sub["ci_low"], sub["ci_high"] - sub["value"]])
        ax.barh(y, sub["value"], xerr=np.nan_to_num(err), capsize=3, color="tab:blue", alpha=0.8)
        base = sub["baseline"].dropna()
        if len(base):
            ax.axvline(float(base.iloc[0]), color="black", ls="--", lw=0.9, label=str(sub["baseline_label"].iloc[0]))
            ax.legend(fontsize=7, loc="lower right")
        ax.axvline(0, color="grey", lw=0.6)
        ax.set_title(m, fontsize=9)
        ax.set_yticks(y, list(sub["variant"]))
    axes[0, 0].invert_yaxis()
    fig.suptitle(title, fontsize=10, y=1.06)
    save(fig, path)
