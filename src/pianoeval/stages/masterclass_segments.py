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
    ld, c = report["load"], report["counts"]
    ro = report["replay_overlap"]
    overlap = ro if isinstance(ro, str) else ", ".join(f"{v} {r['replay_seconds']:.1f} s" for v, r in ro.items())
    print(f"masterclass_segments: {ld['n_valid']} moments ({ld['n_skipped']} bad lines skipped, {ld['n_blank']} blank) "
          f"in {report['audio_files']} videos from {p['input_dir']}; all: {c['all']['n_stop']} STOP / "
          f"{c['all']['n_continue']} CONTINUE, duration_matched: {c['duration_matched']['n_stop']} / "
          f"{c['duration_matched']['n_continue']} ({report['duration_matched']['n_stop_unmatched_dropped']} STOP "
          f"without a duration-matched partner left out); {report['segments']['duplicates_dropped']} duplicate "
          f"moments, {len(report['audio_files_without_moments'])} audio files without moments; "
          f"{report['segments']['cont_replay_seconds_removed']:.0f} s of replays cut from CONTINUE, "
          f"replay overlap left: {overlap}")


if __name__ == "__main__":
    main()
