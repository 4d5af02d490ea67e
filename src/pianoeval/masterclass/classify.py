"""STOP-vs-CONTINUE classifiers, grouped cross-validation, metrics, permutation tests and intervals.

Videos of one student are the unit of independence: cross-validation folds hold out whole
students (:func:`make_folds`), the permutation test shuffles labels only within each video (so a
video's STOP rate, which a classifier could learn from its identity, is kept under the null), and
the AUC interval is the shift-model inversion of that test (:func:`pianoeval.stats.permutation_interval`):
its coverage of 0.5 on null data is the test's level, measured on the real design in
``tests/test_masterclass_classify.py``. The video-bootstrap percentile interval
(:func:`bootstrap_auc_ci`) is kept only to show, in the same test, that it is too narrow.

The uncalibrated classifier is standardise (+ optional fold-internal PCA or a spline basis) + L2
logistic regression, solved for the true labels and every permutation at once by batched Newton
steps (:func:`logistic_newton`): the observed AUC and its null come from one procedure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from pianoeval.stats import auc_columns, permutation_interval, permutation_pvalue, within_group_permutations

MAX_ITER = 5000
# Multi-threaded BLAS makes these small (hundreds x tens) problems slower (thread spin-up per tiny
# matrix op); every fitting loop runs single-threaded BLAS.
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


def make_folds(groups, n_folds: int) -> np.ndarray:
    """(N,) fold id of each sample: GroupKFold over ``groups`` (students), deterministic (largest groups
    first, balanced sizes). ``n_folds`` 0, or at least the number of groups, gives one fold per group
    (leave-one-student-out)."""
    groups = np.asarray(groups).astype(str)
    uniq, code = np.unique(groups, return_inverse=True)
    if uniq.size < 2:
        raise ValueError(f"cross-validation needs at least 2 students/videos, got {uniq.size}")
    if n_folds == 0 or n_folds >= uniq.size:
        return code
    if n_folds < 2:
        raise ValueError(f"cv_folds must be 0 (one per student) or >= 2, got {n_folds}")
    folds = np.empty(groups.size, dtype=int)
    for k, (_, test) in enumerate(GroupKFold(n_splits=n_folds).split(groups, groups=groups)):
        folds[test] = k
    return folds


@dataclass(frozen=True)
class FeaturePrep:
    """What a fold does to its features before the logistic regression, fit on the training rows only.

    kind: ``"standard"`` (z-score), ``"pca"`` (z-score, then the coordinates on the ``n_components``
    leading principal axes of the training rows, not whitened: a 512-d pooled embedding with a few
    hundred rows), or
    ``"spline"`` (a single column, e.g. log duration: a cubic B-spline basis with ``n_knots`` knots at
    training quantiles, linear beyond them, then z-scored: the flexible duration baseline).
    """

    kind: str = "standard"
    n_components: int = 32
    n_knots: int = 5

    def __post_init__(self):
        if self.kind not in ("standard", "pca", "spline"):
            raise ValueError(f"FeaturePrep.kind must be standard, pca or spline, got {self.kind!r}")

    def __call__(self, X_tr: np.ndarray, X_te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if X_tr.ndim == 3:  # D data sets at once (null-data checks): z-scoring only
            if self.kind != "standard":
                raise ValueError(f"batched data sets support FeaturePrep('standard') only, not {self.kind!r}")
            mu, sd = X_tr.mean(1, keepdims=True), X_tr.std(1, keepdims=True)
            sd = np.where(sd > 1e-12, sd, 1.0)
            return (X_tr - mu) / sd, (X_te - mu) / sd
        if self.kind == "spline":
            from sklearn.preprocessing import SplineTransformer

            if X_tr.shape[1] != 1:
                raise ValueError(f"spline features need one column, got {X_tr.shape[1]}")
            sp = SplineTransformer(n_knots=self.n_knots, degree=3, knots="quantile", extrapolation="linear")
            X_tr, X_te = sp.fit_transform(X_tr), sp.transform(X_te)
        mu, sd = X_tr.mean(0), X_tr.std(0)
        sd = np.where(sd > 1e-12, sd, 1.0)
        Z_tr, Z_te = (X_tr - mu) / sd, (X_te - mu) / sd
        if self.kind == "pca" and self.n_components < min(Z_tr.shape):
            with threadpool_limits(**_ONE_BLAS_THREAD):
                _, s, vt = np.linalg.svd(Z_tr, full_matrices=False)
            # Not whitened: the model sees the z-scored geometry minus its low-variance directions
            # (whitening would blow up directions the few training rows barely span).
            v = vt[: self.n_components].T
            Z_tr, Z_te = Z_tr @ v, Z_te @ v
        if Z_tr.shape[1] > Z_tr.shape[0]:  # more features than rows: the exact row-space reduction
            Z_tr, Z_te = _row_space(Z_tr, Z_te)
        return Z_tr, Z_te


def _fit_columns(A_tr: np.ndarray, Y_tr: np.ndarray, A_te: np.ndarray, C: float, batch: int) -> np.ndarray:
    """P(label 1) of the test rows for every label column of ``Y_tr`` (n_tr, P): (n_te, P)."""
    lead = A_tr.shape[:-2]  # () or (D,): D data sets sharing the label columns
    out = np.empty((*lead, A_te.shape[-2], Y_tr.shape[1]))
    # memory of the Newton Hessians ~ D * batch * max((r+1)^2, (r+1) n) floats: bounded to ~100 MB
    width = A_tr.shape[-1] + 1
    per_col = int(np.prod(lead)) * width * (width if width <= 64 else A_tr.shape[-2])
    batch = max(1, min(batch, int(2.5e7 // per_col)))
    for i in range(0, Y_tr.shape[1], batch):
        Yb = Y_tr[:, i:i + batch].astype(float)
        w, b = logistic_newton(A_tr, np.broadcast_to(Yb, (*lead, *Yb.shape)) if lead else Yb, C)
        out[..., i:i + batch] = expit(A_te @ w + b[..., None, :])
    return out


def cv_logistic(X, Y, fold_ids, C: float = 1.0, prep: FeaturePrep = FeaturePrep(), batch: int = 500
                ) -> tuple[np.ndarray, list[int]]:
    """Out-of-fold P(STOP) of the L2 logistic regression for every label column at once.

    Parameters
    ----------
    X : (N, F) features, or (D, N, F) for D data sets with the same labels (standard prep only).
    Y : (N,) or (N, P) 0/1 labels (e.g. the true labels and permutations of them).
    fold_ids : (N,) fold of each row (:func:`make_folds`). C : inverse L2 strength.
    prep : the per-fold feature preparation (depends on X only, so it is shared by all columns).

    Returns
    -------
    oof : (N, P) (or (N,); with D data sets (D, N, P)) probabilities; NaN in a fold whose training rows
        hold one class of the first column (within-video permutations keep each fold's class counts,
        so the same folds are skipped).
    skipped : the skipped fold ids.
    """
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y)
    one = Y.ndim == 1
    Y2 = Y[:, None] if one else Y
    fold_ids = np.asarray(fold_ids)
    n = X.shape[-2] if X.ndim == 3 else X.shape[0]
    if X.ndim not in (2, 3) or Y2.shape[0] != n or fold_ids.shape != (n,):
        raise ValueError(f"cv_logistic: X {X.shape}, Y {Y.shape}, fold_ids {fold_ids.shape} disagree")
    oof = np.full((*X.shape[:-2], *Y2.shape), np.nan)
    skipped = []
    for f in np.unique(fold_ids):
        tr, te = np.flatnonzero(fold_ids != f), np.flatnonzero(fold_ids == f)
        if np.bincount(Y2[tr, 0].astype(int), minlength=2).min() == 0:
            skipped.append(int(f))
            continue
        A_tr, A_te = prep(X[..., tr, :], X[..., te, :])
        oof[..., te, :] = _fit_columns(A_tr, Y2[tr], A_te, C, batch)
    return (oof[..., 0] if one else oof), skipped


def fit_predict_logistic(X_tr, y_tr, X_te, C: float = 1.0, prep: FeaturePrep = FeaturePrep()) -> np.ndarray:
    """One model fit on (X_tr, y_tr) -> P(STOP) of X_te (n_te,): e.g. the negative control's held-out videos."""
    A_tr, A_te = prep(np.asarray(X_tr, float), np.asarray(X_te, float))
    return _fit_columns(A_tr, np.asarray(y_tr)[:, None], A_te, C, 1)[:, 0]


