"""Section 8: do reduced dimension sets predict STOP moments as well as all 19 scores?

Every feature set goes through the masterclass stage's classifier and protocol
(``masterclass.classify``: standardised L2 logistic regression, cross-validation grouped by
student, within-video permutation p-value and shift-model interval of the AUC), on the graded
teachers' videos (the negative-control teacher is left out, as in ``metrics/masterclass.json``).
Feature sets (N segments):

* ``all19``: the 19 predicted quality scores;
* ``pca_k``: the scores projected on the first k principal axes of the standardised PercePiano
  labels (k = number of significant factors, fit on the labels, never on the segments);
* ``categories``: the mean score of each of the 8 categories;
* ``top5`` / ``bottom5``: the 5 most / least audible dimensions (highest / lowest probe R^2);
* ``attention``: frames pooled by the attention probe's learned pooling (a D-vector per segment;
  reduced to its leading principal axes inside each training fold, like Model A).

``delta_auc`` is the AUC difference to ``all19``, tested by a *paired* permutation test (the two
sets' scores swapped per video, :func:`pianoeval.stats.paired_auc_test`); "predicts as well" is
claimed only when the TOST equivalence test within +-``margin`` rejects (``p_tost`` < 0.05).
On the simulated default the teachers stop on weighted crowd-rating categories (params.yaml), so
which reduced set works best mirrors those weights.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from joblib import Parallel, delayed

from pianoeval.audit import _as_2d, _fl, _names
from pianoeval.audit.factors import pca_correlation
from pianoeval.audit.probes import _attention_eval, _FrameStore
from pianoeval.dimensions import CATEGORIES, DIMENSIONS
from pianoeval.masterclass.classify import (
    FeaturePrep,
    binary_metrics,
    fold_threshold_predictions,
    make_folds,
    permutation_auc_test_one_thread,
)
from pianoeval.stats import paired_auc_test


def window_frames(frames: np.ndarray, hop: int) -> np.ndarray:
    """Average non-overlapping windows of ``hop`` frames: (T, D) -> (ceil(T / hop), D) float32.

    The last window may be shorter (it averages what is left), so no frame is dropped and a
    segment shorter than ``hop`` becomes one frame. ``hop = 1`` returns the frames unchanged.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or len(frames) == 0:
        raise ValueError(f"frames: expected a non-empty (T, D) array, got shape {frames.shape}")
    if hop < 1:
        raise ValueError(f"hop: must be >= 1, got {hop}")
    if hop == 1:
        return frames
    n_full = len(frames) // hop
    parts = [frames[:n_full * hop].reshape(n_full, hop, -1).mean(1)] if n_full else []
    if n_full * hop < len(frames):
        parts.append(frames[n_full * hop:].mean(0, keepdims=True))
    out = np.concatenate(parts)
    return out.astype(np.float32, copy=False)


def attention_pool(model, frames_list: Sequence[np.ndarray], *, batch_size: int = 64) -> np.ndarray:
    """Attention-pooled embeddings (N, D) of new segments under one trained pooling model.

    ``model`` is an ``AttentionPoolProbe`` (e.g. from ``attention_probe_cv(...,
    return_models=True)``); the frames must be prepared like its training frames (same
    extractor, same ``window_frames`` hop).
    """
    store = _FrameStore(frames_list)
    if store.d != model.head.in_features:
        raise ValueError(f"frames_list: D = {store.d}, the pooling model expects "
                         f"{model.head.in_features}")
    n = len(frames_list)
    pred = np.empty((n, model.head.out_features), dtype=np.float32)
    pooled = np.empty((n, store.d), dtype=np.float32)
    model.eval()
    _attention_eval(model, store, store.sorted_batches(np.arange(n), batch_size), pred, pooled)
    return pooled


def pool_allowed(pooled_by_model: Mapping[str, np.ndarray], segment_ids: Sequence[str],
                 assignment: Mapping[str, Sequence[str]]) -> np.ndarray:
    """Mean over each segment's allowed models of their pooled vectors.

    Parameters
    ----------
    pooled_by_model : model name -> (N, D) pooled embeddings (rows in ``segment_ids`` order).
    assignment : segment id -> names of the models allowed to pool it (leakage guard).

    Returns
    -------
    (N, D) float64.
    """
    out = np.empty((len(segment_ids), next(iter(pooled_by_model.values())).shape[1]))
    for i, s in enumerate(segment_ids):
        models = assignment.get(s) or []
        if not models:
            raise ValueError(f"segment '{s}': no pooling model allowed (leakage guard)")
        out[i] = np.mean([pooled_by_model[m][i] for m in models], axis=0)
    return out


