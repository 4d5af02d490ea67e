"""The multi-task ablation: T1-only, +T2, +T3, +T4 and all four, trained and evaluated on the same folds.

Folds. T1 uses the pianist split of ``splits.json`` (the outer folds of ``train_quality``). Every T2, T3
and T4 item gets one of the same fold numbers (:func:`assign_tier_folds`): the model of fold k trains on
the T1 rows and the auxiliary items of the other folds and is evaluated on fold k's T1 rows and fold k's
auxiliary items, so each tier's metric is out of fold exactly like T1's R². Items are assigned as whole
units (a T2 or T3 score folder: the ordinal pairs and the retrieval positives live inside one folder; a
T4 clip with all its augmentations) joined into one unit when they share a performer, so no performer is
on both sides of any fold. An item whose performance PercePiano also holds (note-sequence matching of
``tiers_select``: ``percepiano_pianist_ids``) is forced into the T1 fold of those pianists: the model
that is tested on a pianist never trained on that pianist's playing in any tier
(:func:`check_tier_leakage` re-checks the final assignment).

Metrics of each variant (all out of fold, on the same items for every variant):

* T1: mean R² over the 19 dimensions with a pianist-bootstrap 95% interval
  (:func:`pianoeval.compare_extractors.bootstrap_r2`), within-passage pairwise ranking accuracy (chance 0.5)
  with a passage-bootstrap interval; the no-audio passage-mean baseline beside them.
* T2: competition validation of the predicted overall score (:func:`pianoeval.audit.competition.t2_validation`:
  Spearman rho vs placement at performer-year level, performer-year bootstrap CI, permutation p, piece-mean
  and duration baselines, within-piece rho).
* T3: cross-performer same-passage retrieval (top-1, mAP; :mod:`pianoeval.tiers.crossperformer`) on the
  trunk's last hidden layer, candidates = the other performances of the same fold (the items one model
  saw as test), folder-bootstrap CI, chance and the duration-only and raw-embedding baselines.
* T4: mean |prediction shift| between clean and augmented clip, in label-std units
  (:func:`pianoeval.t4.robustness.prediction_shift`), clip-bootstrap CI.

Each auxiliary variant is compared with T1-only by a paired bootstrap (the same resamples for both):
difference, 95% interval and a two-sided bootstrap p, Holm-corrected over the family of comparisons.
A second T1-only run with another seed (``seed_control``) shows how far two trainings of the same recipe
differ: a variant's difference smaller than that is not evidence of anything.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .audit.competition import t2_validation
from .compare_extractors import bootstrap_r2
from .dimensions import DIMENSIONS
from .masterclass.scoring import LeakageError
from .models.multitask import AuxData, MultiTaskQuality
from .quality import inner_validation_split, passage_mean_oof
from .regression_metrics import r2_per_dim, summarize_regression
from .stats import group_bootstrap_rhos, holm_family
from .t4.robustness import percentile_ci, prediction_shift, ranking_accuracy_mean, ranking_pairs
from .tiers.crossperformer import chance_levels, cosine_similarity, folder_bootstrap_ci, retrieval_scores

AUX_TERMS = ("t2", "t3", "t4")


# ----------------------------------------------------------------------------------------------- data
@dataclass
class Tiers:
    """Auxiliary items with their pooled embeddings (rows aligned with the tables).

    t2 : windows (segment_id, performer_year, folder, placement, seconds, percepiano_overlap,
         percepiano_pianist_ids); t2_x (n2, 2D); t2_pairs : better, worse (segment ids).
    t3 : windows (segment_id, performance_id, performer, folder, bar_start, seconds, percepiano_pianist_ids);
         t3_x (n3, 2D).
    t4_pairs : pair_id, clip_id, augmentation, severity; t4_clean (n4, 2D) the clean clip of each pair,
         t4_aug (n4, 2D) its augmented version.
    """

    t2: pd.DataFrame
    t2_x: np.ndarray
    t2_pairs: pd.DataFrame
    t3: pd.DataFrame
    t3_x: np.ndarray
    t4_pairs: pd.DataFrame
    t4_clean: np.ndarray
    t4_aug: np.ndarray


def pianist_ids(cell) -> set[int]:
    """';'-joined PercePiano pianist ids of a tier row (empty = no overlap)."""
    return {int(float(x)) for x in str(cell).split(";") if x.strip() not in ("", "nan", "<NA>", "None")}


def t3_positive_mask(t3: pd.DataFrame) -> np.ndarray:
    """(n3, n3) bool: the same bars of the same score folder by another performance (T3 positives)."""
    passage = (t3["folder"].astype(str) + "@" + t3["bar_start"].astype(str)).to_numpy()
    perf = t3["performance_id"].astype(str).to_numpy()
    return (passage[:, None] == passage[None, :]) & (perf[:, None] != perf[None, :])


# ----------------------------------------------------------------------------------------------- folds
def assign_tier_folds(units: np.ndarray, performers: np.ndarray, forced: list[set[int]], n_folds: int,
                      seed: int, *, what: str) -> tuple[np.ndarray, dict]:
    """Fold of each item of one tier.

    Parameters
    ----------
    units : (n,) unit of each item (kept together: folder, clip).
    performers : (n,) performer of each item ('' = unknown): units sharing a performer are joined.
    forced : n sets of allowed folds (empty set = free): the T1 folds of the item's PercePiano pianists.
    n_folds : folds 0..n_folds-1.   seed : order of equally sized free components.
    what : tier name for error messages.

    Returns
    -------
    (folds (n,) int, report {n_components, n_forced_components, items_per_fold}).
    Components are placed largest first, forced ones at their fold, free ones on the fold with the
    fewest items so far (ties: lowest fold), which keeps the folds about equal in size.
    """
    units, performers = np.asarray(units).astype(str), np.asarray(performers).astype(str)
    n = len(units)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for key_values in (units, performers):
        first: dict[str, int] = {}
        for i, k in enumerate(key_values):
            if key_values is performers and k in ("", "nan", "<NA>"):
                continue
            if k in first:
                parent[find(i)] = find(first[k])
            else:
                first[k] = i
    roots = np.array([find(i) for i in range(n)])
    comps = {r: np.flatnonzero(roots == r) for r in np.unique(roots)}
    rng = np.random.default_rng(seed)
    order = list(comps)
    tiebreak = dict(zip(order, rng.permutation(len(order))))
    allowed = {}
    for r, rows in comps.items():
        sets = [forced[i] for i in rows if forced[i]]
        if sets:
            common = set.intersection(*sets)
            if len(common) != 1:
                ex = units[rows[0]]
                raise LeakageError(f"{what}: unit '{ex}' joins items whose PercePiano pianists lie in T1 folds "
                                   f"{sorted(set().union(*sets))}: no fold keeps every pianist's test fold free of it")
            allowed[r] = next(iter(common))
    folds = np.empty(n, dtype=np.int64)
    load = np.zeros(n_folds, dtype=np.int64)
    for r in sorted(comps, key=lambda r: (r not in allowed, -len(comps[r]), tiebreak[r])):
        k = allowed.get(r, int(np.argmin(load)))
        folds[comps[r]] = k
        load[k] += len(comps[r])
    return folds, {"n_items": n, "n_components": len(comps), "n_forced_components": len(allowed),
                   "items_per_fold": {str(k): int(v) for k, v in enumerate(load)}}


def forced_folds(pianist_sets: list[set[int]], t1_fold_of_pianist: dict[int, int]) -> tuple[list[set[int]], int]:
    """Per item the T1 folds of its PercePiano pianists (pianists absent from this run's T1 rows impose
    nothing; their count is returned)."""
    out, absent = [], 0
    for ps in pianist_sets:
        s = set()
        for p in ps:
            if p in t1_fold_of_pianist:
                s.add(t1_fold_of_pianist[p])
            else:
                absent += 1
        out.append(s)
    return out, absent


def check_tier_leakage(item_folds: np.ndarray, pianist_sets: list[set[int]], t1_fold_of_pianist: dict[int, int],
                       *, what: str) -> int:
    """Raise :class:`LeakageError` if an item with a PercePiano pianist would train the model of that
    pianist's T1 test fold (i.e. sits in another fold). Returns the number of guarded items."""
    guarded = 0
    for i, ps in enumerate(pianist_sets):
        for p in ps:
            if p in t1_fold_of_pianist:
                guarded += 1
                if t1_fold_of_pianist[p] != int(item_folds[i]):
                    raise LeakageError(f"{what}: item {i} (PercePiano pianist {p}, T1 test fold "
                                       f"{t1_fold_of_pianist[p]}) is in fold {int(item_folds[i])}: the model tested "
                                       f"on pianist {p} would train on it")
    return guarded


