"""The real-recordings route of T2: the example manifest parses, recordings are found by id and cut into
fixed windows in one store, and the documented errors name the id."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import REPO
from pianoeval.audio_store import AudioStore
from pianoeval.tiers.manifest import read_user_manifest
from pianoeval.tiers.pairs import ordinal_pairs
from pianoeval.tiers.recordings import cut_recordings, find_recording, recording_windows

T2P = {"competition": "XVIII International Chopin Piano Competition",
       "placement_codes": {"final": 7, "stage3": 20, "stage2": 40, "stage1": 80, "preliminary": 160}}


def test_example_manifest_layout_parses():
    t = read_user_manifest(REPO / "docs/examples/chopin2021_manifest.csv", T2P)
    assert t["placement"].tolist() == [1, 7, 20, 40, 80, 160]
    assert t["withdrawn"].tolist() == [False] * 5 + [True]


def test_recordings_are_cut_into_windows(tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    rng = np.random.default_rng(0)
    sf.write(rec / "a.WAV", 0.1 * rng.standard_normal(48000 * 25).astype(np.float32), 48000)  # 25 s, 48 kHz
    sf.write(rec / "b.flac", 0.2 * rng.standard_normal((22050 * 12, 2)).astype(np.float32), 22050)  # 12 s stereo
    sf.write(rec / "c.wav", np.zeros(16000 * 3, np.float32), 16000)  # 3 s: too short for a 5 s window x 2
    (rec / "a.info.json").write_text("{}")
    manifest = pd.DataFrame({"id": ["a", "b", "c"], "title": ["Ballade", "Ballade", "Etude"], "folder": "",
                             "performer_year": ["A_2021", "B_2021", "C_2021"], "placement": [7, 80, 40]})
    w, rep = recording_windows(manifest, rec, target_seconds=5.0, count=2)
    assert rep["excluded_too_short"] == 1 and rep["excluded_ids"]["too_short"] == ["c"]
    assert w.groupby("performance_id")["start"].apply(list).to_dict() == {"a": [5.0, 15.0], "b": [0.0, 5.0]}
    pairs = ordinal_pairs(w)
    # one shared grid position of the Ballade (window 1), a (final) better than b (stage 1)
    assert pairs[["better", "worse"]].values.tolist() == [["a@1-2", "b@1-2"]]
    out = cut_recordings(w, rec, tmp_path / "store", 24000)
    assert out["rendered"] == 4
    with AudioStore(tmp_path / "store") as st:
        assert st.keys == w["segment_id"].tolist()
        assert all(st.duration(k) == pytest.approx(5.0) for k in st.keys)
        assert 0.05 < float(np.std(st.read("a@1-2"))) < 0.15  # level kept as recorded (0.1 RMS)


def test_missing_or_ambiguous_recordings_name_the_id(tmp_path):
    (tmp_path / "x.info.json").write_text("{}")  # what acquire keeps beside a download: not audio
    with pytest.raises(FileNotFoundError, match=r"no audio for manifest id 'x'.*found \['x.info.json'\]"):
        find_recording(tmp_path, "x")
    sf.write(tmp_path / "y.wav", np.zeros(100, np.float32), 8000)
    sf.write(tmp_path / "y.flac", np.zeros(100, np.float32), 8000)
    with pytest.raises(ValueError, match="several audio files for manifest id 'y'"):
        find_recording(tmp_path, "y")


def test_fetch_stage_downloads_a_manifest_over_loopback(tmp_path):
    """t2_fetch through the acquisition module (yt-dlp's generic extractor on 127.0.0.1), then the
    recordings route finds and cuts what it fetched; a withdrawn row is not fetched."""
    pytest.importorskip("yt_dlp")
    from media_server import encode, piano_like, serve
    from pianoeval.stages.t2_fetch import run

    media = tmp_path / "media"
    media.mkdir()
    encode(media / "p1.m4a", piano_like(12.0, 24000, seed=1), 24000)
    encode(media / "p2.flac", piano_like(11.0, 24000, seed=2), 24000)
    with serve(media) as base:
        man = tmp_path / "manifest.csv"
        man.write_text("id,url,performer,year,round,prize,title,withdrawn\n"
                       f"kim,{base}/p1.m4a,Kim,2021,final,1,Ballade,\n"
                       f"lee,{base}/p2.flac,Lee,2021,stage1,,Ballade,\n"
                       f"park,{base}/p2.flac,Park,2021,stage2,,Etude,1\n")
        params = {"enabled": True, "out_dir": str(tmp_path / "fetched"), "on_failure": "fail",
                  "download": {"sleep_interval": 0.0, "max_sleep_interval": None, "sleep_interval_requests": 0.0}}
        metrics, line, code = run(params, man)
    assert code == 0 and metrics["n_downloaded"] == 2 and metrics["n_withdrawn"] == 1, line
    t = read_user_manifest(man, T2P)
    t = t[~t.pop("withdrawn")]
    w, rep = recording_windows(t, tmp_path / "fetched", target_seconds=5.0, count=2)
    assert rep["windows"] == 4 and set(w["performance_id"]) == {"kim", "lee"}
    out = cut_recordings(w, tmp_path / "fetched", tmp_path / "store", 24000)
    assert out["rendered"] == 4
