"""Stage `t4_pool`: the unlabeled T4 clips (rendered ASAP excerpts no labelled tier uses) in one audio store."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

from ..io import load_params, write_json
from ..render import SynthConfig, midi_events, render_store, resolve_soundfont
from ..t4.pool import excerpt_midi, pool_candidates, read_exclusion_table, read_metadata, select_clips


def main() -> None:
    p = load_params("t4_pool")
    r = load_params("render")
    if p["source"] != "asap":
        raise ValueError(f"params t4_pool.source: '{p['source']}' not supported (asap)")
    asap = Path(p["asap_dir"])
    meta = read_metadata(asap / "metadata.csv")
    events_of = functools.lru_cache(maxsize=None)(midi_events)  # each performance parsed once
    exclude = read_exclusion_table(p["exclude"], set(meta["midi_performance"]))
    candidates, rule = pool_candidates(meta, exclude)
    clips, chosen = select_clips(candidates, asap, n_clips=p["n_clips"],
                                 clips_per_performance=p["clips_per_performance"],
                                 clip_seconds=p["clip_seconds"], seed=p["seed"], events_of=events_of)
    out = Path(p["out_dir"])
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="t4-excerpts-", dir=out.parent))
    try:
        items, counts = [], []
        for i, row in enumerate(clips.itertuples(index=False)):
            path = scratch / f"{i:05d}.mid"
            counts.append(excerpt_midi(events_of(asap / row.midi_performance), path, row.start, row.end))
            items.append((row.clip_id, str(path)))
        cfg = SynthConfig(soundfont=str(resolve_soundfont(r["soundfont"])), sample_rate=r["sample_rate"],
                          gain=r["gain"], tail_seconds=r["tail_seconds"])
        rendered = render_store(items, cfg, out, peak_target=r["peak_target"], on_bad_midi="fail",
                                workers=r["workers"], progress=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    clips["notes"] = [c["notes"] for c in counts]
    clips["notes_cut_at_start"] = [c["notes_cut_at_start"] for c in counts]
    Path(p["clips"]).parent.mkdir(parents=True, exist_ok=True)
    clips.to_csv(p["clips"], index=False)
    report = {"source": "asap", **rule, **chosen, "clips": len(clips), "clip_seconds": p["clip_seconds"],
              "notes": int(clips["notes"].sum()), "notes_cut_at_start": int(clips["notes_cut_at_start"].sum()),
              "audio_minutes": rendered["total_hours"] * 60, "global_scale": rendered["global_scale"],
              "rms_dbfs": rendered["rms_dbfs"], "excluded_bad_midi": rendered["excluded_bad_midi"]}
    write_json("metrics/t4_pool.json", report)
    print(f"t4_pool: {len(clips)} clips from {chosen['performances_used']} ASAP performances "
          f"({rule['candidates']} candidates of {rule['metadata_rows']}: {rule['excluded_competition_round']} with a "
          f"competition round, {rule['excluded_title_with_several_performances']} of shared titles, "
          f"{rule['excluded_by_table']} by the exclusion table; {chosen['skipped_too_short']} too short), "
          f"{report['audio_minutes']:.1f} min, {report['notes_cut_at_start']} notes cut at clip starts")


if __name__ == "__main__":
    main()
