"""Shared bodies of the T2/T3 segment, audio and embedding stages (the stage modules stay one-liners)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..io import load_params, write_json
from ..render import SynthConfig, resolve_soundfont


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


def audio_stage(tier: str) -> dict:
    """Render the tier's windows with the T1 render settings into the tier's audio store."""
    from ..tiers.excerpt import render_windows

    p = load_params(f"{tier}_audio")
    r = load_params("render")
    sel = load_params("tiers_select")
    windows = pd.read_csv(p["segments"], dtype={"segment_id": str}, keep_default_na=False)
    cfg = SynthConfig(soundfont=str(resolve_soundfont(r["soundfont"])), sample_rate=r["sample_rate"], gain=r["gain"],
                      tail_seconds=r["tail_seconds"])
    t0 = time.perf_counter()
    report = render_windows(windows, sel["asap_root"], cfg, p["out_dir"], peak_target=r["peak_target"],
                            workers=r["workers"])
    write_json(f"metrics/{tier}_audio.json", report)
    print(f"{tier}_audio: {report['rendered']} windows, {report['total_hours']:.2f} h rendered, "
          f"{report['excluded_bad_midi']} excluded, global scale {report['global_scale']:.3f} "
          f"({time.perf_counter() - t0:.0f} s)")
    return report


def embed_stage(tier: str) -> dict:
    """Embed the tier's audio store with the configured extractor (the `extract` stage's function)."""
    from .extract import embed_store

    p = load_params(f"{tier}_embed")
    ex = load_params("extract")
    name = ex["extractor"]
    summary = embed_store(p["audio"], p["out"], name, ex.get(name) or {}, ex["dtype"], f"{tier}_embed[{name}]")
    write_json(f"metrics/{tier}_embed.json", {k: v for k, v in summary.items() if k != "bytes"})
    print(f"{tier}_embed: {summary['segments']} windows, {summary['frames']} frames x {summary['dim']} with {name}")
    return summary
