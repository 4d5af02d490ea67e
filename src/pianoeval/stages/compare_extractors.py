"""Stage `compare_extractors`: ridge probe of every configured extractor's T1 store (and of each stored
layer / concat member) on the pianist, segment and piece splits -> metrics/extractors.json and a plot."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ..compare_extractors import bootstrap_r2, passage_mean_oof, probe_rows
from ..dimensions import DIMENSIONS, MEAN_COLUMNS
from ..embedding_store import EmbeddingStore, store_path
from ..io import load_params, write_json
from ..labels import SPLITS, load_labels, load_splits
from ..plots import grouped_bars
from ..quality import cross_validate_ridge
from ..regression_metrics import summarize_regression


def main() -> None:
    t0 = time.perf_counter()
    p = load_params("compare_extractors")
    ex = load_params("extract")
    ridge = load_params("train_quality")["ridge"]
    with threadpool_limits(1):  # small matrices: one BLAS thread beats two fighting over 2 shared cores
        metrics, plot_rows = run(p, ex, ridge)
    write_json("metrics/extractors.json", metrics)
    df = pd.DataFrame(plot_rows)
    Path("plots").mkdir(exist_ok=True)
    df.to_csv("plots/extractors_r2.csv", index=False, float_format="%.4f")
    grouped_bars(df, "plots/extractors_r2.png", category="extractor", group="split", value="r2",
                 low="ci_low", high="ci_high",
                 title=f"Ridge probe: out-of-fold mean R² per extractor (n = {metrics['n']}, 95% bootstrap CI)")
    best = max(metrics["rows"], key=lambda r: metrics["rows"][r]["pianist"]["r2_mean"])
    print(f"compare_extractors: {len(metrics['rows'])} rows on {metrics['n']} segments; best pianist-split R2 "
          f"{metrics['rows'][best]['pianist']['r2_mean']:.3f} ({best}); excluded (no embedding) "
          f"{metrics['excluded_no_embedding']} ({time.perf_counter() - t0:.0f} s)")


def run(p: dict, ex: dict, ridge: dict) -> tuple[dict, list[dict]]:
    splits = load_splits(p["splits"])
    stores = {name: EmbeddingStore(store_path(name, ex["out_dir"])) for name in ex["extractors"]}
    # Keys every store has (a render skip leaves a key out of all of them): counted, not hidden.
    keys = [k for k in splits["keys"] if all(k in s for s in stores.values())]
    keep = np.array([k in set(keys) for k in splits["keys"]])
    table = load_labels(p["labels"]).set_index("key").loc[keys]
    Y = table[list(MEAN_COLUMNS)].to_numpy(np.float64)
    pieces = table["piece"].to_numpy()
    pianists = table["pianist_id"].to_numpy()
    # Duration in seconds from the reference store's frame count (every store covers the whole clip
    # except concat members that skip windows, so the first store in the list is the reference).
    ref_store = stores[ex["extractors"][0]]
    duration = np.array([ref_store.n_frames(k) / ref_store.frame_rate for k in keys])
    inner = {"pianist": pianists, "piece": pieces, "segment": None}
    boot_unit = {"pianist": pianists, "piece": pieces, "segment": np.arange(len(keys))}

    features = {}
    for name, store in stores.items():
        for row, sel in probe_rows(store, keys):
            features[row] = store.pooled(keys, **sel).astype(np.float64)
    reference = p["reference"]
    if reference not in features:
        raise ValueError(f"params compare_extractors.reference: '{reference}' is not a row ({sorted(features)})")

    metrics: dict = {"n": len(keys), "excluded_no_embedding": int((~keep).sum()), "reference": reference,
                     "probe": "ridge, per-dimension alpha by inner CV grouped like the outer split "
                              "(train_quality.ridge)",
                     "rows": {}, "baselines": {}}
    plot_rows = []
    for split in SPLITS:
        folds = np.asarray(splits["folds"][split])[keep]
        preds = {}
        for row, X in features.items():
            preds[row] = cross_validate_ridge(X, Y, folds, inner[split], ridge["alphas"], ridge["inner_folds"],
                                              p["seed"])
        base = {"duration": cross_validate_ridge(np.log(duration)[:, None], Y, folds, inner[split], ridge["alphas"],
                                                 ridge["inner_folds"], p["seed"]),
                "passage_mean": passage_mean_oof(Y, folds, pieces)}
        ci = bootstrap_r2(Y, {**preds, **base}, reference, boot_unit[split], p["n_boot"], p["seed"])
        for row, pred in {**preds, **base}.items():
            s = summarize_regression(Y, pred, DIMENSIONS, fold_ids=folds, groups=pieces)
            entry = {"n": s["n"], "r2_mean": s["r2_mean"], "r2_ci95": ci[row]["ci"],
                     "ranking_accuracy_mean": s["ranking_accuracy_mean"], "fold_r2_mean": s["fold_r2_mean"]}
            if "delta" in ci[row]:
                entry |= {"delta_vs_reference": ci[row]["delta"], "delta_ci95": ci[row]["delta_ci"],
                          "p_delta_le_0": ci[row]["p_delta_le_0"]}
            target = metrics["baselines"] if row in base else metrics["rows"]
            target.setdefault(row, {})[split] = entry
            plot_rows.append({"extractor": row, "split": split, "r2": s["r2_mean"], "ci_low": ci[row]["ci"][0],
                              "ci_high": ci[row]["ci"][1]})
        print(f"compare_extractors[{split}]: " + ", ".join(
            f"{r} {metrics['rows'][r][split]['r2_mean']:.3f}" for r in features), flush=True)
    for row in features:
        metrics["rows"][row]["dim"] = int(features[row].shape[1] // 2)
    return metrics, plot_rows


if __name__ == "__main__":
    main()
