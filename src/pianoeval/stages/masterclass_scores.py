"""Stage `masterclass_scores`: leakage-guarded 19-dimension quality scores of every segment window (Model B input)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..embedding_store import EmbeddingStore
from ..io import load_params, write_json
from ..masterclass.features import distinct_windows, read_segment_table
from ..masterclass.scoring import score_segments
from ..masterclass.moments import PROVENANCE_FILE


def main() -> None:
    p = load_params("masterclass_scores")
    torch.set_num_threads(1)
    input_dir = Path(load_params("masterclass_segments")["input_dir"])
    windows = distinct_windows(read_segment_table(p["segments"]))
    scores, report = score_segments(windows, EmbeddingStore(p["embeddings"]), p["checkpoints"],
                                    input_dir / PROVENANCE_FILE)
    scores.to_csv(p["out"], index=False, float_format="%.6f")
    write_json("metrics/masterclass_scores.json", report)
    m = report["models_per_segment"]
    print(f"masterclass_scores: {report['n_segments']} windows scored by {m['min']}-{m['max']} of "
          f"{report['n_checkpoints']} checkpoints ({report['leakage_guard']})")


if __name__ == "__main__":
    main()
