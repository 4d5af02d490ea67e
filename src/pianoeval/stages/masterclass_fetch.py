"""Stage `masterclass_fetch` (optional): download the audio of every video of a moments file with yt-dlp.

Offline default (``masterclass_fetch.enabled: false``): the stage validates its two input files, leaves
the output folder as it is (created empty) and writes its metrics; nothing touches the network.

With ``enabled: true``: every row of ``manifest`` (``id`` = a ``video_id`` of the moments file, optional
``url``: empty means ``https://www.youtube.com/watch?v=<id>``, optional ``withdrawn``) is fetched through
:mod:`pianoeval.acquire` into ``out_dir`` (a DVC ``persist: true`` output: reruns only fetch new rows),
and ``out_dir/all_moments.jsonl`` is written: the moments file's lines, verbatim, minus the lines of
withdrawn videos and of videos whose download failed (both counted and listed in
``metrics/masterclass_fetch.json``). ``out_dir`` is then a recordings folder for
``masterclass_segments.input_dir``. A failed download fails the stage after every other item was fetched
(``on_failure: fail``; rerun to retry, mark the row withdrawn, or set ``on_failure: skip``).

``python -m pianoeval.stages.masterclass_fetch --write-manifest`` appends a row for every moments
video missing from the manifest (a convenience; the manifest stays a file you edit and commit).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from pydantic import model_validator

from ..acquire import ManifestRow, failure_outcome, fetch_manifest, read_manifest, summary_line
from ..io import load_params, write_json
from ..masterclass.moments import MOMENTS_FILE

YOUTUBE_URL = "https://www.youtube.com/watch?v={id}"


class MasterclassRow(ManifestRow):
    """A masterclass manifest row: ``id`` is the moments' ``video_id``; ``url`` may be left empty (YouTube)."""

    url: str = ""

    @model_validator(mode="after")
    def _youtube_by_default(self) -> "MasterclassRow":
        if not self.url:
            self.url = YOUTUBE_URL.format(id=self.id)
        return self


def moment_lines(path: Path) -> list[tuple[bytes, str | None]]:
    """(raw line, video_id or None) per line of a moments file; None for lines that are not a JSON object
    with a string video_id (they are passed through for masterclass_segments to judge)."""
    out = []
    with open(path, "rb") as fh:
        for raw in fh:
            vid = None
            try:
                obj = json.loads(raw.decode("utf-8-sig"))
                if isinstance(obj, dict) and isinstance(obj.get("video_id"), str):
                    vid = obj["video_id"]
            except (UnicodeDecodeError, json.JSONDecodeError):
                pass
            out.append((raw, vid))
    return out


def write_manifest_rows(manifest: Path, moments: Path) -> int:
    """Append ``id,,`` rows for moments videos missing from the manifest; returns how many were added."""
    have = {r.id for r in read_manifest(manifest, MasterclassRow)} if manifest.is_file() else set()
    vids = sorted({v for _, v in moment_lines(moments) if v} - have)
    new_file = not manifest.is_file() or manifest.stat().st_size == 0
    with open(manifest, "a", newline="") as fh:
        w = csv.writer(fh)
        if new_file:
            w.writerow(["id", "url", "withdrawn"])
        for v in vids:
            w.writerow([v, "", ""])
    return len(vids)


def run(p: dict) -> tuple[dict, str, int]:
    """The stage; returns (metrics, console line, exit code)."""
    moments, manifest, out_dir = Path(p["moments"]), Path(p["manifest"]), Path(p["out_dir"])
    if p["on_failure"] not in ("fail", "skip"):
        raise ValueError(f"params masterclass_fetch.on_failure must be 'fail' or 'skip', got {p['on_failure']!r}")
    if not moments.is_file():
        raise FileNotFoundError(f"{moments}: moments file not found (params masterclass_fetch.moments)")
    rows = read_manifest(manifest, MasterclassRow)
    lines = moment_lines(moments)
    vids = sorted({v for _, v in lines if v})
    ids = {r.id for r in rows}
    unlisted = [v for v in vids if v not in ids]
    metrics = {"enabled": bool(p["enabled"]), "moment_lines": len(lines), "videos_in_moments": len(vids),
               "manifest_rows": len(rows), "manifest_rows_without_moments": sorted(ids - set(vids))}
    out_dir.mkdir(parents=True, exist_ok=True)
    if not p["enabled"]:
        metrics["skipped"] = "masterclass_fetch.enabled is false (offline default)"
        return metrics, (f"masterclass_fetch: disabled (offline default): {len(rows)} manifest rows, "
                         f"{len(vids)} videos in {moments} not fetched; nothing downloaded"), 0
    if unlisted:
        raise ValueError(f"{manifest}: {len(unlisted)} video(s) of {moments} have no manifest row: "
                         f"{', '.join(unlisted[:20])} (run `python -m pianoeval.stages.masterclass_fetch "
                         "--write-manifest` to add them)")
    report = fetch_manifest(rows, out_dir, options=p["download"], row_model=MasterclassRow)
    withdrawn = {r.id for r in rows if r.withdrawn}
    failed = {f["id"] for f in report.failures}
    kept, dropped_w, dropped_f = [], 0, 0
    for raw, vid in lines:
        if vid in withdrawn:
            dropped_w += 1
        elif vid in failed:
            dropped_f += 1
        else:
            kept.append(raw)
    (out_dir / MOMENTS_FILE).write_bytes(b"".join(kept))
    metrics.update(report.to_metrics())
    metrics.update(moment_lines_kept=len(kept), moment_lines_dropped_withdrawn=dropped_w,
                   moment_lines_dropped_failed=dropped_f)
    line = (f"masterclass_fetch: {summary_line(report)}; {len(kept)} of {len(lines)} moment lines kept "
            f"({dropped_w} of withdrawn videos, {dropped_f} of failed downloads dropped) -> {out_dir}")
    line, code = failure_outcome("masterclass_fetch", report, p["on_failure"], line)
    return metrics, line, code


def main(argv: list[str] | None = None) -> int:
    p = load_params("masterclass_fetch")
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--write-manifest"]:
        n = write_manifest_rows(Path(p["manifest"]), Path(p["moments"]))
        print(f"masterclass_fetch: {n} rows added to {p['manifest']}")
        return 0
    if argv:
        print("usage: python -m pianoeval.stages.masterclass_fetch [--write-manifest]", file=sys.stderr)
        return 2
    metrics, line, code = run(p)
    write_json("metrics/masterclass_fetch.json", metrics)
    print(line, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
