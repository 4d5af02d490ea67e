"""End to end: copy the repo, `dvc repro` on a small subset selected through params, push to a local
remote, clone, `dvc pull`, and check the pulled artifacts are identical and `dvc status` is clean."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
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
    # Each player has 4 segments of the Beethoven work in this subset.
    ("masterclass_simulate", "min_segments"): 4,
    # Basic Pitch on 2 windows per segment (the first and the last): the extract@logmel_bp and
    # compare_extractors stages run, in seconds.
    ("extract", "basic_pitch", "window_stride"): 8,
    ("compare_extractors", "n_boot"): 100,
}


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
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


def test_repro_push_clone_pull(tmp_path):
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

    run(["git", "init", "-q"], work)
    run(["dvc", "repro"], work)
    report = yaml.safe_load((work / "metrics/data_report.json").read_text())
    assert report["selected_midi"] == 56 and report["labeled"] == 56 and report["excluded"]["outside_selected_pieces"] == 1146
    assert run(["dvc", "status"], work).strip().endswith("up to date.")
    before = tracked_outputs(work)
    assert any(k.endswith("audio.flac") for k in before) and any(k.endswith(".safetensors") for k in before)

    run(["dvc", "remote", "add", "--local", "local", str(remote)], work)
    run(["dvc", "push", "-r", "local"], work)
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "subset run"], work)

    run(["git", "clone", "-q", str(work), str(clone)], tmp_path)
    run(["dvc", "remote", "add", "--local", "local", str(remote)], clone)
    run(["dvc", "pull", "-r", "local"], clone)
    assert tracked_outputs(clone) == before
    assert run(["dvc", "status"], clone).strip().endswith("up to date.")
    # Rerunning a stage on the same inputs reproduces the same bytes.
    run(["dvc", "repro", "--force", "--single-item", "render"], clone)
    assert run(["git", "status", "--porcelain"], clone).strip() == ""
