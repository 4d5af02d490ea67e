"""Stage `t4_fetch` (optional): download the unlabeled piano recordings of the T4 manifest with yt-dlp.

The production route of the T4 pool (YouTube in production, any URL yt-dlp understands). Offline
default (``t4_fetch.enabled: false``): the stage validates the manifest, creates the output folder
empty and writes its metrics; nothing touches the network.

With ``enabled: true``: every row of ``manifest`` (``id``, ``url``, optional ``withdrawn``; see
:mod:`pianoeval.acquire`) is fetched into ``out_dir`` (a DVC ``persist: true`` output: a rerun fetches
only new rows, and deletes the files of rows marked withdrawn). Failed downloads are counted and listed
in ``metrics/t4_fetch.json``; with ``on_failure: fail`` they fail the stage after every other item was
fetched. ``t4_pool.source: fetched`` then cuts the pool's clips from ``out_dir``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..acquire import ManifestRow, failure_outcome, fetch_manifest, read_manifest, summary_line
from ..io import load_params, write_json


def run(p: dict) -> tuple[dict, str, int]:
    """The stage; returns (metrics, console line, exit code)."""
    if p["on_failure"] not in ("fail", "skip"):
        raise ValueError(f"params t4_fetch.on_failure must be 'fail' or 'skip', got {p['on_failure']!r}")
    manifest, out_dir = Path(p["manifest"]), Path(p["out_dir"])
    rows = read_manifest(manifest, ManifestRow)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {"enabled": bool(p["enabled"]), "manifest_rows": len(rows),
               "manifest_withdrawn": sum(r.withdrawn for r in rows)}
    if not p["enabled"]:
        metrics["skipped"] = "t4_fetch.enabled is false (offline default)"
        return metrics, f"t4_fetch: disabled (offline default): {len(rows)} manifest rows, nothing downloaded", 0
    report = fetch_manifest(rows, out_dir, options=p["download"], row_model=ManifestRow)
    metrics.update(report.to_metrics())
    line = f"t4_fetch: {summary_line(report)} -> {out_dir}"
    line, code = failure_outcome("t4_fetch", report, p["on_failure"], line)
    return metrics, line, code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        print("usage: python -m pianoeval.stages.t4_fetch", file=sys.stderr)
        return 2
    metrics, line, code = run(load_params("t4_fetch"))
    write_json("metrics/t4_fetch.json", metrics)
    print(line, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