def audibility_ranking(r2: Mapping[str, float | None], n: int = 5) -> tuple[list[str], list[str]]:
    """The ``n`` most and ``n`` least audible dimensions by probe R^2 (None ranks lowest).

    Ties keep the label order.
    """
    names = list(r2)
    if 2 * n > len(names):
        raise ValueError(f"n: {n} top + {n} bottom exceeds the {len(names)} dimensions")
    vals = np.array([-np.inf if r2[k] is None else float(r2[k]) for k in names])
    order = np.argsort(-vals, kind="stable")
    return [names[i] for i in order[:n]], [names[i] for i in order[::-1][:n][::-1]]


def reduced_feature_sets(
    scores: np.ndarray,
    labels: np.ndarray,
    n_factors: int,
    top: Sequence[str],
    bottom: Sequence[str],
    names: Sequence[str] | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Reduced representations of predicted quality scores.

    Parameters
    ----------
    scores : (N, q) predicted scores of the segments (same columns as ``labels``).
    labels : (M, q) PercePiano mean ratings: the PCA axes and the standardisation
        (label mean and std) come from them.
    n_factors : k for ``pca_k`` (at least 1).
    top, bottom : dimension names for ``top5`` / ``bottom5``.
    names : q names (default ``DIMENSIONS``). categories : category -> names (default
        ``CATEGORIES``).

    Returns
    -------
    sets : {"all19", "pca_k", "categories", "top5", "bottom5"} -> (N, k) arrays.
    info : what each set contains (dimension lists, PCA loadings and explained variance).
    """
    labels = _as_2d("labels", labels)
    q = labels.shape[1]
    scores = _as_2d("scores", scores)
    if scores.shape[1] != q:
        raise ValueError(f"scores: {scores.shape[1]} columns, labels have {q}")
    names = _names(names, q)
    categories = CATEGORIES if categories is None else categories
    k = max(1, int(n_factors))
    if k > q:
        raise ValueError(f"n_factors: {n_factors} > {q} dimensions")
    col = {n: j for j, n in enumerate(names)}
    for what, dims in (("top", top), ("bottom", bottom), *((f"category {c}", d) for c, d in categories.items())):
        unknown = [d for d in dims if d not in col]
        if unknown or not dims:
            raise ValueError(f"{what}: unknown or empty dimensions {unknown or list(dims)}")
    evals, evecs, _ = pca_correlation(labels)
    mu, sd = labels.mean(0), labels.std(0)
    sets = {
        "all19": scores,
        "pca_k": (scores - mu) / sd @ evecs[:, :k],
        "categories": np.column_stack([scores[:, [col[d] for d in dims]].mean(1)
                                       for dims in categories.values()]),
        "top5": scores[:, [col[d] for d in top]],
        "bottom5": scores[:, [col[d] for d in bottom]],
    }
    info = {
        "all19": {"dims": names},
        "pca_k": {"k": k, "explained_variance": float(evals[:k].sum() / evals.sum()),
                  "axes": {f"pc{i + 1}": {n: float(evecs[j, i]) for j, n in enumerate(names)}
                           for i in range(k)}},
        "categories": {c: list(d) for c, d in categories.items()},
        "top5": {"dims": list(top)},
        "bottom5": {"dims": list(bottom)},
    }
    return sets, info


def stop_prediction(
    feature_sets: Mapping[str, np.ndarray],
    y: np.ndarray,
    videos: np.ndarray,
    students: np.ndarray | None = None,
    *,
    reference: str = "all19",
    C: float = 1.0,
    cv_folds: int = 6,
    n_components: int = 32,
    n_perm: int = 1000,
    margin: float = 0.05,
    level: float = 0.95,
    seed: int = 0,
    n_jobs: int = 1,
) -> dict:
    """Cross-validated STOP prediction from each feature set, with permutation tests.

    Parameters
    ----------
    feature_sets : name -> (N, F) features of the same N segments.
    y : (N,) 1 = STOP, 0 = CONTINUE. videos : (N,) video of each segment.
    students : (N,) folds never split a student (default: the videos).
    reference : the set the paired AUC differences are taken against.
    C : classifier (``masterclass.classify``). cv_folds : student-grouped folds (0 = one per student).
    n_components : sets wider than this are reduced to their leading principal axes in each fold.
    n_perm : permutations per test. margin : equivalence margin of the TOST (AUC units).
    level : interval level. seed : permutations. n_jobs : joblib workers for the sets' permutation tests.

    Returns
    -------
    dict with ``sets`` ({name: {n_features, auc, auc_ci_low, auc_ci_high, auc_p_perm,
    balanced_accuracy, brier, folds_skipped, delta_auc, delta_ci_low, delta_ci_high, delta_p, p_tost}}),
    ``n``, ``n_stop``, ``n_videos``, ``n_folds``, ``reference``, ``margin`` and ``oof`` (**ndarray**
    (N, n_sets), columns in set order).
    """
    y = np.asarray(y).astype(int)
    videos = np.asarray(videos).astype(str)
    students = videos if students is None else np.asarray(students).astype(str)
    if reference not in feature_sets:
        raise ValueError(f"reference: '{reference}' is not one of {list(feature_sets)}")
    folds = make_folds(students, cv_folds)
    sets = {name: _as_2d(f"feature set '{name}'", X, n_rows=len(y)) for name, X in feature_sets.items()}
    preps = {name: FeaturePrep("pca", n_components=n_components) if X.shape[1] > n_components else FeaturePrep()
             for name, X in sets.items()}
    tests = Parallel(n_jobs=n_jobs)(
        delayed(permutation_auc_test_one_thread)(X, y, videos, folds, C, preps[name], n_perm, [seed, k], level)
        for k, (name, X) in enumerate(sets.items()))
    oof, out = {}, {}
    for (name, X), r in zip(sets.items(), tests):
        hit, _ = fold_threshold_predictions(r["oof"], y, folds)
        m = binary_metrics(y, r["oof"], pred=hit)
        oof[name] = r["oof"]
        out[name] = {"n_features": int(X.shape[1]), "auc": r["auc"], "auc_ci_low": r["ci_low"],
                     "auc_ci_high": r["ci_high"], "auc_p_perm": r["p"], "balanced_accuracy": m["balanced_accuracy"],
                     "brier": m["brier"], "folds_skipped": len(r["skipped"])}
    for k, (name, r) in enumerate(out.items()):
        none = dict.fromkeys(("delta_auc", "delta_ci_low", "delta_ci_high", "delta_p", "p_tost"))
        if name == reference or r["auc"] is None or out[reference]["auc"] is None:
            r.update(none)
            continue
        ok = ~(np.isnan(oof[reference]) | np.isnan(oof[name]))
        t = paired_auc_test(y[ok], oof[reference][ok], oof[name][ok], videos[ok], n_perm=n_perm,
                            seed=[seed, 100 + k], margin=margin, level=level)
        r.update(delta_auc=t["delta"], delta_ci_low=t["ci_low"], delta_ci_high=t["ci_high"], delta_p=t["p"],
                 p_tost=t["p_tost"])
    return {"reference": reference, "n": int(y.size), "n_stop": int(y.sum()),
            "n_videos": int(np.unique(videos).size), "n_folds": int(np.unique(folds).size), "margin": margin,
            "sets": out, "oof": np.column_stack(list(oof.values()))}


def training_pianists(fold_ids: np.ndarray, pianist_ids: np.ndarray) -> list[set[int]]:
    """Pianists each fold model trained on (every row outside its test fold), in fold order."""
    fold_ids, pianist_ids = np.asarray(fold_ids), np.asarray(pianist_ids)
    return [{int(v) for v in np.unique(pianist_ids[fold_ids != f])} for f in np.unique(fold_ids)]


def attention_embeddings(models: Sequence[torch.nn.Module], model_pianists: Sequence[set[int]],
                         frames_list: Sequence[np.ndarray], segment_ids: Sequence[str],
                         segment_pianists: Mapping[str, set[int]] | None,
                         *, batch_size: int = 64) -> tuple[np.ndarray, dict]:
    """Leakage-guarded attention pooling of new segments with the probe's fold models.

    A fold model may pool a segment only if it never trained on any of the segment's pianists
    (``segment_pianists``; None = no provenance, e.g. real recordings: every model is used).
    Each segment's embedding is the mean of its allowed models' pooled vectors.

    Returns
    -------
    pooled : (N, D). report : models per segment and the guard used.
    """
    from pianoeval.masterclass.scoring import allowed_models, check_no_leakage

    names = [f"attention_fold{i}" for i in range(len(models))]
    trained = dict(zip(names, (set(s) for s in model_pianists)))
    assignment = allowed_models(segment_pianists, trained, list(segment_ids))
    check_no_leakage(assignment, segment_pianists, trained)
    with torch.no_grad():
        pooled = {n: attention_pool(m, frames_list, batch_size=batch_size) for n, m in zip(names, models)}
    counts = np.array([len(assignment[s]) for s in segment_ids])
    return pool_allowed(pooled, segment_ids, assignment), {
        "n_segments": len(segment_ids), "n_models": len(models),
        "leakage_guard": ("pianist-disjoint fold models only" if segment_pianists is not None else
                          "no provenance: every fold model pools every segment"),
        "models_per_segment": {"min": int(counts.min()), "mean": float(counts.mean()),
                               "max": int(counts.max())},
    }


def downstream_stop(
    segments,
    scores,
    attention_by_id: Mapping[str, np.ndarray] | None,
    labels: np.ndarray,
    n_factors: int,
    probe_r2: Mapping[str, float | None],
    *,
    variants: Sequence[str] = ("all", "duration_matched"),
    n_extreme: int = 5,
    C: float = 1.0,
    cv_folds: int = 6,
    n_components: int = 32,
    n_perm: int = 1000,
    margin: float = 0.05,
    level: float = 0.95,
    seed: int = 0,
    negative_control: str | None = "random",
    n_jobs: int = 1,
) -> dict:
    """Section 8 on a masterclass segment table.

    Parameters
    ----------
    segments : DataFrame with columns variant, segment_id, video_id, label (1 = STOP), teacher and
        (optional) student.
    scores : DataFrame with segment_id and the 19 dimension columns (predicted quality).
    attention_by_id : segment id -> (D,) attention-pooled embedding; None leaves the
        ``attention`` set out.
    labels : (M, 19) PercePiano mean ratings (PCA axes of ``pca_k``).
    n_factors : k of ``pca_k`` (the number of significant factors).
    probe_r2 : {dim: R^2} ranking audibility (top / bottom ``n_extreme``).
    variants : segment variants to evaluate (each must be present).
    C, cv_folds, n_components, n_perm, margin, level, seed, n_jobs : see ``stop_prediction``.
    negative_control : teacher whose videos are left out (the masterclass stage's negative control).

    Returns
    -------
    dict with ``variants`` ({variant: ``stop_prediction`` result, oof dropped}),
    ``feature_sets`` (what each set holds), ``top`` / ``bottom``, ``n_control_segments_excluded`` and
    ``headline`` ({variant.set.auc / auc_ci_low / auc_ci_high / auc_p_perm / delta_auc / delta_p /
    p_tost}, variant ``all`` unprefixed).
    """
    dims = list(DIMENSIONS)
    missing = [c for c in ("segment_id", "video_id", "label", "variant")
               if c not in segments.columns]
    if missing:
        raise ValueError(f"segments: missing columns {missing}")
    lacking = [d for d in ["segment_id", *dims] if d not in scores.columns]
    if lacking:
        raise ValueError(f"quality scores: missing columns {lacking}")
    top, bottom = audibility_ranking({d: probe_r2.get(d) for d in dims}, n_extreme)
    by_id = scores.drop_duplicates("segment_id").set_index("segment_id")
    out = {"variants": {}, "top": top, "bottom": bottom, "headline": {}, "negative_control_teacher": negative_control}
    from pianoeval.masterclass.features import VARIANTS

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:  # a params mistake; a known variant without rows (a tiny run) is skipped below
        raise ValueError(f"params audit.downstream.variants: unknown variant '{unknown[0]}' (have {VARIANTS})")
    is_ctrl = (segments["teacher"] == negative_control) if negative_control and "teacher" in segments else \
        np.zeros(len(segments), bool)
    out["n_control_segments_excluded"] = int(np.sum(is_ctrl))
    segments = segments[~np.asarray(is_ctrl)]
    for v in variants:
        seg = segments[segments["variant"] == v]
        labels_v = seg["label"].to_numpy(int)
        n_students = seg["student" if "student" in seg else "video_id"].nunique()
        if np.unique(labels_v).size < 2 or n_students < 2:  # e.g. nothing to match in a tiny run: reported
            out["variants"][v] = {"status": f"skipped: {len(seg)} segments, {int(labels_v.sum())} STOP, "
                                            f"{n_students} students (needs both classes and 2 students)"}
            continue
        ids = seg["segment_id"].astype(str).tolist()
        absent = sorted(set(ids) - set(by_id.index))
        if absent:
            raise ValueError(f"quality scores: no row for {len(absent)} segment(s), e.g. {absent[:3]}")
        sets, info = reduced_feature_sets(by_id.loc[ids, dims].to_numpy(float), labels, n_factors,
                                          top, bottom, dims)
        if attention_by_id is not None:
            absent = [s for s in ids if s not in attention_by_id]
            if absent:
                raise ValueError(f"attention embeddings: none for {len(absent)} segment(s), e.g. {absent[:3]}")
            sets["attention"] = np.stack([np.asarray(attention_by_id[s], float) for s in ids])
            info["attention"] = {"dim": int(sets["attention"].shape[1])}
        students = seg["student"].to_numpy(str) if "student" in seg else None
        res = stop_prediction(sets, seg["label"].to_numpy(int), seg["video_id"].to_numpy(str), students,
                              C=C, cv_folds=cv_folds, n_components=n_components, n_perm=n_perm, margin=margin,
                              level=level, seed=seed, n_jobs=n_jobs)
        res.pop("oof")
        out["variants"][v] = {"status": "ok", **res}
        out["feature_sets"] = info
        prefix = "" if v == "all" else f"{v}."
        for name, r in res["sets"].items():
            for key in ("auc", "auc_ci_low", "auc_ci_high", "auc_p_perm", "delta_auc", "delta_p", "p_tost"):
                out["headline"][f"{prefix}{name}.{key}"] = r[key]
    return out
