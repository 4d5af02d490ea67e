import json

import pytest

from pianoeval.masterclass.moments import (
    SCHEMA_FIELDS,
    Moment,
    MomentsError,
    find_audio,
    load_moments,
    write_moments,
)


def moment(**kw) -> dict:
    d = {
        "moment_id": "m1", "video_id": "vidA", "video_title": "Masterclass A", "teacher": "T. Eacher",
        "stop_timestamp": 20.0, "feedback_start": 20.5, "feedback_end": 35.0,
        "playing_before_start": 10.0, "playing_before_end": 20.0,
        "transcript_text": "Stop. Listen to the bass.", "feedback_summary": "bass too loud",
        "musical_dimension": "balance", "secondary_dimensions": ["dynamic_range"], "severity": "moderate",
        "feedback_type": "correction", "piece": "Ballade No. 1", "composer": "Chopin",
        "passage_description": None, "student_level": "advanced", "stop_order": 1, "total_stops": 3,
        "time_spent_seconds": 14.5, "confidence": 0.9, "demonstrated": False,
        "extracted_at": "2025-01-01T00:00:00Z", "extraction_model": "model-x",
    }
    d.update(kw)
    return d


def line(**kw) -> str:
    return json.dumps(moment(**kw))


def messy_lines() -> list[str]:
    missing = moment(moment_id="m_missing")
    del missing["playing_before_start"]
    return [
        line(moment_id="m3", video_id="vidB", stop_timestamp=50.0, playing_before_end=50.0),   # 1 ok
        "",                                                                                      # 2 blank
        '{"moment_id": "broken", ',                                                              # 3 invalid JSON
        json.dumps(missing),                                                                     # 4 missing field
        line(moment_id="m_type", stop_timestamp="20.0"),                                         # 5 wrong type
        line(moment_id="m_inf").replace('"feedback_end": 35.0', '"feedback_end": 1e999'),        # 6 non-finite
        line(moment_id="m_fb", feedback_start=30.0, feedback_end=25.0),                          # 7 end < start
        line(moment_id="m_play", playing_before_start=15.0, playing_before_end=12.0),            # 8 end < start
        line(moment_id="m_after", playing_before_end=21.0),                                      # 9 window after stop
        line(moment_id="m_path", video_id="../x"),                                               # 10 bad video_id
        line(moment_id="m2", stop_timestamp=5.0, playing_before_start=1.0, playing_before_end=5.0,
             reviewer="alice", tags=["a", "b"]),                                                 # 11 ok + extras
        line(moment_id="m_nan").replace('"confidence": 0.9', '"confidence": NaN'),               # 12 NaN literal
        "[1, 2, 3]",                                                                             # 13 not an object
        line(moment_id="m1"),                                                                    # 14 ok
        "   ",                                                                                   # 15 blank
        line(moment_id="m1", stop_timestamp=99.0, playing_before_end=99.0),                      # 16 duplicate id
    ]


EXPECTED_BAD = {
    3: "invalid JSON",
    4: "missing field 'playing_before_start'",
    5: "field 'stop_timestamp'",
    6: "field 'feedback_end': Input should be a finite number",
    7: "feedback_end 25.0 < feedback_start 30.0",
    8: "playing_before_end 12.0 < playing_before_start 15.0",
    9: "playing window ends after the stop",
    10: "field 'video_id'",
    12: "NaN is not valid JSON",
    13: "expected a JSON object",
    16: "duplicate moment_id 'm1' (first on line 14)",
}


@pytest.fixture
def messy(tmp_path):
    p = tmp_path / "moments.jsonl"
    p.write_text("\n".join(messy_lines()) + "\n")
    return p


def test_skip_mode_counts_and_reasons(messy):
    moments, rep = load_moments(messy, on_error="skip")
    assert (rep.n_lines, rep.n_blank, rep.n_valid, rep.n_skipped) == (16, 2, 3, 11)
    assert rep.n_lines == rep.n_blank + rep.n_valid + rep.n_skipped
    assert [s["line"] for s in rep.skipped] == sorted(EXPECTED_BAD)
    for s in rep.skipped:
        assert EXPECTED_BAD[s["line"]] in s["reason"], s
    # sorted by (video_id, stop_timestamp, moment_id)
    assert [m.moment_id for m in moments] == ["m2", "m1", "m3"]
    assert rep.to_dict()["skipped"][0] == {"line": 3, "reason": rep.skipped[0]["reason"]}


def test_fail_mode_lists_every_bad_line(messy):
    with pytest.raises(MomentsError) as ei:
        load_moments(messy)
    err = ei.value
    assert isinstance(err, ValueError)
    msg_lines = str(err).splitlines()
    assert len(msg_lines) == len(EXPECTED_BAD)
    assert msg_lines[0].startswith(f"{messy}:3: invalid JSON")
    for (n, frag), text in zip(sorted(EXPECTED_BAD.items()), msg_lines):
        assert text.startswith(f"{messy}:{n}: ") and frag in text
    assert [n for n, _ in err.errors] == sorted(EXPECTED_BAD)


def test_fail_mode_caps_message_at_20_lines(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(["{oops"] * 25) + "\n")
    with pytest.raises(MomentsError) as ei:
        load_moments(p)
    msg = str(ei.value).splitlines()
    assert len(msg) == 21 and msg[-1] == "... and 5 more bad lines"
    assert len(ei.value.errors) == 25


