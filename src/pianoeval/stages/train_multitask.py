"""Stage `train_multitask`: the multi-task quality model on T1-T4 and its ablation (T1-only, +T2, +T3, +T4,
all) on the same pianist-grouped outer folds; fold checkpoints per variant, per-epoch curves (DVCLive),
`metrics/multitask.json` and one comparison plot (see pianoeval.multitask)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from ..dimensions import DIMENSIONS, MEAN_COLUMNS
from ..embedding_store import EmbeddingStore, default_store_path
from ..io import load_params, save_safetensors, write_json
from ..labels import load_labels, load_splits, passage_ids
from ..models.quality_mlp import save_checkpoint
from ..multitask import (AUX_TERMS, FoldJob, Tiers, assign_tier_folds, check_tier_leakage, default_workers,
                         forced_folds, holm_over_comparisons, pianist_ids, t1_metrics, t2_metrics, t3_metrics,
                         t4_metrics, train_all)
from ..plots import metric_panels
from ..t4.evaluate import label_std

SPLIT = "pianist"  # the outer folds of train_quality's default split
CONTROL = "t1_only_reseeded"


def main() -> None:
    torch.set_num_threads(1)  # small models: one thread per process (workers give the parallelism)
    with threadpool_limits(1):
        run({**load_params("train_multitask"), "embeddings": str(default_store_path())})


def _store(path: str, ref: EmbeddingStore) -> EmbeddingStore:
    s = EmbeddingStore(path)
    if s.extractor != ref.extractor or s.extractor_params != ref.extractor_params:
        raise ValueError(f"{path}: embeddings of {s.extractor} {s.extractor_params}, but T1 ({ref.path}) uses "
                         f"{ref.extractor} {ref.extractor_params}: rerun the tier's embed stage")
    return s


def _pooled(store: EmbeddingStore, keys: list[str], what: str) -> np.ndarray:
    missing = [k for k in keys if k not in store]
    if missing:
        raise KeyError(f"{store.path}: no embedding for {len(missing)} {what} item(s), e.g. {missing[:3]}")
    return store.pooled(keys).astype(np.float64)


def load_tiers(p: dict, t1_store: EmbeddingStore) -> Tiers:
    read = dict(dtype={"segment_id": str, "percepiano_pianist_ids": str, "performer_year": str}, keep_default_na=False)
    t2 = pd.read_csv(p["t2_segments"], **read)
    t3 = pd.read_csv(p["t3_segments"], **read)
    t2_pairs = pd.read_csv(p["t2_pairs"], dtype={"better": str, "worse": str})
    t4_pairs = pd.read_csv(p["t4_pairs"], dtype={"pair_id": str, "clip_id": str})
    for name, table, cols in (("t2_segments", t2, ["segment_id", "performer_year", "folder", "placement", "seconds",
                                                    "percepiano_overlap", "percepiano_pianist_ids"]),
                              ("t3_segments", t3, ["segment_id", "performance_id", "performer", "folder", "bar_start",
                                                    "seconds", "percepiano_pianist_ids"]),
                              ("t2_pairs", t2_pairs, ["better", "worse"]),
                              ("t4_pairs", t4_pairs, ["pair_id", "clip_id", "augmentation", "severity"])):
        missing = [c for c in cols if c not in table.columns]
        if missing:
            raise ValueError(f"{p[name]}: missing columns {missing}")
    unknown = sorted((set(t2_pairs["better"]) | set(t2_pairs["worse"])) - set(t2["segment_id"]))
    if unknown:
        raise ValueError(f"{p['t2_pairs']}: pairs name windows not in {p['t2_segments']}: {unknown[:3]}")
    s2, s3 = _store(p["t2_embeddings"], t1_store), _store(p["t3_embeddings"], t1_store)
    sc, sa = _store(p["t4_clean"], t1_store), _store(p["t4_augmented"], t1_store)
    return Tiers(t2=t2, t2_x=_pooled(s2, t2["segment_id"].tolist(), "T2"), t2_pairs=t2_pairs,
                 t3=t3, t3_x=_pooled(s3, t3["segment_id"].tolist(), "T3"), t4_pairs=t4_pairs,
                 t4_clean=_pooled(sc, t4_pairs["clip_id"].tolist(), "T4 clean"),
                 t4_aug=_pooled(sa, t4_pairs["pair_id"].tolist(), "T4 augmented"))


def overlap_finding(path: str, t2: pd.DataFrame, t3: pd.DataFrame) -> dict:
    """What tiers_select's note-sequence matching found (its result table), and how it reaches the tiers."""
    m = pd.read_csv(path)
    refs = sorted(set(m["reference"].astype(str))) if len(m) else []
    return {"table": path, "method": "tiers_select: (pitch, velocity) n-gram matching of every PercePiano MIDI "
                                     "against the selected ASAP performances and their performer-years",
            "n_matched_percepiano_segments": int(m["query"].nunique()) if len(m) else 0,
            "matched_asap_performances": refs,
            "percepiano_pianists": sorted({int(v) for v in m["pianist_id"]}) if len(m) else [],
            "t2_windows_with_percepiano_pianist": int(sum(bool(pianist_ids(v)) for v in t2["percepiano_pianist_ids"])),
            "t3_windows_with_percepiano_pianist": int(sum(bool(pianist_ids(v)) for v in t3["percepiano_pianist_ids"])),
            "t4": "not matched note by note: the T4 pool holds only ASAP titles with a single performance and no "
                  "competition round (t4_pool rule), and its clips carry no pianist identity; every T4 clip is "
                  "assigned to one fold and trains only the other folds' models"}


