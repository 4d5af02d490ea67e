"""Stage `masterclass_classify`: STOP/CONTINUE classifiers (leave-one-video-out), metrics, predictions, plots."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..io import flatten, load_params, write_json
from ..masterclass.experiment import metrics_table, plot_coefficients, plot_metrics, plot_roc, run_experiment
from ..masterclass.features import PooledEmbeddings, read_segment_table


def main() -> None:
    t0 = time.perf_counter()
    p = load_params("masterclass_classify")
    res = run_experiment(read_segment_table(p["segments"]), PooledEmbeddings(p["embeddings"]),
                         pd.read_csv(p["scores"], dtype={"segment_id": str}), C=p["C"],
                         min_calibration_class=p["min_calibration_class"], n_boot=p["n_boot"], n_perm=p["n_perm"],
                         seed=p["seed"], threshold=p["threshold"], n_jobs=p["n_jobs"])
    m = res["metrics"]
    res["predictions"].to_csv(p["predictions"], index=False, float_format="%.6f")
    Path("plots").mkdir(exist_ok=True)
    res["roc"].to_csv("plots/masterclass_roc.csv", index=False, float_format="%.6f")
    table = metrics_table(m)
    table.to_csv("plots/masterclass_metrics.csv", index=False, float_format="%.6f")
    res["coefficients"].to_csv("plots/masterclass_coefficients.csv", index=False, float_format="%.6f")
    plot_roc(res["roc"], m, "plots/masterclass_roc.png")
    plot_metrics(table, "plots/masterclass_metrics.png")
    plot_coefficients(res["coefficients"], "plots/masterclass_coefficients.png")
    out = flatten(m)
    for key, f in res["folds"].items():  # which folds were skipped / not calibrated, by video
        out[f"folds.{key}.skipped_videos"] = [s["video"] for s in f["skipped"]]
        out[f"folds.{key}.calibration_fallback_videos"] = f["calibration_fallback"]
    write_json("metrics/masterclass.json", out)

    def auc(prefix, model):
        a, lo, hi = (out.get(f"{prefix}{model}.{k}") for k in ("auc", "auc_ci_low", "auc_ci_high"))
        return "n/a" if a is None else f"{a:.2f}" + ("" if lo is None else f" [{lo:.2f}, {hi:.2f}]")

    n_skipped = sum(len(f["skipped"]) for f in res["folds"].values())  # folds whose training set had one class
    rnd = out.get("teacher.random.model_b.auc")
    print(f"masterclass_classify: {m['n_stop']} STOP / {m['n_continue']} CONTINUE in {m['n_videos']} videos; AUC "
          f"A {auc('', 'model_a')}, B {auc('', 'model_b')}, duration {auc('', 'duration')}; duration-matched B "
          f"{auc('duration_matched.', 'model_b')}; random teacher B "
          f"{'n/a' if rnd is None else f'{rnd:.2f}'}; {n_skipped} (model, video) folds skipped "
          f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
