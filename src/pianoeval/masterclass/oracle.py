"""The oracle input of Model B: the true crowd ratings of the playing in each window.

The simulated teachers stop on passage-standardised crowd ratings (:mod:`.simulate`); Model B sees
the quality model's *predictions* of those ratings. Feeding the classifier the true ratings instead
(standardised within passage, exactly what the teachers see) gives the ceiling Model B could reach
with a perfect quality model; Model B's gap to it is the cost of the prediction error. It exists
only where ``provenance.json`` says which performance lies where (simulated sessions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pianoeval.dimensions import DIMENSIONS, MEAN_COLUMNS
from pianoeval.labels import passage_ids


def passage_z(values: pd.DataFrame, passages: np.ndarray) -> tuple[pd.DataFrame, int]:
    """Columns of ``values`` z-scored within each passage (population std). A passage whose column has
    no spread (e.g. one performance) gets z = 0 there; returns (z, number of such cells)."""
    g = values.groupby(passages)
    sd = g.transform(lambda s: s.std(ddof=0))
    z = (values - g.transform("mean")) / sd.where(sd > 0)
    return z.fillna(0.0), int(z.isna().to_numpy().sum())


def dimension_z_scores(labels: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """(keys of labeled non-score performances) x 19 dimensions: mean ratings z-scored within passage."""
    lab = labels[labels["labeled"].astype(bool) & ~labels["is_score"].astype(bool)]
    vals = pd.DataFrame(lab[list(MEAN_COLUMNS)].to_numpy(float), index=lab["key"].to_numpy(), columns=list(DIMENSIONS))
    z, zero = passage_z(vals, passage_ids(lab))
    return z, {"n_performances": len(lab), "zero_spread_cells": zero}


def oracle_ratings(windows: pd.DataFrame, provenance: dict, z: pd.DataFrame) -> pd.DataFrame:
    """Per window, the overlap-weighted mean of the passage z-scores of the performances it holds.

    Parameters
    ----------
    windows : columns segment_id, video_id, start, end.
    provenance : parsed provenance.json (performances with key, start, end/audio_end).
    z : :func:`dimension_z_scores` table (index = performance key).

    Returns
    -------
    DataFrame: segment_id, the 19 dimensions, ``n_performances`` (how many performances overlap).
    A window that overlaps no rated performance is an error naming it.
    """
    videos = provenance.get("videos", {})
    rows = []
    for w in windows.itertuples(index=False):
        if w.video_id not in videos:
            raise ValueError(f"provenance.json: no entry for video '{w.video_id}' (segment {w.segment_id})")
        weights, keys = [], []
        for e in videos[w.video_id]["performances"]:
            ov = min(w.end, e.get("audio_end", e["end"])) - max(w.start, e["start"])
            if ov > 0 and e["key"] in z.index:
                weights.append(ov)
                keys.append(e["key"])
        if not keys:
            raise ValueError(f"segment {w.segment_id}: no rated performance overlaps [{w.start}, {w.end}] "
                             f"in provenance.json")
        wts = np.asarray(weights) / np.sum(weights)
        rows.append([w.segment_id, *(wts @ z.loc[keys].to_numpy()), len(keys)])
    return pd.DataFrame(rows, columns=["segment_id", *DIMENSIONS, "n_performances"])
