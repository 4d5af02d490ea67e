"""STOP-vs-CONTINUE classifiers, leave-one-video-out CV, metrics, cluster bootstrap, permutation test.

Videos are the unit of independence: folds hold out one whole video, the AUC confidence interval
resamples videos, and the permutation test shuffles labels only within each video (so per-video
STOP rates, which a classifier could learn from video identity, are kept under the null).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

MAX_ITER = 5000
# Multi-threaded BLAS makes scipy's L-BFGS ~15x slower on these small (hundreds x 256) problems
# (thread spin-up per tiny matrix op); every fitting loop runs single-threaded BLAS.
_ONE_BLAS_THREAD = dict(limits=1, user_api="blas")
_LOG_EPS = 1e-15


def make_classifier(C: float = 1.0, calibrate: bool = False, seed: int = 0, max_iter: int = MAX_ITER):
    """StandardScaler + L2 logistic regression; ``calibrate`` wraps it in 3-fold isotonic calibration."""
    base = Pipeline(
        [("scale", StandardScaler()), ("lr", LogisticRegression(C=C, max_iter=max_iter, random_state=seed))]
    )
    return CalibratedClassifierCV(base, method="isotonic", cv=3) if calibrate else base


def _check_xyv(X, y, videos):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    videos = np.asarray(videos).astype(str)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (N, F), got shape {X.shape}")
    if y.shape != (X.shape[0],) or videos.shape != (X.shape[0],):
        raise ValueError(f"y {y.shape} and videos {videos.shape} must both have shape ({X.shape[0]},) like X")
    if not np.isfinite(X).all():
        rows = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise ValueError(f"X has non-finite values in {rows.size} row(s), first rows {rows[:5].tolist()}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"y must be 0/1, got values {np.unique(y)[:10].tolist()}")
    return X, y.astype(int), videos


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC via the rank-sum formula (ties count 1/2); None if only one class."""
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return None
    r = rankdata(p)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _video_folds(videos: np.ndarray):
    """[(video, train_idx, test_idx)] in sorted video order."""
    return [(v, np.flatnonzero(videos != v), np.flatnonzero(videos == v)) for v in np.unique(videos)]


def loo_video_cv(
    X, y, videos, C: float = 1.0, calibrated: bool = False, min_calibration_class: int = 6, seed: int = 0
) -> dict:
    """Leave-one-video-out out-of-fold probabilities.

    Parameters
    ----------
    X : (N, F) features. y : (N,) 0/1 labels (1 = STOP). videos : (N,) video id of each sample.
    C : inverse L2 strength. calibrated : use isotonic calibration (3-fold, inside the training fold).
    min_calibration_class : calibrate a fold only if its training set has at least this many samples of
        the smaller class; otherwise fall back to the uncalibrated model and flag the fold.

    Returns
    -------
    dict with ``oof`` (N,) P(STOP) (NaN in skipped folds); ``folds`` (one record per video: sizes,
    ``status`` "ok"/"skipped", ``reason``, ``calibrated``); ``skipped`` [{video, reason}] for folds whose
    training set has one class; ``calibration_fallback`` [video] (calibrated variant only); counts.
    """
    X, y, videos = _check_xyv(X, y, videos)
    if calibrated and min_calibration_class < 3:
        raise ValueError(f"min_calibration_class must be >= 3 for 3-fold calibration, got {min_calibration_class}")
    oof = np.full(y.shape, np.nan)
    folds, skipped, fallback = [], [], []
    for video, tr, te in _video_folds(videos):
        counts = np.bincount(y[tr], minlength=2)
        rec = {"video": str(video), "n_train": int(tr.size), "n_test": int(te.size),
               "n_test_stop": int(y[te].sum()), "status": "ok", "reason": None, "calibrated": False}
        folds.append(rec)
        if counts.min() == 0:
            rec.update(status="skipped", reason=f"training set has only class {int(counts.argmax())}")
            skipped.append({"video": rec["video"], "reason": rec["reason"]})
            continue
        use_cal = calibrated and counts.min() >= min_calibration_class
        if calibrated and not use_cal:
            rec["reason"] = (f"calibration fallback: smaller training class has {int(counts.min())}"
                             f" < {min_calibration_class} samples")
            fallback.append(rec["video"])
        with threadpool_limits(**_ONE_BLAS_THREAD):
            model = make_classifier(C, calibrate=use_cal, seed=seed).fit(X[tr], y[tr])
        rec["calibrated"] = bool(use_cal)
        oof[te] = model.predict_proba(X[te])[:, 1]
    return {
        "oof": oof,
        "folds": folds,
        "skipped": skipped,
        "calibration_fallback": fallback,
        "n_folds": len(folds),
        "n_skipped": len(skipped),
        "n_calibration_fallback": len(fallback),
        "calibrated_variant": bool(calibrated),
    }