# ----------------------------------------------------------------------------------------------- training
@dataclass
class FoldJob:
    variant: str
    fold: int
    terms: tuple[str, ...]
    seed: int


@dataclass
class FoldOutput:
    variant: str
    fold: int
    estimator: MultiTaskQuality
    seconds: float
    counts: dict = field(default_factory=dict)


def aux_for_fold(tiers: Tiers, folds: dict[str, np.ndarray], k: int, terms: tuple[str, ...]) -> AuxData:
    """The auxiliary training items of fold k's model (items of the other folds) for the active terms."""
    aux = AuxData()
    if "t2" in terms:
        train_ids = set(tiers.t2.loc[folds["t2"] != k, "segment_id"])
        pos = {s: i for i, s in enumerate(tiers.t2["segment_id"])}
        keep = tiers.t2_pairs["better"].isin(train_ids) & tiers.t2_pairs["worse"].isin(train_ids)
        pairs = tiers.t2_pairs[keep]
        aux.t2_better = tiers.t2_x[[pos[s] for s in pairs["better"]]]
        aux.t2_worse = tiers.t2_x[[pos[s] for s in pairs["worse"]]]
    if "t3" in terms:
        rows = np.flatnonzero(folds["t3"] != k)
        aux.t3_x = tiers.t3_x[rows]
        aux.t3_positive = t3_positive_mask(tiers.t3.iloc[rows])
    if "t4" in terms:
        rows = np.flatnonzero(folds["t4"] != k)
        aux.t4_clean, aux.t4_aug = tiers.t4_clean[rows], tiers.t4_aug[rows]
    aux.counts = {t: aux.n(t) for t in terms}
    return aux


