"""The STOP/CONTINUE experiment: feature sets, all models x both variants, metrics, tests, controls.

Models (standardised L2 logistic regression, :mod:`.classify`):

* ``model_a``: pooled embeddings (mean‖std of the extractor's frames), reduced inside each training
  fold to their ``n_components`` leading principal axes;
* ``model_b``: the 19 predicted quality dimensions (leakage-guarded, :mod:`.scoring`);
* ``oracle_b``: the 19 *true* crowd ratings standardised within passage (:mod:`.oracle`): the
  simulated teachers' own input, so the ceiling for Model B (simulated sessions only);
* ``duration``: log segment duration; ``duration_spline``: a cubic spline of log duration (the
  flexible duration baseline: what segment length alone explains);
* ``model_a_cal`` / ``model_b_cal``: isotonic-calibrated versions (probability quality only).

Headline numbers use the videos of the graded teachers; the ``negative_control`` teacher (stops at
random) is left out of them and serves as a negative control: each model, fitted on all headline
videos, predicts the control videos (its AUC must be compatible with 0.5). Cross-validation holds
out whole students (:func:`.classify.make_folds`). Every uncalibrated model gets a within-video
permutation p-value and the shift-model 95% interval of its AUC; Model B is compared with the oracle
and the models with the flexible duration baseline by paired permutation tests (:mod:`pianoeval.stats`);
all p-values of the stage form one Holm family (raw and corrected are reported). Balanced accuracy
and the other threshold metrics use a threshold chosen inside each training fold (its STOP rate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.metrics import precision_recall_curve, roc_curve
from threadpoolctl import threadpool_limits

from pianoeval.dimensions import CATEGORIES, DIMENSIONS
from pianoeval.masterclass.classify import (
    FeaturePrep,
    binary_metrics,
    cv_calibrated,
    fit_predict_logistic,
    fold_threshold_predictions,
    make_classifier,
    make_folds,
    permutation_auc_test,
)
from pianoeval.masterclass.features import VARIANTS
from pianoeval.stats import (
    auc_columns,
    holm_family,
    paired_auc_test,
    permutation_interval,
    permutation_pvalue,
    within_group_permutations,
)

MODELS = ("model_a", "model_b", "oracle_b", "duration", "duration_spline", "model_a_cal", "model_b_cal")
FEATURES = {"model_a": "embedding", "model_b": "quality", "oracle_b": "oracle", "duration": "log_duration",
            "duration_spline": "log_duration", "model_a_cal": "embedding", "model_b_cal": "quality"}
PERMUTED = ("model_a", "model_b", "oracle_b", "duration", "duration_spline")  # p-values and intervals
PAIRED = (("model_b", "oracle_b", "gap_to_oracle"), ("model_a", "duration_spline", "vs_duration_spline"),
          ("model_b", "duration_spline", "vs_duration_spline"))  # (model, other, key): other - model
CONFUSION_MODELS = ("model_a", "model_b")
METRIC_KEYS = ("auc", "auc_ci_low", "auc_ci_high", "auc_p_perm", "auc_p_holm", "balanced_accuracy", "accuracy",
               "precision", "recall", "f1", "brier", "log_loss")
GRID = np.linspace(0.0, 1.0, 101)


def feature_sets(segments: pd.DataFrame, embeddings, scores: pd.DataFrame,
                 oracle: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """Feature matrices of one variant's rows (in ``segments`` order).

    Returns
    -------
    {"embedding": (N, 2D), "quality": (N, 19), "log_duration": (N, 1)} and, with an oracle table,
    "oracle": (N, 19).
    """
    ids = segments["segment_id"].tolist()
    missing = sorted(set(ids) - set(scores["segment_id"]))
    if missing:
        raise ValueError(f"quality scores: no row for {len(missing)} segment(s), e.g. {missing[:3]}")
    dur = segments["duration"].to_numpy(float)
    if not (dur > 0).all():
        raise ValueError(f"segments: durations must be > 0, got min {dur.min()}")
    out = {"embedding": np.asarray(embeddings.pooled(ids), dtype=float),
           "quality": scores.set_index("segment_id").loc[ids, list(DIMENSIONS)].to_numpy(float),
           "log_duration": np.log(dur)[:, None]}
    if oracle is not None and len(oracle):
        absent = sorted(set(ids) - set(oracle["segment_id"]))
        if absent:
            raise ValueError(f"oracle scores: no row for {len(absent)} segment(s), e.g. {absent[:3]}")
        out["oracle"] = oracle.set_index("segment_id").loc[ids, list(DIMENSIONS)].to_numpy(float)
    return out


def model_preps(n_components: int, spline_knots: int) -> dict[str, FeaturePrep]:
    """The per-fold feature preparation of every model."""
    preps = {m: FeaturePrep("standard") for m in MODELS}
    preps["model_a"] = preps["model_a_cal"] = FeaturePrep("pca", n_components=n_components)
    preps["duration_spline"] = FeaturePrep("spline", n_knots=spline_knots)
    return preps


def _task(kind, X, y, videos, folds, C, prep, n_perm, seed, level, min_cal):
    with threadpool_limits(limits=1):  # two workers on two cores: no nested BLAS threads
        if kind == "perm":
            return permutation_auc_test(X, y, videos, folds, C=C, prep=prep, n_perm=n_perm, seed=seed, level=level)
        return cv_calibrated(X, y, folds, C, prep, min_calibration_class=min_cal, seed=seed)


def _curves(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC TPR at the FPR grid (step function) and interpolated precision at the recall grid."""
    ok = ~np.isnan(p)
    fpr, tpr, _ = roc_curve(y[ok], p[ok])
    tpr_grid = np.array([tpr[fpr <= f + 1e-12].max() for f in GRID])
    prec, rec, _ = precision_recall_curve(y[ok], p[ok])
    prec_grid = np.array([prec[rec >= r - 1e-12].max() for r in GRID])
    return tpr_grid, prec_grid


