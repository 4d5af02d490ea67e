"""Section 5: audibility probes -- how much of each dimension can an embedding predict?

All probes use the predefined fold ids: for each fold f the model is fit on the other folds
and predicts fold f, giving out-of-fold (OOF) predictions for every segment. Every probe
returns ``{"r2": {dim: pooled OOF R^2}, "r2_mean", "fold_r2": {dim: [R^2 within each test
fold]}, "folds", "oof" (ndarray (N, q)), ..., "headline"}``. Pooled R^2 is computed over all N
OOF predictions about the overall mean; per-fold R^2 about each fold's own mean. Hyper-
parameters (alpha, early-stopping epoch) are only ever chosen on data from the training folds.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Sequence

import numpy as np
import torch
from sklearn.model_selection import GroupKFold

from pianoeval.audit import _as_2d, _fl, _folds, _names, _r2
from pianoeval.models.ridge import ridge_gain as _gain
from pianoeval.models.ridge import ridge_path as _ridge_path
from pianoeval.models.ridge import ridge_predict_all as _ridge_predict_all
from pianoeval.models.ridge import standardise as _standardise

DEFAULT_ALPHAS = tuple(np.logspace(-2, 6, 17).tolist())


# --------------------------------------------------------------------------- shared helpers
def _probe_result(Y, oof, fold_ids, folds, names, extra: dict, label: str) -> dict:
    r2 = _r2(Y, oof)
    fold_r2 = np.array([_r2(Y[fold_ids == f], oof[fold_ids == f]) for f in folds])  # (F, q)
    out = {
        "names": names,
        "folds": folds.tolist(),
        "r2": {n: _fl(v) for n, v in zip(names, r2)},
        "r2_mean": _fl(np.nanmean(r2)),
        "fold_r2": {n: [_fl(v) for v in fold_r2[:, j]] for j, n in enumerate(names)},
        "fold_r2_mean": [_fl(v) for v in np.nanmean(fold_r2, axis=1)],
        "oof": oof,
    }
    out.update(extra)
    out["headline"] = {
        f"{label}_r2_mean": out["r2_mean"],
        f"{label}_r2_min": _fl(np.nanmin(r2)),
        f"{label}_r2_max": _fl(np.nanmax(r2)),
        f"{label}_n_r2_gt_0": int((r2 > 0).sum()),
        f"{label}_fold_r2_std": _fl(np.nanstd(np.nanmean(fold_r2, axis=1))),
    }
    return out


# --------------------------------------------------------------------------- ridge
def _check_xy(X, Y, names):
    Y = _as_2d("Y", Y)
    X = _as_2d("X", X, n_rows=Y.shape[0])
    return X, Y, _names(names, Y.shape[1])


def _inner_assignment(tr: np.ndarray, groups: np.ndarray | None, inner_folds: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Inner fold of each training row: whole groups per inner fold (GroupKFold, as many folds as
    groups allow, at most ``inner_folds``), or at random without groups."""
    if groups is None:
        return rng.permutation(len(tr)) % inner_folds
    g = np.asarray(groups)[tr]
    k = min(inner_folds, np.unique(g).size)
    if k < 2:
        raise ValueError(f"grouped inner CV needs at least 2 groups in a training fold, got {np.unique(g).size}")
    out = np.empty(len(tr), dtype=int)
    for j, (_, va) in enumerate(GroupKFold(n_splits=k).split(tr, groups=g)):
        out[va] = j
    return out


