"""Clean interruption of a real running render (2 worker processes): Ctrl-C (SIGINT to the process
group) ends it within 5 s, non-zero, with no process left and no scratch left; after `kill -9` the
scratch stays, and the next run removes it at start and says how much it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import write_midi
from pianoeval.labels import build_labels

# 32 files of 6 s: the first results (chunks of 4 files per worker) arrive after ~1 s of rendering and
# the rest takes several seconds more, so the render is interrupted mid-way.
N_FILES, SECONDS = 32, 6.0


@pytest.fixture
def render_dir(tmp_path: Path) -> Path:
    """A folder to run `python -m pianoeval.stages.render` in: MIDI, labels.csv, params.yaml."""
    src = tmp_path / "pp"
    (src / "midi").mkdir(parents=True)
    means, stds = {}, {}
    for i in range(N_FILES):
        key = f"Piece{i % 4}_8bars_{i // 4 + 1}_1"
        notes = [(0.25 * j, 0.25 * j + 0.5, 48 + (j * 7) % 36, 70) for j in range(int(SECONDS * 4))]
        write_midi(src / "midi" / f"{key}.mid", notes)
        means[key], stds[key] = [0.5] * 19 + [i // 4], [0.1] * 19
    (src / "label_2round_mean_reg_19_with0_rm_highstd0.json").write_text(json.dumps(means))
    (src / "label_2round_std_reg_19_with0_rm_highstd0.json").write_text(json.dumps(stds))
    (src / "total_2rounds.csv").write_text("user,dataID,filename\n")
    table, _ = build_labels(src)
    table.to_csv(tmp_path / "labels.csv", index=False)
    table.head(2).to_csv(tmp_path / "labels_small.csv", index=False)
    params = {"render": {"labels": "labels.csv", "midi_dir": str(src / "midi"), "out_dir": "audio",
                         "soundfont": "pretty_midi", "sample_rate": 24000, "gain": 0.5, "peak_target": 0.9,
                         "tail_seconds": 1.0, "effects": False, "on_bad_midi": "fail", "workers": 2}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def start_render(cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pianoeval.stages.render"], cwd=cwd, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_until_rendering(proc: subprocess.Popen, cwd: Path, timeout: float = 120.0) -> list[psutil.Process]:
    """Until the scratch file holds rendered audio (workers busy); returns the worker processes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        if any(f.stat().st_size > 0 for f in (cwd / ".scratch" / "render").glob("*/audio.f32")):
            workers = psutil.Process(proc.pid).children(recursive=True)
            assert len(workers) >= 2
            return workers
        time.sleep(0.05)
    raise AssertionError("render did not start writing scratch audio")


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_ctrl_c_ends_render_within_5_s_with_no_worker_and_no_scratch_left(render_dir):
    proc = start_render(render_dir)
    workers = wait_until_rendering(proc, render_dir)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    out, _ = proc.communicate(timeout=30)
    elapsed = time.monotonic() - t0
    assert elapsed < 5.0, f"render took {elapsed:.1f} s to stop"
    assert proc.returncode != 0
    assert "render: interrupted" in out and "Traceback" not in out
    psutil.wait_procs(workers, timeout=2)
    assert not [w.pid for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert group_gone(proc.pid)
    assert not any((render_dir / ".scratch").rglob("*")), "scratch left behind"
    assert not (render_dir / "audio").exists()


def test_stale_scratch_of_a_killed_render_is_removed_and_reported(render_dir):
    proc = start_render(render_dir)
    wait_until_rendering(proc, render_dir)
    os.killpg(proc.pid, signal.SIGKILL)  # nothing can clean up after kill -9
    proc.communicate(timeout=30)
    stale = [f for f in (render_dir / ".scratch").rglob("*") if f.is_file()]
    size = sum(f.stat().st_size for f in stale)
    assert [f.name for f in stale] == ["audio.f32"] and size > 0

    params = yaml.safe_load((render_dir / "params.yaml").read_text())
    params["render"]["labels"] = "labels_small.csv"  # a quick rerun
    (render_dir / "params.yaml").write_text(yaml.safe_dump(params))
    res = subprocess.run([sys.executable, "-m", "pianoeval.stages.render"], cwd=render_dir, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (f"render: removed stale scratch of an earlier killed run: .scratch/render "
            f"({size / 1e6:.1f} MB in 1 file(s))") in res.stdout
    assert "render: 2 files" in res.stdout
    assert not any((render_dir / ".scratch").rglob("*"))