def run(p: dict) -> None:
    t_start = time.perf_counter()
    splits = load_splits(p["splits"])
    store = EmbeddingStore(p["embeddings"])
    keep = np.array([k in store for k in splits["keys"]])
    keys = [k for k, m in zip(splits["keys"], keep) if m]
    n_missing = int((~keep).sum())
    labels = load_labels(p["labels"])
    table = labels.set_index("key").loc[keys]
    X = store.pooled(keys).astype(np.float64)
    Y = table[list(MEAN_COLUMNS)].to_numpy(np.float64)
    folds = np.asarray(splits["folds"][SPLIT])[keep]
    pianists = table["pianist_id"].to_numpy().astype(int)
    pieces = table["piece"].to_numpy()
    passages = passage_ids(table.reset_index())
    n_folds = int(np.unique(folds).size)
    fold_of_pianist = {int(a): int(b) for a, b in zip(pianists, folds)}

    tiers = load_tiers(p, store)
    sets = {"t2": [pianist_ids(v) for v in tiers.t2["percepiano_pianist_ids"]],
            "t3": [pianist_ids(v) for v in tiers.t3["percepiano_pianist_ids"]],
            "t4": [set() for _ in range(len(tiers.t4_pairs))]}
    performers = {"t2": tiers.t2["performer_year"].str.rsplit("_", n=1).str[0].to_numpy(),
                  "t3": tiers.t3["performer"].astype(str).to_numpy(), "t4": np.full(len(tiers.t4_pairs), "")}
    units = {"t2": tiers.t2["folder"].to_numpy(), "t3": tiers.t3["folder"].to_numpy(),
             "t4": tiers.t4_pairs["clip_id"].to_numpy()}
    tier_folds, fold_report, absent = {}, {}, {}
    for t in AUX_TERMS:
        forced, absent[t] = forced_folds(sets[t], fold_of_pianist)
        tier_folds[t], fold_report[t] = assign_tier_folds(units[t], performers[t], forced, n_folds, p["seed"], what=t)
        fold_report[t]["guarded_items"] = check_tier_leakage(tier_folds[t], sets[t], fold_of_pianist, what=t)
        fold_report[t]["pianists_not_in_t1_rows"] = absent[t]

    variants = dict(p["variants"])
    if p["seed_control"]:
        variants[CONTROL] = variants[p["reference"]]
    jobs = [FoldJob(name, int(k), tuple(terms), p["seed"] + (1 if name == CONTROL else 0))
            for name, terms in variants.items() for k in range(n_folds)]
    context = {"X": X, "Y": Y, "t1_folds": folds, "groups": pianists, "tiers": tiers, "tier_folds": tier_folds,
               "params": {k: p[k] for k in ("val_fraction", "seed", "weights", "model", "device")}}
    workers = 1 if p["device"] != "cpu" else min(default_workers(p["workers"]), len(jobs))
    t0 = time.perf_counter()
    results = train_all(jobs, context, workers)
    t_train = time.perf_counter() - t0

    # -- out-of-fold predictions of every variant on every tier
    oof = {n: np.zeros_like(Y) for n in variants}
    t2_pred = {n: np.zeros((len(tiers.t2), len(DIMENSIONS))) for n in variants}
    t3_rep = {n: np.zeros((len(tiers.t3), p["model"]["hidden"])) for n in variants}
    t3_proj = {n: np.zeros((len(tiers.t3), p["model"]["projection_dim"])) for n in variants}
    t4_clean = {n: np.zeros((len(tiers.t4_pairs), len(DIMENSIONS))) for n in variants}
    t4_aug = {n: np.zeros_like(t4_clean[n]) for n in variants}
    for r in results:
        est, k = r.estimator, r.fold
        oof[r.variant][folds == k] = est.predict(X[folds == k])
        for arr, x, f in ((t2_pred, tiers.t2_x, tier_folds["t2"]), (t4_clean, tiers.t4_clean, tier_folds["t4"]),
                          (t4_aug, tiers.t4_aug, tier_folds["t4"])):
            if (f == k).any():
                arr[r.variant][f == k] = est.predict(x[f == k])
        if (tier_folds["t3"] == k).any():
            t3_rep[r.variant][tier_folds["t3"] == k] = est.representation(tiers.t3_x[tier_folds["t3"] == k])
            t3_proj[r.variant][tier_folds["t3"] == k] = est.representation(tiers.t3_x[tier_folds["t3"] == k],
                                                                           space="projection")

    ref, nb, npm, seed = p["reference"], int(p["n_boot"]), int(p["n_perm"]), int(p["seed"])
    metrics: dict = {
        "n": {"t1_segments": int(len(Y)), "t1_excluded_no_embedding": n_missing, "t2_windows": int(len(tiers.t2)),
              "t2_pairs": int(len(tiers.t2_pairs)), "t3_windows": int(len(tiers.t3)),
              "t4_pairs": int(len(tiers.t4_pairs)), "folds": n_folds},
        "reference": ref, "seed_control": CONTROL if p["seed_control"] else None,
        "variants": {n: list(v) for n, v in variants.items()},
        "split": SPLIT, "extractor": store.extractor,
        "t1": t1_metrics(Y, oof, folds, pianists, pieces, passages, ref, nb, seed),
        "t2": t2_metrics(tiers.t2, t2_pred, ref, nb, npm, seed),
        "t3": t3_metrics(tiers.t3, t3_rep, tiers.t3_x, tier_folds["t3"], ref, nb, seed, projections=t3_proj),
        "t4": t4_metrics(tiers.t4_pairs, t4_clean, t4_aug, label_std(labels), ref, nb, seed),
        "folds": fold_report,
        "leakage": overlap_finding(p["overlap"], tiers.t2, tiers.t3),
    }
    metrics["holm"] = holm_over_comparisons(metrics, controls=(CONTROL,))
    per_variant = {n: [r for r in results if r.variant == n] for n in variants}
    # Wall times go to the console only: the metrics file must be byte-identical on a rerun.
    seconds = {n: float(sum(r.seconds for r in rs)) for n, rs in per_variant.items()}
    metrics["training"] = {n: {"best_epoch_mean": float(np.mean([r.estimator.best_epoch_ for r in rs])),
                               "epochs_run_mean": float(np.mean([r.estimator.n_epochs_ for r in rs])),
                               "inner_val_r2_mean": float(np.mean([r.estimator.best_val_r2_ for r in rs])),
                               "aux_training_units_per_fold": [{k: v for k, v in r.counts.items() if k.startswith("n_t")}
                                                               for r in rs]}
                           for n, rs in per_variant.items()}
    metrics["training_setup"] = {"workers": workers, "device": p["device"]}

    _write_checkpoints(p, results, variants, keys, folds, table, tiers, tier_folds, sets, store)
    _write_curves(p["live_dir"], results)
    frames = [pd.DataFrame({"key": keys, "variant": n, "fold": folds,
                            **{f"pred_{d}": oof[n][:, j] for j, d in enumerate(DIMENSIONS)}}) for n in variants]
    Path(p["oof"]).parent.mkdir(parents=True, exist_ok=True)
    pd.concat(frames).to_csv(p["oof"], index=False, float_format="%.6f")
    _plot(metrics, variants)
    write_json("metrics/multitask.json", metrics)

    t1, t2, t3, t4 = (metrics[t]["variants"] for t in ("t1", "t2", "t3", "t4"))
    for n in variants:
        print(f"train_multitask[{n}]: T1 R2 {t1[n]['r2']:.3f}, within-passage ranking {t1[n]['within_passage_ranking']:.3f}; "
              f"T2 rho {t2[n]['rho']:+.2f}; T3 mAP {t3[n]['map']:.2f}; T4 shift {t4[n]['shift_abs_mean']:.2f} "
              f"({seconds[n]:.1f} s of training, {metrics['training'][n]['epochs_run_mean']:.0f} epochs per fold)")
    print(f"train_multitask: {len(Y)} T1 segments ({n_missing} excluded: no embedding), {len(tiers.t2)} T2 windows "
          f"({metrics['t2']['excluded']['percepiano_overlap']} excluded from the T2 validation: PercePiano overlap), "
          f"{len(tiers.t3)} T3 windows, {len(tiers.t4_pairs)} T4 pairs; {len(jobs)} models in {t_train:.0f} s on "
          f"{workers} worker(s), stage {time.perf_counter() - t_start:.0f} s")


