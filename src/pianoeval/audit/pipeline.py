"""The audit run: load the inputs, run the nine sections, collect the report and its headline
metrics. The `audit` stage (pianoeval.stages.audit) is a thin wrapper around :func:`run_audit`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import json_ready
from .cca import cca_analysis
from .competition import competition_section
from .correlation import correlation_redundancy
from .distributions import distributions
from .downstream import attention_embeddings, downstream_stop, training_pianists, window_frames
from .factors import factor_structure
from .probes import attention_probe_cv, factor_probe_cv, mlp_probe_cv, ridge_probe_fixed
from .reliability import rater_reliability
from .residuals import residual_structure
from ..dimensions import DIMENSIONS, MEAN_COLUMNS
from ..embedding_store import EmbeddingStore
from ..io import read_json
from ..labels import SPLITS, load_labels, load_splits
from ..stats import holm_family

N_RATING_COLUMNS = len(DIMENSIONS)
REPEATS = ("mean", "keep", "first")


# --------------------------------------------------------------------------- inputs
def load_t1(labels_path: str, splits_path: str, embeddings_path: str) -> dict:
    """Labeled PercePiano rows in ``splits.json`` key order: labels, folds, pooled embeddings.

    Returns
    -------
    dict with keys (N list), Y (N, 19) mean ratings, X (N, 2D) pooled embeddings, folds
    ({split: (N,) int}), groups ({split: (N,) grouping of its inner splits}), pianist (N,) int,
    store (EmbeddingStore), counts.
    """
    splits = load_splits(splits_path)
    table = load_labels(labels_path)
    keys = list(splits["keys"])
    known = set(table["key"])
    absent = [k for k in keys if k not in known]
    if absent:
        raise ValueError(f"{splits_path}: {len(absent)} keys not in {labels_path}, e.g. {absent[:3]}")
    t = table.set_index("key").loc[keys]
    unlabeled = [k for k, ok in zip(keys, t["labeled"].astype(bool)) if not ok]
    if unlabeled:
        raise ValueError(f"{splits_path}: {len(unlabeled)} keys are not labeled in {labels_path}, "
                         f"e.g. {unlabeled[:3]}")
    store = EmbeddingStore(embeddings_path)
    # Segments the render stage skipped (render.on_bad_midi: skip) have no embedding: dropped, counted.
    has_embedding = np.array([k in store for k in keys], dtype=bool)
    n_no_embedding = int((~has_embedding).sum())
    keys = [k for k, ok in zip(keys, has_embedding) if ok]
    t = t[has_embedding]
    Y = t[list(MEAN_COLUMNS)].to_numpy(np.float64)
    if not np.isfinite(Y).all():
        r, c = np.argwhere(~np.isfinite(Y))[0]
        raise ValueError(f"{labels_path}: key '{keys[r]}': {MEAN_COLUMNS[c]} is empty")
    pianist = t["pianist_id"].to_numpy(np.int64)
    # Inner splits (alpha, early stopping) group like the outer split they sit in.
    groups = {"pianist": pianist, "segment": np.asarray(splits["groups"]["segment"])[has_embedding],
              "piece": np.unique(t["piece"].to_numpy(str), return_inverse=True)[1]}
    return {"keys": keys, "Y": Y, "X": store.pooled(keys).astype(np.float64),
            "folds": {s: np.asarray(splits["folds"][s], dtype=np.int64)[has_embedding] for s in SPLITS},
            "groups": groups, "pianist": pianist, "store": store,
            "counts": {"n_rows_labels_csv": int(len(table)), "n_labeled": int(table["labeled"].sum()),
                       "n_unlabeled_excluded": int((~table["labeled"].astype(bool)).sum()),
                       "n_excluded_no_embedding": n_no_embedding, "n_used": len(keys)}}


def load_annotations(path: str | Path, keys: list[str], Y: np.ndarray, *, repeats: str = "mean",
                     min_mapping_r: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Per-annotator ratings of the labeled segments, with the column mapping verified.

    Rules (each counted in the returned report):

    * the rating columns are the first 19 ``Question_*`` columns in file order; any further
      ``Question_*`` column (a free-text remark in PercePiano) is listed and ignored;
    * rows with no rating at all are dropped; rows of segments without labels are dropped;
    * rows repeating an earlier row's (user, dataID) are copies of one submission: dropped
      (a copy with different ratings is a ValueError naming both lines);
    * values outside the 1-7 scale (0, 8, 9 in PercePiano) are not ratings on the scale: they are
      set to missing before anything is averaged, and counted by value and dimension;
    * a user's several submissions for one segment are averaged (``repeats="mean"``), kept
      as separate ratings (``"keep"``) or reduced to the lowest dataID (``"first"``).

    Mapping check: per segment, the mean of (rating - 1) / 6 over all rows is correlated
    with each ``mean_<dim>`` label; every rating column must correlate best with its own
    dimension (and vice versa) at r >= ``min_mapping_r``, otherwise ValueError.

    Returns
    -------
    segment_ids (M,), rater_ids (M,), ratings (M, 19) (NaN = not rated), report.
    """
    path = Path(path)
    if repeats not in REPEATS:
        raise ValueError(f"params audit.reliability.repeats: expected one of {REPEATS}, got {repeats!r}")
    raw = pd.read_csv(path, dtype={"filename": str}, keep_default_na=True)
    for col in ("user", "dataID", "filename"):
        if col not in raw.columns:
            raise ValueError(f"{path}: no '{col}' column")
    questions = [c for c in raw.columns if c.startswith("Question_")]
    if len(questions) < N_RATING_COLUMNS:
        raise ValueError(f"{path}: {len(questions)} Question_* columns, need {N_RATING_COLUMNS}")
    qcols, extra = questions[:N_RATING_COLUMNS], questions[N_RATING_COLUMNS:]
    ratings = raw[qcols].apply(pd.to_numeric, errors="coerce")
    bad = ratings.isna() & raw[qcols].notna()
    if bad.to_numpy().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise ValueError(f"{path}:{r + 2}: column {qcols[c]} is not a number: {raw[qcols[c]].iloc[r]!r}")
    df = pd.DataFrame({"line": np.arange(len(raw)) + 2, "user": raw["user"].astype(str),
                       "data_id": raw["dataID"].astype(str),
                       "key": raw["filename"].fillna("").str.strip().str.replace(r"\.(wav|mid)$", "", regex=True)})
    R = ratings.to_numpy(np.float64)
    empty = np.isnan(R).all(1)
    known = np.isin(df["key"].to_numpy(), np.asarray(keys))
    report = {"file": str(path), "n_rows": int(len(df)), "rating_columns": qcols,
              "ignored_columns": {c: {"n_filled": int(raw[c].notna().sum())} for c in extra},
              "n_rows_no_rating": int(empty.sum()),
              "n_rows_unlabeled_segment": int((~empty & ~known).sum()),
              "unlabeled_segment_examples": sorted(set(df["key"][~empty & ~known]))[:5]}
    keep = ~empty & known
    df, R = df[keep].reset_index(drop=True), R[keep]

    # (user, dataID) copies: the same submission recorded twice.
    first = ~df.duplicated(["user", "data_id"]).to_numpy()
    grp = df.groupby(["user", "data_id"], sort=False).ngroup().to_numpy()
    ref = np.full(grp.max() + 1, -1)
    ref[grp[first]] = np.flatnonzero(first)
    orig = ref[grp]
    key = df["key"].to_numpy()
    differs = ~first & ~(np.isclose(R, R[orig], equal_nan=True).all(1) & (key == key[orig]))
    if differs.any():
        i = int(np.flatnonzero(differs)[0])
        raise ValueError(f"{path}:{df['line'][i]}: user {df['user'][i]} dataID {df['data_id'][i]} repeats "
                         f"line {df['line'][orig[i]]} with different content")
    report["n_copy_rows_dropped"] = int((~first).sum())
    df, R = df[first].reset_index(drop=True), R[first]
    out_of_scale = (R < 1) | (R > 7)
    values, counts = np.unique(R[out_of_scale], return_counts=True)
    report["values_outside_1_7_excluded"] = {
        "n": int(out_of_scale.sum()),
        "by_value": {f"{v:g}": int(c) for v, c in zip(values, counts)},
        "by_dimension": {d: int(v) for d, v in zip(DIMENSIONS, out_of_scale.sum(0))},
        "rule": "set to missing before averaging repeats and before the ICC (not ratings on the 1-7 scale)"}
    R = np.where(out_of_scale, np.nan, R)
    empty_after = np.isnan(R).all(1)
    report["n_rows_empty_after_exclusion"] = int(empty_after.sum())
    df, R = df[~empty_after].reset_index(drop=True), R[~empty_after]

    pair = df.groupby(["user", "key"], sort=False).ngroup().to_numpy()
    n_pairs = int(pair.max()) + 1
    report["n_repeat_submissions"] = int(len(df) - n_pairs)
    report["repeats_rule"] = repeats
    if repeats == "first":
        order = np.lexsort((df["data_id"].astype(np.int64).to_numpy(), pair))
        sel = order[np.r_[True, pair[order][1:] != pair[order][:-1]]]
        df, R = df.iloc[np.sort(sel)].reset_index(drop=True), R[np.sort(sel)]
    elif repeats == "mean":
        sums = np.zeros((n_pairs, R.shape[1]))
        cnt = np.zeros((n_pairs, R.shape[1]))
        np.add.at(sums, pair, np.nan_to_num(R))
        np.add.at(cnt, pair, ~np.isnan(R))
        firsts = np.unique(pair, return_index=True)[1]
        df = df.iloc[firsts].reset_index(drop=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            R = np.where(cnt > 0, sums / np.where(cnt > 0, cnt, 1), np.nan)[pair[firsts]]

    # Mapping check on per-segment means of the rescaled ratings.
    seg_codes, seg = np.unique(df["key"].to_numpy(), return_inverse=True)
    valid = ~np.isnan(R)
    sums = np.zeros((len(seg_codes), R.shape[1]))
    cnt = np.zeros_like(sums)
    np.add.at(sums, seg, np.where(valid, (R - 1) / 6, 0.0))
    np.add.at(cnt, seg, valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        seg_mean = sums / cnt
    lab = Y[pd.Index(keys).get_indexer(seg_codes)]
    ok = np.isfinite(seg_mean).all(1)
    C = np.corrcoef(seg_mean[ok].T, lab[ok].T)[:N_RATING_COLUMNS, N_RATING_COLUMNS:]
    diag = np.diag(C)
    off = C - np.diag(np.full(N_RATING_COLUMNS, np.inf))
    is_diag = (C.argmax(1) == np.arange(N_RATING_COLUMNS)) & (C.argmax(0) == np.arange(N_RATING_COLUMNS))
    report["mapping_check"] = {
        "rule": "corr(per-segment mean of (rating-1)/6, labels mean_<dim>) is largest on the diagonal "
                f"and >= {min_mapping_r}",
        "diagonal_r": {d: float(r) for d, r in zip(DIMENSIONS, diag)},
        "min_diagonal_r": float(diag.min()), "max_offdiagonal_r": float(off.max()),
        "n_segments": int(ok.sum()),
        "mean_abs_difference": float(np.nanmean(np.abs(seg_mean[ok] - lab[ok]))),
        "passed": bool(is_diag.all() and diag.min() >= min_mapping_r),
    }
    if not is_diag.all():
        j = int(np.flatnonzero(~is_diag)[0])
        raise ValueError(f"{path}: rating column {qcols[j]} does not map to dimension '{DIMENSIONS[j]}' "
                         f"(best-correlated label '{DIMENSIONS[int(C[j].argmax())]}', r = {C[j].max():.3f}; "
                         f"own r = {diag[j]:.3f}): the Question columns are not in label order")
    if diag.min() < min_mapping_r:
        j = int(diag.argmin())
        raise ValueError(f"{path}: rating column {qcols[j]} correlates only r = {diag[j]:.3f} with "
                         f"'{DIMENSIONS[j]}' (< min_mapping_r = {min_mapping_r}): the ratings do not "
                         "reproduce the labels")
    missing = sorted(set(keys) - set(seg_codes))
    report["n_labeled_segments_without_ratings"] = len(missing)
    report["n_ratings_used"] = int(len(df))
    return df["key"].to_numpy(), df["user"].to_numpy(), R, report


def load_masterclass(p: dict, input_dir: str | Path) -> dict:
    """Segment table, quality scores, embeddings and segment pianists of the masterclass data.

    Pianists come from ``<input_dir>/provenance.json`` (simulated sessions); real recordings have
    none, and then every fold model may pool every segment (as in the masterclass_scores stage).
    """
    from ..masterclass.features import distinct_windows, read_segment_table
    from ..masterclass.scoring import segment_pianists
    from ..masterclass.simulate import PROVENANCE_FILE

    segments = read_segment_table(p["segments"])
    scores = pd.read_csv(p["scores"], dtype={"segment_id": str})
    store = EmbeddingStore(p["embeddings"])
    windows = distinct_windows(segments)
    prov_path = Path(input_dir) / PROVENANCE_FILE
    provenance = read_json(prov_path) if prov_path.is_file() else None
    return {"segments": segments, "scores": scores, "store": store, "ids": windows["segment_id"].tolist(),
            "pianists": segment_pianists(windows, provenance)}


# --------------------------------------------------------------------------- the audit
def run_audit(p: dict, classify_C: float, masterclass_dir: str | Path, log=print) -> tuple[dict, dict]:
    """All nine sections. Returns (report, timings in seconds per step); timings stay out of
    the report so that the same inputs give the same report."""
    seed = int(p["seed"])
    default = p["default_split"]
    if default not in SPLITS:
        raise ValueError(f"params audit.default_split: '{default}' is not one of {SPLITS}")
    timings = {}
    tick = time.perf_counter()

    def lap(name):
        nonlocal tick
        now = time.perf_counter()
        timings[name] = now - tick
        tick = now
        log(f"audit: {name} {timings[name]:.1f} s")

    d = load_t1(p["labels"], p["splits"], p["embeddings"])
    Y, X, folds = d["Y"], d["X"], d["folds"]
    dims = list(DIMENSIONS)
    hop = int(p["attention"]["frame_hop"])
    frames = [window_frames(d["store"].frames(k), hop) for k in d["keys"]]
    lap("load")

    report: dict = {"data": {"n_segments": len(Y), "n_folds": {s: int(np.unique(f).size) for s, f in folds.items()},
                             "default_split": default, "extractor": d["store"].extractor,
                             "embedding_dim": int(X.shape[1]), "frame_rate": d["store"].frame_rate,
                             "attention_frame_hop": hop, **d["counts"]}}
    cp = p["correlation"]
    report["correlation"] = correlation_redundancy(Y, dims, top_k=cp["top_k"], high=cp["high"],
                                                   moderate=cp["moderate"])
    fp = p["factors"]
    fac = factor_structure(Y, dims, n_iter=fp["n_iter"], seed=seed, percentile=fp["percentile"],
                           loading_threshold=fp["loading_threshold"])
    report["factors"] = json_ready(fac)
    dp = p["distributions"]
    report["distributions"] = distributions(Y, dims, floor=dp["floor"], ceiling=dp["ceiling"],
                                            flag_fraction=dp["flag_fraction"])
    lap("correlation+factors+distributions")

    rp = p["reliability"]
    seg_ids, raters, ratings, ann = load_annotations(p["annotations"], d["keys"], Y, repeats=rp["repeats"],
                                                     min_mapping_r=rp["min_mapping_r"])
    rel = rater_reliability(seg_ids, raters, ratings, dims, seed=seed, n_splits=rp["n_splits"],
                            on_duplicate="keep" if rp["repeats"] == "keep" else "raise")
    rel["annotations"] = ann
    report["reliability"] = rel
    ceiling = {k: v["noise_ceiling"] for k, v in rel["per_dim"].items()}
    lap("reliability")

    rg = p["ridge"]
    probes: dict = {"ridge_cv": {}, "ridge_fixed": {}, "factor": {}}
    oof_default = None
    for split in SPLITS:
        # Dimensions and factor scores in one ridge fit (shared decompositions, same per-column result);
        # the factors are fitted inside each training fold, the inner CV groups like the outer split.
        fac_probe = factor_probe_cv(X, Y, folds[split], max(fac["n_significant"], 1), names=dims,
                                    alphas=rg["alphas"], inner_folds=rg["inner_folds"], seed=seed,
                                    groups=d["groups"][split])
        cv = fac_probe.pop("dims")
        fixed = ridge_probe_fixed(X, Y, folds[split], dims, alpha=rg["fixed_alpha"])
        if split == default:
            oof_default = cv["oof"]
        for name, res in (("ridge_cv", cv), ("ridge_fixed", fixed), ("factor", fac_probe)):
            probes[name][split] = json_ready(res)
    lap("ridge+factor probes (3 splits)")

    mp = p["mlp"]
    mlp = mlp_probe_cv(X, Y, folds[default], dims, hidden=mp["hidden"], seed=seed, epochs=mp["epochs"], lr=mp["lr"],
                       batch_size=mp["batch_size"], weight_decay=mp["weight_decay"], patience=mp["patience"],
                       val_frac=mp["val_frac"], n_components=mp["n_components"], num_threads=1,
                       groups=d["groups"][default])
    probes["mlp"] = {default: json_ready(mlp)}
    lap("mlp probe")
    ap = p["attention"]
    att = attention_probe_cv(frames, Y, folds[default], dims, seed=seed, epochs=ap["epochs"], lr=ap["lr"],
                             batch_size=ap["batch_size"], hidden=ap["hidden"], weight_decay=ap["weight_decay"],
                             patience=ap["patience"], val_frac=ap["val_frac"], num_threads=1, return_models=True,
                             groups=d["groups"][default])
    att_models = att.pop("models")
    probes["attention"] = {default: json_ready(att)}
    report["probes"] = probes
    report["noise_ceiling"] = ceiling
    lap("attention probe")

    sp = p["residuals"]
    report["residuals"] = residual_structure(Y, oof_default, dims, n_iter=sp["n_iter"], seed=seed,
                                             percentile=fp["percentile"], loading_threshold=fp["loading_threshold"])
    cc = p["cca"]
    report["cca"] = cca_analysis(X, Y, folds[default], dims, n_pca=cc["n_pca"], seed=seed, threshold=cc["threshold"],
                                 n_null=cc["n_null"])
    lap("residuals+cca")

    dn = p["downstream"]
    mc = load_masterclass(p["masterclass"], masterclass_dir)
    pooled, pool_report = attention_embeddings(
        att_models, training_pianists(folds[default], d["pianist"]),
        [window_frames(mc["store"].frames(s), hop) for s in mc["ids"]], mc["ids"], mc["pianists"])
    down = downstream_stop(mc["segments"], mc["scores"], dict(zip(mc["ids"], pooled)), Y, fac["n_significant"],
                           probes["ridge_cv"][default]["r2"], variants=dn["variants"], n_extreme=dn["n_extreme"],
                           C=classify_C, cv_folds=dn["cv_folds"], n_perm=dn["n_perm"],
                           margin=dn["equivalence_margin"], level=dn["level"], seed=seed,
                           negative_control=dn["negative_control_teacher"], n_jobs=dn["n_jobs"])
    down["attention_pooling"] = pool_report
    down["audibility_probe"] = f"ridge_cv/{default}"
    report["downstream"] = down
    lap("downstream")

    report["competition"] = competition_section(p.get("competition"))
    report["pvalue_family"] = holm_correct_report(report)
    report["settings"] = {**p, "classifier_C": classify_C, "masterclass_dir": str(masterclass_dir)}
    report["headline"] = headline_metrics(report)
    return report, timings


def holm_correct_report(report: dict) -> dict:
    """Holm over every p-value the audit reports (downstream: each set's AUC, each paired ΔAUC and each
    TOST; competition: each Spearman p when present). Writes ``*_holm`` beside each raw value (in the
    section results and the downstream headline) and returns {name: [raw, corrected]}."""
    raw, where = {}, {}
    for v, res in report["downstream"]["variants"].items():
        prefix = "" if v == "all" else f"{v}."
        for name, r in res.get("sets", {}).items():
            for key in ("auc_p_perm", "delta_p", "p_tost"):
                if r.get(key) is not None:
                    tag = f"downstream.{prefix}{name}.{key}"
                    raw[tag], where[tag] = r[key], (r, key, f"{prefix}{name}.{key}")
    comp = report["competition"]
    if comp.get("status") == "ok":
        for name, r in [*comp.get("per_dim", {}).items(), ("mean_quality", comp.get("mean_quality", {}))]:
            if r.get("p") is not None:
                tag = f"competition.{name}.p"
                raw[tag], where[tag] = r["p"], (r, "p", None)
    adjusted = holm_family(raw)
    for tag, adj in adjusted.items():
        node, key, headline_key = where[tag]
        node[f"{key}_holm"] = adj
        if headline_key is not None:
            report["downstream"]["headline"][f"{headline_key}_holm"] = adj
    return {tag: [raw[tag], adjusted[tag]] for tag in raw}


def _r(x):
    return None if x is None else float(x)


def headline_metrics(report: dict) -> dict:
    """Flat scalar metrics (``metrics/audit.json``): keys read well in ``dvc metrics diff``."""
    h: dict = {"data.n_segments": report["data"]["n_used"],
               "data.n_excluded_no_embedding": report["data"]["n_excluded_no_embedding"]}
    c = report["correlation"]
    h.update({"corr.n_pairs_high": c["n_pairs_high"], "corr.n_pairs_moderate": c["n_pairs_moderate"],
              "corr.mean_abs_r": c["headline"]["mean_abs_r"], "corr.max_abs_r": c["headline"]["max_abs_r"],
              "corr.max_vif": c["headline"]["max_vif"], "corr.n_vif_gt_10": c["headline"]["n_vif_gt_10"]})
    f = report["factors"]
    h.update({"pca.n_significant": f["n_significant"], "pca.n_components_90": f["n_components_90"],
              "pca.n_components_95": f["n_components_95"],
              "pca.var_explained_first": f["headline"]["var_explained_first"],
              "pca.var_explained_significant": f["headline"]["var_explained_significant"]})
    dh = report["distributions"]["headline"]
    h.update({"dist.n_floor_flags": dh["n_floor_flags"], "dist.n_ceiling_flags": dh["n_ceiling_flags"],
              "dist.mean_entropy": dh["mean_entropy"], "dist.mean_std": dh["mean_std"]})
    rel = report["reliability"]
    ann = rel["annotations"]
    h.update({"reliability.noise_ceiling_mean": rel["mean"]["noise_ceiling"],
              "reliability.noise_ceiling_min": rel["headline"]["min_noise_ceiling"],
              "reliability.icc1_1_mean": rel["mean"]["icc1_1"], "reliability.icc1_k_mean": rel["mean"]["icc1_k"],
              "reliability.split_half_sb_mean": rel["mean"]["split_half_sb"],
              "reliability.raters_per_segment_mean": rel["headline"]["mean_raters_per_segment"],
              "reliability.n_ratings": ann["n_ratings_used"],
              "reliability.n_copy_rows_dropped": ann["n_copy_rows_dropped"],
              "reliability.n_values_outside_1_7_excluded": ann["values_outside_1_7_excluded"]["n"],
              "reliability.n_repeat_submissions": ann["n_repeat_submissions"],
              "reliability.mapping_min_r": ann["mapping_check"]["min_diagonal_r"]})
    h.update({f"reliability.noise_ceiling.{k}": v for k, v in report["noise_ceiling"].items()})
    default = report["data"]["default_split"]
    for probe, by_split in report["probes"].items():
        for split, res in by_split.items():
            h[f"probe.{probe}.{split}.r2_mean"] = res["r2_mean"]
            if probe == "factor":
                h[f"probe.factor.{split}.factor_minus_dim_r2"] = res["factor_minus_dim_r2"]
                h[f"probe.factor.{split}.n_folds_factor_above_dim"] = res["n_folds_factor_above_dim"]
        if probe != "factor":
            h.update({f"probe.{probe}.r2.{k}": v for k, v in by_split[default]["r2"].items()})
    ceil = report["noise_ceiling"]
    r2 = report["probes"]["ridge_cv"][default]["r2"]
    frac = [r2[k] / ceil[k] for k in r2 if r2[k] is not None and ceil[k]]
    h["probe.ridge_cv.r2_over_ceiling_mean"] = float(np.mean(frac)) if frac else None
    rs = report["residuals"]
    h.update({"residual.n_structured": rs["n_structured"],
              "residual.mean_unexplained": rs["headline"]["mean_unexplained_fraction"],
              "residual.mean_abs_corr": rs["mean_abs_residual_corr"]})
    cc = report["cca"]
    h.update({"cca.first": cc["headline"]["first_canonical_corr"], "cca.n_above_threshold": cc["n_above_threshold"],
              "cca.n_above_null": cc["n_above_null"],
              "cca.heldout_first": cc["headline"]["heldout_first_canonical_corr"],
              "cca.n_heldout_above_threshold": cc["n_heldout_above_threshold"],
              "cca.redundancy_y_given_x": cc["redundancy_y_given_x"], "cca.mean_sq": cc["mean_sq_canonical_corr"]})
    h.update({f"downstream.{k}": _r(v) for k, v in report["downstream"]["headline"].items()})
    h["downstream.n_pvalues_holm"] = len(report["pvalue_family"])
    comp = report["competition"]
    h["competition.available"] = int(comp["status"] == "ok")
    h.update({f"competition.{k}": v for k, v in comp.get("headline", {}).items()})
    return h
