"""Stage `t3_segments`: T3 manifest -> windows of the same bars from each performer of a score folder, and
the contrastive pairs table (positive = same bars other performer; hard negatives = other bars of the
same performance / of the same piece)."""

from __future__ import annotations

from pathlib import Path

from ..io import load_params, write_json
from ..tiers.pairs import contrastive_pairs
from ._tier_segments import segments_stage


def main() -> None:
    p = load_params("t3_segments")
    sel = load_params("tiers_select")
    windows, report = segments_stage("t3", Path(sel["out_dir"]) / "t3_manifest.csv", min_performers=2)
    pairs = contrastive_pairs(windows)
    pairs.to_csv(p["pairs"], index=False)
    report["pairs"] = {k: int(v) for k, v in pairs["relation"].value_counts().sort_index().items()}
    write_json("metrics/t3_segments.json", report)
    print(f"t3_segments: {report['windows']} windows ({report['hours']:.2f} h) of {report['performances_windowed']} "
          f"performances in {report['folders']} folders; excluded {report['excluded_unaligned']} unaligned, "
          f"{report['excluded_too_short']} too short, {report['excluded_too_few_performers']} with < 2 aligned "
          f"performers; pairs {report['pairs']}")


if __name__ == "__main__":
    main()
