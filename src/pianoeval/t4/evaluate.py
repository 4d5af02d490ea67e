"""The robustness stage's work: score clean and augmented audio with the T1 quality checkpoints and
compute, per augmentation x severity, the metrics of :mod:`pianoeval.t4.robustness`.

Two item sets:

* **T4 pairs**: the stored clean/augmented clip embeddings. The clips are ASAP performances, so no
  PercePiano pianist is in them: every fold checkpoint may score them and the prediction is the mean
  over checkpoints (``masterclass.scoring``'s no-provenance route).
* **PercePiano segments**: a seeded subset of whole passages (every labelled performance of each),
  read from the T1 audio store, augmented in memory with the same grid and the same per-(item, k)
  seeding, embedded with the configured extractor, and scored OUT OF FOLD: each segment only by the
  checkpoints that never trained on its pianist (``masterclass.scoring``'s leakage guard).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..dimensions import DIMENSIONS, MEAN_COLUMNS
from ..loudness import normalize_loudness
from ..masterclass.scoring import allowed_models, check_no_leakage, quality_scores, train_pianists
from .augment import Condition, apply_augmentation, draw_params, ordered_parallel_map, pair_rng
from .robustness import (between_item_cosine, bootstrap_weights, correlation_per_dim, embedding_metrics,
                         percentile_ci, prediction_metrics, ranking_drop, stratified_bootstrap_weights,
                         weighted_r2_mean, within_group_centered)


def select_passages(labels: pd.DataFrame, durations: dict[str, float], *, n_passages: int, min_performances: int,
                    max_minutes: float, seed: int) -> pd.DataFrame:
    """Every labelled performance of ``n_passages`` passages (piece, bars, segment: the same music).

    Passages with at least ``min_performances`` labelled performances are visited in a seeded random
    order; one is taken when its piece is not taken yet (variety of music) and the subset's audio
    stays within ``max_minutes`` (the stage's time budget: every minute is augmented with the whole
    grid). Rows sorted by key; ``durations``: key -> seconds.
    """
    lab = labels[labels["labeled"]].copy()
    lab["passage"] = lab["piece"] + "_" + lab["bars"].astype(str) + "bars#" + lab["segment"].astype(str)
    missing = sorted(set(lab["key"]) - set(durations))
    if missing:
        raise KeyError(f"robustness.percepiano: {len(missing)} labelled segments have no audio, e.g. {missing[:3]}")
    lab["seconds"] = lab["key"].map(durations)
    sizes = lab.groupby("passage").size()
    seconds = lab.groupby("passage")["seconds"].sum()
    eligible = sorted(sizes[sizes >= min_performances].index)
    rng = np.random.default_rng(seed)
    chosen, pieces, total = [], set(), 0.0
    for i in rng.permutation(len(eligible)):
        passage = eligible[i]
        piece = passage.rsplit("#", 1)[0]
        if piece in pieces or total + seconds[passage] > 60 * max_minutes:
            continue
        chosen.append(passage)
        pieces.add(piece)
        total += seconds[passage]
        if len(chosen) == n_passages:
            break
    if len(chosen) < n_passages:
        raise ValueError(f"robustness.percepiano: only {len(chosen)} passages of distinct pieces with >= "
                         f"{min_performances} labelled performances fit in {max_minutes} min, "
                         f"params ask n_passages={n_passages}")
    return lab[lab["passage"].isin(chosen)].sort_values("key").reset_index(drop=True)


def percepiano_pooled(keys: list[str], store, model, grid: list[Condition], bank, seed: int,
                      workers: int, loudness_lufs: float | None = None) -> tuple[np.ndarray, np.ndarray, list[list[dict]]]:
    """Clean (n, 2D) and augmented (C, n, 2D) pooled embeddings of PercePiano segments, and the
    params drawn for each (condition, segment). Pair (segment, k) with k = condition index is seeded
    exactly like a T4 pair. Each clip (clean or augmented) is normalised to ``loudness_lufs`` before
    the extractor, as the extract stage does (None = off)."""
    audio = dict(store.iter_audio(keys))
    sr = store.sample_rate
    params = [[draw_params(c, pair_rng(seed, key, k), bank) for key in keys] for k, c in enumerate(grid)]

    def embed(x: np.ndarray) -> np.ndarray:
        if loudness_lufs is not None:
            x = normalize_loudness(x, sr, loudness_lufs)[0]
        return model.pooled_embedding(x, sr)  # pooled as the T1 store pools: the checkpoints' input

    def job(item):
        k, i = item
        x = audio[keys[i]]
        if k < 0:
            return embed(x)
        y, _ = apply_augmentation(grid[k].augmentation, x, sr, params[k][i], bank)
        return embed(y)

    items = [(-1, i) for i in range(len(keys))] + [(k, i) for k in range(len(grid)) for i in range(len(keys))]
    pooled = np.stack(list(ordered_parallel_map(job, items, workers)))
    n = len(keys)
    return pooled[:n], pooled[n:].reshape(len(grid), n, -1), params


def score_all_checkpoints(pooled: np.ndarray, heads: dict) -> np.ndarray:
    """(n, 2D) -> (n, 19): mean over every checkpoint (items by no trained pianist)."""
    ids = [str(i) for i in range(len(pooled))]
    assignment = allowed_models(None, train_pianists(heads), ids)
    return quality_scores(pooled, ids, heads, assignment)[list(DIMENSIONS)].to_numpy()


def score_out_of_fold(pooled: np.ndarray, keys: list[str], pianists: list[int], heads: dict) -> tuple[np.ndarray, dict]:
    """(n, 2D) -> (n, 19) scored only by checkpoints that never trained on the segment's pianist."""
    seg_p = {k: {int(p)} for k, p in zip(keys, pianists)}
    model_p = train_pianists(heads)
    assignment = allowed_models(seg_p, model_p, keys)
    check_no_leakage(assignment, seg_p, model_p)
    scores = quality_scores(pooled, keys, heads, assignment)
    return scores[list(DIMENSIONS)].to_numpy(), assignment


