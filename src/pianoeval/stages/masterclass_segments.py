"""Stage `masterclass_segments`: moments + session audio -> STOP/CONTINUE segment table (both variants)."""

from __future__ import annotations

from pathlib import Path

from ..io import load_params, write_json
from ..masterclass.features import make_segment_table


def main() -> None:
    p = load_params("masterclass_segments")
    table, report = make_segment_table(p["input_dir"], on_error=p["on_error"],
                                       min_continue_duration=p["min_continue_duration"],
                                       min_stop_duration=p["min_stop_duration"], seed=p["seed"])
    Path(p["out"]).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(p["out"], index=False)
    report["input_dir"] = p["input_dir"]
    write_json("metrics/masterclass_segments.json", report)
    ld, c, a, sg = report["load"], report["counts"], report["audio_checks"], report["segments"]
    ro = report["replay_overlap"]
    overlap = ro if isinstance(ro, str) else ", ".join(f"{v} {r['replay_seconds']:.1f} s" for v, r in ro.items())
    print(f"masterclass_segments: {ld['n_valid']} moments ({ld['n_skipped']} bad lines skipped, {ld['n_blank']} blank) "
          f"in {report['audio_files']} videos from {p['input_dir']}; all: {c['all']['n_stop']} STOP / "
          f"{c['all']['n_continue']} CONTINUE, duration_matched: {c['duration_matched']['n_stop']} / "
          f"{c['duration_matched']['n_continue']} ({report['duration_matched']['n_stop_unmatched_dropped']} STOP "
          f"without a duration-matched partner left out); {sg['duplicates_dropped']} duplicate moments, "
          f"{len(report['audio_files_without_moments'])} audio files without moments; "
          f"{a['moments_dropped_no_audio']} moments skipped for {len(a['videos_without_audio'])} videos without "
          f"audio and {len(a['videos_undecodable'])} undecodable, {len(a['videos_truncated'])} files cut short; "
          f"past the audio end: {sg['stop_dropped_after_audio_end']} STOP dropped, {sg['stop_clamped']} clamped, "
          f"{sg['cont_dropped_after_audio_end']} CONTINUE dropped, {sg['cont_clamped']} clamped; windows dropped by "
          f"rule: {_dropped(sg, report['duration_matched'])}; {sg['cont_replay_seconds_removed']:.0f} s of replays "
          f"cut from CONTINUE, replay overlap left: {overlap}")


def _dropped(segments: dict, matched: dict) -> str:
    """Every nonzero count of windows a segment rule dropped (report keys), or 'none'."""
    counts = {k: v for k, v in segments.items() if ("dropped" in k or "negative" in k) and "audio_end" not in k}
    counts.update({f"duration_matched.{k}": v for k, v in matched.items()
                   if k.startswith(("n_dropped", "n_leftover", "n_windows_unused", "n_stop_unmatched"))})
    shown = [f"{k} {v}" for k, v in counts.items() if v and k != "duplicates_dropped"]
    return ", ".join(shown) or "none"


if __name__ == "__main__":
    main()