def _run_job(job: FoldJob) -> FoldOutput:
    ctx = _WORKER_CONTEXT
    X, Y, t1_folds, groups = ctx["X"], ctx["Y"], ctx["t1_folds"], ctx["groups"]
    p = ctx["params"]
    t0 = time.perf_counter()
    fit, val = inner_validation_split(np.flatnonzero(t1_folds != job.fold), groups, p["val_fraction"],
                                      p["seed"] + job.fold)
    aux = aux_for_fold(ctx["tiers"], ctx["tier_folds"], job.fold, job.terms)
    weights = {"t1": p["weights"]["t1"], **{t: (p["weights"][t] if t in job.terms else 0.0) for t in AUX_TERMS}}
    est = MultiTaskQuality(weights, **p["model"], seed=job.seed, device=p["device"])
    est.fit(X[fit], Y[fit], X[val], Y[val], aux)
    return FoldOutput(job.variant, job.fold, est, time.perf_counter() - t0,
                      {"n_fit": int(len(fit)), "n_val": int(len(val)), **{f"n_{t}": c for t, c in aux.counts.items()}})


_WORKER_CONTEXT: dict = {}


def _init_worker(context: dict) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER_CONTEXT.clear()
    _WORKER_CONTEXT.update(context)


def warm_up_optimizer() -> None:
    """One AdamW step on a 1-parameter model: the first optimizer step of a process imports torch._dynamo
    (~5 s here). Done once before the worker processes fork, they inherit it instead of paying it each."""
    import torch

    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([w], lr=1e-3, fused=True)
    (w * 1.0).sum().backward()
    opt.step()


def train_all(jobs: list[FoldJob], context: dict, workers: int) -> list[FoldOutput]:
    """Run every (variant, fold) job; ``workers`` > 1 uses that many processes (one thread each).
    Each job is seeded on its own, so the results do not depend on the number of workers; they come
    back in the order of ``jobs``."""
    warm_up_optimizer()
    if workers <= 1 or len(jobs) == 1:
        _init_worker(context)
        return [_run_job(j) for j in jobs]
    import multiprocessing as mp

    # The slowest jobs (most terms) first, so no worker is left with a long job at the end.
    order = sorted(range(len(jobs)), key=lambda i: (-len(jobs[i].terms), i))
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(workers, initializer=_init_worker, initargs=(context,)) as pool:
        done = pool.map(_run_job, [jobs[i] for i in order], chunksize=1)
    out: list[FoldOutput | None] = [None] * len(jobs)
    for i, res in zip(order, done):
        out[i] = res
    return out  # type: ignore[return-value]


