"""The T4 production route, offline: unlabeled piano recordings (m4a, mp3, webm) served by an http.server
on 127.0.0.1, fetched through pianoeval.acquire (t4_fetch), cut into the pool (t4_pool, source: fetched),
augmented (t4_augment) and embedded (t4_embed). A withdrawn row and a 404 are counted and stay out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from media_server import encode, piano_like, serve
from pianoeval.audio_io import load_audio, resample
from pianoeval.audio_store import AudioStore
from conftest import repo_section
from pianoeval.embedding_store import EmbeddingStore
from pianoeval.io import read_json
from pianoeval.stages import t4_augment, t4_embed, t4_fetch, t4_pool
from pianoeval.t4.rooms import build_room_bank, save_room_bank

SR = 24000
RECORDINGS = {"rec0": (".m4a", 14.0), "rec1": (".mp3", 12.0), "rec2": (".webm", 16.0)}  # rec3: 404, rec4: withdrawn


def params(*, enabled=True, source="fetched"):
    return {
        "render": repo_section("render", sample_rate=SR),
        "extract": repo_section("extract", extractor="logmel", dtype="float32", loudness_lufs=-23.0,
                                logmel={"sample_rate": SR, "n_fft": 512, "n_mels": 16, "fmax": 8000.0}),
        "t4_fetch": {"enabled": enabled, "manifest": "request/manifest.csv", "out_dir": "fetched",
                     "on_failure": "skip",
                     "download": {"retries": 0, "fragment_retries": 0, "extractor_retries": 0, "sleep_interval": 0.0,
                                  "socket_timeout": 5.0}},
        "t4_pool": {"source": source, "asap_dir": "unused", "exclude": "unused", "out_dir": "pool", "clips": "clips.csv",
                    "n_clips": 3, "clips_per_performance": 1, "clip_seconds": 6.0, "seed": 0},
        "t4_augment": {"pool": "pool", "clips": "clips.csv", "rooms": "rooms.safetensors", "out_dir": "augmented",
                       "pairs": "pairs.csv", "pairs_per_clip": 0, "seed": 0, "workers": 2,
                       "augmentations": {"level": {"-6dB": {"gain_db": [-6, -6]}},
                                         "reverb": {"small": {"rt60": [0.2, 0.5]}}}},
        "t4_embed": {"clean_audio": "pool", "augmented_audio": "augmented", "clean_out": "clean.safetensors",
                     "augmented_out": "augmented.safetensors"},
    }


@pytest.fixture
def bare(tmp_path, monkeypatch):
    (tmp_path / "request").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    media = tmp_path / "media"
    media.mkdir()
    for i, (rid, (suffix, secs)) in enumerate(RECORDINGS.items()):
        sr = 48000 if suffix == ".webm" else SR  # Opus runs at 48 kHz
        encode(media / f"{rid}{suffix}", resample(piano_like(secs, SR, seed=i, level=0.1 * (i + 1)), SR, sr), sr)
    (tmp_path / "request").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_manifest(path, base):
    rows = [f"{rid},{base}/{rid}{suffix}," for rid, (suffix, _) in RECORDINGS.items()]
    rows += [f"rec3,{base}/rec3.m4a,", f"rec4,{base}/rec0.m4a,true"]
    path.write_text("id,url,withdrawn\n" + "\n".join(rows) + "\n")


def test_fetch_pool_augment_embed(workdir):
    torch.set_num_threads(1)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params()))
    with serve(workdir / "media") as base:
        write_manifest(workdir / "request/manifest.csv", base)
        assert t4_fetch.main([]) == 0  # on_failure: skip, the 404 is counted
    m = read_json("metrics/t4_fetch.json")
    assert (m["n_rows"], m["n_downloaded"], m["n_withdrawn"], m["n_failed"]) == (5, 3, 1, 1)
    assert m["failures_by_reason"] == {"not_found": 1} and m["failures"][0]["id"] == "rec3"

    t4_pool.main()
    rep = read_json("metrics/t4_pool.json")
    assert rep["source"] == "fetched" and rep["clips"] == 3 and rep["recordings_used"] == 3
    assert (rep["manifest_rows"], rep["manifest_withdrawn"], rep["not_fetched"], rep["not_fetched_ids"]) == (5, 1, 1, ["rec3"])
    store = AudioStore("pool")
    assert sorted(store.keys) == ["rec0#0", "rec1#0", "rec2#0"]
    clips = {r["clip_id"]: r for r in __import__("pandas").read_csv("clips.csv").to_dict("records")}
    for key in store.keys:
        rid = key.split("#")[0]
        clip = store.read(key)
        assert clip.size == 6 * SR
        # the clip is the recording's audio at its position, level as recorded (16-bit store)
        src = load_audio(workdir / "fetched" / clips[key]["file"], SR)
        a = int(round(clips[key]["start"] * SR))
        ref = src[a:a + clip.size]
        assert np.corrcoef(ref, clip)[0, 1] > 0.99
        assert 20 * np.log10(np.std(clip) / np.std(ref)) == pytest.approx(0.0, abs=0.1)
        assert rid in RECORDINGS

    irs, infos = build_room_bank([0.3], SR, seed=0)
    save_room_bank("rooms.safetensors", irs, infos, SR)
    t4_augment.main()
    aug = read_json("metrics/t4_augment.json")
    assert aug["pairs"] == 6 and aug["per_condition"]["level/-6dB"]["level_change_db_mean"] == pytest.approx(-6.0, abs=0.01)
    t4_embed.main()
    emb = read_json("metrics/t4_embed.json")
    assert emb["clean"]["segments"] == 3 and emb["augmented"]["segments"] == 6
    assert EmbeddingStore("augmented.safetensors").extractor_params["loudness_lufs"] == -23.0


def test_disabled_default_touches_nothing(bare):
    workdir = bare
    (workdir / "params.yaml").write_text(yaml.safe_dump(params(enabled=False)))
    (workdir / "request/manifest.csv").write_text("id,url,withdrawn\nrec0,http://127.0.0.1:9/rec0.m4a,\n")
    assert t4_fetch.main([]) == 0  # port 9 (discard) is never contacted
    m = read_json("metrics/t4_fetch.json")
    assert m["enabled"] is False and m["manifest_rows"] == 1
    assert (workdir / "fetched").is_dir() and not list((workdir / "fetched").iterdir())
    with pytest.raises(ValueError, match="enable and run t4_fetch first"):
        t4_pool.main()