def _negative_control(X_head, y_head, X_ctrl, y_ctrl, videos_ctrl, C, prep, n_perm, seed, level) -> dict:
    """A model fitted on every headline video predicts the control videos; AUC with a within-video
    permutation p (the scores are fixed, only the labels move) and its shift-model interval."""
    with threadpool_limits(limits=1):
        p = fit_predict_logistic(X_head, y_head, X_ctrl, C, prep)
    labels = np.column_stack([y_ctrl, within_group_permutations(y_ctrl, videos_ctrl, n_perm, seed)])
    aucs = auc_columns(labels, p)
    if not np.isfinite(aucs).all():
        return {"auc": None, "ci_low": None, "ci_high": None, "p": None, "p_two_sided": None}
    lo, hi = permutation_interval(aucs[0], aucs[1:], level=level)
    return {"auc": float(aucs[0]), "ci_low": lo, "ci_high": hi, "p": permutation_pvalue(aucs[1:], aucs[0]),
            "p_two_sided": permutation_pvalue(aucs[1:], aucs[0], "two-sided")}


def run_experiment(segments: pd.DataFrame, embeddings, scores: pd.DataFrame, oracle: pd.DataFrame | None = None, *,
                   C: float = 1.0, n_components: int = 32, spline_knots: int = 5, cv_folds: int = 6,
                   min_calibration_class: int = 6, n_perm: int = 1000, level: float = 0.95, seed: int = 0,
                   negative_control: str | None = "random", n_jobs: int = 2) -> dict:
    """All models on both variants.

    Parameters
    ----------
    segments : segment table (column ``variant`` in {all, duration_matched}, segment_id, video_id,
        student, teacher, label, duration). embeddings : object with ``pooled(ids)``.
    scores : quality scores table. oracle : oracle scores table (None / empty: no ``oracle_b``).
    n_components : PCA axes of Model A. spline_knots : knots of the duration spline.
    cv_folds : student-grouped folds (0 = one per student). n_perm : within-video permutations per
        test. level : interval level. negative_control : the teacher left out of the headline
        numbers and used as the negative control (None or absent from the data: no control).
    n_jobs : joblib workers for the permutation tests and calibrated cross-validations.

    Returns
    -------
    dict with ``metrics`` (nested; variant ``all`` at the top, ``duration_matched.*``, ``teacher.<name>.*``,
    ``negative_control.*``), ``predictions``, ``coefficients``, ``roc`` (full curves for the figure),
    ``plot_data`` ({name: DataFrame} for DVC plots), ``folds``.
    """
    preps = model_preps(n_components, spline_knots)
    data, control, skipped_variants = {}, {}, {}
    for v in VARIANTS:
        seg = segments[segments["variant"] == v].reset_index(drop=True)
        is_ctrl = (seg["teacher"] == negative_control).to_numpy() if negative_control else np.zeros(len(seg), bool)
        head = seg[~is_ctrl].reset_index(drop=True)
        y = head["label"].to_numpy(int)
        # Too little data for this variant (e.g. no CONTINUE time to match durations in a tiny run):
        # reported, not an error; the other variant still runs.
        reason = ("no segments" if head.empty else "one class only" if np.unique(y).size < 2 else
                  "fewer than 2 students" if head["student"].nunique() < 2 else None)
        if reason:
            skipped_variants[v] = {"status": f"skipped: {reason} (graded teachers)", "n_segments": len(head),
                                   "n_stop": int(y.sum()), "n_continue": int((1 - y).sum())}
            continue
        feats = feature_sets(seg, embeddings, scores, oracle)
        data[v] = (head, {k: a[~is_ctrl] for k, a in feats.items()}, y, head["video_id"].to_numpy(str),
                   make_folds(head["student"].to_numpy(str), cv_folds))
        if is_ctrl.any():
            control[v] = (seg[is_ctrl].reset_index(drop=True), {k: a[is_ctrl] for k, a in feats.items()})
    if not data:
        raise ValueError(f"no segment variant has both classes from two students: {skipped_variants}")
    have = [m for m in MODELS if FEATURES[m] in next(iter(data.values()))[1]]

    # One parallel pass over every permutation test and calibrated CV, costliest (embedding) first.
    jobs = [(v, m) for m in have for v in VARIANTS if v in data]
    jobs.sort(key=lambda j: (FEATURES[j[1]] != "embedding", j[1].endswith("_cal")))
    out = Parallel(n_jobs=n_jobs)(
        delayed(_task)("cal" if m.endswith("_cal") else "perm", data[v][1][FEATURES[m]], data[v][2], data[v][3],
                       data[v][4], C, preps[m], n_perm,
                       seed if m.endswith("_cal") else [seed, VARIANTS.index(v), MODELS.index(m)], level,
                       min_calibration_class) for v, m in jobs)
    res = dict(zip(jobs, out))

    metrics: dict = {}
    raw_p: dict[str, float | None] = {}
    preds, roc, coefs, folds_rep = [], [], [], {}
    plot_data: dict[str, pd.DataFrame] = {}
    for vi, v in enumerate(VARIANTS):
        vm = metrics if v == "all" else metrics.setdefault(v, {})
        prefix = "" if v == "all" else f"{v}."
        if v not in data:
            vm.update(skipped_variants[v])
            continue
        head, feats, y, videos, folds = data[v]
        vm.update(status="ok", n_segments=len(y), n_videos=len(np.unique(videos)), n_students=int(head["student"].nunique()),
                  n_folds=int(np.unique(folds).size), n_stop=int(y.sum()), n_continue=int((1 - y).sum()))
        pred_df = head[["segment_id", "variant", "video_id", "student", "teacher", "label", "duration"]].copy()
        roc_grid, pr_grid = {"fpr": GRID}, {"recall": GRID}
        for m in have:
            r = res[(v, m)]
            oof = r["oof"]
            hit, _ = fold_threshold_predictions(oof, y, folds)
            bm = binary_metrics(y, oof, pred=hit)
            entry = {"auc": bm["auc"], "auc_ci_low": r.get("ci_low"), "auc_ci_high": r.get("ci_high"),
                     "auc_p_perm": r.get("p"), "auc_null_mean": r.get("null_mean"),
                     **{k: bm[k] for k in METRIC_KEYS[5:]}, "n": bm["n"], "n_stop": bm["n_stop"],
                     "n_continue": bm["n_continue"], "n_missing": bm["n_missing"],
                     "folds_skipped": len(r["skipped"])}
            if m.endswith("_cal"):
                entry["folds_calibration_fallback"] = r["n_calibration_fallback"]
                folds_rep[f"{v}.{m}"] = {"skipped": r["skipped"], "calibration_fallback": r["calibration_fallback_folds"]}
            else:
                raw_p[f"{prefix}{m}.auc_p_perm"] = r["p"]
                folds_rep[f"{v}.{m}"] = {"skipped": r["skipped"]}
            vm[m] = entry
            pred_df[f"p_{m}"] = oof
            if bm["auc"] is not None:
                ok = ~np.isnan(oof)
                fpr, tpr, _ = roc_curve(y[ok], oof[ok])
                roc.append(pd.DataFrame({"variant": v, "model": m, "fpr": fpr, "tpr": tpr}))
                roc_grid[m], pr_grid[m] = _curves(y, oof)
            if m in CONFUSION_MODELS:
                ok = ~np.isnan(oof)
                names = np.array(["CONTINUE", "STOP"])
                plot_data[f"confusion_{v}_{m}"] = pd.DataFrame({"actual": names[y[ok]],
                                                                "predicted": names[hit[ok].astype(int)]})
        plot_data[f"roc_{v}"] = pd.DataFrame(roc_grid)
        plot_data[f"pr_{v}"] = pd.DataFrame(pr_grid)
        for a, b, key in PAIRED:
            if a in have and b in have and res[(v, a)]["auc"] is not None and res[(v, b)]["auc"] is not None:
                t = paired_auc_test(y, res[(v, a)]["oof"], res[(v, b)]["oof"], videos, n_perm=n_perm,
                                    seed=[seed, vi, MODELS.index(a), MODELS.index(b)], level=level)
                vm[a][key] = {
                    "delta_auc": t["delta"], "ci_low": t["ci_low"], "ci_high": t["ci_high"], "p": t["p"]}
                raw_p[f"{prefix}{a}.{key}.p"] = t["p"]
        for tname in sorted(head["teacher"].unique()):
            sel = (head["teacher"] == tname).to_numpy()
            tm = vm.setdefault("teacher", {}).setdefault(tname, {})
            tm.update(n_videos=len(np.unique(videos[sel])), n_stop=int(y[sel].sum()),
                      n_continue=int((1 - y[sel]).sum()))
            for m in have:
                tm[m] = {"auc": binary_metrics(y[sel], res[(v, m)]["oof"][sel])["auc"]}
        if v in control:
            cseg, cfeats = control[v]
            cy, cvid = cseg["label"].to_numpy(int), cseg["video_id"].to_numpy(str)
            nc = vm.setdefault("negative_control", {})
            nc.update(teacher=negative_control, n_videos=len(np.unique(cvid)), n_stop=int(cy.sum()),
                      n_continue=int((1 - cy).sum()))
            for m in (m for m in PERMUTED if m in have):
                nc[m] = _negative_control(feats[FEATURES[m]], y, cfeats[FEATURES[m]], cy, cvid, C, preps[m], n_perm,
                                          [seed, vi, MODELS.index(m), 99], level)
                raw_p[f"{prefix}negative_control.{m}.p"] = nc[m]["p"]
        preds.append(pred_df)
        with threadpool_limits(limits=1):
            pipe = make_classifier(C, seed=seed).fit(feats["quality"], y)
        cat_of = {d: c for c, ds in CATEGORIES.items() for d in ds}
        coefs.append(pd.DataFrame({"variant": v, "dimension": list(DIMENSIONS),
                                   "category": [cat_of[d] for d in DIMENSIONS],
                                   "coefficient": pipe.named_steps["lr"].coef_[0]}))

    # The stage's whole family of p-values, Holm-corrected together.
    holm = holm_family(raw_p)
    for key, adj in holm.items():
        node, parts = metrics, key.split(".")
        for part in parts[:-1]:
            node = node[part]
        node["auc_p_holm" if parts[-1] == "auc_p_perm" else "p_holm"] = adj
    metrics["settings"] = {"C": C, "n_components": n_components, "spline_knots": spline_knots, "cv_folds": cv_folds,
                           "cv_groups": "student", "min_calibration_class": min_calibration_class, "n_perm": n_perm,
                           "interval": f"{level:.0%} permutation (shift-model) interval",
                           "threshold": "training-fold STOP rate", "seed": seed,
                           "negative_control_teacher": negative_control, "n_pvalues_holm": len(raw_p)}
    for v in VARIANTS:  # DVC plot files exist whatever happened (empty when a variant was skipped)
        plot_data.setdefault(f"roc_{v}", pd.DataFrame({"fpr": GRID}))
        plot_data.setdefault(f"pr_{v}", pd.DataFrame({"recall": GRID}))
        for m in CONFUSION_MODELS:
            plot_data.setdefault(f"confusion_{v}_{m}", pd.DataFrame(columns=["actual", "predicted"]))
    return {"metrics": metrics, "predictions": pd.concat(preds, ignore_index=True),
            "coefficients": pd.concat(coefs, ignore_index=True),
            "roc": pd.concat(roc, ignore_index=True) if roc else pd.DataFrame(columns=["variant", "model", "fpr", "tpr"]),
            "plot_data": plot_data, "folds": folds_rep}


