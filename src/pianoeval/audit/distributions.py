"""Section 3: marginal distributions of the labels (spread, skew, floor/ceiling, entropy)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.integrate import trapezoid
from scipy.stats import gaussian_kde, skew

from pianoeval.audit import _as_2d, _fl, _names


def kde_entropy(y: np.ndarray, *, grid_size: int = 1001) -> tuple[float, np.ndarray]:
    """Differential entropy (nats) of a Gaussian KDE of ``y`` (n,), restricted to [0, 1].

    The KDE (scipy ``gaussian_kde``, Scott's bandwidth) is evaluated on a uniform grid over
    [0, 1], renormalised to integrate to 1 there (labels cannot leave [0, 1], so mass the
    kernels spill past the edges is folded back proportionally), and
    H = -integral p log p is integrated with the trapezoid rule. Reference points: the uniform
    distribution on [0, 1] has H = 0 (= log 1); more concentrated labels give H < 0.

    Returns
    -------
    entropy : float (NaN if ``y`` is constant: a point mass has no density).
    density : (grid_size,) renormalised density on ``np.linspace(0, 1, grid_size)``.
    """
    grid = np.linspace(0.0, 1.0, grid_size)
    if np.ptp(y) == 0:
        return float("nan"), np.zeros(grid_size)
    p = gaussian_kde(y)(grid)
    p /= trapezoid(p, grid)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    return float(-trapezoid(plogp, grid)), p


def distributions(
    Y: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    floor: float = 0.05,
    ceiling: float = 0.95,
    flag_fraction: float = 0.1,
    grid_size: int = 1001,
    plot_points: int = 101,
) -> dict:
    """Per-dimension distribution summary of labels in [0, 1].

    Parameters
    ----------
    Y : (N, q) mean ratings scaled to [0, 1]; values outside [0, 1] are a ValueError
        (they mean the labels were not rescaled from the 1-7 scale).
    names : q dimension names.
    floor, ceiling : a rating is at the floor if < ``floor``, at the ceiling if > ``ceiling``.
    flag_fraction : a floor/ceiling flag is raised when that fraction is **> flag_fraction**.
    grid_size : KDE grid for the entropy integral (see ``kde_entropy``).
    plot_points : the KDE density is also returned subsampled to this many grid points.

    Returns
    -------
    dict with ``per_dim`` ({name: {mean, std, variance, skewness, floor_fraction,
    ceiling_fraction, floor_flag, ceiling_flag, entropy}}), ``floor_flags`` /
    ``ceiling_flags`` (names), ``degenerate`` (constant dimensions, entropy None),
    ``kde_grid`` and ``kde_density`` ({name: list}) for plots, and ``headline``.
    Variance is the population variance (ddof=0); skewness is the biased Fisher-Pearson
    coefficient (scipy default), 0 for a constant column.
    """
    Y = _as_2d("Y", Y)
    q = Y.shape[1]
    names = _names(names, q)
    lo, hi = Y.min(0), Y.max(0)
    out_of_range = np.flatnonzero((lo < 0) | (hi > 1))
    if out_of_range.size:
        j = out_of_range[0]
        raise ValueError(f"Y: dimension '{names[j]}' has values in [{lo[j]:.4g}, {hi[j]:.4g}], "
                         "expected ratings scaled to [0, 1]")

    step = max(1, (grid_size - 1) // (plot_points - 1))
    grid = np.linspace(0.0, 1.0, grid_size)
    per_dim, density, degenerate = {}, {}, []
    var = Y.var(0)
    sk = np.zeros(q)
    varying = np.ptp(Y, axis=0) > 0
    sk[varying] = skew(Y[:, varying], axis=0)
    floor_frac = (Y < floor).mean(0)
    ceil_frac = (Y > ceiling).mean(0)
    entropies = np.empty(q)
    for j, name in enumerate(names):
        entropies[j], dens = kde_entropy(Y[:, j], grid_size=grid_size)
        if not np.isfinite(entropies[j]):
            degenerate.append(name)
        density[name] = dens[::step].tolist()
        per_dim[name] = {
            "mean": float(Y[:, j].mean()),
            "std": float(np.sqrt(var[j])),
            "variance": float(var[j]),
            "skewness": float(sk[j]),
            "floor_fraction": float(floor_frac[j]),
            "ceiling_fraction": float(ceil_frac[j]),
            "floor_flag": bool(floor_frac[j] > flag_fraction),
            "ceiling_flag": bool(ceil_frac[j] > flag_fraction),
            "entropy": _fl(entropies[j]),
        }
    floor_flags = [n for n in names if per_dim[n]["floor_flag"]]
    ceiling_flags = [n for n in names if per_dim[n]["ceiling_flag"]]
    finite = entropies[np.isfinite(entropies)]
    return {
        "names": names,
        "per_dim": per_dim,
        "floor_flags": floor_flags,
        "ceiling_flags": ceiling_flags,
        "degenerate": degenerate,
        "rules": {"floor": floor, "ceiling": ceiling, "flag_fraction_gt": flag_fraction,
                  "entropy": "KDE (Scott) renormalised on [0,1], trapezoid on "
                             f"{grid_size} points, nats; uniform = 0"},
        "kde_grid": grid[::step].tolist(),
        "kde_density": density,
        "headline": {
            "n_floor_flags": len(floor_flags),
            "n_ceiling_flags": len(ceiling_flags),
            "mean_entropy": _fl(finite.mean()) if finite.size else None,
            "min_entropy": _fl(finite.min()) if finite.size else None,
            "mean_std": _fl(np.sqrt(var).mean()),
            "max_abs_skewness": _fl(np.abs(sk).max()),
        },
    }
