"""End to end: copy the repo, `dvc repro` on a small subset selected through params (with one unreadable
labeled MIDI under `render.on_bad_midi: skip`), push to a local remote and to an S3-protocol remote (moto's
S3 server on 127.0.0.1, through dvc-s3), clone, `dvc pull` from each, and check the pulled artifacts are
identical and `dvc status` is clean."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow

# Four Beethoven variations: 56 segments of ~10 s, every split still has 4 folds.
SUBSET = ["Beethoven_WoO80_thema", "Beethoven_WoO80_var3", "Beethoven_WoO80_var4", "Beethoven_WoO80_var5"]
OVERRIDES = {
    ("labels", "pieces"): SUBSET,
    ("train_quality", "mlp", "max_epochs"): 30,
    # Each player has 4 segments of the Beethoven work in this subset: 12 sessions of 4 segments, teachers
    # that stop about every other performance so that a few CONTINUE windows lie between stops.
    ("masterclass_simulate", "min_segments"): 4,
    ("masterclass_simulate", "sessions_per_teacher"): 2,
    **{("masterclass_simulate", "teachers", t, "threshold"): 0.3
       for t in ("tone", "rhythm", "dynamics", "interpretation", "pedal")},
    # permutation counts: the plumbing is under test here, not the statistics
    ("train_quality", "n_perm"): 999,
    ("masterclass_classify", "n_perm"): 99,
    ("audit", "downstream", "n_perm"): 99,
    # The documented skip mode must carry a whole `dvc repro` (BAD_MIDI is made unreadable below).
    ("render", "on_bad_midi"): "skip",
    # T2/T3 on a few ASAP performances with short windows
    ("tiers_select", "t2", "max_performer_years"): 8,
    ("tiers_select", "t3", "n_folders"): 2,
    ("t2_segments", "target_seconds"): 8.0,
    ("t3_segments", "target_seconds"): 8.0,
    ("t3_segments", "windows_per_performance"): 2,
    ("t3_eval", "n_boot"): 100,
    ("t3_eval", "n_perm"): 20,
    ("audit", "competition", "n_boot"): 200,
    ("audit", "competition", "n_perm"): 200,
    # T4: two 8 s clips, four conditions (two of them need the IR bank), one PercePiano passage.
    ("t4_rooms", "rt60_targets"): [0.3],
    ("t4_pool", "n_clips"): 2,
    ("t4_pool", "clip_seconds"): 8.0,
    ("t4_augment", "augmentations"): {"level": {"-6dB": {"gain_db": [-6, -6]}},
                                      "noise": {"snr20": {"snr_db": [18, 22]}},
                                      "reverb": {"small": {"rt60": [0.2, 0.5]}},
                                      "phone": {"medium": {"rt60": [0.2, 0.4], "snr_db": [25, 30],
                                                           "highpass_hz": [90, 120], "lowpass_hz": [7500, 8500],
                                                           "comp_ratio": [3, 5], "comp_threshold_db": [3, 6],
                                                           "vbr_quality": [4, 6]}}},
    ("robustness", "percepiano", "n_passages"): 1,
    ("robustness", "percepiano", "min_performances"): 4,
    ("robustness", "percepiano", "max_minutes"): 5.0,
    ("robustness", "n_boot"): 100,
    # Basic Pitch on 2 windows per segment (the first and the last): the extract@logmel_bp and
    # compare_extractors stages run, in seconds.
    ("extract", "basic_pitch", "window_stride"): 8,
    ("compare_extractors", "n_boot"): 100,
    # multi-task ablation: a few epochs of a tiny trunk, small bootstraps
    ("train_multitask", "model", "max_epochs"): 5,
    ("train_multitask", "model", "hidden"): 32,
    ("train_multitask", "n_boot"): 100,
    ("train_multitask", "n_perm"): 100,
}
# A labeled score rendition: every stage downstream of render must drop and count it (students'
# files are all needed: the subset has exactly the 12 pianists the 12 simulated sessions use).
BAD_MIDI = "Beethoven_WoO80_var3_8bars_Score_2.mid"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           **S3_ENV}
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}) in {cwd}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res.stdout


def tracked_outputs(repo: Path) -> dict[str, str]:
    """sha256 of every file under the DVC-tracked output folders (cached outputs only)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    out = {}
    for stage in lock["stages"].values():
        for o in stage.get("outs", []):
            p = repo / o["path"]
            files = sorted(p.rglob("*")) if p.is_dir() else [p]
            for f in files:
                if f.is_file():
                    out[str(f.relative_to(repo))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def set_param(params: dict, path: tuple, value) -> None:
    node = params
    for k in path[:-1]:
        node = node[k]
    if path[-1] not in node:
        raise KeyError(f"params.yaml has no {'.'.join(path)}")
    node[path[-1]] = value


@pytest.fixture
def s3_server(tmp_path):
    """moto's S3-compatible server as a separate process on a free 127.0.0.1 port; yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp_path / "moto.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **S3_ENV})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"moto server did not start: {(tmp_path / 'moto.log').read_text()}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"], region_name=S3_ENV["AWS_DEFAULT_REGION"])


def s3_objects(endpoint: str, bucket: str) -> list[str]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_repro_push_clone_pull(tmp_path, s3_server):
    work, clone, remote = tmp_path / "work", tmp_path / "clone", tmp_path / "remote"
    files = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO).split("\n")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file() and not rel.startswith(("data/interim", "data/processed", "checkpoints/")):
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / rel)
    params = yaml.safe_load((work / "params.yaml").read_text())
    for path, value in OVERRIDES.items():
        set_param(params, path, value)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (work / "dvc.lock").unlink(missing_ok=True)
    (work / "data/external/percepiano/midi" / BAD_MIDI).write_bytes(b"MThd\x00\x00\x00\x06 truncated")

    run(["git", "init", "-q"], work)
    log = run(["dvc", "repro"], work)
    report = yaml.safe_load((work / "metrics/data_report.json").read_text())
    assert report["selected_midi"] == 56 and report["labeled"] == 56 and report["excluded"]["outside_selected_pieces"] == 1146
    # The unreadable labeled MIDI is skipped by render and dropped and counted by every later stage.
    bad_key = BAD_MIDI.removesuffix(".mid")
    render = json.loads((work / "metrics/render.json").read_text())
    assert render["rendered"] == 55 and render["excluded_keys"] == [bad_key]
    quality = json.loads((work / "metrics/quality.json").read_text())
    assert quality["n"] == 55 and quality["excluded_no_embedding"] == 1
    audit = json.loads((work / "metrics/audit.json").read_text())
    assert audit["data.n_segments"] == 55 and audit["data.n_excluded_no_embedding"] == 1
    assert "render: 55 files" in log and "1 excluded" in log
    assert "train_quality: 55 labeled segments, 1 excluded" in log and "audit: 55 segments (1 excluded" in log
    multitask = json.loads((work / "metrics/multitask.json").read_text())
    assert multitask["n"]["t1_segments"] == 55 and multitask["n"]["t1_excluded_no_embedding"] == 1
    assert set(multitask["t4"]["variants"]) == {"t1_only", "plus_t2", "plus_t3", "plus_t4", "all", "t1_only_reseeded"}
    assert "train_multitask: 55 T1 segments (1 excluded: no embedding)" in log
    assert run(["dvc", "status"], work).strip().endswith("up to date.")
    robust = yaml.safe_load((work / "metrics/robustness.json").read_text())
    assert robust["n"]["t4_pairs"] == 8 and robust["n"]["conditions"] == 4
    assert set(robust["conditions"]) == {"level/-6dB", "noise/snr20", "reverb/small", "phone/medium"}
    assert all(c["t4"]["n"] == 2 and c["percepiano"]["n"] >= 4 for c in robust["conditions"].values())
    before = tracked_outputs(work)
    assert any(k.endswith("audio.flac") for k in before) and any(k.endswith(".safetensors") for k in before)

    run(["dvc", "remote", "add", "--local", "local", str(remote)], work)
    run(["dvc", "push", "-r", "local"], work)
    # The S3 protocol over HTTP, as a team's CI would use it (dvc-s3 -> moto's S3 server).
    s3_client(s3_server).create_bucket(Bucket="pianoeval-ci")
    for cfg in (["add", "--local", "s3", "s3://pianoeval-ci/dvc-cache"],
                ["modify", "--local", "s3", "endpointurl", s3_server]):
        run(["dvc", "remote", *cfg], work)
    run(["dvc", "push", "-r", "s3"], work)
    pushed = sorted(str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file())
    assert [k.removeprefix("dvc-cache/") for k in s3_objects(s3_server, "pianoeval-ci")] == pushed
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "subset run"], work)

    run(["git", "clone", "-q", str(work), str(clone)], tmp_path)
    run(["dvc", "remote", "add", "--local", "local", str(remote)], clone)
    run(["dvc", "pull", "-r", "local"], clone)
    assert tracked_outputs(clone) == before
    assert run(["dvc", "status"], clone).strip().endswith("up to date.")
    clone_s3 = tmp_path / "clone_s3"
    run(["git", "clone", "-q", str(work), str(clone_s3)], tmp_path)
    for cfg in (["add", "--local", "s3", "s3://pianoeval-ci/dvc-cache"],
                ["modify", "--local", "s3", "endpointurl", s3_server]):
        run(["dvc", "remote", *cfg], clone_s3)
    run(["dvc", "pull", "-r", "s3"], clone_s3)
    assert tracked_outputs(clone_s3) == before
    # Rerunning a stage on the same inputs reproduces the same bytes.
    run(["dvc", "repro", "--force", "--single-item", "render"], clone)
    assert run(["git", "status", "--porcelain"], clone).strip() == ""