def metrics_table(metrics: dict) -> pd.DataFrame:
    """Long table variant, model, metric columns (for the bar chart and its CSV)."""
    rows = []
    for v in VARIANTS:
        vm = metrics if v == "all" else metrics[v]
        for m in MODELS:
            if isinstance(vm.get(m), dict):
                rows.append({"variant": v, "model": m, "label": f"{v}/{m}", **{k: vm[m].get(k) for k in METRIC_KEYS}})
    return pd.DataFrame(rows)


def plot_roc(roc: pd.DataFrame, metrics: dict, path: str) -> None:
    """One panel per variant, one ROC curve per model (AUC in the legend)."""
    import matplotlib.pyplot as plt

    from pianoeval.plots import save

    fig, axes = plt.subplots(1, len(VARIANTS), figsize=(5 * len(VARIANTS), 4.6), sharey=True)
    for ax, v in zip(np.atleast_1d(axes), VARIANTS):
        vm = metrics if v == "all" else metrics[v]
        if vm.get("status") != "ok":
            ax.set_title(f"{v}: {vm.get('status')}", fontsize=9)
            continue
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
    fig.suptitle("STOP vs CONTINUE, cross-validated by student (graded teachers)")
    save(fig, path)


def plot_metrics(table: pd.DataFrame, path: str) -> None:
    """AUC with its permutation interval and the threshold metrics, per model and variant."""
    import matplotlib.pyplot as plt

    from pianoeval.plots import save

    names = ["auc", "balanced_accuracy", "precision", "recall", "f1", "brier"]
    fig, axes = plt.subplots(1, len(VARIANTS), figsize=(6 * len(VARIANTS), 4), sharey=True)
    for ax, v in zip(np.atleast_1d(axes), VARIANTS):
        t = table[table["variant"] == v].set_index("model")
        w = 0.8 / max(len(t), 1)
        for i, m in enumerate(t.index):
            vals = t.loc[m, names].astype(float).fillna(0.0).to_numpy()
            x = np.arange(len(names)) + i * w - 0.4 + w / 2
            ax.bar(x, vals, width=w, label=m)
            auc, lo, hi = (t.loc[m, k] for k in ("auc", "auc_ci_low", "auc_ci_high"))
            if pd.notna(auc) and pd.notna(lo):
                ax.errorbar(x[0], auc, yerr=[[max(auc - lo, 0)], [max(hi - auc, 0)]], color="black", capsize=2,
                            lw=0.8)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xticks(np.arange(len(names)), names, fontsize=8)
        ax.set_title(v)
        ax.legend(fontsize=7)
    fig.suptitle("Cross-validated metrics (AUC bars: 95% permutation interval)")
    save(fig, path)


def plot_coefficients(coefs: pd.DataFrame, path: str) -> None:
    from pianoeval.plots import bar_chart_per_dimension

    bar_chart_per_dimension(coefs, path, title="Model B: standardised logistic coefficients (graded teachers' segments)",
                            value="coefficient", group="variant")