def label_std(labels: pd.DataFrame) -> np.ndarray:
    """(19,) std of the mean ratings over every labelled segment: the unit of prediction shifts."""
    return labels.loc[labels["labeled"], list(MEAN_COLUMNS)].to_numpy(dtype=np.float64).std(axis=0)


def t4_condition(clean_all, pred_clean_all, aug, pred_aug, clip_index, mean, std, lstd, n_boot, seed,
                 pearson_target) -> dict:
    """Metrics of one condition on T4 pairs (items = the condition's pairs, resampled by clip)."""
    clean, pc = clean_all[clip_index], pred_clean_all[clip_index]
    w = bootstrap_weights(len(clip_index), n_boot, seed)
    out = {"n": len(clip_index), **embedding_metrics(clean_all, clean, aug, clip_index, mean, std),
           **prediction_metrics(pc, pred_aug, lstd, w, list(DIMENSIONS), pearson_target)}
    return out


def percepiano_condition(y, pred_clean, pred_aug, clean, aug, passages, mean, std, lstd, n_boot, seed,
                         pearson_target, ranking_target) -> dict:
    """Metrics of one condition on PercePiano segments; intervals resample segments within passages."""
    n = len(y)
    w = stratified_bootstrap_weights(passages, n_boot, seed)
    out = {"n": n, **embedding_metrics(clean, clean, aug, np.arange(n), mean, std),
           **prediction_metrics(pred_clean, pred_aug, lstd, w, list(DIMENSIONS), pearson_target)}
    out["pearson_within_passage_mean"] = float(np.nanmean(correlation_per_dim(
        within_group_centered(pred_clean, passages), within_group_centered(pred_aug, passages))))
    ones = np.ones((1, n))
    r2_c, r2_a = weighted_r2_mean(y, pred_clean, ones)[0], weighted_r2_mean(y, pred_aug, ones)[0]
    boot_r2_drop = weighted_r2_mean(y, pred_clean, w) - weighted_r2_mean(y, pred_aug, w)
    acc_c, acc_a, drop = ranking_drop(y, pred_clean, pred_aug, passages)
    _, _, boot_drop = ranking_drop(y, pred_clean, pred_aug, passages, w)
    out.update({"r2_clean": float(r2_c), "r2_aug": float(r2_a), "r2_drop": float(r2_c - r2_a),
                "r2_drop_ci": percentile_ci(boot_r2_drop),
                "ranking_clean": acc_c, "ranking_aug": acc_a, "ranking_drop_abs": acc_c - acc_a,
                "ranking_drop_rel": drop, "ranking_drop_rel_ci": percentile_ci(boot_drop),
                # the same drop as a share of the clean accuracy's margin over chance (0.5): with a clean
                # accuracy near chance, a 10% relative drop can be most of what the model knows
                "ranking_drop_of_margin": (acc_c - acc_a) / (acc_c - 0.5) if acc_c > 0.5 else float("nan"),
                "meets_ranking_target": bool(drop <= ranking_target)})
    return out


def baselines(t4_clean, t4_mean, t4_std, pp_clean, pp_mean, pp_std) -> dict:
    return {"t4": {"retrieval_chance": 1.0 / len(t4_clean),
                   "cosine_between_clips_mean": between_item_cosine(t4_clean, t4_mean, t4_std),
                   "raw_cosine_between_clips_mean": between_item_cosine(t4_clean, 0.0, 1.0)},
            "percepiano": {"retrieval_chance": 1.0 / len(pp_clean),
                           "cosine_between_segments_mean": between_item_cosine(pp_clean, pp_mean, pp_std),
                           "ranking_chance": 0.5}}
