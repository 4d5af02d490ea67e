"""Training pairs of the tiers.

T2 (ordinal): two segments of the same bars of the same score folder by performer-years with
different placement codes; ``better`` is the one whose pianist went further (lower code).
T3 (contrastive): for every anchor window, ``positive`` = the same bars by another performer,
``neg_same_performance`` = other bars of the same performance, ``neg_same_title`` = other bars of
the same score folder by another performer (hard negatives: same piece, same pianist or same sound).
"""

from __future__ import annotations

import pandas as pd

PAIR_RELATIONS = ("positive", "neg_same_performance", "neg_same_title")


def ordinal_pairs(segments: pd.DataFrame) -> pd.DataFrame:
    """Ordinal pairs of T2 segments.

    Parameters
    ----------
    segments : columns segment_id, folder, bar_start, bar_end, performer_year, placement.

    Returns
    -------
    DataFrame better, worse, placement_better, placement_worse, folder, bar_start, bar_end (sorted).
    """
    need = ["segment_id", "folder", "bar_start", "bar_end", "performer_year", "placement"]
    missing = [c for c in need if c not in segments.columns]
    if missing:
        raise ValueError(f"ordinal_pairs: segments lack columns {missing}")
    rows = []
    for (folder, b0, b1), g in segments.groupby(["folder", "bar_start", "bar_end"], sort=True):
        g = g.sort_values("segment_id")
        recs = g[["segment_id", "performer_year", "placement"]].to_numpy()
        for i in range(len(recs)):
            for j in range(i + 1, len(recs)):
                a, b = recs[i], recs[j]
                if a[1] == b[1] or a[2] == b[2]:
                    continue  # same pianist-year, or the same placement: no order to learn
                better, worse = (a, b) if a[2] < b[2] else (b, a)
                rows.append((better[0], worse[0], better[2], worse[2], folder, int(b0), int(b1)))
    cols = ["better", "worse", "placement_better", "placement_worse", "folder", "bar_start", "bar_end"]
    return pd.DataFrame(rows, columns=cols).sort_values(["better", "worse"]).reset_index(drop=True)


def contrastive_pairs(windows: pd.DataFrame) -> pd.DataFrame:
    """Every (anchor, other) pair of T3 windows of the same score folder with its relation.

    Parameters
    ----------
    windows : columns segment_id, performance_id, folder, bar_start.

    Returns
    -------
    DataFrame anchor, other, relation (one of ``PAIR_RELATIONS``), folder; both orders are listed (each
    window is an anchor).
    """
    need = ["segment_id", "performance_id", "folder", "bar_start"]
    missing = [c for c in need if c not in windows.columns]
    if missing:
        raise ValueError(f"contrastive_pairs: windows lack columns {missing}")
    rows = []
    for folder, g in windows.groupby("folder", sort=True):
        recs = g.sort_values("segment_id")[["segment_id", "performance_id", "bar_start"]].to_numpy()
        for a in recs:
            for b in recs:
                if a[0] == b[0]:
                    continue
                same_perf, same_bars = a[1] == b[1], a[2] == b[2]
                if same_bars and not same_perf:
                    rel = "positive"
                elif same_perf:
                    rel = "neg_same_performance"
                else:
                    rel = "neg_same_title"
                rows.append((a[0], b[0], rel, folder))
    return pd.DataFrame(rows, columns=["anchor", "other", "relation", "folder"])
