"""Stage `t2_scores`: the 19 predicted quality dimensions of every T2 window (T1 fold checkpoints,
leakage-guarded), joined with placement, performer-year and piece: the table the audit's competition
section validates. Writes the tier report `metrics/t2.json`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ..dimensions import DIMENSIONS
from ..embedding_store import EmbeddingStore
from ..io import load_params, read_json, write_json
from ..tiers.scoring import score_windows

KEEP = ["segment_id", "performance_id", "performer_year", "folder", "title", "competition", "year", "round",
        "furthest_round", "placement", "seconds", "percepiano_overlap"]


def main() -> None:
    p = load_params("t2_scores")
    torch.set_num_threads(1)
    windows = pd.read_csv(p["segments"], dtype={"segment_id": str, "percepiano_pianist_ids": str},
                          keep_default_na=False)
    scores, guard = score_windows(windows, EmbeddingStore(p["embeddings"]), p["checkpoints"])
    table = windows[KEEP].merge(scores, on="segment_id", validate="one_to_one")
    table["overall"] = table[list(DIMENSIONS)].mean(axis=1)
    Path(p["out"]).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(p["out"], index=False, float_format="%.6f")

    pairs = pd.read_csv(p["pairs"])
    seg = read_json("metrics/t2_segments.json")
    py = table.drop_duplicates("performer_year")
    report = {
        "n_windows": int(len(table)), "n_performances": int(table["performance_id"].nunique()),
        "n_performer_years": int(py.shape[0]), "n_folders": int(table["folder"].nunique()),
        "hours": float(table["seconds"].sum() / 3600),
        "performer_years_by_placement": {str(k): int(v) for k, v in py["placement"].value_counts().sort_index().items()},
        "ordinal_pairs": int(len(pairs)),
        "excluded": {"unaligned": seg["excluded_unaligned"], "too_short": seg["excluded_too_short"]},
        "percepiano_overlap": {"windows": int(table["percepiano_overlap"].sum()),
                               "performer_years": int(table.loc[table["percepiano_overlap"], "performer_year"].nunique())},
        "scoring": guard,
        "overall_definition": "mean of the 19 predicted dimensions (fixed a priori)",
        "overall_mean_by_placement": {str(k): float(v) for k, v in table.groupby("placement")["overall"].mean().items()},
    }
    write_json("metrics/t2.json", report)
    print(f"t2_scores: {len(table)} windows of {report['n_performer_years']} performer-years scored "
          f"({guard['windows_guarded']} guarded against PercePiano overlap, "
          f"{report['percepiano_overlap']['windows']} overlap windows kept out of the validation by the audit); "
          f"{len(pairs)} ordinal pairs")


if __name__ == "__main__":
    main()
