"""The STOP/CONTINUE experiment: feature sets, all models x both variants, metrics, per-teacher AUCs.

Models (scikit-learn pipelines from :func:`.classify.make_classifier`):

* ``model_a``: pooled embeddings (mean‖std of the extractor's frames);
* ``model_b``: the 19 predicted quality dimensions (leakage-guarded, :mod:`.scoring`);
* ``duration``: log segment duration alone (what segment length explains);
* ``model_a_cal`` / ``model_b_cal``: the same with isotonic calibration (3-fold) in folds whose
  smaller training class has >= ``min_calibration_class`` samples, otherwise uncalibrated and flagged.

Every model is evaluated with leave-one-video-out CV on both segment variants (``all``,
``duration_matched``); pooled out-of-fold metrics, a cluster-bootstrap AUC CI and (uncalibrated
models) a within-video permutation p-value. Per-teacher AUCs come from the same pooled OOF
predictions restricted to that teacher's videos.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.metrics import roc_curve
from threadpoolctl import threadpool_limits

from pianoeval.dimensions import CATEGORIES, DIMENSIONS
from pianoeval.masterclass.classify import (
    binary_metrics,
    bootstrap_auc_ci,
    loo_video_cv,
    make_classifier,
    permutation_null_aucs,
    permutation_pvalue,
)
from pianoeval.masterclass.features import VARIANTS

MODELS = ("model_a", "model_b", "duration", "model_a_cal", "model_b_cal")
FEATURES = {"model_a": "embedding", "model_b": "quality", "duration": "log_duration",
            "model_a_cal": "embedding", "model_b_cal": "quality"}
PERMUTED = ("model_a", "model_b", "duration")  # p-values for the uncalibrated models (calibration is per fold)
PERM_CHUNK = 25  # permutations per parallel task; chunk c of a test uses seed [seed, c], whatever n_jobs is
METRIC_KEYS = ("auc", "auc_ci_low", "auc_ci_high", "auc_p_perm", "accuracy", "precision", "recall", "f1", "brier",
               "log_loss")


def feature_sets(segments: pd.DataFrame, embeddings, scores: pd.DataFrame) -> dict[str, np.ndarray]:
    """Feature matrices of one variant's rows (in ``segments`` order).

    Returns
    -------
    {"embedding": (N, 2D), "quality": (N, 19), "log_duration": (N, 1)}
    """
    ids = segments["segment_id"].tolist()
    missing = sorted(set(ids) - set(scores["segment_id"]))
    if missing:
        raise ValueError(f"quality scores: no row for {len(missing)} segment(s), e.g. {missing[:3]}")
    dur = segments["duration"].to_numpy(float)
    if not (dur > 0).all():
        raise ValueError(f"segments: durations must be > 0, got min {dur.min()}")
    return {"embedding": np.asarray(embeddings.pooled(ids), dtype=float),
            "quality": scores.set_index("segment_id").loc[ids, list(DIMENSIONS)].to_numpy(float),
            "log_duration": np.log(dur)[:, None]}


def _task(kind: str, model: str, X, y, videos, C, min_cal, seed, n_perm=0):
    with threadpool_limits(limits=1):  # two workers on two cores: no nested BLAS threads
        if kind == "cv":
            return loo_video_cv(X, y, videos, C=C, calibrated=model.endswith("_cal"), min_calibration_class=min_cal,
                                seed=seed)
        try:
            return permutation_null_aucs(X, y, videos, C=C, n_perm=n_perm, seed=seed)
        except ValueError:  # no fold to fit or one predicted class: the CV reports it, no p-value
            return None


def run_experiment(segments: pd.DataFrame, embeddings, scores: pd.DataFrame, *, C: float = 1.0,
                   min_calibration_class: int = 6, n_boot: int = 1000, n_perm: int = 100, seed: int = 0,
                   threshold: float = 0.5, n_jobs: int = 2) -> dict:
    """All models on both variants.

    Parameters
    ----------
    segments : segment table (column ``variant`` in {all, duration_matched}, segment_id, video_id,
        teacher, label, duration). embeddings : object with ``pooled(ids)``. scores : quality scores table.
    n_perm : permutations per (variant, uncalibrated model); 0 skips the test. n_jobs : joblib workers
        for the cross-validations and permutation tests.

    Returns
    -------
    dict with ``metrics`` (nested; variant ``all`` at the top, ``duration_matched.*``,
    ``teacher.<name>.*``), ``predictions`` (DataFrame), ``coefficients`` (DataFrame: Model B fit on all
    rows of each variant), ``roc`` (DataFrame), ``folds`` (skipped/fallback folds per model).
    """
    data = {}
    for v in VARIANTS:
        seg = segments[segments["variant"] == v].reset_index(drop=True)
        if seg.empty:
            raise ValueError(f"segment table has no rows of variant '{v}'")
        data[v] = (seg, feature_sets(seg, embeddings, scores), seg["label"].to_numpy(int),
                   seg["video_id"].to_numpy(str))

    # One parallel pass over every cross-validation and every chunk of every permutation test, costliest
    # first (embedding-feature permutations) so that the workers finish together.
    jobs = [("cv", v, m, 0, 0) for v in VARIANTS for m in MODELS]
    jobs += [("perm", v, m, c, min(PERM_CHUNK, n_perm - c * PERM_CHUNK)) for v in VARIANTS for m in PERMUTED
             for c in range(-(-n_perm // PERM_CHUNK))]
    jobs.sort(key=lambda j: (j[0] != "perm" or FEATURES[j[2]] != "embedding", j[0] == "cv" and
                             not j[2].endswith("_cal"), VARIANTS.index(j[1]) * -1))
    out = Parallel(n_jobs=n_jobs)(
        delayed(_task)(kind, m, data[v][1][FEATURES[m]], data[v][2], data[v][3], C, min_calibration_class,
                       seed if kind == "cv" else [seed, c], k) for kind, v, m, c, k in jobs)
    cvs = {(v, m): r for (kind, v, m, _, _), r in zip(jobs, out) if kind == "cv"}
    nulls: dict = {}
    for (kind, v, m, c, _), r in zip(jobs, out):
        if kind == "perm":
            nulls.setdefault((v, m), {})[c] = r
    results = {t: binary_metrics(data[t[0]][2], cvs[t]["oof"], threshold) for t in cvs}
    pvals = {t: permutation_pvalue(np.concatenate([ch[c] for c in sorted(ch)]), results[t]["auc"])
             for t, ch in nulls.items() if results[t]["auc"] is not None and all(v is not None for v in ch.values())}

    metrics, preds, roc, coefs, folds = {}, [], [], [], {}
    for v in VARIANTS:
        seg, feats, y, videos = data[v]
        vm = metrics if v == "all" else metrics.setdefault(v, {})
        vm.update(n_segments=len(y), n_videos=len(np.unique(videos)), n_stop=int(y.sum()),
                  n_continue=int((1 - y).sum()))
        pred = seg[["segment_id", "variant", "video_id", "teacher", "label", "duration"]].copy()
        for m in MODELS:
            cv, r = cvs[(v, m)], results[(v, m)]
            lo, hi = bootstrap_auc_ci(y, cv["oof"], videos, n_boot=n_boot, seed=seed)
            vm[m] = {"auc": r["auc"], "auc_ci_low": lo, "auc_ci_high": hi, "auc_p_perm": pvals.get((v, m)),
                     **{k: r[k] for k in METRIC_KEYS[4:]}, "n": r["n"], "n_stop": r["n_stop"],
                     "n_continue": r["n_continue"], "n_missing": r["n_missing"],
                     "folds_skipped": cv["n_skipped"], "folds_calibration_fallback": cv["n_calibration_fallback"]}
            folds[f"{v}.{m}"] = {"skipped": cv["skipped"], "calibration_fallback": cv["calibration_fallback"]}
            pred[f"p_{m}"] = cv["oof"]
            ok = ~np.isnan(cv["oof"])
            if r["auc"] is not None:
                fpr, tpr, _ = roc_curve(y[ok], cv["oof"][ok])
                roc.append(pd.DataFrame({"variant": v, "model": m, "fpr": fpr, "tpr": tpr}))
        for t in sorted(seg["teacher"].unique()):
            sel = (seg["teacher"] == t).to_numpy()
            tm = vm.setdefault("teacher", {}).setdefault(t, {})
            tm.update(n_videos=len(np.unique(videos[sel])), n_stop=int(y[sel].sum()),
                      n_continue=int((1 - y[sel]).sum()))
            for m in MODELS:
                tm[m] = {"auc": binary_metrics(y[sel], cvs[(v, m)]["oof"][sel], threshold)["auc"]}
        preds.append(pred)
        with threadpool_limits(limits=1):
            pipe = make_classifier(C, seed=seed).fit(feats["quality"], y)
        cat_of = {d: c for c, ds in CATEGORIES.items() for d in ds}
        coefs.append(pd.DataFrame({"variant": v, "dimension": list(DIMENSIONS),
                                   "category": [cat_of[d] for d in DIMENSIONS],
                                   "coefficient": pipe.named_steps["lr"].coef_[0]}))
    metrics["settings"] = {"C": C, "min_calibration_class": min_calibration_class, "n_boot": n_boot,
                           "n_perm": n_perm, "threshold": threshold, "seed": seed}
    return {"metrics": metrics, "predictions": pd.concat(preds, ignore_index=True),
            "coefficients": pd.concat(coefs, ignore_index=True), "roc": pd.concat(roc, ignore_index=True)
            if roc else pd.DataFrame(columns=["variant", "model", "fpr", "tpr"]), "folds": folds}


def metrics_table(metrics: dict) -> pd.DataFrame:
    """Long table variant, model, metric columns (for the bar chart and its CSV)."""
    rows = []
    for v in VARIANTS:
        vm = metrics if v == "all" else metrics[v]
        for m in MODELS:
            rows.append({"variant": v, "model": m, "label": f"{v}/{m}", **{k: vm[m][k] for k in METRIC_KEYS}})
    return pd.DataFrame(rows)


def plot_roc(roc: pd.DataFrame, metrics: dict, path: str) -> None:
    """One panel per variant, one ROC curve per model (AUC in the legend)."""
    import matplotlib.pyplot as plt

    from pianoeval.plots import save

    fig, axes = plt.subplots(1, len(VARIANTS), figsize=(5 * len(VARIANTS), 4.6), sharey=True)
    for ax, v in zip(np.atleast_1d(axes), VARIANTS):
        vm = metrics if v == "all" else metrics[v]
        for m in MODELS:
            r = roc[(roc["variant"] == v) & (roc["model"] == m)]
            if len(r):
                ax.step(r["fpr"], r["tpr"], where="post", label=f"{m} (AUC {vm[m]['auc']:.2f})",
                        ls="--" if m.endswith("_cal") else "-")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set_title(f"{v}: {vm['n_stop']} STOP / {vm['n_continue']} CONTINUE, {vm['n_videos']} videos", fontsize=9)
        ax.set_xlabel("false positive rate")
        ax.legend(fontsize=7, loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel("true positive rate")
    fig.suptitle("STOP vs CONTINUE, leave-one-video-out")
    save(fig, path)


def plot_metrics(table: pd.DataFrame, path: str) -> None:
    """AUC with its bootstrap CI and the threshold metrics, per model and variant."""
    import matplotlib.pyplot as plt

    from pianoeval.plots import save

    names = ["auc", "accuracy", "precision", "recall", "f1", "brier"]
    fig, axes = plt.subplots(1, len(VARIANTS), figsize=(6 * len(VARIANTS), 4), sharey=True)
    w = 0.8 / len(MODELS)
    for ax, v in zip(np.atleast_1d(axes), VARIANTS):
        t = table[table["variant"] == v].set_index("model")
        for i, m in enumerate(MODELS):
            vals = t.loc[m, names].astype(float).fillna(0.0).to_numpy()
            x = np.arange(len(names)) + i * w - 0.4 + w / 2
            ax.bar(x, vals, width=w, label=m)
            auc, lo, hi = (t.loc[m, k] for k in ("auc", "auc_ci_low", "auc_ci_high"))
            if pd.notna(auc) and pd.notna(lo):
                ax.errorbar(x[0], auc, yerr=[[auc - lo], [hi - auc]], color="black", capsize=2, lw=0.8)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xticks(np.arange(len(names)), names)
        ax.set_title(v)
        ax.legend(fontsize=7)
    fig.suptitle("Pooled out-of-fold metrics (AUC bars: 95% video-bootstrap CI)")
    save(fig, path)


def plot_coefficients(coefs: pd.DataFrame, path: str) -> None:
    from pianoeval.plots import bar_chart_per_dimension

    bar_chart_per_dimension(coefs, path, title="Model B: standardised logistic coefficients (fit on all segments)",
                            value="coefficient", group="variant")
