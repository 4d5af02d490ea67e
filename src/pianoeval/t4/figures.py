"""The robustness heat map (augmentation x severity rows, the 19 dimensions as columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..plots import plt, save


def robustness_heatmap(heat: pd.DataFrame, path: str) -> None:
    """Two panels (PercePiano out of fold, T4 pairs) of the mean |prediction shift| in label-std units.

    heat : long table with columns condition, dimension, percepiano_shift_abs, t4_shift_abs (row order kept).
    """
    conds = list(dict.fromkeys(heat["condition"]))
    dims = list(dict.fromkeys(heat["dimension"]))
    panels = [("percepiano_shift_abs", "PercePiano segments (out of fold)"), ("t4_shift_abs", "T4 pairs")]
    mats = [heat.pivot(index="condition", columns="dimension", values=col).loc[conds, dims].to_numpy()
            for col, _ in panels]
    vmax = float(np.nanmax([np.nanmax(m) for m in mats]))
    fig, axes = plt.subplots(1, 2, figsize=(2 * (0.32 * len(dims) + 2.5), 0.3 * len(conds) + 2.2), sharey=True)
    for ax, m, (_, title) in zip(axes, mats, panels):
        im = ax.imshow(m, aspect="auto", cmap="magma_r", vmin=0.0, vmax=vmax)
        ax.set_xticks(np.arange(len(dims)), dims, rotation=90, fontsize=7)
        ax.set_title(title, fontsize=10)
    axes[0].set_yticks(np.arange(len(conds)), conds, fontsize=7)
    fig.colorbar(im, ax=axes, shrink=0.8, label="mean |prediction shift| (label std)")
    fig.suptitle("Quality-model prediction shift per augmentation x severity")
    save(fig, path)
