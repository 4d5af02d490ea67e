"""Stage `t4_pool`: the unlabeled T4 clips in one audio store.

``t4_pool.source: asap`` (offline default): rendered ASAP excerpts no labelled tier uses (pianoeval.t4.pool).
``t4_pool.source: fetched``: clips of the recordings `t4_fetch` downloaded from the T4 manifest.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

from ..acquire import ManifestRow, fetched_items, read_manifest
from ..audio_store import AudioStoreWriter
from ..io import load_params, write_json
from ..render import SynthConfig, midi_events, render_store
from ..t4.pool import (excerpt_midi, fetched_clips, pool_candidates, read_exclusion_table, read_metadata,
                       select_clips)


def asap_pool(p: dict, r: dict) -> tuple[dict, str]:
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
        cfg = SynthConfig.from_params(r)
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
    line = (f"t4_pool: {len(clips)} clips from {chosen['performances_used']} ASAP performances "
            f"({rule['candidates']} candidates of {rule['metadata_rows']}: {rule['excluded_competition_round']} with a "
            f"competition round, {rule['excluded_title_with_several_performances']} of shared titles, "
            f"{rule['excluded_by_table']} by the exclusion table; {chosen['skipped_too_short']} too short), "
            f"{report['audio_minutes']:.1f} min, {report['notes_cut_at_start']} notes cut at clip starts")
    return report, line


def fetched_pool(p: dict, r: dict) -> tuple[dict, str]:
    f = load_params("t4_fetch")
    rows = read_manifest(f["manifest"], ManifestRow)
    files, counts = fetched_items(rows, f["out_dir"])
    if not files:
        raise ValueError(f"t4_pool.source is 'fetched' but {f['out_dir']} holds no fetched recording of "
                         f"{f['manifest']} ({counts['n_rows']} rows, {counts['n_withdrawn']} withdrawn, "
                         f"{counts['n_missing']} not fetched): enable and run t4_fetch first")
    clips, table, rep = fetched_clips(files, r["sample_rate"], n_clips=p["n_clips"],
                                      clips_per_performance=p["clips_per_performance"],
                                      clip_seconds=p["clip_seconds"], seed=p["seed"])
    out = Path(p["out_dir"])
    if out.exists():
        shutil.rmtree(out)
    writer = AudioStoreWriter(out, r["sample_rate"])
    for clip_id, audio in clips:
        writer.append(clip_id, audio)
    writer.close({"source": "fetched", "manifest": str(f["manifest"])})
    Path(p["clips"]).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(p["clips"], index=False)
    report = {"source": "fetched", "manifest_rows": counts["n_rows"], "manifest_withdrawn": counts["n_withdrawn"],
              "not_fetched": counts["n_missing"], "not_fetched_ids": counts["missing"], **rep, "clips": len(table),
              "clip_seconds": p["clip_seconds"], "audio_minutes": sum(writer.lengths) / r["sample_rate"] / 60}
    line = (f"t4_pool: {len(table)} clips from {rep['recordings_used']} fetched recordings ({counts['n_rows']} manifest "
            f"rows: {counts['n_withdrawn']} withdrawn, {counts['n_missing']} not fetched; {rep['skipped_too_short']} "
            f"too short), {report['audio_minutes']:.1f} min, {rep['clipped_samples']} samples clipped")
    return report, line


def main() -> None:
    p = load_params("t4_pool")
    r = load_params("render")
    if p["source"] == "asap":
        report, line = asap_pool(p, r)
    elif p["source"] == "fetched":
        report, line = fetched_pool(p, r)
    else:
        raise ValueError(f"params t4_pool.source: '{p['source']}' must be 'asap' or 'fetched'")
    write_json("metrics/t4_pool.json", report)
    print(line)


if __name__ == "__main__":
    main()