def default_workers(workers: int) -> int:
    return workers or os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------- evaluation
def within_passage_ranking(Y: np.ndarray, preds: dict[str, np.ndarray], passages: np.ndarray, reference: str,
                           n_boot: int, seed: int) -> dict[str, dict]:
    """Within-passage pairwise ranking accuracy (mean over dimensions) of each prediction, a 95% interval
    resampling whole passages, and the paired difference to ``reference`` (same resamples)."""
    passages = np.asarray(passages)
    uniq, inv = np.unique(passages, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
    counts = np.zeros((n_boot, len(uniq)))
    np.add.at(counts, (np.repeat(np.arange(n_boot), len(uniq)), draws.ravel()), 1.0)
    # A drawn passage's pairs count once per draw: item weights sqrt(count) make a pair's weight count.
    W = np.sqrt(counts[:, inv])
    ones = np.ones((1, len(passages)))
    boot, point = {}, {}
    for name, pred in preds.items():
        ii, jj, pts, valid = ranking_pairs(Y, pred, passages)
        point[name] = float(ranking_accuracy_mean(pts, valid, ii, jj, ones)[0])
        boot[name] = ranking_accuracy_mean(pts, valid, ii, jj, W)
    out = {}
    for name in preds:
        row = {"ranking_accuracy": point[name], "ci": percentile_ci(boot[name])}
        if name != reference:
            row.update(paired_delta(point[name] - point[reference], boot[name] - boot[reference]))
        out[name] = row
    return out


def paired_delta(delta: float, boot_delta: np.ndarray) -> dict:
    """Difference, its 95% percentile interval and a two-sided bootstrap p (twice the smaller tail)."""
    d = np.asarray(boot_delta, dtype=float)
    d = d[np.isfinite(d)]
    # (1 + tail count) / (B + 1): a bootstrap never yields p = 0
    p = float(min(1.0, 2 * (1 + min((d <= 0).sum(), (d >= 0).sum())) / (d.size + 1))) if d.size else None
    return {"delta": float(delta), "delta_ci": percentile_ci(d), "p_boot": p}


def t1_metrics(Y: np.ndarray, oof: dict[str, np.ndarray], folds: np.ndarray, pianists: np.ndarray,
               pieces: np.ndarray, passages: np.ndarray, reference: str, n_boot: int, seed: int) -> dict:
    """Per variant: R² (pianist-bootstrap CI, paired ΔR²), within-passage R² and ranking accuracy (passage
    bootstrap), plus the passage-mean baseline (no audio)."""
    base, base_rep = passage_mean_oof(Y, folds, passages, pieces)
    boot = bootstrap_r2(Y, oof, reference, pianists, n_boot, seed)
    rank = within_passage_ranking(Y, {**oof, "passage_mean": base}, passages, reference, n_boot, seed + 1)
    out = {}
    for name, pred in oof.items():
        s = summarize_regression(Y, pred, DIMENSIONS, fold_ids=folds, groups=pieces, passages=passages)
        row = {"r2": s["r2_mean"], "r2_ci": boot[name]["ci"], "fold_r2": s["fold_r2_mean"],
               "within_passage_r2": s["within_passage"]["r2_mean"],
               "within_passage_ranking": rank[name]["ranking_accuracy"],
               "within_passage_ranking_ci": rank[name]["ci"], "r2_per_dim": s["r2"]}
        if name != reference:
            frac_le = boot[name]["p_delta_le_0"]
            row["vs_reference"] = {"r2": {"delta": boot[name]["delta"], "delta_ci": boot[name]["delta_ci"],
                                          "p_boot": float(min(1.0, 2 * (1 + n_boot * min(frac_le, 1 - frac_le))
                                                              / (n_boot + 1)))},
                                   "within_passage_ranking": {k: rank[name][k] for k in ("delta", "delta_ci", "p_boot")}}
        out[name] = row
    out_base = {"r2": float(np.mean(r2_per_dim(Y, base))), "within_passage_ranking": rank["passage_mean"]["ranking_accuracy"],
                "rows_by_rule": base_rep}
    return {"n": int(len(Y)), "n_pianists": int(np.unique(pianists).size), "n_passages": int(np.unique(passages).size),
            "variants": out, "baseline_passage_mean": out_base, "chance_ranking": 0.5}


def t2_metrics(t2: pd.DataFrame, preds: dict[str, np.ndarray], reference: str, n_boot: int, n_perm: int,
               seed: int) -> dict:
    """Competition validation of each variant's out-of-fold T2 predictions (:func:`t2_validation`, PercePiano-
    overlap rows excluded as in the audit) and the paired performer-year bootstrap of its rho minus the
    reference's."""
    cols = ["segment_id", "performer_year", "folder", "placement", "seconds", "percepiano_overlap"]
    keep = ~t2["percepiano_overlap"].astype(str).str.lower().isin(("true", "1")).to_numpy()
    out, overall, excluded = {}, {}, None
    for name, pred in preds.items():
        table = t2[cols].copy()
        table[list(DIMENSIONS)] = pred
        v = t2_validation(table, n_boot=n_boot, n_perm=n_perm, seed=seed)
        py = v["performer_year"]["overall"]
        out[name] = {"rho": py["rho"], "rho_ci": [py["ci_low"], py["ci_high"]], "p_perm": py["p_perm"],
                     "within_piece": v["within_piece"], "n_performer_years": v["performer_year"]["n"],
                     "baselines": {b: v["performer_year"]["baselines"][b]["rho"]
                                   for b in v["performer_year"]["baselines"]}}
        excluded = v["excluded"]
        # the performer-year level overall score, as t2_validation forms it
        overall[name] = pd.Series(pred[keep].mean(1)).groupby(t2.loc[keep, "performer_year"].to_numpy()).mean()
    # Paired: the same performer-year resamples for every variant's overall score.
    names = list(preds)
    frame = pd.DataFrame({n: overall[n] for n in names})
    place = t2[keep].groupby("performer_year")["placement"].first().loc[frame.index].to_numpy(float)
    B = group_bootstrap_rhos(frame.to_numpy(), place, np.arange(len(frame)), n_boot=n_boot, seed=seed + 7)
    ref = names.index(reference)
    for j, name in enumerate(names):
        if name != reference:
            out[name]["vs_reference"] = {"rho": paired_delta(out[name]["rho"] - out[reference]["rho"],
                                                             B[:, j] - B[:, ref])}
    return {"n_windows": int(len(t2)), "excluded": excluded, "variants": out,
            "agreement_sign": "negative rho = higher predicted quality for pianists who went further"}


def t3_metrics(t3: pd.DataFrame, reps: dict[str, np.ndarray], raw: np.ndarray, folds: np.ndarray, reference: str,
               n_boot: int, seed: int, projections: dict[str, np.ndarray] | None = None) -> dict:
    """Same-passage retrieval across performers per variant on out-of-fold trunk representations (the
    shared representation: the headline ``map``/``top1``) and, if given, on the projection the contrastive
    term trains (``map_projection``; untrained, i.e. random, in variants without T3); each query's
    candidates are the other performances of its own fold. Baselines: the raw pooled embedding and the
    window duration on the same candidates, and chance."""
    passage = (t3["folder"].astype(str) + "@" + t3["bar_start"].astype(str)).to_numpy()
    perf, folder = t3["performance_id"].astype(str).to_numpy(), t3["folder"].astype(str).to_numpy()
    same_fold = folds[:, None] == folds[None, :]

    def per_query(E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top1, ap = np.full(len(t3), np.nan), np.full(len(t3), np.nan)
        for k in np.unique(folds):
            rows = np.flatnonzero(folds == k)
            t, a = retrieval_scores(cosine_similarity(E[rows]), passage[rows], perf[rows])
            top1[rows], ap[rows] = t, a
        return top1, ap

    logdur = np.log(t3["seconds"].to_numpy(float))
    scores = {name: per_query(E) for name, E in reps.items()}
    scores["raw_embedding"] = per_query(raw)
    S_dur = -np.abs(logdur[:, None] - logdur[None, :])
    scores["duration"] = retrieval_scores(S_dur, passage, perf, same_fold)
    out = {}
    for name, (top1, ap) in scores.items():
        out[name] = {"top1": float(np.nanmean(top1)), "top1_ci": folder_bootstrap_ci(top1, folder, n_boot=n_boot, seed=seed),
                     "map": float(np.nanmean(ap)), "map_ci": folder_bootstrap_ci(ap, folder, n_boot=n_boot, seed=seed + 1),
                     "n_queries": int(np.isfinite(ap).sum())}
    for name, Z in (projections or {}).items():
        top1, ap = per_query(Z)
        out[name].update(map_projection=float(np.nanmean(ap)),
                         map_projection_ci=folder_bootstrap_ci(ap, folder, n_boot=n_boot, seed=seed + 3))
    ref_ap = scores[reference][1]
    for name in reps:
        if name != reference:
            d = scores[name][1] - ref_ap
            out[name]["vs_reference"] = {"map": {**paired_delta(float(np.nanmean(d)), _folder_boot_means(d, folder, n_boot, seed + 2))}}
    return {"n_windows": int(len(t3)), "n_folders": int(len(set(folder))), "n_passages": int(len(set(passage))),
            "variants": {n: out[n] for n in reps}, "baselines": {"raw_embedding": out["raw_embedding"],
                                                                "duration": out["duration"],
                                                                "chance": chance_levels(passage, perf, same_fold)},
            "candidates": "other performances of the query's own fold (one model's test items)"}


def _folder_boot_means(values: np.ndarray, folder: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap means of per-query values resampling whole folders (the samples behind folder_bootstrap_ci)."""
    ok = np.isfinite(values)
    values, folder = values[ok], folder[ok]
    groups = np.unique(folder)
    sums = np.array([values[folder == g].sum() for g in groups])
    counts = np.array([(folder == g).sum() for g in groups])
    idx = np.random.default_rng(seed).integers(0, len(groups), size=(n_boot, len(groups)))
    return sums[idx].sum(1) / counts[idx].sum(1)


def t4_metrics(t4_pairs: pd.DataFrame, clean: dict[str, np.ndarray], aug: dict[str, np.ndarray],
               label_std: np.ndarray, reference: str, n_boot: int, seed: int) -> dict:
    """Mean |prediction shift| (label-std units, mean over the 19 dimensions and the pairs) per variant,
    per augmentation family, clip-bootstrap CI and the paired difference to ``reference``."""
    clips = t4_pairs["clip_id"].astype(str).to_numpy()
    uniq, inv = np.unique(clips, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
    counts = np.zeros((n_boot, len(uniq)))
    np.add.at(counts, (np.repeat(np.arange(n_boot), len(uniq)), draws.ravel()), 1.0)
    W = counts[:, inv]
    per_pair, boot, out = {}, {}, {}
    for name in clean:
        per_pair[name] = np.abs(prediction_shift(clean[name], aug[name], label_std)).mean(1)
        boot[name] = (W @ per_pair[name]) / W.sum(1)
        fam = pd.Series(per_pair[name]).groupby(t4_pairs["augmentation"].to_numpy()).mean()
        out[name] = {"shift_abs_mean": float(per_pair[name].mean()), "ci": percentile_ci(boot[name]),
                     "by_augmentation": {str(k): float(v) for k, v in fam.items()}}
    for name in clean:
        if name != reference:
            out[name]["vs_reference"] = {"shift_abs_mean": paired_delta(
                out[name]["shift_abs_mean"] - out[reference]["shift_abs_mean"], boot[name] - boot[reference])}
    return {"n_pairs": int(len(t4_pairs)), "n_clips": int(len(uniq)), "unit": "label std (per dimension)",
            "variants": out}


def holm_over_comparisons(metrics: dict, controls: tuple[str, ...] = ()) -> dict:
    """Holm over every (variant, metric) paired comparison with the reference (``controls``, e.g. the
    reseeded T1-only run, are reported but are no hypotheses); writes ``p_holm`` in place and returns
    {"<variant>.<tier>.<metric>": p_holm}."""
    found = {}
    for tier in ("t1", "t2", "t3", "t4"):
        for name, row in metrics[tier]["variants"].items():
            if name in controls:
                continue
            for metric, cmp in row.get("vs_reference", {}).items():
                found[f"{name}.{tier}.{metric}"] = (cmp, cmp.get("p_boot"))
    holm = holm_family({k: p for k, (_, p) in found.items()})
    for k, (cmp, _) in found.items():
        cmp["p_holm"] = holm[k]
    return holm
