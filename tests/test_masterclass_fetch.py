"""masterclass_fetch end to end, offline: session audio in m4a/webm/mp3/ogg/opus served by an http.server on
127.0.0.1, fetched through pianoeval.acquire (yt-dlp's generic extractor), then the masterclass stages
(segments -> embed -> scores -> classify) on the fetched folder. A withdrawn video and a 404 disappear
from everything downstream, and are counted."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import repo_section

from media_server import encode, serve
from pianoeval.acquire import read_archive
from pianoeval.audio_io import resample
from pianoeval.embedding_store import EmbeddingStore
from pianoeval.extractors import load_model
from pianoeval.io import read_json
from pianoeval.loudness import embedding_params
from pianoeval.masterclass.moments import write_moments
from pianoeval.stages import (
    masterclass_classify,
    masterclass_embed,
    masterclass_fetch,
    masterclass_scores,
    masterclass_segments,
)
from test_masterclass_pipeline import LOGMEL, STOPS, moment, tiny_checkpoints

SR = 24000
FORMATS = {"v0": ".m4a", "v1": ".webm", "v2": ".mp3", "v3": ".ogg", "v4": ".opus"}  # v5: a 404


def session(v: int) -> np.ndarray:
    """36 s: a low tone, a high tone inside the STOP windows, at a level that differs per video."""
    t = np.arange(int(36.0 * SR)) / SR
    x = 0.2 * np.sin(2 * np.pi * (200 + 10 * v) * t)
    for a, b in STOPS:
        sel = (t >= a) & (t < b)
        x[sel] = 0.3 * np.sin(2 * np.pi * 1500 * t[sel])
    return (x * 10 ** (-3 * v / 20)).astype(np.float32)


def params(tmp_path, *, enabled=True, on_failure="skip"):
    return {
        # a complete section (params are validated); audio/out belong to the T1 extract stage, unused here
        "extract": repo_section("extract", extractor="logmel", extractors=["logmel"], dtype="float32",
                                logmel=LOGMEL, loudness_lufs=-23.0),
        "masterclass_fetch": {
            "enabled": enabled, "moments": "request/all_moments.jsonl", "manifest": "request/manifest.csv",
            "out_dir": "fetched", "on_failure": on_failure,
            "download": {"retries": 0, "fragment_retries": 0, "extractor_retries": 0, "sleep_interval": 0.0,
                         "socket_timeout": 5.0},
        },
        "masterclass_segments": {"input_dir": "fetched", "out": "proc/segments.csv", "on_error": "fail",
                                 "min_continue_duration": 5.0, "min_stop_duration": 1.0, "seed": 0},
        "masterclass_embed": {"segments": "proc/segments.csv", "out": "proc/emb.safetensors"},
        # real recordings: no provenance, so the oracle file has a header and no rows (labels unused)
        "masterclass_scores": {"segments": "proc/segments.csv", "embeddings": "proc/emb.safetensors",
                               "checkpoints": "ckpt", "out": "proc/scores.csv", "labels": "labels.csv",
                               "oracle_out": "proc/oracle.csv"},
        "masterclass_classify": {"segments": "proc/segments.csv", "embeddings": "proc/emb.safetensors",
                                 "scores": "proc/scores.csv", "oracle": "proc/oracle.csv", "predictions": "proc/pred.csv",
                                 "C": 1.0, "n_components": 8, "spline_knots": 4, "cv_folds": 0,
                                 "min_calibration_class": 7, "n_perm": 19, "level": 0.95,
                                 "negative_control_teacher": None, "n_jobs": 1, "seed": 0},
    }


def write_manifest(path, base, withdrawn=()):
    rows = [f"v{i},{base}/v{i}{FORMATS.get(f'v{i}', '.m4a')},{'true' if f'v{i}' in withdrawn else ''}"
            for i in range(6)]
    path.write_text("id,url,withdrawn\n" + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    for v, suffix in FORMATS.items():
        sr = 48000 if suffix in (".webm", ".opus") else SR  # Opus runs at 48 kHz
        encode(folder / f"{v}{suffix}", resample(session(int(v[1])), SR, sr), sr)
    return folder


@pytest.fixture
def workdir(tmp_path, monkeypatch, media):
    shutil.copytree(media, tmp_path / "media")
    req = tmp_path / "request"
    req.mkdir()
    write_moments(req / "all_moments.jsonl",
                  [moment(f"v{v}", k, a, b) for v in range(6) for k, (a, b) in enumerate(STOPS)])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_fetch_then_masterclass_pipeline(workdir):
    torch.set_num_threads(1)
    req = workdir / "request"
    with serve(workdir / "media") as base:
        write_manifest(req / "manifest.csv", base)
        (workdir / "params.yaml").write_text(yaml.safe_dump(params(workdir, on_failure="fail")))
        assert masterclass_fetch.main([]) == 1  # the 404 fails the stage, after every other item was fetched
        m = read_json("metrics/masterclass_fetch.json")
        assert (m["n_downloaded"], m["n_failed"], m["failures_by_reason"]) == (5, 1, {"not_found": 1})
        assert m["failures"][0]["id"] == "v5" and m["moment_lines_dropped_failed"] == 3
        assert sorted(read_archive("fetched")) == ["v0", "v1", "v2", "v3", "v4"]

        # v4 withdrawn, failures tolerated: the rerun fetches nothing new and removes v4
        write_manifest(req / "manifest.csv", base, withdrawn={"v4"})
        (workdir / "params.yaml").write_text(yaml.safe_dump(params(workdir, on_failure="skip")))
        assert masterclass_fetch.main([]) == 0
    m = read_json("metrics/masterclass_fetch.json")
    assert (m["n_already"], m["n_downloaded"], m["n_withdrawn"], m["n_failed"]) == (4, 0, 1, 1)
    assert m["withdrawn_removed"] == ["v4"] and not list((workdir / "fetched").glob("v4*"))
    assert (m["moment_lines"], m["moment_lines_kept"], m["moment_lines_dropped_withdrawn"],
            m["moment_lines_dropped_failed"]) == (18, 12, 3, 3)
    kept = [json.loads(x)["video_id"] for x in (workdir / "fetched" / "all_moments.jsonl").read_text().splitlines()]
    assert sorted(set(kept)) == ["v0", "v1", "v2", "v3"]
    for v, suffix in list(FORMATS.items())[:4]:
        assert (workdir / "fetched" / f"{v}{suffix}").read_bytes() == (workdir / "media" / f"{v}{suffix}").read_bytes()

    ex_params = embedding_params(load_model("logmel", **LOGMEL).identity(), -23.0)
    tiny_checkpoints(workdir / "ckpt", {"fold0": [1, 2], "fold1": [3]}, 2 * LOGMEL["n_mels"], ex_params)
    masterclass_segments.main()
    seg = pd.read_csv("proc/segments.csv")
    assert sorted(seg.video_id.unique()) == ["v0", "v1", "v2", "v3"]  # withdrawn and failed videos are gone
    rep = read_json("metrics/masterclass_segments.json")
    assert rep["counts"]["all"] == {"n_stop": 12, "n_continue": 8, "n_videos": 4, "n_students": 4}
    assert rep["audio_files_without_moments"] == []
    masterclass_embed.main()
    emb = read_json("metrics/masterclass_embed.json")
    assert emb["loudness"]["target_lufs"] == -23.0 and emb["loudness"]["n_scaled"] == emb["segments"]
    assert emb["loudness"]["n_silent_unscaled"] == 0
    assert EmbeddingStore("proc/emb.safetensors").extractor_params == ex_params
    masterclass_scores.main()
    masterclass_classify.main()
    mc = read_json("metrics/masterclass.json")
    assert mc["n_videos"] == 4 and mc["n_stop"] == 12
    assert mc["model_a.auc"] == 1.0  # the STOP windows hold another tone, in every codec


def test_disabled_default_touches_nothing(workdir):
    (workdir / "request" / "manifest.csv").write_text("id,url,withdrawn\nv0,http://127.0.0.1:9/v0.m4a,\n")
    (workdir / "params.yaml").write_text(yaml.safe_dump(params(workdir, enabled=False)))
    assert masterclass_fetch.main([]) == 0  # port 9 (discard) is never contacted: nothing is fetched
    m = read_json("metrics/masterclass_fetch.json")
    assert m["enabled"] is False and m["videos_in_moments"] == 6 and m["manifest_rows"] == 1
    assert (workdir / "fetched").is_dir() and not list((workdir / "fetched").iterdir())


def test_write_manifest_and_unlisted_videos(workdir):
    (workdir / "params.yaml").write_text(yaml.safe_dump(params(workdir)))
    (workdir / "request" / "manifest.csv").write_text("id,url,withdrawn\nv0,https://example.org/v0.m4a,\n")
    with pytest.raises(ValueError, match=r"5 video\(s\) of request/all_moments.jsonl have no manifest row: v1, v2"):
        masterclass_fetch.run(params(workdir)["masterclass_fetch"])
    assert masterclass_fetch.main(["--write-manifest"]) == 0
    rows = (workdir / "request" / "manifest.csv").read_text().splitlines()
    assert rows[1] == "v0,https://example.org/v0.m4a," and rows[2:] == [f"v{i},," for i in range(1, 6)]
    from pianoeval.acquire import read_manifest

    got = read_manifest(workdir / "request" / "manifest.csv", masterclass_fetch.MasterclassRow)
    assert got[1].url == "https://www.youtube.com/watch?v=v1"  # empty url: the video id on YouTube
