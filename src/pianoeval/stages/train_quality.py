"""Stage `train_quality`: the 19-dimension quality MLP and its ridge baseline, cross-validated on
all three splits; fold checkpoints and out-of-fold predictions for the default split."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from ..dimensions import DIMENSIONS, MEAN_COLUMNS
from ..embedding_store import EmbeddingStore, default_store_path
from ..io import load_params, write_json
from ..labels import SPLITS, load_labels, load_splits, passage_ids
from ..models.quality_mlp import save_checkpoint
from ..plots import bar_chart_per_dimension
from ..quality import cross_validate_mlp, cross_validate_ridge, fold_pool, passage_mean_oof
from ..regression_metrics import summarize_regression
from ..stats import group_sums, holm_family, sign_flip_test

MODELS = ("mlp", "ridge", "blend")


def main() -> None:
    # Small matrices and batches: one thread is several times faster than two threads fighting
    # each other (and any other process) for the 2 cores (measured).
    torch.set_num_threads(1)
    with threadpool_limits(1):
        # T1 embeddings of the configured extractor (extract.extractor)
        run({**load_params("train_quality"), "embeddings": str(default_store_path())})


def run(p: dict) -> None:
    splits = load_splits(p["splits"])
    store = EmbeddingStore(p["embeddings"])
    # Segments the render stage skipped (on_bad_midi=skip) have no embedding: counted, not hidden.
    missing = [k for k in splits["keys"] if k not in store]
    keep = np.array([k in store for k in splits["keys"]])
    if missing:
        splits = {**splits, "keys": [k for k, m in zip(splits["keys"], keep) if m],
                  "folds": {s: [f for f, m in zip(v, keep) if m] for s, v in splits["folds"].items()}}
    print(f"train_quality: {len(splits['keys'])} labeled segments, {len(missing)} excluded (no embedding: "
          "skipped by render)")
    table = load_labels(p["labels"]).set_index("key").loc[splits["keys"]]
    X = store.pooled(splits["keys"]).astype(np.float64)
    Y = table[list(MEAN_COLUMNS)].to_numpy(np.float64)
    pieces = table["piece"].to_numpy()
    passages = passage_ids(table.reset_index())
    # The inner validation split (early stopping) and ridge's inner CV group like the outer split; the
    # segment split's groups hold the overlapping 8-/16-bar cuts of one player (labels.overlap_groups).
    inner_groups = {"pianist": table["pianist_id"].to_numpy(), "piece": pieces,
                    "segment": np.asarray(splits["groups"]["segment"])[keep]}
    seeds = [p["seed"] + i for i in range(p["n_seeds"])]
    n_perm = int(p["n_perm"])

    metrics: dict = {"n": len(Y), "excluded_no_embedding": len(missing), "default_split": p["default_split"],
                     "extractor": store.extractor, "n_passages": int(np.unique(passages).size)}
    oof_frames, plot_rows, raw_p = [], [], {}
    ckpt_dir = Path(p["checkpoints"])
    pool = fold_pool(p["workers"])  # folds train in parallel processes; results equal the sequential ones
    for split in SPLITS:
        folds = np.asarray(splits["folds"][split])
        t0 = time.perf_counter()
        mlp_oof, fold_results = cross_validate_mlp(X, Y, folds, inner_groups[split], p["mlp"], seeds,
                                                   p["val_fraction"], executor=pool)
        t_mlp = time.perf_counter() - t0
        ridge_oof = cross_validate_ridge(X, Y, folds, inner_groups[split], p["ridge"]["alphas"],
                                         p["ridge"]["inner_folds"], p["seed"])
        # The blend's weight is fixed in params, never tuned on these out-of-fold predictions.
        w = p["blend_mlp_weight"]
        blend_oof = w * mlp_oof + (1 - w) * ridge_oof
        # No audio at all: the passage's mean rating among the training pianists (42% of the label
        # variance lies between passages); every model is reported beside it.
        base_oof, base_rep = passage_mean_oof(Y, folds, passages, pieces)
        base = summarize_regression(Y, base_oof, DIMENSIONS, fold_ids=folds, groups=pieces, passages=passages)
        metrics.setdefault("passage_mean", {})[split] = {**base, "rows_by_rule": base_rep}
        base_loss = (Y - base_oof) ** 2
        for model, oof in (("mlp", mlp_oof), ("ridge", ridge_oof), ("blend", blend_oof)):
            summary = summarize_regression(Y, oof, DIMENSIONS, fold_ids=folds, groups=pieces, passages=passages)
            # Does the model beat the passage baseline? Sign flips of per-group loss differences, the
            # groups of the outer split (pianists / overlap groups / pieces) as the exchangeable units.
            test = sign_flip_test(group_sums(base_loss - (Y - oof) ** 2, inner_groups[split]), n_perm=n_perm,
                                  seed=p["seed"])
            summary["vs_passage_mean"] = {"r2_gain": summary["r2_mean"] - base["r2_mean"], "p": test["p"],
                                          "n_groups": test["n_groups"], "n_perm": n_perm}
            raw_p[(model, split)] = test["p"]
            metrics.setdefault(model, {})[split] = summary
            plot_rows += [{"dimension": d, "model": model, "split": split, "r2": summary["r2"][d]} for d in DIMENSIONS]
        plot_rows += [{"dimension": d, "model": "passage_mean", "split": split, "r2": base["r2"][d]}
                      for d in DIMENSIONS]
        metrics["mlp"][split]["best_epoch_mean"] = float(np.mean([e for r in fold_results for e in r.best_epochs]))
        print(f"train_quality[{split}]: R2 MLP {metrics['mlp'][split]['r2_mean']:.3f} ({t_mlp:.0f} s), "
              f"ridge {metrics['ridge'][split]['r2_mean']:.3f}, blend {metrics['blend'][split]['r2_mean']:.3f}, "
              f"passage mean (no audio) {base['r2_mean']:.3f}; within-passage R2 MLP "
              f"{metrics['mlp'][split]['within_passage']['r2_mean']:.3f}, ranking within passage "
              f"{metrics['mlp'][split]['within_passage']['ranking_accuracy_mean']:.3f}; "
              f"{base_rep['n_piece_fallback'] + base_rep['n_global_fallback']} rows without a training passage")
        oof_frames.append(pd.DataFrame({"key": splits["keys"], "split": split, "fold": folds,
                                        **{f"pred_{d}": mlp_oof[:, j] for j, d in enumerate(DIMENSIONS)}}))
        if split == p["default_split"]:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            for res in fold_results:
                train_keys = [k for k, f in zip(splits["keys"], folds) if f != res.fold]
                for i, model in enumerate(res.models):
                    save_checkpoint(model, ckpt_dir / f"fold{res.fold}_seed{i}", metadata={
                        "split": split, "fold": res.fold, "extractor": store.extractor,
                        "extractor_params": store.extractor_params,
                        # What the leakage guard checks: a model may only score performances of
                        # pianists it never trained on.
                        "train_pianist_ids": sorted({int(v) for v in table.loc[train_keys, "pianist_id"]}),
                        "train_players": sorted(set(table.loc[train_keys, "player"])),
                        "n_train": len(train_keys)})

    if pool is not None:
        pool.shutdown()
    # The stage's p-value family: every model against the passage baseline on every split (Holm).
    holm = holm_family({f"{m}.{s}": v for (m, s), v in raw_p.items()})
    for (model, split) in raw_p:
        metrics[model][split]["vs_passage_mean"]["p_holm"] = holm[f"{model}.{split}"]
    pd.concat(oof_frames).to_csv(p["oof"], index=False, float_format="%.6f")
    write_json("metrics/quality.json", metrics)
    plot_df = pd.DataFrame(plot_rows)
    Path("plots").mkdir(exist_ok=True)
    plot_df.to_csv("plots/quality_r2_per_dim.csv", index=False, float_format="%.4f")
    bar_chart_per_dimension(plot_df, "plots/quality_r2_per_dim.png",
                            title=f"Out-of-fold R² per dimension ({store.extractor} embeddings)",
                            value="r2", group="model", panel="split")


if __name__ == "__main__":
    main()
