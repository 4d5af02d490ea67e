"""Every input checked: rating stds range-checked, videos without (decodable) audio and FLAC files cut
short fail naming file and window or are skipped and counted, a damaged audio store names file and key,
and segments the render stage skipped are dropped and counted by the audit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import yaml

from conftest import make_dataset
from pianoeval.audio_store import AudioStore, AudioStoreWriter
from pianoeval.io import read_json
from pianoeval.labels import STD_JSON, LabelError, build_labels, make_splits
from pianoeval.masterclass.features import UndecodableAudio, make_segment_table, read_window
from pianoeval.masterclass.moments import Moment, write_moments

SR = 16000
STOPS = [(2.0, 6.0), (14.0, 18.0), (26.0, 30.0)]  # playing windows of each video; 36 s of audio


def moment(vid: str, k: int, start: float, end: float) -> Moment:
    return Moment(moment_id=f"{vid}-{k}", video_id=vid, video_title=vid, teacher="T", stop_timestamp=end,
                  feedback_start=end + 0.5, feedback_end=end + 2.5, playing_before_start=start, playing_before_end=end,
                  transcript_text="", feedback_summary="", musical_dimension="timing", secondary_dimensions=[],
                  severity="minor", feedback_type="correction", piece="p", composer="c", passage_description=None,
                  student_level=None, stop_order=k + 1, total_stops=len(STOPS), time_spent_seconds=2.0,
                  confidence=1.0, demonstrated=False, extracted_at="2025-01-01", extraction_model="test")


def recordings(folder, videos=("v0", "v1", "v2"), with_audio=("v0", "v1", "v2")):
    """Mono 16 kHz FLAC sessions (noise, so FLAC cannot compress a cut file into nothing)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for vid in with_audio:
        sf.write(folder / f"{vid}.flac", (0.1 * rng.standard_normal(36 * SR)).astype(np.float32), SR,
                 subtype="PCM_16")
    write_moments(folder / "all_moments.jsonl", [moment(v, k, a, b) for v in videos for k, (a, b) in enumerate(STOPS)])
    return folder


def cut_short(path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])  # header intact: sf.info still reports the full length


# --------------------------------------------------------------------------- labels
@pytest.mark.parametrize("bad", [-0.4, 7.0])
def test_rating_std_out_of_range_fails_naming_file_key_and_dimension(tmp_path, bad):
    root = make_dataset(tmp_path / "pp")
    stds = json.loads((root / STD_JSON).read_text())
    key = sorted(stds)[3]
    stds[key][4] = bad
    (root / STD_JSON).write_text(json.dumps(stds))
    with pytest.raises(LabelError, match=rf"{STD_JSON}: key '{key}': rating std outside \[0, 0.5\] for "
                                         rf"pedal_clarity={bad}"):
        build_labels(root)


# --------------------------------------------------------------------------- masterclass audio
def test_video_without_audio_fails_or_is_skipped_and_counted(tmp_path):
    folder = recordings(tmp_path / "raw", with_audio=("v0", "v1"))
    with pytest.raises(UndecodableAudio, match=r"no audio file v2\.<suffix> .* for the moments of video 'v2'"):
        make_segment_table(folder, on_error="fail")
    table, report = make_segment_table(folder, on_error="skip")
    assert set(table["video_id"]) == {"v0", "v1"}
    checks = report["audio_checks"]
    assert checks["videos_without_audio"] == ["v2"] and checks["moments_dropped_no_audio"] == 3
    assert report["counts"]["all"]["n_stop"] == 6 and report["audio_files"] == 2


def test_undecodable_audio_file_fails_or_is_skipped_and_counted(tmp_path):
    folder = recordings(tmp_path / "raw")
    (folder / "v1.flac").write_bytes(b"fLaC" + bytes(500))  # a FLAC signature, then nothing usable
    with pytest.raises(UndecodableAudio, match=r"v1\.flac: cannot read the audio header"):
        make_segment_table(folder, on_error="fail")
    table, report = make_segment_table(folder, on_error="skip")
    assert set(table["video_id"]) == {"v0", "v2"}
    assert [u["video"] for u in report["audio_checks"]["videos_undecodable"]] == ["v1"]
    assert report["audio_checks"]["moments_dropped_no_audio"] == 3


