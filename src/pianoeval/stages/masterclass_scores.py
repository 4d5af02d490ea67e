"""Stage `masterclass_scores`: leakage-guarded 19-dimension quality scores of every segment window (Model B input)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ..dimensions import DIMENSIONS
from ..embedding_store import EmbeddingStore
from ..io import load_params, write_json
from ..labels import load_labels
from ..masterclass.features import distinct_windows, read_provenance, read_segment_table
from ..masterclass.moments import PROVENANCE_FILE
from ..masterclass.oracle import dimension_z_scores, oracle_ratings
from ..masterclass.scoring import score_segments


def main() -> None:
    p = load_params("masterclass_scores")
    torch.set_num_threads(1)
    input_dir = Path(load_params("masterclass_segments")["input_dir"])
    windows = distinct_windows(read_segment_table(p["segments"]))
    scores, report = score_segments(windows, EmbeddingStore(p["embeddings"]), p["checkpoints"],
                                    input_dir / PROVENANCE_FILE)
    scores.to_csv(p["out"], index=False, float_format="%.6f")
    # The oracle: the true passage-standardised crowd ratings of each window (the simulated teachers'
    # own input). Real recordings have no provenance: the file then has a header and no rows.
    provenance = read_provenance(input_dir)
    if provenance is not None:
        z, z_rep = dimension_z_scores(load_labels(p["labels"]))
        oracle = oracle_ratings(windows, provenance, z)
        report["oracle"] = {"n_segments": len(oracle), **z_rep,
                            "performances_per_window_max": int(oracle["n_performances"].max())}
    else:
        oracle = pd.DataFrame(columns=["segment_id", *DIMENSIONS, "n_performances"])
        report["oracle"] = "none: no provenance.json (real recordings)"
    oracle.to_csv(p["oracle_out"], index=False, float_format="%.6f")
    write_json("metrics/masterclass_scores.json", report)
    m = report["models_per_segment"]
    print(f"masterclass_scores: {report['n_segments']} windows scored by {m['min']}-{m['max']} of "
          f"{report['n_checkpoints']} checkpoints ({report['leakage_guard']})")


if __name__ == "__main__":
    main()
