"""Pipeline benchmark: fresh clone -> full `dvc repro`, stage by stage, on this machine.

Measures wall time per stage, peak memory of the whole process tree (sampled every 0.2 s), no-op
`dvc repro` time, the number of DVC-tracked files and the disk used (workspace outputs + DVC cache).
Writes benchmarks/pipeline.json and prints a Markdown table for the README.

    python scripts/benchmark.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]


BIN = Path(sys.executable).parent  # the interpreter whose venv runs the stages (the clone's own with --install)


def env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


class PeakMemory:
    """Peak summed RSS of a process and all its descendants."""

    def __init__(self, proc: subprocess.Popen):
        self.root, self.peak, self._stop = psutil.Process(proc.pid), 0, threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()

    def _poll(self):
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak


def timed(cmd: list[str], cwd: Path) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    mem = PeakMemory(proc)
    out, _ = proc.communicate()
    peak = mem.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out[-4000:]}")
    return time.perf_counter() - t0, peak, out


def stage_order(repo: Path) -> list[str]:
    # Topological order: `dvc repro --dry` lists stages in the order it would run them.
    dry = subprocess.run(["dvc", "repro", "--dry", "--force"], cwd=repo, env=env(), capture_output=True, text=True,
                         check=True).stdout
    return [line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage")]


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) if path.exists() else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=Path, help="clone into this folder and keep it")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "pipeline.json")
    ap.add_argument("--install", action="store_true",
                    help="time `make setup` in the clone (its own .venv, as `make demo` on a fresh clone) and run "
                         "the stages with it")
    args = ap.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="pianoeval-bench-"))
    clone = base / "clone"
    if clone.exists():
        shutil.rmtree(clone)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    install_seconds = None
    if args.install:
        global BIN
        t0 = time.perf_counter()
        subprocess.run(["make", "setup"], cwd=clone, check=True, stdout=subprocess.DEVNULL)
        install_seconds = round(time.perf_counter() - t0, 1)
        BIN = clone / ".venv" / "bin"
        print(f"{'make setup (install)':28s} {install_seconds:7.1f} s", flush=True)

    stages = stage_order(clone)
    results, total, peak = [], 0.0, 0
    for stage in stages:
        secs, mem, _ = timed(["dvc", "repro", "--single-item", stage], clone)
        results.append({"stage": stage, "seconds": round(secs, 1), "peak_rss_mb": round(mem / 2**20)})
        total += secs
        peak = max(peak, mem)
        print(f"{stage:28s} {secs:7.1f} s  {mem / 2**20:7.0f} MB", flush=True)
    noop, _, _ = timed(["dvc", "repro"], clone)
    status = subprocess.run(["dvc", "status"], cwd=clone, env=env(), capture_output=True, text=True).stdout.strip()
    git_dirty = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout

    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    n_files = 0
    out_paths = []
    for st in lock["stages"].values():
        for o in st.get("outs", []):
            out_paths.append(o["path"])
            n_files += o.get("nfiles", 1)
    # What `dvc push` uploads (and `dvc pull` downloads): the cache objects, incl. .dir manifests.
    # cache: false outputs (metrics, plots, reports) live in git instead.
    # `.dvc/cache/runs` (DVC's run cache) is not pushed unless `dvc push --run-cache`.
    cache_objects = sum(1 for f in (clone / ".dvc" / "cache" / "files").rglob("*") if f.is_file())
    run_cache_entries = sum(1 for f in (clone / ".dvc" / "cache" / "runs").rglob("*") if f.is_file())
    outputs_bytes = sum(du(clone / p) if (clone / p).is_dir() else (clone / p).stat().st_size for p in out_paths)
    cache_bytes = du(clone / ".dvc" / "cache")
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "stages": results,
        "install_seconds": install_seconds,
        "full_repro_seconds": round(total, 1),
        "noop_repro_seconds": round(noop, 2),
        "peak_rss_mb": round(peak / 2**20),
        "dvc_output_files": n_files,
        "dvc_cache_objects_pushed": cache_objects,
        "dvc_run_cache_entries": run_cache_entries,
        "outputs_mb": round(outputs_bytes / 2**20),
        "dvc_cache_mb": round(cache_bytes / 2**20),
        "disk_total_mb": round((outputs_bytes + cache_bytes) / 2**20),
        "dvc_status_clean": status.endswith("up to date."),
        "git_status_clean": git_dirty.strip() == "",
        "git_status": git_dirty.strip().splitlines()[:20],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n| stage | wall (s) | peak RSS (MB) |\n|---|---:|---:|")
    for r in results:
        print(f"| {r['stage']} | {r['seconds']} | {r['peak_rss_mb']} |")
    print(f"| **full `dvc repro`** | **{report['full_repro_seconds']}** | **{report['peak_rss_mb']}** |")
    print(f"\nno-op `dvc repro`: {report['noop_repro_seconds']} s; DVC output files: {n_files} "
          f"({cache_objects} cache objects pushed to the remote, the rest are cache: false files in git); "
          f"outputs {report['outputs_mb']} MB + cache {report['dvc_cache_mb']} MB; "
          f"dvc status clean: {report['dvc_status_clean']}; git status clean: {report['git_status_clean']}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