def binary_metrics(y, p, threshold: float = 0.5) -> dict:
    """Threshold and probability metrics on samples with a prediction (NaN predictions are counted, not used).

    Parameters
    ----------
    y : (N,) 0/1 labels. p : (N,) P(label 1), NaN = no prediction. threshold : predict 1 when p >= threshold.

    Returns
    -------
    dict: auc (None with one class), accuracy, precision (None if nothing predicted 1), recall (None if
    no positives), f1, brier, log_loss (p clipped to [1e-15, 1-1e-15]), n, n_stop, n_continue, n_missing.
    """
    y = np.asarray(y)
    p = np.asarray(p, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y {y.shape} and p {p.shape} must be 1-D of equal length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"y must be 0/1, got values {np.unique(y)[:10].tolist()}")
    ok = ~np.isnan(p)
    y, p = y[ok].astype(int), p[ok]
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"p must lie in [0, 1], got range [{p.min()}, {p.max()}]")
    out = {"n": int(y.size), "n_stop": int(y.sum()), "n_continue": int(y.size - y.sum()),
           "n_missing": int((~ok).sum()), "threshold": float(threshold)}
    if y.size == 0:
        return {**dict.fromkeys(["auc", "accuracy", "precision", "recall", "f1", "brier", "log_loss"]), **out}
    pred = p >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    pc = np.clip(p, _LOG_EPS, 1 - _LOG_EPS)
    return {
        "auc": _auc(y, p),
        "accuracy": float((pred == (y == 1)).mean()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))),
        **out,
    }


def bootstrap_auc_ci(
    y, p, videos, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float | None, float | None]:
    """Cluster-bootstrap percentile CI of the AUC, resampling whole videos with replacement.

    Samples with NaN ``p`` are ignored. Resamples containing one class only are discarded.
    Vectorised: the pairwise (positive, negative) concordance is aggregated once into a (V, V) matrix
    of video pairs; each resample is then a vector of video multiplicities ``k`` and its AUC is
    ``k @ W @ k / ((k @ n_pos) * (k @ n_neg))``.

    Parameters
    ----------
    y : (N,) 0/1. p : (N,) scores. videos : (N,) cluster ids.

    Returns
    -------
    (lo, hi) or (None, None) when no resample has both classes.
    """
    y, p, videos = np.asarray(y), np.asarray(p, dtype=float), np.asarray(videos).astype(str)
    if not (y.shape == p.shape == videos.shape) or y.ndim != 1:
        raise ValueError(f"y {y.shape}, p {p.shape}, videos {videos.shape} must be 1-D of equal length")
    ok = ~np.isnan(p)
    y, p, videos = y[ok].astype(int), p[ok], videos[ok]
    uniq, code = np.unique(videos, return_inverse=True)
    V = uniq.size
    if V == 0:
        return None, None
    pos = y == 1
    score = np.zeros((int(pos.sum()), V))  # concordance of each positive with video b's negatives
    p_pos = p[pos]
    for b in range(V):
        negs = np.sort(p[(code == b) & ~pos])
        lt = np.searchsorted(negs, p_pos, side="left")
        le = np.searchsorted(negs, p_pos, side="right")
        score[:, b] = lt + 0.5 * (le - lt)
    W = np.zeros((V, V))
    np.add.at(W, code[pos], score)
    n_pos = np.bincount(code[pos], minlength=V).astype(float)
    n_neg = np.bincount(code[~pos], minlength=V).astype(float)
    rng = np.random.default_rng(seed)
    K = rng.multinomial(V, np.full(V, 1.0 / V), size=n_boot).astype(float)  # (B, V) multiplicities
    num = ((K @ W) * K).sum(axis=1)
    den = (K @ n_pos) * (K @ n_neg)
    valid = den > 0
    if not valid.any():
        return None, None
    a = (1 - level) / 2 * 100
    lo, hi = np.percentile(num[valid] / den[valid], [a, 100 - a])
    return float(lo), float(hi)


