"""Cross-validated training of the 19-dimension quality model and its ridge baseline.

Early stopping never looks at the test fold: each fold's training part is split again (by the
same grouping as the outer split) into fit and validation parts, so the out-of-fold R² is honest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import GroupShuffleSplit

from .models.quality_mlp import QualityMLP
from .models.ridge import RidgeProbe, cross_val_predict_groups

MLP_KEYS = ("hidden", "n_hidden_layers", "dropout", "lr", "weight_decay", "batch_size", "max_epochs",
            "patience", "grad_clip")


def inner_validation_split(train_idx: np.ndarray, groups: np.ndarray, fraction: float, seed: int):
    """Split training indices into (fit, validation) with whole groups on each side."""
    gss = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    fit, val = next(gss.split(train_idx, groups=groups[train_idx]))
    return train_idx[fit], train_idx[val]


@dataclass
class FoldResult:
    fold: int
    models: list[QualityMLP]
    n_fit: int
    n_val: int
    n_test: int
    best_epochs: list[int] = field(default_factory=list)
    val_r2: list[float] = field(default_factory=list)


def _fit_fold(X: np.ndarray, Y: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray,
              params: dict, seeds: list[int], fold: int) -> tuple[np.ndarray, FoldResult]:
    """One outer fold: a model per seed on ``fit_idx`` (early stopping on ``val_idx``); returns the
    (n_test, 19) seed-averaged predictions for ``test_idx`` and the fold's models and facts."""
    pred = np.zeros((len(test_idx), Y.shape[1]), dtype=np.float64)
    res = FoldResult(fold, [], len(fit_idx), len(val_idx), len(test_idx))
    for seed in seeds:
        model = QualityMLP(**{key: params[key] for key in MLP_KEYS}, seed=seed)
        model.fit(X[fit_idx], Y[fit_idx], X[val_idx], Y[val_idx])
        pred += model.predict(X[test_idx]) / len(seeds)
        res.models.append(model)
        res.best_epochs.append(int(model.best_epoch_))
        res.val_r2.append(float(model.best_val_r2_))
    return pred, res


def single_thread_worker() -> None:
    """Pool initializer: one torch / BLAS thread per worker process (small models train faster that
    way here, and results do not depend on the thread count)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def fold_pool(workers: int):
    """A process pool for :func:`cross_validate_mlp` (``workers`` <= 1: None, folds run in this process).
    Spawned, not forked: a forked torch process can hang on locks its parent held."""
    if workers <= 1:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=single_thread_worker)


def cross_validate_mlp(X: np.ndarray, Y: np.ndarray, fold_ids: np.ndarray, groups: np.ndarray, params: dict,
                       seeds: list[int], val_fraction: float, executor=None) -> tuple[np.ndarray, list[FoldResult]]:
    """Out-of-fold predictions of the quality MLP (averaged over ``seeds``).

    Parameters
    ----------
    X : (N, 2D) pooled embeddings.   Y : (N, 19) mean ratings.
    fold_ids : (N,) outer fold of each sample.   groups : (N,) grouping for the inner validation split.
    executor : optional ``concurrent.futures`` executor (:func:`fold_pool`): folds train in parallel.
        Every fold is seeded and single-threaded, so the results equal the sequential ones.

    Returns
    -------
    oof : (N, 19) predictions, each from models that never saw that sample.
    folds : per-fold models and training facts.
    """
    oof = np.zeros_like(Y, dtype=np.float64)
    jobs = []
    for k in np.unique(fold_ids):
        test = np.flatnonzero(fold_ids == k)
        fit_idx, val_idx = inner_validation_split(np.flatnonzero(fold_ids != k), groups, val_fraction, seeds[0] + int(k))
        args = (X, Y, fit_idx, val_idx, test, params, list(seeds), int(k))
        jobs.append((test, executor.submit(_fit_fold, *args) if executor is not None else _fit_fold(*args)))
    results = []
    for test, job in jobs:
        pred, res = job.result() if executor is not None else job
        oof[test] = pred
        results.append(res)
    return oof, results


def passage_mean_oof(Y: np.ndarray, fold_ids: np.ndarray, passages: np.ndarray, pieces: np.ndarray
                     ) -> tuple[np.ndarray, dict]:
    """No-audio baseline: each test row gets the mean rating of its passage among the training rows.

    A passage with no training row (e.g. every row of an unseen piece) falls back to its piece's
    training mean, then to the training mean of all rows; the fallbacks are counted.

    Parameters
    ----------
    Y : (N, K) ratings. fold_ids, passages, pieces : (N,).

    Returns
    -------
    oof : (N, K) predictions, each from the other folds only.
    report : {"n_passage_mean", "n_piece_fallback", "n_global_fallback"} (rows per rule).
    """
    Y = np.asarray(Y, dtype=np.float64)
    fold_ids, passages, pieces = (np.asarray(a) for a in (fold_ids, passages, pieces))
    oof = np.empty_like(Y)
    rep = {"n_passage_mean": 0, "n_piece_fallback": 0, "n_global_fallback": 0}
    for k in np.unique(fold_ids):
        test, train = fold_ids == k, fold_ids != k
        means_p = {g: Y[train & (passages == g)].mean(0) for g in np.unique(passages[train])}
        means_c = {g: Y[train & (pieces == g)].mean(0) for g in np.unique(pieces[train])}
        overall = Y[train].mean(0)
        for i in np.flatnonzero(test):
            if passages[i] in means_p:
                oof[i], rule = means_p[passages[i]], "n_passage_mean"
            elif pieces[i] in means_c:
                oof[i], rule = means_c[pieces[i]], "n_piece_fallback"
            else:
                oof[i], rule = overall, "n_global_fallback"
            rep[rule] += 1
    return oof, rep


def cross_validate_ridge(X: np.ndarray, Y: np.ndarray, fold_ids: np.ndarray, groups: np.ndarray,
                         alphas: list[float], inner_folds: int, seed: int) -> np.ndarray:
    """(N, 19) out-of-fold predictions of ridge with per-dimension alpha chosen by inner (grouped) CV."""
    return cross_val_predict_groups(
        lambda: RidgeProbe(alphas=np.asarray(alphas, dtype=float), inner_folds=inner_folds, seed=seed),
        X, Y, fold_ids, groups=groups)