@pytest.mark.parametrize(
    "field,value",
    [
        ("stop_timestamp", "3"),        # string for float
        ("demonstrated", 1),            # int for bool
        ("stop_order", 3.0),            # float for int
        ("stop_order", True),           # bool for int
        ("secondary_dimensions", "balance"),
        ("passage_description", 5),
        ("teacher", 3),
        ("confidence", "high"),         # optional fields are validated when present
        ("playing_before_start", -1.0),  # negative time
        ("video_id", ""),
        ("video_id", "a/b"),
        ("video_id", "x" * 65),
        ("video_id", "abc\n"),
    ],
)
def test_strict_types_rejected(tmp_path, field, value):
    p = tmp_path / "m.jsonl"
    p.write_text(line(**{field: value}) + "\n")
    with pytest.raises(MomentsError, match=rf"m\.jsonl:1: .*'{field}'"):
        load_moments(p)


def test_accepted_edge_values(tmp_path):
    p = tmp_path / "m.jsonl"
    # int for float is fine; playing window may end up to 1e-6 after the stop; null optionals
    p.write_text(line(stop_timestamp=20, playing_before_end=20.0000005, student_level=None) + "\n")
    (m,), rep = load_moments(p)
    assert m.stop_timestamp == 20.0 and isinstance(m.stop_timestamp, float)
    assert rep.n_valid == 1


def test_write_roundtrip_keeps_extras_in_order(messy, tmp_path):
    moments, _ = load_moments(messy, on_error="skip")
    out = tmp_path / "sub" / "out.jsonl"
    write_moments(out, moments)
    rows = [json.loads(s) for s in out.read_text().splitlines()]
    assert len(rows) == 3
    with_extra = next(r for r in rows if r["moment_id"] == "m2")
    assert list(with_extra) == [*SCHEMA_FIELDS, "reviewer", "tags"]
    assert with_extra["reviewer"] == "alice" and with_extra["tags"] == ["a", "b"]
    again, rep = load_moments(out)
    assert rep.n_skipped == 0 and again == moments
    assert again[0].model_extra == {"reviewer": "alice", "tags": ["a", "b"]}


def test_moment_constructed_in_python_roundtrips(tmp_path):
    m = Moment(**moment(moment_id="sim1", video_id="sim_vid-01", extra_note="simulated"))
    write_moments(tmp_path / "s.jsonl", [m])
    (back,), _ = load_moments(tmp_path / "s.jsonl")
    assert back == m and back.model_extra == {"extra_note": "simulated"}


def test_bad_on_error_value(messy):
    with pytest.raises(ValueError, match="on_error"):
        load_moments(messy, on_error="ignore")


def test_find_audio(tmp_path):
    for name in ("a.wav", "b.flac", "c.mp3", "d.M4A", "E.WAV", "f.webm", "g.opus", "h.ogg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert find_audio(tmp_path, ["b", "a", "a", "c", "d", "E", "f", "g", "h"]) == {
        "a": tmp_path / "a.wav", "b": tmp_path / "b.flac", "c": tmp_path / "c.mp3", "d": tmp_path / "d.M4A",
        "E": tmp_path / "E.WAV", "f": tmp_path / "f.webm", "g": tmp_path / "g.opus", "h": tmp_path / "h.ogg"}
    with pytest.raises(FileNotFoundError) as ei:
        find_audio(tmp_path, ["a", "notes", "zz", "b"])  # a .txt is not audio; ids are case-sensitive stems
    assert "2 of 4" in str(ei.value) and "notes, zz" in str(ei.value) and "m4a" in str(ei.value)
    (tmp_path / "a.m4a").write_bytes(b"")
    with pytest.raises(ValueError, match=r"more than one audio file for 1 video\(s\): a \(a.m4a, a.wav\)"):
        find_audio(tmp_path, ["a"])
    with pytest.raises(ValueError, match="unsafe video_id"):
        find_audio(tmp_path, ["../etc/passwd"])


def test_only_segmentation_fields_are_required(tmp_path):
    """ids and the five times suffice; a missing or null teacher reads as 'unknown'; extras are kept."""
    core = {"moment_id": "m1", "video_id": "v", "stop_timestamp": 20.0, "feedback_start": 20.5,
            "feedback_end": 30.0, "playing_before_start": 10.0, "playing_before_end": 20.0}
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps(core) + "\n" + json.dumps({**core, "moment_id": "m2", "teacher": None,
                                                        "stop_timestamp": 40.0, "playing_before_end": 40.0,
                                                        "note": "x"}) + "\n"
                 + json.dumps({**core, "moment_id": "m3", "teacher": "T", "musical_dimension": "pedal",
                               "stop_timestamp": 60.0, "playing_before_end": 60.0}) + "\n")
    ms, rep = load_moments(p)
    assert rep.n_valid == 3 and [m.teacher for m in ms] == ["unknown", "unknown", "T"]
    assert ms[0].musical_dimension is None and ms[2].musical_dimension == "pedal" and ms[1].model_extra == {"note": "x"}
    for field in ("moment_id", "video_id", "stop_timestamp", "feedback_start", "feedback_end",
                  "playing_before_start", "playing_before_end"):
        p.write_text(json.dumps({k: v for k, v in core.items() if k != field}) + "\n")
        with pytest.raises(MomentsError, match=f"missing field '{field}'"):
            load_moments(p)
