"""Stage `labels`: vendored PercePiano -> labels table, CV splits, data report."""

from __future__ import annotations

from pathlib import Path

from ..io import load_params, write_json
from ..labels import build_labels, make_splits, split_summary


def main() -> None:
    p = load_params("labels")
    table, report = build_labels(p["source_dir"], pieces=p.get("pieces") or None)
    splits = make_splits(table, n_folds=p["n_folds"], seed=p["seed"])
    report["splits"] = split_summary(splits, table)
    out = Path(p["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "labels.csv", index=False, float_format="%.10g")
    write_json(out / "splits.json", splits, indent=None)
    write_json("metrics/data_report.json", report)
    print(
        f"labels: {report['selected_midi']} MIDI ({report['excluded']['outside_selected_pieces']} outside the selected "
        f"pieces), {report['labeled']} labeled, {report['unlabeled']} unlabeled "
        f"({report['excluded']['unlabeled_score_renditions']} score renditions), "
        f"{report['renamed_midi_files']['leading_or_trailing_space']} file name(s) with stray spaces, "
        f"{report['pieces']} pieces, {report['pianists']} pianists"
    )


if __name__ == "__main__":
    main()