def _ridge_fold(X: np.ndarray, T: np.ndarray, tr: np.ndarray, te: np.ndarray, alphas: np.ndarray,
                inner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One outer fold: per-column alpha by inner CV (``inner``: inner fold of each training row), refit on
    all training rows. ``T`` (len(tr), q) are the training rows' targets. Returns (test predictions, alphas)."""
    sse = np.zeros((alphas.size, T.shape[1]))
    for g in np.unique(inner):
        itr, iva = inner != g, inner == g
        pred = _ridge_predict_all(X[tr[itr]], T[itr], X[tr[iva]], alphas)
        sse += ((pred - T[iva][None]) ** 2).sum(1)
    chosen = alphas[np.argmin(sse, axis=0)]
    A, lam, B, ym = _ridge_path(X[tr], T, X[te])
    return A @ (_gain(lam, chosen).T * B) + ym, chosen  # a different alpha per target


def _check_alphas(alphas, inner_folds) -> np.ndarray:
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or alphas.size == 0 or (alphas < 0).any():
        raise ValueError(f"alphas: need a non-empty 1-D grid of non-negative values, got {alphas}")
    if inner_folds < 2:
        raise ValueError(f"inner_folds: need >= 2, got {inner_folds}")
    return alphas


def ridge_probe_cv(
    X: np.ndarray,
    Y: np.ndarray,
    fold_ids: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    inner_folds: int = 5,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> dict:
    """Ridge probe with a per-dimension alpha chosen by inner CV inside the training folds.

    X is z-scored with training-fold statistics; an intercept is fit. For each outer fold, the
    training rows are split into ``inner_folds`` inner folds: by whole ``groups`` (the grouping of
    the outer split, e.g. pianists: an alpha chosen on inner folds that share pianists is tuned for
    seen pianists and over-fits unseen ones) or, without groups, at random (seeded). Each inner fit
    is one spectral decomposition (SVD via the Gram matrix) giving predictions for all alphas and all
    targets at once. The alpha with the lowest summed inner squared error is chosen per dimension
    and the outer model is refit from one more decomposition.

    Parameters
    ----------
    X : (N, p) pooled embeddings. Y : (N, q) labels. fold_ids : (N,) int fold of each row.
    alphas : candidate penalties (on z-scored X). inner_folds : inner CV folds. seed : inner split
    without groups. groups : (N,) grouping of the inner split (recommended: that of the outer split).

    Returns
    -------
    Common probe dict (see module doc) plus ``alpha`` ({dim: [chosen alpha per outer fold]}),
    ``alphas`` (the grid) and ``inner_split`` ("grouped" / "random").
    """
    X, Y, names = _check_xy(X, Y, names)
    fold_ids, folds = _folds(fold_ids, len(Y))
    alphas = _check_alphas(alphas, inner_folds)
    oof = np.empty_like(Y)
    chosen = np.empty((len(folds), Y.shape[1]))
    for i, f in enumerate(folds):
        tr, te = np.flatnonzero(fold_ids != f), np.flatnonzero(fold_ids == f)
        inner = _inner_assignment(tr, groups, inner_folds, np.random.default_rng([seed, i]))
        oof[te], chosen[i] = _ridge_fold(X, Y[tr], tr, te, alphas, inner)
    return _probe_result(Y, oof, fold_ids, folds, names, {
        "alpha": {n: chosen[:, j].tolist() for j, n in enumerate(names)},
        "alphas": alphas.tolist(),
        "inner_folds": inner_folds,
        "inner_split": "random" if groups is None else "grouped",
    }, "ridge_cv")


def ridge_probe_fixed(
    X: np.ndarray,
    Y: np.ndarray,
    fold_ids: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    alpha: float = 1.0,
) -> dict:
    """Ridge probe with one fixed ``alpha`` on z-scored X (training-fold statistics).

    Returns the common probe dict (see module doc) plus ``alpha``.
    """
    X, Y, names = _check_xy(X, Y, names)
    fold_ids, folds = _folds(fold_ids, len(Y))
    oof = np.empty_like(Y)
    for f in folds:
        tr, te = fold_ids != f, fold_ids == f
        oof[te] = _ridge_predict_all(X[tr], Y[tr], X[te], np.array([float(alpha)]))[0]
    return _probe_result(Y, oof, fold_ids, folds, names, {"alpha": float(alpha)}, "ridge_fixed")


def label_factors(Y_fit: np.ndarray, k: int):
    """PCA of the labels fitted on ``Y_fit`` (N, q) only: a function mapping labels to k standardised
    factor scores (z-scored with the fitting rows' mean/std, projected on the leading eigenvectors of
    their correlation matrix, divided by sqrt(eigenvalue): unit variance on the fitting rows). Axis
    signs follow ``pca_correlation`` (largest loading positive), so folds agree on orientation."""
    from pianoeval.audit.factors import pca_correlation

    evals, evecs, _ = pca_correlation(Y_fit)
    mu, sd = Y_fit.mean(0), Y_fit.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    scale = np.sqrt(np.maximum(evals[:k], 1e-12))
    return lambda Yn: ((Yn - mu) / sd) @ evecs[:, :k] / scale


def factor_probe_cv(
    X: np.ndarray,
    Y: np.ndarray,
    fold_ids: np.ndarray,
    n_factors: int,
    names: Sequence[str] | None = None,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    inner_folds: int = 5,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> dict:
    """Ridge probes (inner-CV alpha) onto the dimensions and onto the label factor scores, in one fit.

    Answers: is the audible part of the labels concentrated in a few factors? The factors are fitted
    **inside each training fold** (:func:`label_factors`: standardisation and PCA of the training
    labels only); the held-out fold's factor scores, the truth the predictions are scored against,
    come from the same training-fold axes. Dimensions and factors share every decomposition (alpha per
    column, same inner splits), so the dimension part equals :func:`ridge_probe_cv`.

    Returns
    -------
    dict: ``dims`` (the ``ridge_probe_cv`` dict of the dimensions, ``oof`` included) and the factor
    probe: names ``factor_1..k``, ``r2`` (pooled over folds; each fold scored on its own axes),
    ``r2_mean``, ``fold_r2_mean`` (per fold, mean over factors), ``factor_r2_mean``, ``dim_r2_mean``,
    ``factor_minus_dim_r2`` (pooled means), ``fold_factor_minus_dim_r2`` (per fold, the like-for-like
    comparison) and ``n_folds_factor_above_dim``.
    """
    X, Y, dnames = _check_xy(X, Y, names)
    fold_ids, folds = _folds(fold_ids, len(Y))
    alphas = _check_alphas(alphas, inner_folds)
    q, k = Y.shape[1], int(n_factors)
    if not 1 <= k <= q:
        raise ValueError(f"n_factors: must be in [1, {q}], got {n_factors}")
    fnames = [f"factor_{i + 1}" for i in range(k)]
    oof = np.empty((len(Y), q + k))
    F_true = np.empty((len(Y), k))
    chosen = np.empty((len(folds), q + k))
    for i, f in enumerate(folds):
        tr, te = np.flatnonzero(fold_ids != f), np.flatnonzero(fold_ids == f)
        to_factors = label_factors(Y[tr], k)
        F_true[te] = to_factors(Y[te])
        inner = _inner_assignment(tr, groups, inner_folds, np.random.default_rng([seed, i]))
        oof[te], chosen[i] = _ridge_fold(X, np.hstack([Y[tr], to_factors(Y[tr])]), tr, te, alphas, inner)
    extra = {"alphas": alphas.tolist(), "inner_folds": inner_folds,
             "inner_split": "random" if groups is None else "grouped"}
    dims = _probe_result(Y, oof[:, :q], fold_ids, folds, dnames,
                         {"alpha": {n: chosen[:, j].tolist() for j, n in enumerate(dnames)}, **extra}, "ridge_cv")
    out = _probe_result(F_true, oof[:, q:], fold_ids, folds, fnames,
                        {"alpha": {n: chosen[:, q + j].tolist() for j, n in enumerate(fnames)}, **extra}, "factor")
    per_fold = [None if a is None or b is None else a - b for a, b in zip(out["fold_r2_mean"], dims["fold_r2_mean"])]
    diff = None if out["r2_mean"] is None or dims["r2_mean"] is None else out["r2_mean"] - dims["r2_mean"]
    out.update({"factor_r2_mean": out["r2_mean"], "dim_r2_mean": dims["r2_mean"], "factor_minus_dim_r2": diff,
                "fold_factor_minus_dim_r2": per_fold,
                "n_folds_factor_above_dim": int(sum(1 for d in per_fold if d is not None and d > 0)),
                "factors_fitted": "inside each training fold", "dims": dims})
    out["headline"] = {
        "factor_r2_mean": out["r2_mean"],
        "factor_1_r2": out["r2"]["factor_1"],
        "dim_r2_mean": dims["r2_mean"],
        "factor_minus_dim_r2": diff,
        "n_folds_factor_above_dim": out["n_folds_factor_above_dim"],
    }
    return out


# --------------------------------------------------------------------------- torch helpers
@contextlib.contextmanager
def _torch_threads(n: int | None):
    """Temporarily set torch's intra-op threads (tiny matmuls run slower with contended threads)."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _split_val(n_tr: int, val_frac: float, rng: np.random.Generator, groups: np.ndarray | None = None):
    """(fit, validation) positions among ``n_tr`` training rows for early stopping: about ``val_frac``
    of the rows, whole groups (e.g. pianists, as in the outer split) when ``groups`` (n_tr,) is given,
    so that the stopping epoch is chosen on unseen groups like the test fold; random rows otherwise."""
    if not 0 < val_frac < 1:
        raise ValueError(f"val_frac: must be in (0, 1), got {val_frac}")
    if groups is None:
        perm = rng.permutation(n_tr)
        n_val = min(n_tr - 1, max(1, int(round(val_frac * n_tr))))
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    groups = np.asarray(groups)
    uniq, code = np.unique(groups, return_inverse=True)
    if uniq.size < 2:
        raise ValueError(f"grouped validation split needs at least 2 groups, got {uniq.size}")
    sizes = np.bincount(code)
    order = rng.permutation(uniq.size)
    take = np.cumsum(sizes[order]) <= max(val_frac * n_tr, sizes[order[0]])  # at least one group
    take[-1] = False  # never all groups
    val = np.isin(code, order[take])
    return np.flatnonzero(~val), np.flatnonzero(val)


def _leading_axes(Z: np.ndarray, k: int) -> np.ndarray:
    """(p, k') leading principal axes of centred Z (n, p), each signed so its largest entry is > 0.

    k' = min(k, number of directions with non-negligible variance): with fewer rows than
    columns (small folds) the null directions are not returned.
    """
    if Z.shape[1] <= Z.shape[0]:
        lam, V = np.linalg.eigh(Z.T @ Z)
        lam, V = lam[::-1], V[:, ::-1]
    else:
        lam, U = np.linalg.eigh(Z @ Z.T)
        lam, U = lam[::-1], U[:, ::-1]
        keep = lam > 1e-10 * max(lam[0], 1e-300)
        V = np.zeros((Z.shape[1], lam.size))
        V[:, keep] = Z.T @ U[:, keep] / np.sqrt(lam[keep])
    k = int(min(k, (lam > 1e-10 * max(lam[0], 1e-300)).sum()))
    V = V[:, :k]
    return V * np.where(V[np.argmax(np.abs(V), axis=0), np.arange(V.shape[1])] < 0, -1.0, 1.0)


def _yscale(Ytr: np.ndarray):
    mu, sd = Ytr.mean(0), Ytr.std(0)
    return mu, np.where(sd > 0, sd, 1.0)


# --------------------------------------------------------------------------- attention probe
class AttentionPoolProbe(torch.nn.Module):
    """score_t = w^T tanh(W x_t + b); a = softmax over valid frames; y = head(norm(sum a_t x_t)).

    ``x`` arrives raw; frame z-scoring (mu, sd from training frames) is folded into W so the
    padded batch is never rescaled, and the pooled vector is z-scored with the statistics of
    mean-pooled training segments before the linear head.
    """

    def __init__(self, d: int, q: int, hidden: int, frame_mu, frame_sd, pool_mu, pool_sd):
        super().__init__()
        self.proj = torch.nn.Linear(d, hidden)
        self.score = torch.nn.Linear(hidden, 1, bias=False)
        self.head = torch.nn.Linear(d, q)
        for name, v in (("frame_mu", frame_mu), ("frame_isd", 1 / frame_sd),
                        ("pool_mu", pool_mu), ("pool_isd", 1 / pool_sd)):
            self.register_buffer(name, torch.as_tensor(v, dtype=torch.float32))

    def pool(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) raw frames, mask (B, T) bool valid -> pooled (B, D) raw space."""
        w = self.proj.weight * self.frame_isd
        b = self.proj.bias - w @ self.frame_mu
        e = self.score(torch.tanh(x @ w.T + b)).squeeze(-1).masked_fill(~mask, float("-inf"))
        return torch.einsum("bt,btd->bd", torch.softmax(e, dim=1), x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head((self.pool(x, mask) - self.pool_mu) * self.pool_isd)


class _FrameStore:
    """All segments' frames in one (sum T, D) tensor; padded batches are gathered on demand."""

    def __init__(self, frames_list: Sequence[np.ndarray]):
        if len(frames_list) == 0:
            raise ValueError("frames_list: empty")
        d = None
        for i, fr in enumerate(frames_list):
            if np.ndim(fr) != 2 or len(fr) == 0:
                raise ValueError(f"frames_list[{i}]: expected a non-empty (T, D) array, "
                                 f"got shape {np.shape(fr)}")
            if d is None:
                d = fr.shape[1]
            elif fr.shape[1] != d:
                raise ValueError(f"frames_list[{i}]: D = {fr.shape[1]}, expected {d}")
        self.lengths = np.array([len(f) for f in frames_list])
        flat = np.concatenate(frames_list).astype(np.float32, copy=False)
        if not np.isfinite(flat).all():
            bad = int(np.searchsorted(np.cumsum(self.lengths), np.argmax(~np.isfinite(flat).all(1)),
                                      side="right"))
            raise ValueError(f"frames_list[{bad}]: non-finite values")
        self.flat = torch.from_numpy(flat)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.d = d
        # Per-segment frame sums give fold-wise frame statistics without touching frames again
        # (float64, one segment at a time, so no float64 copy of all frames is ever held).
        self.sum, self.sumsq = np.empty((len(frames_list), d)), np.empty((len(frames_list), d))
        for i, fr in enumerate(frames_list):
            f64 = np.asarray(fr, dtype=np.float64)
            self.sum[i], self.sumsq[i] = f64.sum(0), np.einsum("td,td->d", f64, f64)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        L = self.lengths[idx]
        t = np.arange(L.max())
        gather = self.offsets[idx, None] + np.minimum(t[None, :], L[:, None] - 1)
        # index_select on flat indices: ~4x faster than advanced indexing with a 2-D index
        x = self.flat.index_select(0, torch.from_numpy(gather.reshape(-1))).view(len(idx), len(t), self.d)
        return x, torch.from_numpy(t[None, :] < L[:, None])

    def stats(self, idx: np.ndarray):
        """Frame mean/std and mean-pooled segment mean/std over segments ``idx``."""
        n = self.lengths[idx].sum()
        mu = self.sum[idx].sum(0) / n
        sd = np.sqrt(np.maximum(self.sumsq[idx].sum(0) / n - mu * mu, 0.0))
        seg_means = self.sum[idx] / self.lengths[idx, None]
        psd = seg_means.std(0)
        return mu, np.where(sd > 0, sd, 1.0), seg_means.mean(0), np.where(psd > 0, psd, 1.0)

    def bucketed(self, idx: np.ndarray, batch_size: int, rng: np.random.Generator,
                 bucket: int = 16) -> list[np.ndarray]:
        """Shuffle, sort by length inside chunks of ``bucket`` batches, shuffle batch order."""
        idx = rng.permutation(idx)
        chunk = batch_size * bucket
        batches = []
        for s in range(0, len(idx), chunk):
            c = idx[s:s + chunk]
            c = c[np.argsort(self.lengths[c], kind="stable")]
            batches += [c[j:j + batch_size] for j in range(0, len(c), batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def sorted_batches(self, idx: np.ndarray, batch_size: int):
        idx = idx[np.argsort(self.lengths[idx], kind="stable")]
        return [idx[j:j + batch_size] for j in range(0, len(idx), batch_size)]


def _attention_eval(model, store, batches, out_pred, out_pool=None):
    with torch.no_grad():
        for b in batches:
            x, m = store.batch(b)
            pooled = model.pool(x, m)
            out_pred[b] = model.head((pooled - model.pool_mu) * model.pool_isd).numpy()
            if out_pool is not None:
                out_pool[b] = pooled.numpy()


def attention_probe_cv(
    frames_list: Sequence[np.ndarray],
    Y: np.ndarray,
    fold_ids: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    seed: int = 0,
    epochs: int = 30,
    lr: float = 5e-3,
    batch_size: int = 32,
    hidden: int = 32,
    weight_decay: float = 1e-4,
    patience: int = 5,
    val_frac: float = 0.15,
    num_threads: int | None = None,
    return_models: bool = False,
    groups: np.ndarray | None = None,
) -> dict:
    """Learned attention pooling over frames + linear head, trained jointly on all dimensions.

    Per outer fold: ``val_frac`` of the training folds (whole ``groups`` if given, e.g. pianists)
    is held out for early
    stopping (best epoch by mean validation MSE on z-scored targets, stop after ``patience``
    epochs without improvement); the model with the best validation loss predicts the test
    fold. Batches are drawn from length-sorted buckets and padded to their longest segment;
    padded frames are masked out of the softmax. Adam, MSE on targets z-scored with the
    fitting rows' statistics.

    Parameters
    ----------
    frames_list : N arrays (T_i, D), float32 (T_i may differ).
    Y : (N, q) labels. fold_ids : (N,) int.
    seed : seeds weights, batch order and the validation split (torch RNG is forked, the
        global torch RNG state is left untouched).
    epochs, lr, batch_size, hidden, weight_decay, patience, val_frac : training settings.
    num_threads : torch threads during the call (restored afterwards); None leaves them.
    return_models : also return the fold models (to pool new segments' frames).

    Returns
    -------
    Common probe dict plus ``best_epoch`` and ``best_val_mse`` (per fold), ``config``,
    ``oof`` (**ndarray** (N, q)) and ``pooled_oof`` (**ndarray** (N, D) float32: each
    segment's attention-pooled embedding, in raw feature units, computed by the model that
    did not train on it). With ``return_models``: ``models`` (one ``AttentionPoolProbe`` per
    fold, in ``folds`` order, eval mode; not JSON: pop it before writing the result).
    """
    Y = _as_2d("Y", Y)
    names = _names(names, Y.shape[1])
    if len(frames_list) != len(Y):
        raise ValueError(f"frames_list: {len(frames_list)} segments but Y has {len(Y)} rows")
    fold_ids, folds = _folds(fold_ids, len(Y))
    store = _FrameStore(frames_list)
    oof = np.empty_like(Y)
    pooled_oof = np.empty((len(Y), store.d), dtype=np.float32)
    best_epochs, best_vals, models = [], [], []
    with _torch_threads(num_threads):
        for i, f in enumerate(folds):
            rng = np.random.default_rng([seed, i])
            tr_all, te = np.flatnonzero(fold_ids != f), np.flatnonzero(fold_ids == f)
            fit_pos, val_pos = _split_val(len(tr_all), val_frac, rng, None if groups is None else groups[tr_all])
            fit, val = tr_all[fit_pos], tr_all[val_pos]
            ymu, ysd = _yscale(Y[fit])
            yz = ((Y - ymu) / ysd).astype(np.float32)
            yt = torch.from_numpy(yz)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.integers(2**31)))
                model = AttentionPoolProbe(store.d, Y.shape[1], hidden, *store.stats(fit))
            opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
            val_batches = store.sorted_batches(val, 4 * batch_size)
            val_pred = np.empty((len(Y), Y.shape[1]), dtype=np.float32)
            best, best_state, best_epoch = np.inf, copy.deepcopy(model.state_dict()), 0
            for epoch in range(epochs):
                model.train()
                for b in store.bucketed(fit, batch_size, rng):
                    x, m = store.batch(b)
                    loss = torch.mean((model(x, m) - yt[torch.from_numpy(b)]) ** 2)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                model.eval()
                _attention_eval(model, store, val_batches, val_pred)
                v = float(np.mean((val_pred[val] - yz[val]) ** 2))
                if v < best - 1e-6:
                    best, best_state, best_epoch = v, copy.deepcopy(model.state_dict()), epoch + 1
                elif epoch + 1 - best_epoch >= patience:
                    break
            model.load_state_dict(best_state)
            model.eval()
            pred = np.empty((len(Y), Y.shape[1]), dtype=np.float32)
            test_batches = store.sorted_batches(te, 4 * batch_size)
            _attention_eval(model, store, test_batches, pred, pooled_oof)
            oof[te] = pred[te] * ysd + ymu
            best_epochs.append(best_epoch)
            best_vals.append(best)
            models.append(model)
    out = _probe_result(Y, oof, fold_ids, folds, names, {
        "best_epoch": best_epochs,
        "best_val_mse": best_vals,
        "config": {"epochs": epochs, "lr": lr, "batch_size": batch_size, "hidden": hidden,
                   "weight_decay": weight_decay, "patience": patience, "val_frac": val_frac,
                   "seed": seed, "validation_split": "random" if groups is None else "grouped"},
        "pooled_oof": pooled_oof,
    }, "attention")
    if return_models:
        out["models"] = models
    return out


# --------------------------------------------------------------------------- batched MLP probe
class BatchedMLP(torch.nn.Module):
    """q independent one-hidden-layer MLPs evaluated as one model.

    Weights W1 (q, p, H), b1 (q, H), w2 (q, H), b2 (q,); the first layer of all q networks is
    a single (n, p) @ (p, q*H) matmul. Output (n, q): column j comes from network j only.
    """

    def __init__(self, p: int, q: int, hidden: int, generator: torch.Generator):
        super().__init__()
        def u(shape, fan_in):
            bound = 1.0 / np.sqrt(fan_in)
            return torch.nn.Parameter((torch.rand(shape, generator=generator) * 2 - 1) * bound)
        self.W1, self.b1 = u((q, p, hidden), p), u((q, hidden), p)
        self.w2, self.b2 = u((q, hidden), hidden), u((q,), hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, p, h = self.W1.shape
        z = x @ self.W1.permute(1, 0, 2).reshape(p, q * h) + self.b1.reshape(-1)
        return (torch.relu(z).view(-1, q, h) * self.w2).sum(-1) + self.b2


def mlp_probe_cv(
    X: np.ndarray,
    Y: np.ndarray,
    fold_ids: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    hidden: int = 256,
    seed: int = 0,
    epochs: int = 100,
    lr: float = 1e-3,
    batch_size: int = 128,
    weight_decay: float = 1e-4,
    patience: int = 10,
    val_frac: float = 0.15,
    n_components: int | None = None,
    num_threads: int | None = None,
    groups: np.ndarray | None = None,
) -> dict:
    """One-hidden-layer ReLU MLP per dimension, all q trained at once as one batched model.

    ``groups`` (N,): the early-stopping validation rows are whole groups (e.g. pianists).

    The summed loss separates over dimensions and Adam is per-parameter, so each network
    trains as if alone. Early stopping is per dimension: each network keeps the weights of its
    own best epoch on an inner validation split (``val_frac`` of the training folds); training
    ends when every dimension has gone ``patience`` epochs without improving. X is z-scored and
    targets are z-scored with fitting-row statistics. ``num_threads`` as in
    ``attention_probe_cv``.

    ``n_components``: if set, the z-scored X is projected onto its leading ``n_components``
    principal axes (fit on the fitting rows). The scores are *not* whitened, so the networks
    see the z-scored geometry minus its low-variance directions; the first layer, which
    dominates the cost, shrinks by p / n_components.

    Returns
    -------
    Common probe dict plus ``best_epoch`` ({dim: [per fold]}) and ``config``;
    ``oof`` is an **ndarray** (N, q).
    """
    X, Y, names = _check_xy(X, Y, names)
    fold_ids, folds = _folds(fold_ids, len(Y))
    if n_components is not None and n_components < 1:
        raise ValueError(f"n_components: must be >= 1 or None, got {n_components}")
    q = Y.shape[1]
    oof = np.empty_like(Y)
    best_epochs = np.zeros((len(folds), q), dtype=int)
    with _torch_threads(num_threads):
        for i, f in enumerate(folds):
            rng = np.random.default_rng([seed, i])
            tr_all, te = np.flatnonzero(fold_ids != f), np.flatnonzero(fold_ids == f)
            fit_pos, val_pos = _split_val(len(tr_all), val_frac, rng, None if groups is None else groups[tr_all])
            fit, val = tr_all[fit_pos], tr_all[val_pos]
            xs = _standardise(X[fit], X[val], X[te])
            if n_components is not None and n_components < X.shape[1]:
                V = _leading_axes(xs[0], n_components)
                xs = tuple(a @ V for a in xs)
            xf, xv, xt = (torch.from_numpy(a.astype(np.float32)) for a in xs)
            ymu, ysd = _yscale(Y[fit])
            yf, yv = (torch.from_numpy(((Y[r] - ymu) / ysd).astype(np.float32)) for r in (fit, val))
            gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
            model = BatchedMLP(xf.shape[1], q, hidden, gen)
            opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
            best = torch.full((q,), float("inf"))
            best_params = [p.detach().clone() for p in model.parameters()]
            last_improved = np.zeros(q, dtype=int)
            for epoch in range(epochs):
                for b in np.array_split(rng.permutation(len(fit)), max(1, len(fit) // batch_size)):
                    b = torch.from_numpy(b)
                    loss = torch.mean((model(xf[b]) - yf[b]) ** 2)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                with torch.no_grad():
                    v = torch.mean((model(xv) - yv) ** 2, dim=0)
                    improved = v < best - 1e-6
                    if improved.any():
                        best = torch.where(improved, v, best)
                        for bp, p in zip(best_params, model.parameters()):
                            bp[improved] = p[improved]
                        last_improved[improved.numpy()] = epoch + 1
                if (epoch + 1 - last_improved >= patience).all():
                    break
            with torch.no_grad():
                for bp, p in zip(best_params, model.parameters()):
                    p.copy_(bp)
                oof[te] = model(xt).numpy() * ysd + ymu
            best_epochs[i] = last_improved
    return _probe_result(Y, oof, fold_ids, folds, names, {
        "best_epoch": {n: best_epochs[:, j].tolist() for j, n in enumerate(names)},
        "config": {"hidden": hidden, "epochs": epochs, "lr": lr, "batch_size": batch_size,
                   "weight_decay": weight_decay, "patience": patience, "val_frac": val_frac,
                   "n_components": n_components, "seed": seed,
                   "validation_split": "random" if groups is None else "grouped"},
    }, "mlp")
