"""Stage `masterclass_classify`: STOP/CONTINUE classifiers (student-grouped CV), permutation tests and
intervals, negative control, metrics, predictions, review plots (ROC, precision-recall, confusion)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..io import flatten, load_params, write_json
from ..masterclass.experiment import metrics_table, plot_coefficients, plot_metrics, plot_roc, run_experiment
from ..masterclass.features import PooledEmbeddings, read_segment_table

PLOTS = Path("plots")


def main() -> None:
    t0 = time.perf_counter()
    p = load_params("masterclass_classify")
    oracle = pd.read_csv(p["oracle"], dtype={"segment_id": str})
    res = run_experiment(read_segment_table(p["segments"]), PooledEmbeddings(p["embeddings"]),
                         pd.read_csv(p["scores"], dtype={"segment_id": str}), oracle if len(oracle) else None,
                         C=p["C"], n_components=p["n_components"], spline_knots=p["spline_knots"],
                         cv_folds=p["cv_folds"], min_calibration_class=p["min_calibration_class"], n_perm=p["n_perm"],
                         level=p["level"], seed=p["seed"], negative_control=p["negative_control_teacher"],
                         n_jobs=p["n_jobs"])
    m = res["metrics"]
    res["predictions"].to_csv(p["predictions"], index=False, float_format="%.6f")
    PLOTS.mkdir(exist_ok=True)
    # DVC plot data (`dvc plots diff`): ROC and precision-recall curves per variant (one column per
    # model on a common grid, template `simple`) and confusion matrices (template `confusion`).
    for name, df in res["plot_data"].items():
        df.to_csv(PLOTS / f"masterclass_{name}.csv", index=False, float_format="%.6f")
    table = metrics_table(m)
    table.to_csv(PLOTS / "masterclass_metrics.csv", index=False, float_format="%.6f")
    res["coefficients"].to_csv(PLOTS / "masterclass_coefficients.csv", index=False, float_format="%.6f")
    plot_roc(res["roc"], m, str(PLOTS / "masterclass_roc.png"))
    plot_metrics(table, str(PLOTS / "masterclass_metrics.png"))
    plot_coefficients(res["coefficients"], str(PLOTS / "masterclass_coefficients.png"))
    out = flatten(m)
    for key, f in res["folds"].items():  # which folds were skipped / not calibrated
        out[f"folds.{key}.skipped"] = f["skipped"]
        if "calibration_fallback" in f:
            out[f"folds.{key}.calibration_fallback"] = f["calibration_fallback"]
    write_json("metrics/masterclass.json", out)

    def auc(prefix, model):
        a, lo, hi, q = (out.get(f"{prefix}{model}.{k}") for k in ("auc", "auc_ci_low", "auc_ci_high", "auc_p_holm"))
        if a is None:
            return "n/a"
        return f"{a:.2f}" + ("" if lo is None else f" [{lo:.2f}, {hi:.2f}] p_holm {q:.3g}")

    n_skipped = sum(len(f["skipped"]) for f in res["folds"].values())  # folds whose training set had one class
    nc = out.get("duration_matched.negative_control.model_a.auc")
    print(f"masterclass_classify: {m['n_stop']} STOP / {m['n_continue']} CONTINUE in {m.get('n_videos')} videos "
          f"({m.get('n_students')} students, {m.get('n_folds')} folds; variants: {m['status']} / "
          f"{m['duration_matched']['status']}; negative-control teacher left out: "
          f"{out.get('negative_control.n_videos', 0)} videos); AUC A {auc('', 'model_a')}, B {auc('', 'model_b')}, "
          f"oracle B {auc('', 'oracle_b')}, duration spline {auc('', 'duration_spline')}; duration-matched "
          f"A {auc('duration_matched.', 'model_a')}, B {auc('duration_matched.', 'model_b')}, duration spline "
          f"{auc('duration_matched.', 'duration_spline')}; negative control A (matched) "
          f"{'n/a' if nc is None else f'{nc:.2f}'}; {m['settings']['n_pvalues_holm']} p-values Holm-corrected; "
          f"{n_skipped} (model, fold) fits skipped: one class in training "
          f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
