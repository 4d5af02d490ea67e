"""Bar-aligned windows of a tier's performances (one table row per window).

Per score folder: the performances whose beat labels equal the score's are aligned; the others are
excluded and counted (their bar k is not the score's bar k). One bar plan per folder
(:func:`pianoeval.tiers.windows.plan_folder`) is cut from every aligned performance; a folder too
short for the requested windows, or (``min_performers``) with too few aligned performances, is
excluded and counted.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .asap import aligned_with_score, read_beats
from .windows import plan_folder, window_times

WINDOW_COLUMNS = ["segment_id", "performance_id", "folder", "bar_start", "bar_end", "start", "end", "seconds"]


def segment_id(performance_id: str, bar_start: int, bar_end: int) -> str:
    return f"{performance_id}@{bar_start}-{bar_end}"


def bar_windows(manifest: pd.DataFrame, asap_root: str | Path, *, target_seconds: float, count: int,
                pre_roll: float, min_performers: int = 1) -> tuple[pd.DataFrame, dict]:
    """Windows of every performance of ``manifest`` (columns id, folder, annotations, score_annotations).

    Returns
    -------
    (windows: WINDOW_COLUMNS + the manifest's other columns, report with exclusion counts and lists)
    """
    root = Path(asap_root)
    rows, unaligned, short, few = [], [], [], []
    for folder, g in manifest.groupby("folder", sort=True):
        score = read_beats(root / g["score_annotations"].iloc[0])
        beats = {r.id: read_beats(root / r.annotations) for r in g.itertuples()}
        ok = [i for i in sorted(beats) if aligned_with_score(beats[i], score)]
        unaligned += [i for i in sorted(beats) if i not in ok]
        if len(ok) < min_performers:
            few += ok
            continue
        downbeats = {i: beats[i][0][beats[i][1]] for i in ok}
        plan = plan_folder([downbeats[i] for i in ok], target_seconds, count)
        if plan is None:
            short += ok
            continue
        for i in ok:
            for b0, b1 in plan.bars():
                start, end = window_times(downbeats[i], b0, b1, pre_roll)
                rows.append((segment_id(i, b0, b1), i, folder, b0, b1, start, end, end - start))
    windows = pd.DataFrame(rows, columns=WINDOW_COLUMNS)
    extra = manifest.drop(columns=[c for c in ("folder",) if c in manifest.columns]).rename(columns={"id": "performance_id"})
    windows = windows.merge(extra, on="performance_id", how="left", validate="many_to_one")
    report = {"performances_in": int(len(manifest)), "performances_windowed": int(windows["performance_id"].nunique()),
              "excluded_unaligned": len(unaligned), "excluded_too_short": len(short),
              "excluded_too_few_performers": len(few),
              "excluded_ids": {"unaligned": unaligned, "too_short": short, "too_few_performers": few},
              "folders": int(windows["folder"].nunique()), "windows": int(len(windows)),
              "hours": float(windows["seconds"].sum() / 3600) if len(windows) else 0.0,
              "window_seconds": ({"min": float(windows["seconds"].min()), "median": float(windows["seconds"].median()),
                                  "max": float(windows["seconds"].max())} if len(windows) else {})}
    return windows.sort_values("segment_id").reset_index(drop=True), report