def permutation_auc_test(X, y, videos, fold_ids, *, C: float = 1.0, prep: FeaturePrep = FeaturePrep(),
                         n_perm: int = 1000, seed=0, level: float = 0.95) -> dict:
    """Cross-validated AUC with its within-video permutation p-value and shift-model interval.

    The true labels and ``n_perm`` within-video permutations go through the *same* cross-validation
    (:func:`cv_logistic`, one batch): the observed AUC is one more draw of the null distribution when
    the features carry no information, which makes p exact and the interval's coverage of 0.5 equal
    to its level.

    Returns
    -------
    dict: oof (N,), auc, p (one-sided: larger AUC than chance), ci_low, ci_high (``level``), null_mean,
    null (n_perm,), skipped (fold ids), n_perm. auc/p/ci are None when the predicted rows hold one class.
    """
    X, y, videos = _check_xyv(X, y, videos)
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    labels = np.column_stack([y, within_group_permutations(y, videos, n_perm, seed)])
    oof, skipped = cv_logistic(X, labels, fold_ids, C, prep)
    ok = ~np.isnan(oof[:, 0])
    aucs = auc_columns(labels[ok], oof[ok])
    out = {"oof": oof[:, 0], "skipped": skipped, "n_perm": int(n_perm), "auc": None, "p": None, "ci_low": None,
           "ci_high": None, "null_mean": None, "null": aucs[1:]}
    if ok.any() and np.isfinite(aucs).all():
        lo, hi = permutation_interval(aucs[0], aucs[1:], null_value=0.5, level=level)
        out.update(auc=float(aucs[0]), p=permutation_pvalue(aucs[1:], aucs[0]), ci_low=lo, ci_high=hi,
                   null_mean=float(aucs[1:].mean()))
    return out


