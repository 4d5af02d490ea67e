"""Stage `robustness`: per augmentation x severity, how much the embeddings and the 19 quality
predictions move, on the T4 pairs and on out-of-fold PercePiano segments (see pianoeval.t4.evaluate)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..audio_store import AudioStore
from ..dimensions import DIMENSIONS, MEAN_COLUMNS
from ..embedding_store import EmbeddingStore
from ..extractors import load_configured
from ..io import load_params, write_json
from ..labels import load_labels
from ..loudness import embedding_params
from ..masterclass.scoring import check_extractor, load_checkpoints
from ..t4.figures import robustness_heatmap
from ..t4.augment import parse_grid
from ..t4.evaluate import (baselines, label_std, percepiano_condition, percepiano_pooled, score_all_checkpoints,
                           score_out_of_fold, select_passages, t4_condition)
from ..t4.robustness import standardizer
from ..t4.rooms import RoomBank


def main() -> None:
    p = load_params("robustness")
    ex = load_params("extract")
    grid = parse_grid(load_params("t4_augment")["augmentations"])
    t0 = time.perf_counter()
    torch.set_num_threads(1)  # parallelism comes from the worker threads; one BLAS thread each
    workers = p["workers"] or os.cpu_count() or 1
    targets = p["targets"]
    heads = load_checkpoints(p["checkpoints"])
    splits = sorted({h.config["metadata"].get("split") for h in heads.values()})
    labels = load_labels(p["labels"])
    lstd = label_std(labels)

    # -- T4 pairs: stored embeddings, every checkpoint (no PercePiano pianist in ASAP clips)
    clean_store, aug_store = EmbeddingStore(p["t4_clean"]), EmbeddingStore(p["t4_augmented"])
    check_extractor(heads, clean_store.extractor, clean_store.extractor_params)
    check_extractor(heads, aug_store.extractor, aug_store.extractor_params)
    pairs = pd.read_csv(p["pairs"])
    clip_ids = list(clean_store.keys)
    missing = sorted(set(pairs["clip_id"]) - set(clip_ids))
    if missing:
        raise KeyError(f"{p['pairs']}: clips {missing[:5]} have no clean embedding in {p['t4_clean']}")
    t4_clean = clean_store.pooled()
    t4_pred_clean = score_all_checkpoints(t4_clean, heads)
    t4_mean, t4_std = standardizer(t4_clean)
    t4_aug = aug_store.pooled(list(pairs["pair_id"]))
    t4_pred_aug = score_all_checkpoints(t4_aug, heads)
    clip_pos = {c: i for i, c in enumerate(clip_ids)}

    # -- PercePiano: a seeded passage subset, augmented in memory, scored out of fold
    model = load_configured(ex["extractor"], ex)
    loudness = ex.get("loudness_lufs")
    check_extractor(heads, ex["extractor"], embedding_params(model.identity(), loudness))
    bank = RoomBank.load(p["rooms"])
    pcfg = p["percepiano"]
    with AudioStore(p["percepiano_audio"]) as store:
        # Segments the render stage skipped (render.on_bad_midi: skip) have no audio: excluded, counted.
        no_audio = int((labels["labeled"] & ~labels["key"].isin(set(store.keys))).sum())
        labels = labels[~labels["labeled"] | labels["key"].isin(set(store.keys))]
        sub = select_passages(labels, {k: store.duration(k) for k in store.keys}, n_passages=pcfg["n_passages"],
                              min_performances=pcfg["min_performances"], max_minutes=pcfg["max_minutes"],
                              seed=pcfg["seed"])
        keys = sub["key"].tolist()
        pp_clean, pp_aug, _ = percepiano_pooled(keys, store, model, grid, bank, p["seed"], workers, loudness)
    pp_pred_clean, assignment = score_out_of_fold(pp_clean, keys, sub["pianist_id"].tolist(), heads)
    pp_pred_aug = [score_out_of_fold(a, keys, sub["pianist_id"].tolist(), heads)[0] for a in pp_aug]
    y = sub[list(MEAN_COLUMNS)].to_numpy(dtype=np.float64)
    passages = sub["passage"].to_numpy()
    pp_mean, pp_std = standardizer(pp_clean)

    # Check: the clean out-of-fold scores reproduce train_quality's out-of-fold predictions.
    oof = pd.read_csv(p["oof"])
    oof = oof[oof["split"].isin(splits)].set_index("key")
    pred_cols = [f"pred_{d}" for d in DIMENSIONS]
    oof_diff = float(np.abs(oof.loc[keys, pred_cols].to_numpy() - pp_pred_clean).max())
    lab = labels[labels["labeled"]].set_index("key")
    all_oof = oof.loc[oof.index.intersection(lab.index)]
    oof_rmse = np.sqrt(((all_oof[pred_cols].to_numpy() - lab.loc[all_oof.index, list(MEAN_COLUMNS)].to_numpy()) ** 2)
                       .mean(axis=0)) / lstd

    conditions, heat = {}, []
    for k, c in enumerate(grid):
        sel = np.flatnonzero((pairs["augmentation"] == c.augmentation).to_numpy()
                             & (pairs["severity"].astype(str) == c.severity).to_numpy())
        t4 = None
        if sel.size:
            idx = np.array([clip_pos[x] for x in pairs["clip_id"].iloc[sel]])
            t4 = t4_condition(t4_clean, t4_pred_clean, t4_aug[sel], t4_pred_aug[sel], idx, t4_mean, t4_std, lstd,
                              p["n_boot"], p["seed"] + k, targets["pearson_r_min"])
        pp = percepiano_condition(y, pp_pred_clean, pp_pred_aug[k], pp_clean, pp_aug[k], passages, pp_mean, pp_std,
                                  lstd, p["n_boot"], p["seed"] + k, targets["pearson_r_min"],
                                  targets["ranking_drop_max"])
        conditions[c.name] = {"augmentation": c.augmentation, "severity": c.severity, "t4": t4, "percepiano": pp}
        pp_shift = (pp_pred_aug[k] - pp_pred_clean) / lstd
        t4_shift = ((t4_pred_aug[sel] - t4_pred_clean[idx]) / lstd) if sel.size else np.full((1, len(lstd)), np.nan)
        for j, d in enumerate(DIMENSIONS):
            heat.append({"condition": c.name, "dimension": d,
                         "percepiano_shift_abs": float(np.abs(pp_shift[:, j]).mean()),
                         "percepiano_shift_mean": float(pp_shift[:, j].mean()),
                         "t4_shift_abs": float(np.abs(t4_shift[:, j]).mean()),
                         "t4_shift_mean": float(t4_shift[:, j].mean())})

    names = [c.name for c in grid]
    missed = {
        "pearson_percepiano": [n for n in names if not conditions[n]["percepiano"]["meets_pearson_target"]],
        "pearson_t4": [n for n in names if conditions[n]["t4"] and not conditions[n]["t4"]["meets_pearson_target"]],
        "ranking_percepiano": [n for n in names if not conditions[n]["percepiano"]["meets_ranking_target"]]}
    base = baselines(t4_clean, t4_mean, t4_std, pp_clean, pp_mean, pp_std)
    base["percepiano"].update({
        "r2_clean": conditions[names[0]]["percepiano"]["r2_clean"],
        "ranking_clean": conditions[names[0]]["percepiano"]["ranking_clean"],
        "model_error_rmse_label_std": float(oof_rmse.mean()),
        "clean_vs_train_quality_oof_max_abs_diff": oof_diff})
    n_pairs_pp = int(sum(len(g) * (len(g) - 1) // 2 for _, g in sub.groupby("passage")))
    report = {
        "n": {"t4_clips": len(clip_ids), "t4_pairs": len(pairs), "percepiano_segments": len(keys),
              "percepiano_passages": int(sub["passage"].nunique()), "percepiano_same_passage_pairs": n_pairs_pp,
              "percepiano_pianists": int(sub["pianist_id"].nunique()), "conditions": len(grid),
              "percepiano_excluded_no_audio": no_audio,
              "n_boot": p["n_boot"]},
        "loudness_lufs": loudness,
        "checkpoints": {"n": len(heads), "split": splits,
                        "percepiano_models_per_segment": sorted({len(v) for v in assignment.values()})},
        "targets": {**targets, "missed": missed},
        "baseline": base,
        "conditions": conditions,
    }
    write_json("metrics/robustness.json", report)

    heat_df = pd.DataFrame(heat)
    Path("plots").mkdir(exist_ok=True)
    heat_df.to_csv("plots/robustness_heatmap.csv", index=False, float_format="%.6f")
    rows = [{"condition": n, "dataset": ds, "shift_abs_mean": conditions[n][ds]["shift_abs_mean"]}
            for n in names for ds in ("t4", "percepiano") if conditions[n][ds]]
    pd.DataFrame(rows).to_csv("plots/robustness_shift.csv", index=False, float_format="%.6f")
    robustness_heatmap(heat_df, "plots/robustness_heatmap.png")

    pred_rows = []
    for k, c in enumerate([None, *grid]):
        arr = pp_pred_clean if c is None else pp_pred_aug[k - 1]
        for key, row in zip(keys, arr):
            pred_rows.append({"dataset": "percepiano", "item": key, "condition": "clean" if c is None else c.name,
                              **dict(zip(DIMENSIONS, row))})
    for cid, row in zip(clip_ids, t4_pred_clean):
        pred_rows.append({"dataset": "t4", "item": cid, "condition": "clean", **dict(zip(DIMENSIONS, row))})
    for (pid, a, s), row in zip(pairs[["pair_id", "augmentation", "severity"]].itertuples(index=False), t4_pred_aug):
        pred_rows.append({"dataset": "t4", "item": pid, "condition": f"{a}/{s}", **dict(zip(DIMENSIONS, row))})
    Path(p["predictions"]).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(pred_rows).to_csv(p["predictions"], index=False, float_format="%.6f")

    # One line per augmentation: the mean |prediction shift| per severity, so a review sees it move.
    for aug in dict.fromkeys(c.augmentation for c in grid):
        cells = [n for n in names if conditions[n]["augmentation"] == aug]
        parts = []
        for n in cells:
            t4 = conditions[n]["t4"]
            pp = conditions[n]["percepiano"]
            parts.append(f"{conditions[n]['severity']} {t4['shift_abs_mean'] if t4 else float('nan'):.3f}/"
                         f"{pp['shift_abs_mean']:.3f} (r {pp['pearson_mean']:.2f}, rank drop {pp['ranking_drop_rel']:+.1%})")
        print(f"robustness {aug}: mean |shift| T4/PercePiano in label std: " + "; ".join(parts))
    print(f"robustness: {len(clip_ids)} T4 clips x {len(pairs)} pairs, {len(keys)} PercePiano segments of "
          f"{report['n']['percepiano_passages']} passages ({no_audio} labelled segments without audio excluded: "
          f"skipped by render); model error {oof_rmse.mean():.3f} label std; misses "
          f"Pearson>={targets['pearson_r_min']}: {len(missed['pearson_percepiano'])} (PercePiano), "
          f"{len(missed['pearson_t4'])} (T4); ranking drop<={targets['ranking_drop_max']:.0%}: "
          f"{len(missed['ranking_percepiano'])} of {len(grid)}; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
