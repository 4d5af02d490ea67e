"""Print the headline metrics of the last `dvc repro` (called by `make demo`)."""

from __future__ import annotations

import json
from pathlib import Path

HEADLINES = {
    "metrics/data_report.json": ["labeled", "unlabeled", "pieces", "pianists"],
    "metrics/render.json": ["rendered", "excluded_bad_midi", "total_hours"],
    "metrics/extractors.json": ["rows.logmel.pianist.r2_mean", "rows.logmel_bp/basic_pitch.pianist.r2_mean",
                                "rows.logmel_bp.pianist.r2_mean", "rows.logmel_bp.pianist.delta_vs_reference"],
    "metrics/quality.json": ["mlp.pianist.r2_mean", "passage_mean.pianist.r2_mean",
                             "mlp.pianist.within_passage.r2_mean", "mlp.pianist.within_passage.ranking_accuracy_mean",
                             "mlp.pianist.vs_passage_mean.p_holm", "mlp.segment.r2_mean", "mlp.piece.r2_mean",
                             "ridge.pianist.r2_mean", "blend.pianist.r2_mean"],
    "metrics/masterclass.json": ["n_videos", "model_a.auc", "model_b.auc", "oracle_b.auc", "duration_spline.auc",
                                 "duration_matched.model_a.auc", "duration_matched.model_a.auc_p_holm",
                                 "duration_matched.model_b.auc", "duration_matched.oracle_b.auc",
                                 "duration_matched.duration_spline.auc",
                                 "duration_matched.negative_control.model_a.auc"],
    "metrics/robustness.json": ["n.t4_pairs", "n.percepiano_segments",
                                "conditions.level/-6dB.percepiano.shift_abs_mean",
                                "conditions.noise/snr20.percepiano.shift_abs_mean",
                                "conditions.phone/medium.percepiano.shift_abs_mean",
                                "conditions.phone/medium.percepiano.pearson_mean"],
    "metrics/audit.json": ["pca.n_significant", "reliability.noise_ceiling_mean", "probe.ridge_cv.pianist.r2_mean",
                           "downstream.all19.auc", "downstream.top5.auc", "downstream.top5.p_tost_holm"],
}


def _get(d: dict, dotted: str):
    if dotted in d:
        return d[dotted]
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def main() -> None:
    print("\n== pianoeval headline metrics ==")
    for path, keys in HEADLINES.items():
        p = Path(path)
        if not p.is_file():
            continue
        data = json.loads(p.read_text())
        vals = [(k, _get(data, k)) for k in keys]
        shown = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in vals if v is not None)
        print(f"{path}: {shown}")
    print("Full numbers: `dvc metrics show`; compare with main: `dvc metrics diff main`.")


if __name__ == "__main__":
    main()