def permutation_auc_test_one_thread(X, y, videos, fold_ids, C, prep, n_perm, seed, level) -> dict:
    """:func:`permutation_auc_test` with one BLAS thread: the task a joblib worker runs (this module
    imports no torch, so workers start fast)."""
    with threadpool_limits(limits=1):
        return permutation_auc_test(X, y, videos, fold_ids, C=C, prep=prep, n_perm=n_perm, seed=seed, level=level)


def cv_calibrated(X, y, fold_ids, C: float = 1.0, prep: FeaturePrep = FeaturePrep(), *,
                  min_calibration_class: int = 6, seed: int = 0) -> dict:
    """Out-of-fold P(STOP) of the isotonic-calibrated classifier (3-fold calibration inside each training fold).

    A fold is calibrated only if its smaller training class has >= ``min_calibration_class`` samples;
    otherwise the uncalibrated model is used there and the fold is flagged. Returns oof (N,),
    n_calibration_fallback, calibration_fallback_folds, skipped (fold ids with one training class).
    """
    X = np.asarray(X, float)
    y = np.asarray(y).astype(int)
    if min_calibration_class < 3:
        raise ValueError(f"min_calibration_class must be >= 3 for 3-fold calibration, got {min_calibration_class}")
    oof = np.full(y.shape, np.nan)
    fallback, skipped = [], []
    for f in np.unique(fold_ids):
        tr, te = np.flatnonzero(fold_ids != f), np.flatnonzero(fold_ids == f)
        counts = np.bincount(y[tr], minlength=2)
        if counts.min() == 0:
            skipped.append(int(f))
            continue
        A_tr, A_te = prep(X[tr], X[te])
        if counts.min() < min_calibration_class:
            fallback.append(int(f))
            oof[te] = _fit_columns(A_tr, y[tr, None], A_te, C, 1)[:, 0]
            continue
        with threadpool_limits(**_ONE_BLAS_THREAD):
            model = make_classifier(C, calibrate=True, seed=seed).fit(A_tr, y[tr])
        oof[te] = model.predict_proba(A_te)[:, 1]
    return {"oof": oof, "n_calibration_fallback": len(fallback), "calibration_fallback_folds": fallback,
            "skipped": skipped}