def test_flac_cut_short_fails_naming_file_and_window_or_skip_uses_the_decodable_part(tmp_path):
    """The issue's case: a FLAC cut short with its header intact passed segmentation and failed later
    with `flac decoder lost sync`, naming neither file nor window."""
    folder = recordings(tmp_path / "raw")
    cut_short(folder / "v1.flac", keep=0.5)  # decodes to about 18 s of the 36 s its header promises
    assert sf.info(str(folder / "v1.flac")).duration == 36.0
    with pytest.raises(UndecodableAudio) as err:
        make_segment_table(folder, on_error="fail")
    assert "v1.flac: window [26.000, 30.000] s (STOP); decoding stops at" in str(err.value)
    table, report = make_segment_table(folder, on_error="skip")
    (cut,) = report["audio_checks"]["videos_truncated"]
    assert cut["video"] == "v1" and cut["header_seconds"] == 36.0 and 14.0 < cut["decodable_seconds"] < 22.0
    assert report["audio_checks"]["windows_past_decodable_end"] >= 1
    seg = report["segments"]
    assert seg["stop_dropped_after_audio_end"] + seg["stop_clamped"] >= 1  # counted by the audio-end rules
    v1 = table[table.video_id == "v1"]
    assert (v1["end"] <= cut["decodable_seconds"] + 1e-9).all() and len(v1) > 0
    for row in table.drop_duplicates("segment_id").itertuples():  # every kept window decodes
        audio, sr = read_window(folder / f"{row.video_id}.flac", row.start, row.end)
        assert sr == SR and audio.size == int(round(row.end * SR)) - int(round(row.start * SR))


def test_damaged_window_names_file_and_window(tmp_path):
    folder = recordings(tmp_path / "raw", videos=("v0",), with_audio=("v0",))
    path = folder / "v0.flac"
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4000] = np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    read_window(path, 2.0, 6.0)  # far from the damage: fine
    with pytest.raises(UndecodableAudio, match=r"v0\.flac: cannot decode window \[14\.000, 22\.000\] s \("):
        read_window(path, 14.0, 22.0)


def test_segments_stage_prints_every_exclusion(tmp_path, monkeypatch, capsys):
    from pianoeval.stages import masterclass_segments

    folder = recordings(tmp_path / "raw", with_audio=("v0", "v1"))
    params = {"masterclass_segments": {"input_dir": "raw", "out": "segments.csv", "on_error": "skip",
                                       "min_continue_duration": 5.0, "min_stop_duration": 1.0, "seed": 0}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    cut_short(folder / "v1.flac", keep=0.5)
    monkeypatch.chdir(tmp_path)
    masterclass_segments.main()
    line = capsys.readouterr().out
    rep = read_json("metrics/masterclass_segments.json")
    checks, seg = rep["audio_checks"], rep["segments"]
    assert (f"{checks['moments_dropped_no_audio']} moments skipped for 1 videos without audio and 0 undecodable, "
            "1 files cut short") in line and checks["moments_dropped_no_audio"] == 3
    assert f"past the audio end: {seg['stop_dropped_after_audio_end']} STOP dropped, {seg['stop_clamped']} clamped" \
        in line


# --------------------------------------------------------------------------- T1 audio store
def test_audio_store_cut_short_names_file_and_segment(tmp_path):
    rng = np.random.default_rng(0)
    w = AudioStoreWriter(tmp_path / "store", SR)
    for k in ("a", "b", "c"):
        w.append(k, (0.2 * rng.standard_normal(20 * SR)).astype(np.float32))
    w.close()
    cut_short(tmp_path / "store" / "audio.flac", keep=0.5)
    with AudioStore(tmp_path / "store") as st:
        assert st.read("a").size == 20 * SR
        with pytest.raises(ValueError, match=r"audio\.flac: segment 'c' \(samples 640000\.\.960000\): "):
            st.read("c")
        assert st.read("a").size == 20 * SR  # the store stays usable after the error


# --------------------------------------------------------------------------- render.on_bad_midi: skip downstream
def test_audit_drops_and_counts_segments_without_embedding(tmp_path):
    from pianoeval.audit.pipeline import load_t1
    from pianoeval.embedding_store import write_embedding_store

    table, _ = build_labels(make_dataset(tmp_path / "pp"))
    splits = make_splits(table, n_folds=4, seed=0)
    (tmp_path / "splits.json").write_text(json.dumps(splits))
    table.to_csv(tmp_path / "labels.csv", index=False)
    skipped = splits["keys"][5]  # as if its MIDI had been unreadable under render.on_bad_midi: skip
    rng = np.random.default_rng(0)
    write_embedding_store(tmp_path / "emb.safetensors",
                          ((k, rng.standard_normal((3, 4))) for k in table["key"] if k != skipped),
                          extractor="test", extractor_params={}, frame_rate=25.0)
    d = load_t1(str(tmp_path / "labels.csv"), str(tmp_path / "splits.json"), str(tmp_path / "emb.safetensors"))
    assert skipped not in d["keys"] and len(d["keys"]) == len(splits["keys"]) - 1
    assert d["counts"]["n_excluded_no_embedding"] == 1 and d["counts"]["n_used"] == len(d["keys"])
    assert all(len(f) == len(d["keys"]) for f in d["folds"].values()) and d["X"].shape[0] == d["Y"].shape[0]
    i = splits["keys"].index(skipped)  # folds stay aligned with their keys
    kept = [f for j, f in enumerate(splits["folds"]["pianist"]) if j != i]
    assert d["folds"]["pianist"].tolist() == kept
