"""Quality scores of tier windows by the T1 fold checkpoints, leakage-guarded.

A tier performance that PercePiano also holds (found by :mod:`pianoeval.midi_match`) carries the
PercePiano pianist ids of its performer-year (``percepiano_pianist_ids``); such a window is scored
only by checkpoints that never trained on those pianists (the masterclass guard,
:mod:`pianoeval.masterclass.scoring`). Every other window is scored by the mean of all checkpoints:
none of them trained on any tier performance.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..masterclass.scoring import (allowed_models, check_extractor, check_no_leakage, load_checkpoints,
                                   quality_scores, train_pianists)


def window_pianists(windows: pd.DataFrame) -> dict[str, set[int]]:
    """segment_id -> PercePiano pianist ids from the ';'-joined ``percepiano_pianist_ids`` column."""
    out = {}
    for s, ids in zip(windows["segment_id"], windows["percepiano_pianist_ids"].astype(str)):
        out[s] = {int(float(x)) for x in ids.split(";") if x.strip() not in ("", "nan")}
    return out


def score_windows(windows: pd.DataFrame, store, checkpoint_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """(scores: segment_id, the 19 dimensions, n_models, models; report)."""
    heads = load_checkpoints(checkpoint_dir)
    check_extractor(heads, store.extractor, store.extractor_params)
    ids = windows["segment_id"].tolist()
    seg_p = window_pianists(windows)
    model_p = train_pianists(heads)
    assignment = allowed_models(seg_p, model_p, ids)
    check_no_leakage(assignment, seg_p, model_p)
    scores = quality_scores(store.pooled(ids), ids, heads, assignment)
    guarded = sum(bool(v) for v in seg_p.values())
    n = scores["n_models"]
    report = {"n_windows": len(ids), "n_checkpoints": len(heads), "windows_guarded": guarded,
              "leakage_guard": "windows of PercePiano-overlapping performer-years scored only by checkpoints that "
                               "never trained on their pianists; all others by every checkpoint",
              "models_per_window": {"min": int(n.min()), "mean": float(n.mean()), "max": int(n.max())}}
    return scores, report