def _row_space(xtr: np.ndarray, xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of train/test rows in the row space of the training matrix: (n, F) -> (n, r), r <= n_train.

    An L2-penalised logistic regression has its optimal weights in the row space of its training
    matrix (a component orthogonal to every training row changes no training logit and only adds
    penalty), so fitting on these r coordinates gives the same model and the same test predictions.
    With F = 512 embedding dimensions and ~150 training rows each refit becomes a small Newton problem.
    """
    with threadpool_limits(**_ONE_BLAS_THREAD):  # threaded LAPACK is ~7x slower on such small matrices
        _, s, vt = np.linalg.svd(xtr, full_matrices=False)
    keep = s > (s[0] if s.size else 0.0) * 1e-10
    if not keep.any():  # constant features: nothing to learn but the intercept
        return np.zeros((len(xtr), 1)), np.zeros((len(xte), 1))
    v = vt[keep].T
    return xtr @ v, xte @ v


def logistic_newton(A: np.ndarray, Y: np.ndarray, C: float = 1.0, max_iter: int = 100, tol: float = 1e-6
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Many L2 logistic regressions sharing one design, solved together by damped Newton steps.

    Minimises, for every column p of ``Y``, scikit-learn's objective divided by C:
    ``sum_i [log(1 + exp(eta_i)) - y_ip eta_i] + ||w_p||^2 / (2C)``, ``eta = A w_p + b_p`` (intercept
    not penalised), so the optimum equals ``LogisticRegression(C=C)``'s.

    Parameters
    ----------
    A : (n, r) features. Y : (n, P) 0/1 labels, one problem per column.

    Returns
    -------
    W : (r, P) weights. b : (P,) intercepts.
    """
    n, r = A.shape
    X1 = np.hstack([A, np.ones((n, 1))])
    X1f = X1.astype(np.float32)
    reg = np.r_[np.full(r, 1.0 / C), 0.0][:, None]
    diag = np.arange(r)  # the intercept (index r) gets no ridge term

    def objective(B):
        eta = X1 @ B
        return (np.logaddexp(0.0, eta) - Y * eta).sum(axis=0) + 0.5 * (reg * B * B).sum(axis=0)

    B = np.zeros((r + 1, Y.shape[1]))
    f = objective(B)
    with threadpool_limits(**_ONE_BLAS_THREAD):
        for _ in range(max_iter):
            P = expit(X1 @ B)
            G = X1.T @ (P - Y) + reg * B  # (r+1, P)
            if np.abs(G).max() < tol:
                break
            # float32 Hessian: half the time; an inexact Newton direction still converges (gradient is float64)
            H = (X1f.T[None] * (P * (1 - P)).T[:, None, :].astype(np.float32)) @ X1f  # (P, r+1, r+1)
            H[:, diag, diag] += 1.0 / C
            H[:, r, r] += 1e-6  # keeps a one-class column's Hessian invertible
            step = np.linalg.solve(H, G.T[..., None].astype(np.float32))[..., 0].T.astype(float)
            t = np.ones(B.shape[1])
            for _ in range(40):  # halve the step of every problem whose objective went up
                Bn = B - step * t
                fn = objective(Bn)
                worse = fn > f + 1e-12 * np.abs(f)
                if not worse.any():
                    break
                t = np.where(worse, t / 2, t)
            if np.abs(Bn - B).max() < tol:
                B, f = Bn, fn
                break
            B, f = Bn, fn
    return B[:r], B[r]


def permutation_null_aucs(X, y, videos, C: float = 1.0, n_perm: int = 200, seed=0, batch: int = 100) -> np.ndarray:
    """Null distribution of the leave-one-video-out AUC (uncalibrated model), labels permuted within video.

    The whole CV is refitted for every permutation. Fold splits, the per-fold standardisation and the
    projection onto the training rows' span (:func:`_row_space`, exact for L2 logistic regression) depend
    only on X, so they are computed once; each fold then fits all permutations together with
    :func:`logistic_newton` (the same optimum as :func:`loo_video_cv`'s fit). Within-video permutation
    keeps every fold's class counts, so the same folds are skipped as in :func:`loo_video_cv`.

    Parameters
    ----------
    X : (N, F). y : (N,) 0/1. videos : (N,). C : inverse L2 strength. n_perm : permutations.
    seed : anything ``np.random.default_rng`` takes (chunks of one test use ``[seed, chunk]``).
    batch : permutations fitted together (memory ~ batch * n_train^2 * 4 bytes per fold).

    Returns
    -------
    (n_perm,) AUCs under the null.
    """
    X, y, videos = _check_xyv(X, y, videos)
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    _, code = np.unique(videos, return_inverse=True)
    by_video = np.argsort(code, kind="stable")
    rng = np.random.default_rng(seed)
    perms = np.empty((y.size, n_perm), dtype=y.dtype)
    for k in range(n_perm):
        # lexsort groups by video and shuffles inside each group; slots of by_video have the same layout
        shuffled = np.lexsort((rng.random(y.size), code))
        perms[by_video, k] = y[shuffled]
    return np.concatenate([_cv_aucs(X, perms[:, i:i + batch], videos, C) for i in range(0, n_perm, batch)])


def _cv_aucs(X: np.ndarray, labels: np.ndarray, videos: np.ndarray, C: float) -> np.ndarray:
    """labels (N, P) -> (P,) leave-one-video-out AUCs, one per label column."""
    oof = np.full(labels.shape, np.nan)
    fitted = False
    for _, tr, te in _video_folds(videos):
        if np.bincount(labels[tr, 0], minlength=2).min() == 0:
            continue  # one-class training set (same for every within-video permutation): skipped
        sc = StandardScaler().fit(X[tr])
        xtr, xte = _row_space(sc.transform(X[tr]), sc.transform(X[te]))
        w, b = logistic_newton(xtr, labels[tr].astype(float), C)
        oof[te] = expit(xte @ w + b)
        fitted = True
    if not fitted:
        raise ValueError("permutation test: every fold has a one-class training set")
    ok = ~np.isnan(oof[:, 0])
    aucs = [_auc(labels[ok, k], oof[ok, k]) for k in range(labels.shape[1])]
    if any(a is None for a in aucs):
        raise ValueError("permutation test: predicted samples contain one class only")
    return np.array(aucs)


def permutation_pvalue_auc(
    X, y, videos, C: float = 1.0, n_perm: int = 200, seed=0, observed_auc: float | None = None,
) -> tuple[float, np.ndarray]:
    """Permutation test of the leave-one-video-out AUC: :func:`permutation_null_aucs` plus the p-value.

    Parameters
    ----------
    observed_auc : pass the AUC of ``loo_video_cv(..., calibrated=False)`` to skip recomputing it.

    Returns
    -------
    p_value : ``(1 + #{null >= observed}) / (n_perm + 1)``.
    null_aucs : (n_perm,) AUCs under the null.
    """
    null = permutation_null_aucs(X, y, videos, C=C, n_perm=n_perm, seed=seed)
    if observed_auc is None:
        X, y, videos = _check_xyv(X, y, videos)
        observed_auc = _cv_aucs(X, y[:, None], videos, C)[0]
    return permutation_pvalue(null, observed_auc), null


def permutation_pvalue(null: np.ndarray, observed: float) -> float:
    """``(1 + #{null >= observed}) / (len(null) + 1)`` (ties count against the model)."""
    null = np.asarray(null, dtype=float)
    return (1 + int((null >= float(observed) - 1e-12).sum())) / (null.size + 1)
