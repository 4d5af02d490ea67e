"""Stage `t2_segments`: T2 manifest -> bar-aligned ~30 s windows (the same bars for every performer of a
score folder) and the ordinal pairs (same bars, pianists who reached different rounds)."""

from __future__ import annotations

from pathlib import Path

from ..io import load_params, write_json
from ..tiers.pairs import ordinal_pairs
from ._tier_segments import recording_segments, segments_stage


def main() -> None:
    p = load_params("t2_segments")
    sel = load_params("tiers_select")
    manifest = Path(sel["out_dir"]) / "t2_manifest.csv"
    if sel["t2"]["source"] == "manifest":  # real recordings: fixed-length windows, no bars
        windows, report = recording_segments(manifest, p, sel["t2"]["recordings_dir"])
    else:
        windows, report = segments_stage("t2", manifest, min_performers=1)
    pairs = ordinal_pairs(windows)
    pairs.to_csv(p["pairs"], index=False)
    report["ordinal_pairs"] = int(len(pairs))
    report["ordinal_pairs_folders"] = int(pairs["folder"].nunique()) if len(pairs) else 0
    write_json("metrics/t2_segments.json", report)
    print(f"t2_segments: {report['windows']} windows ({report['hours']:.2f} h) of {report['performances_windowed']} "
          f"performances; excluded {report['excluded_unaligned']} unaligned, {report['excluded_too_short']} too short; "
          f"{len(pairs)} ordinal pairs in {report['ordinal_pairs_folders']} folders")


if __name__ == "__main__":
    main()
