"""Shared body of the t2_segments / t3_segments stages."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io import load_params


def segments_stage(tier: str, manifest_path: Path, *, min_performers: int) -> tuple[pd.DataFrame, dict]:
    from ..tiers.segments import bar_windows

    p = load_params(f"{tier}_segments")
    sel = load_params("tiers_select")
    manifest = pd.read_csv(manifest_path, dtype={"id": str}, keep_default_na=False)
    windows, report = bar_windows(manifest, sel["asap_root"], target_seconds=float(p["target_seconds"]),
                                  count=int(p["windows_per_performance"]), pre_roll=float(p["pre_roll"]),
                                  min_performers=min_performers)
    Path(p["out"]).parent.mkdir(parents=True, exist_ok=True)
    windows.to_csv(p["out"], index=False, float_format="%.6f")
    return windows, report


def recording_segments(manifest_path: Path, p: dict, recordings_dir: str) -> tuple[pd.DataFrame, dict]:
    from ..tiers.recordings import recording_windows

    manifest = pd.read_csv(manifest_path, dtype={"id": str}, keep_default_na=False)
    windows, report = recording_windows(manifest, recordings_dir, target_seconds=float(p["target_seconds"]),
                                        count=int(p["windows_per_performance"]))
    Path(p["out"]).parent.mkdir(parents=True, exist_ok=True)
    windows.to_csv(p["out"], index=False, float_format="%.6f")
    return windows, report
