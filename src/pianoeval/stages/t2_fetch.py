"""Stage `t2_fetch` (optional): download the recordings of a real competition's T2 manifest with yt-dlp.

Offline default (``t2_fetch.enabled: false``): the stage validates the manifest
(``tiers_select.t2.manifest``; by default the example layout docs/examples/chopin2021_manifest.csv),
creates the output folder and writes its metrics; nothing touches the network.

With ``enabled: true``: every row (``id, url, performer, year, round[, prize, title, competition,
licence, withdrawn]``, :class:`pianoeval.tiers.manifest.CompetitionRow`) is fetched through
:mod:`pianoeval.acquire` into ``out_dir`` (a DVC ``persist: true`` output: reruns only fetch new rows,
withdrawn rows are removed). Point ``tiers_select.t2.recordings_dir`` at ``out_dir`` and set
``tiers_select.t2.source: manifest``; rows whose download failed are counted here and, as missing
recordings, fail ``t2_segments`` until they are retried or marked withdrawn (``on_failure: skip``
drops them here instead: they are listed in ``metrics/t2_fetch.json``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..acquire import failure_outcome, fetch_manifest, read_manifest, summary_line
from ..io import load_params, write_json
from ..tiers.manifest import CompetitionRow


def run(p: dict, manifest: Path) -> tuple[dict, str, int]:
    if p["on_failure"] not in ("fail", "skip"):
        raise ValueError(f"params t2_fetch.on_failure must be 'fail' or 'skip', got {p['on_failure']!r}")
    rows = read_manifest(manifest, CompetitionRow)
    out_dir = Path(p["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {"enabled": bool(p["enabled"]), "manifest": str(manifest), "manifest_rows": len(rows),
               "withdrawn_rows": sum(r.withdrawn for r in rows)}
    if not p["enabled"]:
        metrics["skipped"] = "t2_fetch.enabled is false (offline default)"
        return metrics, (f"t2_fetch: disabled (offline default): {len(rows)} manifest rows in {manifest} "
                         "validated, nothing downloaded"), 0
    report = fetch_manifest(rows, out_dir, options=p["download"], row_model=CompetitionRow)
    metrics.update(report.to_metrics())
    line = f"t2_fetch: {summary_line(report)} -> {out_dir}"
    line, code = failure_outcome("t2_fetch", report, p["on_failure"], line)
    return metrics, line, code


def main() -> int:
    p = load_params("t2_fetch")
    manifest = Path(load_params("tiers_select")["t2"]["manifest"])
    metrics, line, code = run(p, manifest)
    write_json("metrics/t2_fetch.json", metrics)
    print(line, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