def _write_checkpoints(p, results, variants, keys, folds, table, tiers, tier_folds, sets, store) -> None:
    root = Path(p["checkpoints"])
    for r in results:
        k = r.fold
        train_keys = [key for key, f in zip(keys, folds) if f != k]
        t1_pianists = {int(v) for v in table.loc[train_keys, "pianist_id"]}
        aux_pianists = set()
        units = {}
        for t in variants[r.variant]:
            rows = np.flatnonzero(tier_folds[t] != k)
            aux_pianists |= set().union(set(), *(sets[t][i] for i in rows))
            col = tiers.t4_pairs["clip_id"] if t == "t4" else (tiers.t2 if t == "t2" else tiers.t3)["folder"]
            units[t] = sorted(set(col.iloc[rows].astype(str)))
        stem = root / r.variant / f"fold{k}_seed{r.estimator.seed}"
        save_checkpoint(r.estimator, stem, metadata={
            "split": SPLIT, "fold": k, "variant": r.variant, "terms": ["t1", *variants[r.variant]],
            "extractor": store.extractor, "extractor_params": store.extractor_params,
            # The leakage guard's field: every PercePiano pianist whose playing trained this model, in any
            # tier (tier items of a pianist sit in that pianist's T1 fold, so they add none: checked).
            "train_pianist_ids": sorted(t1_pianists | aux_pianists),
            "train_players": sorted(set(table.loc[train_keys, "player"])),
            "n_train": len(train_keys), "aux_training_units": units, **r.counts})
        if aux_pianists - t1_pianists:
            raise AssertionError(f"{stem}: tier items of pianists {sorted(aux_pianists - t1_pianists)} outside "
                                 "its T1 training pianists")
        save_safetensors(r.estimator.projection_state(), f"{stem}.projection.safetensors",
                         metadata={"of": f"{stem.name}.json", "use": "contrastive projection head (training only)"})


