"""Dimension audit: how redundant, noisy and audible are the 19 PercePiano dimensions?

Pure analysis functions on numpy arrays; the DVC stage loads the data, calls them and writes
the report. Every section returns a JSON-serialisable dict (plain lists/floats) with a flat
``"headline"`` dict of scalars; the few keys holding ndarrays are named in each docstring and
must be dropped (or saved separately) before ``pianoeval.io.write_json``.

Sections
--------
1. ``correlation.correlation_redundancy`` -- Pearson/Spearman matrices, clustering order,
   top pairs, redundancy counts, VIF.
2. ``factors.factor_structure`` -- PCA of standardised labels + vectorised parallel analysis
   (``factors.parallel_analysis_thresholds`` is reused by section 6).
3. ``distributions.distributions`` -- variance, skewness, floor/ceiling, KDE entropy.
4. ``reliability.rater_reliability`` -- ICC(1,1), ICC(1,k), split-half Spearman-Brown,
   noise ceiling per dimension.
5. ``probes`` -- audibility probes with predefined folds: ``ridge_probe_cv``,
   ``ridge_probe_fixed``, ``attention_probe_cv``, ``mlp_probe_cv``, ``factor_probe_cv``.
6. ``residuals.residual_structure`` -- structure left in cross-validated residuals.
7. ``cca.cca_analysis`` -- canonical correlations embedding <-> labels, in-sample and held out.
8. ``downstream.downstream_stop`` -- STOP prediction from reduced dimension sets (masterclass).
9. ``competition.competition_section`` -- Spearman rho of predicted quality vs placement.

``report`` renders the stage's report (Markdown, figures, plot CSVs); the stage itself is
``pianoeval.stages.audit`` (docs/audit.md).

``json_ready`` drops the ndarray-valued keys of a section result. The private helpers below
are shared by the section modules (this file imports none of them, so there is no cycle).

Threads: on a machine whose cores are shared with other jobs, multi-threaded BLAS/torch on
these small matrices can be ~10x slower than one thread; run the stage with
``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`` (and ``num_threads=1`` for the torch probes).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pianoeval.dimensions import DIMENSIONS


def json_ready(result: dict) -> dict:
    """Shallow copy of a section result without its ndarray values (oof, scores, pooled_oof)."""
    return {k: v for k, v in result.items() if not isinstance(v, np.ndarray)}


def _as_2d(name: str, a, *, n_rows: int | None = None, allow_nan: bool = False) -> np.ndarray:
    """Float64 copy of a 2-D array; ValueError naming ``name`` when shape/finiteness is wrong."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got shape {arr.shape}")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{name}: expected {n_rows} rows, got {arr.shape[0]}")
    bad = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{name}: {int(bad.sum())} non-finite values "
                         f"(first at row {r}, column {c})")
    return arr


def _names(names: Sequence[str] | None, q: int, what: str = "Y") -> list[str]:
    """Column names: ``DIMENSIONS`` for 19 columns, ``dim0..`` otherwise, unless given."""
    if names is None:
        return list(DIMENSIONS) if q == len(DIMENSIONS) else [f"dim{i}" for i in range(q)]
    names = [str(n) for n in names]
    if len(names) != q:
        raise ValueError(f"names: {len(names)} names for {q} columns of {what}")
    if len(set(names)) != q:
        raise ValueError(f"names: duplicate names in {names}")
    return names


def _check_variance(name: str, a: np.ndarray, names: Sequence[str]) -> None:
    """Correlations are undefined for a constant column: say which one."""
    const = np.flatnonzero(np.ptp(a, axis=0) == 0)
    if const.size:
        raise ValueError(f"{name}: constant column(s) {[names[i] for i in const]} (zero variance)")


def _folds(fold_ids, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated fold id array (N,) and its sorted unique folds (at least 2)."""
    f = np.asarray(fold_ids)
    if f.shape != (n,):
        raise ValueError(f"fold_ids: expected shape ({n},), got {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"fold_ids: expected integer fold ids, got dtype {f.dtype}")
    folds = np.unique(f)
    if folds.size < 2:
        raise ValueError(f"fold_ids: need at least 2 folds, got {folds.tolist()}")
    return f, folds


def _r2(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-column R^2 = 1 - SS_res / SS_tot about the column's own mean, (n, q) -> (q,).

    NaN where the column is constant (R^2 undefined).
    """
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.nan)


def _leading_count(values: np.ndarray, thresholds: np.ndarray) -> int:
    """Number of leading values strictly above their thresholds (stops at the first failure)."""
    above = np.asarray(values) > np.asarray(thresholds)
    return int(above.size if above.all() else np.argmin(above))


def _fl(x) -> float | None:
    """Python float for JSON, None for NaN/inf."""
    x = float(x)
    return x if np.isfinite(x) else None
