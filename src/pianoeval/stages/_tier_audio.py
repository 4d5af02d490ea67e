"""Shared body of the t2_audio / t3_audio stages."""

from __future__ import annotations

import time

import pandas as pd

from ..io import load_params, write_json
from ..render import SynthConfig


def audio_stage(tier: str) -> dict:
    """Render the tier's windows with the T1 render settings into the tier's audio store."""
    from ..tiers.excerpt import render_windows

    p = load_params(f"{tier}_audio")
    r = load_params("render")
    sel = load_params("tiers_select")
    windows = pd.read_csv(p["segments"], dtype={"segment_id": str}, keep_default_na=False)
    cfg = SynthConfig.from_params(r)
    t0 = time.perf_counter()
    if tier == "t2" and sel["t2"]["source"] == "manifest":  # real recordings: cut, no rendering
        from ..tiers.recordings import cut_recordings

        report = cut_recordings(windows, sel["t2"]["recordings_dir"], p["out_dir"], r["sample_rate"])
    else:
        report = render_windows(windows, sel["asap_root"], cfg, p["out_dir"], peak_target=r["peak_target"],
                                workers=r["workers"])
    write_json(f"metrics/{tier}_audio.json", report)
    print(f"{tier}_audio: {report['rendered']} windows, {report['total_hours']:.2f} h rendered, "
          f"{report['excluded_bad_midi']} excluded, global scale {report['global_scale']:.3f} "
          f"({time.perf_counter() - t0:.0f} s)")
    return report
