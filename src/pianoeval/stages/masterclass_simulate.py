"""Stage `masterclass_simulate`: simulated masterclass sessions (audio + moments + provenance) from T1."""

from __future__ import annotations

from ..audio_store import AudioStore
from ..io import load_params, write_json
from ..labels import load_labels
from ..masterclass.simulate import parse_teachers, simulate_masterclasses


def main() -> None:
    p = load_params("masterclass_simulate")
    teachers = parse_teachers(p["teachers"])
    with AudioStore(p["audio"]) as store:
        report = simulate_masterclasses(
            load_labels(p["labels"]), store, teachers, p["out_dir"], seed=p["seed"],
            sessions_per_teacher=p["sessions_per_teacher"], min_segments=p["min_segments"],
            max_segments=p["max_segments"], max_play_seconds=p["max_play_seconds"],
            pause_seconds=p["pause_seconds"], feedback_seconds=tuple(p["feedback_seconds"]),
            lead_seconds=p["lead_seconds"], stop_delay_seconds=tuple(p["stop_delay_seconds"]),
            window_jitter_seconds=p["window_jitter_seconds"],
            feedback_overlap_seconds=tuple(p["feedback_overlap_seconds"]), speech_rms_dbfs=p["speech_rms_dbfs"],
            noise_floor_dbfs=p["noise_floor_dbfs"])
    write_json("metrics/masterclass_simulate.json", report)
    g = report["session_groups"]
    print(f"masterclass_simulate: {report['n_sessions']} sessions ({report['n_pianists']} pianists, "
          f"{report['audio_seconds'] / 60:.0f} min audio), {report['n_moments']} moments from "
          f"{report['n_teachers']} teachers; {g['eligible']} candidate sessions from {g['groups']} (work, player) "
          f"groups ({g['excluded_overlapping_cut']} groups of a longer cut of the same playing, "
          f"{g['excluded_unlabeled']} unlabeled, {g['excluded_missing_audio']} missing audio excluded; "
          f"{g['chunks_too_few_segments']} chunks shorter than min_segments)")


if __name__ == "__main__":
    main()