def fold_threshold_predictions(oof, y, fold_ids) -> tuple[np.ndarray, dict]:
    """STOP predictions with each fold's threshold set to its training rows' STOP rate (chosen without
    looking at the test fold; with balanced classes it is about 0.5). NaN predictions stay False and
    are counted as missing by :func:`binary_metrics`.

    Returns (pred (N,) bool, {fold: threshold}).
    """
    oof = np.asarray(oof, float)
    y = np.asarray(y).astype(int)
    fold_ids = np.asarray(fold_ids)
    pred = np.zeros(y.shape, dtype=bool)
    thresholds = {}
    for f in np.unique(fold_ids):
        te = fold_ids == f
        thr = float(y[~te].mean())
        thresholds[int(f)] = thr
        pred[te] = np.nan_to_num(oof[te], nan=-1.0) >= thr
    return pred, thresholds


def binary_metrics(y, p, threshold: float = 0.5, pred=None) -> dict:
    """Threshold and probability metrics on samples with a prediction (NaN predictions are counted, not used).

    Parameters
    ----------
    y : (N,) 0/1 labels. p : (N,) P(label 1), NaN = no prediction.
    threshold : predict 1 when p >= threshold, unless ``pred`` (N,) bool gives the predictions (e.g.
        :func:`fold_threshold_predictions`); ``threshold`` is then reported as None.

    Returns
    -------
    dict: auc (None with one class), balanced_accuracy (mean of the recalls of both classes: 0.5 =
    chance whatever the class balance), accuracy, precision (None if nothing predicted 1), recall (None
    if no positives), f1, brier, log_loss (p clipped to [1e-15, 1-1e-15]), n, n_stop, n_continue,
    n_missing, threshold.
    """
    y = np.asarray(y)
    p = np.asarray(p, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y {y.shape} and p {p.shape} must be 1-D of equal length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"y must be 0/1, got values {np.unique(y)[:10].tolist()}")
    if pred is not None and np.shape(pred) != y.shape:
        raise ValueError(f"pred {np.shape(pred)} must have the shape of y {y.shape}")
    ok = ~np.isnan(p)
    yk, pk = y[ok].astype(int), p[ok]
    if ((pk < 0) | (pk > 1)).any():
        raise ValueError(f"p must lie in [0, 1], got range [{pk.min()}, {pk.max()}]")
    out = {"n": int(yk.size), "n_stop": int(yk.sum()), "n_continue": int(yk.size - yk.sum()),
           "n_missing": int((~ok).sum()), "threshold": float(threshold) if pred is None else None}
    if yk.size == 0:
        return {**dict.fromkeys(["auc", "balanced_accuracy", "accuracy", "precision", "recall", "f1", "brier",
                                 "log_loss"]), **out}
    hit = (pk >= threshold) if pred is None else np.asarray(pred, bool)[ok]
    tp = int((hit & (yk == 1)).sum())
    fp = int((hit & (yk == 0)).sum())
    fn = int((~hit & (yk == 1)).sum())
    tn = int((~hit & (yk == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    specificity = tn / (tn + fp) if tn + fp else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    pc = np.clip(pk, _LOG_EPS, 1 - _LOG_EPS)
    return {
        "auc": _auc(yk, pk),
        "balanced_accuracy": None if recall is None or specificity is None else (recall + specificity) / 2,
        "accuracy": float((hit == (yk == 1)).mean()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "brier": float(np.mean((pk - yk) ** 2)),
        "log_loss": float(-np.mean(yk * np.log(pc) + (1 - yk) * np.log(1 - pc))),
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
    """Many L2 logistic regressions solved together by damped Newton steps.

    Minimises, for every column p of ``Y``, scikit-learn's objective divided by C:
    ``sum_i [log(1 + exp(eta_i)) - y_ip eta_i] + ||w_p||^2 / (2C)``, ``eta = A w_p + b_p`` (intercept
    not penalised), so the optimum equals ``LogisticRegression(C=C)``'s.

    Parameters
    ----------
    A : (n, r) features, or (D, n, r) for D designs solved at once (e.g. null data sets).
    Y : (n, P) 0/1 labels, one problem per column ((D, n, P) with D designs).

    Returns
    -------
    W : (r, P) weights, b : (P,) intercepts (with D designs: (D, r, P) and (D, P)).

    Notes
    -----
    Every column's Hessian ``X1^T diag(w_p) X1`` is one row of a single matrix product
    ``w^T Q`` with ``Q_n = vec(x_n x_n^T)`` ((r+1)^2 columns): one BLAS call for all problems, in
    float32 (an inexact Newton direction still converges: the gradient is float64).
    """
    batched = A.ndim == 3
    A3 = A if batched else A[None]
    Y3 = Y if batched else Y[None]
    D, n, r = A3.shape
    X1 = np.concatenate([A3, np.ones((D, n, 1))], axis=2)
    small = r + 1 <= 64  # Q costs n (r+1)^2 floats: for wide designs (row space of many rows) form H directly
    if small:
        Q = (X1[:, :, :, None] * X1[:, :, None, :]).reshape(D, n, (r + 1) ** 2).astype(np.float32)
    else:
        X1f = X1.astype(np.float32)
    reg = np.r_[np.full(r, 1.0 / C), 0.0][:, None]
    diag = np.arange(r)  # the intercept (index r) gets no ridge term
    P = Y3.shape[2]

    def objective(B):
        eta = X1 @ B
        return (np.logaddexp(0.0, eta) - Y3 * eta).sum(axis=1) + 0.5 * (reg * B * B).sum(axis=1)

    B = np.zeros((D, r + 1, P))
    f = objective(B)
    with threadpool_limits(**_ONE_BLAS_THREAD):
        for _ in range(max_iter):
            prob = expit(X1 @ B)
            G = X1.transpose(0, 2, 1) @ (prob - Y3) + reg * B  # (D, r+1, P)
            if np.abs(G).max() < tol:
                break
            wts = (prob * (1 - prob)).astype(np.float32).transpose(0, 2, 1)  # (D, P, n)
            if small:
                H = (wts @ Q).reshape(D, P, r + 1, r + 1)
            else:  # (D, P, r+1, n) @ (D, 1, n, r+1)
                H = (X1f.transpose(0, 2, 1)[:, None] * wts[:, :, None, :]) @ X1f[:, None]
            H[:, :, diag, diag] += 1.0 / C
            H[:, :, r, r] += 1e-6  # keeps a one-class column's Hessian invertible
            step = np.linalg.solve(H, G.transpose(0, 2, 1)[..., None].astype(np.float32))[..., 0]
            step = step.transpose(0, 2, 1).astype(float)  # (D, r+1, P)
            t = np.ones((D, 1, P))
            for _ in range(40):  # halve the step of every problem whose objective went up
                Bn = B - step * t
                fn = objective(Bn)
                worse = fn > f + 1e-12 * np.abs(f)
                if not worse.any():
                    break
                t = np.where(worse[:, None, :], t / 2, t)
            if np.abs(Bn - B).max() < tol:
                B, f = Bn, fn
                break
            B, f = Bn, fn
    W, b = B[:, :r], B[:, r]
    return (W, b) if batched else (W[0], b[0])