def _write_curves(live_dir: str, results) -> None:
    """Per-epoch training curves of every (variant, fold) with DVCLive; dvc.yaml is not touched (its outputs
    are declared there by hand), no experiment is saved."""
    from unittest import mock

    from dvclive import Live

    # DVCLive is used only as the curve writer: no DVC repo lookup. Its lookup reads the git HEAD and fails
    # in a repository without a commit (`git init` + `dvc repro`, as the end-to-end test does).
    with mock.patch("dvclive.live.get_dvc_repo", return_value=None), \
            Live(live_dir, save_dvc_exp=False, dvcyaml=False, report=None) as live:
        for r in results:
            for rec in r.estimator.history_:
                live.step = rec["epoch"]
                for name, value in rec.items():
                    if name not in ("epoch", "lr"):
                        live.log_metric(f"{r.variant}/fold{r.fold}/{name}", float(value))
        live.summary = {r.variant: {} for r in results}
        for r in results:
            live.summary[r.variant][f"fold{r.fold}"] = {"best_epoch": r.estimator.best_epoch_,
                                                        "best_val_r2": round(r.estimator.best_val_r2_, 6)}
        live.step = None


def _plot(metrics: dict, variants: dict) -> None:
    rows = []
    chance = metrics["t3"]["baselines"]["chance"]["map"]
    for n in variants:
        t1, t2 = metrics["t1"]["variants"][n], metrics["t2"]["variants"][n]
        t3, t4 = metrics["t3"]["variants"][n], metrics["t4"]["variants"][n]
        rows += [
            {"metric": "T1 R² (pianist split)", "variant": n, "value": t1["r2"], "ci_low": t1["r2_ci"][0],
             "ci_high": t1["r2_ci"][1], "baseline": metrics["t1"]["baseline_passage_mean"]["r2"],
             "baseline_label": "passage mean (no audio)"},
            {"metric": "T1 within-passage ranking", "variant": n, "value": t1["within_passage_ranking"],
             "ci_low": t1["within_passage_ranking_ci"][0], "ci_high": t1["within_passage_ranking_ci"][1],
             "baseline": 0.5, "baseline_label": "chance"},
            {"metric": "T2 Spearman rho vs placement\n(performer-year; < 0 agrees)", "variant": n, "value": t2["rho"],
             "ci_low": t2["rho_ci"][0], "ci_high": t2["rho_ci"][1], "baseline": np.nan, "baseline_label": ""},
            {"metric": "T3 cross-performer retrieval mAP", "variant": n, "value": t3["map"], "ci_low": t3["map_ci"][0],
             "ci_high": t3["map_ci"][1], "baseline": chance, "baseline_label": "chance"},
            {"metric": "T4 mean |prediction shift|\n(label std)", "variant": n, "value": t4["shift_abs_mean"],
             "ci_low": t4["ci"][0], "ci_high": t4["ci"][1], "baseline": np.nan, "baseline_label": ""},
        ]
    df = pd.DataFrame(rows)
    Path("plots").mkdir(exist_ok=True)
    df.assign(metric=df["metric"].str.replace("\n", " ")).to_csv("plots/multitask_comparison.csv", index=False,
                                                                   float_format="%.4f")
    metric_panels(df, "plots/multitask_comparison.png",
                  title="Multi-task ablation, out of fold on the same pianist-grouped folds (95% CIs)")


if __name__ == "__main__":
    main()
