"""Stage `t3_eval`: cross-performer metrics of the current embeddings and quality model on T3 windows:
same-passage retrieval across performers (top-1, mAP; chance, a duration-only baseline, folder
bootstrap CI, within-folder permutation p) and the passage / performer variance split of the
embeddings and of the predicted quality (docs/tiers.md). Writes `metrics/t3.json`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..dimensions import DIMENSIONS
from ..embedding_store import EmbeddingStore
from ..io import load_params, write_json
from ..tiers.crossperformer import (chance_levels, cosine_similarity, folder_bootstrap_ci, retrieval_scores,
                                    variance_split, variance_split_ci, within_folder_permutation_p)
from ..tiers.scoring import score_windows


def retrieval_block(S, passage, performance, folder, *, candidates=None, n_boot, seed) -> dict:
    top1, ap = retrieval_scores(S, passage, performance, candidates)
    ok = np.isfinite(ap)
    t_lo, t_hi = folder_bootstrap_ci(top1, folder, n_boot=n_boot, seed=seed)
    m_lo, m_hi = folder_bootstrap_ci(ap, folder, n_boot=n_boot, seed=seed + 1)
    return {"n_queries": int(ok.sum()), "top1": float(np.nanmean(top1)), "top1_ci": [t_lo, t_hi],
            "map": float(np.nanmean(ap)), "map_ci": [m_lo, m_hi],
            "chance": chance_levels(passage, performance, candidates)}


def main() -> None:
    p = load_params("t3_eval")
    torch.set_num_threads(1)
    w = pd.read_csv(p["segments"], dtype={"segment_id": str, "percepiano_pianist_ids": str}, keep_default_na=False)
    store = EmbeddingStore(p["embeddings"])
    E = store.pooled(w["segment_id"].tolist()).astype(np.float64)
    passage = (w["folder"] + "@" + w["bar_start"].astype(str)).to_numpy()
    perf, folder = w["performance_id"].to_numpy(), w["folder"].to_numpy()
    nb, seed = int(p["n_boot"]), int(p["seed"])

    S = cosine_similarity(E)
    same_folder = folder[:, None] == folder[None, :]
    across = retrieval_block(S, passage, perf, folder, n_boot=nb, seed=seed)
    across["p_within_folder_permutation"], _ = within_folder_permutation_p(E, passage, perf, folder,
                                                                           n_perm=int(p["n_perm"]), seed=seed)
    within = retrieval_block(S, passage, perf, folder, candidates=same_folder, n_boot=nb, seed=seed)
    logdur = np.log(w["seconds"].to_numpy())[:, None]
    S_dur = -np.abs(logdur - logdur.T)  # duration-only baseline: closest window length ranks first
    dur_across = retrieval_block(S_dur, passage, perf, folder, n_boot=nb, seed=seed)
    dur_within = retrieval_block(S_dur, passage, perf, folder, candidates=same_folder, n_boot=nb, seed=seed)

    emb_split = variance_split(E, folder, passage, perf)
    emb_ci = variance_split_ci(emb_split.pop("ss_by_folder"), n_boot=nb, seed=seed)
    emb_split.pop("per_column")
    scores, guard = score_windows(w, store, p["checkpoints"])
    Q = scores[list(DIMENSIONS)].to_numpy()
    overall = Q.mean(1)
    q_split = variance_split(Q, folder, passage, perf)
    q_ci = variance_split_ci(q_split.pop("ss_by_folder"), n_boot=nb, seed=seed)
    per_dim = q_split.pop("per_column")
    o_split = variance_split(overall, folder, passage, perf)
    o_ci = variance_split_ci(o_split.pop("ss_by_folder"), n_boot=nb, seed=seed)
    o_split.pop("per_column")
    Path(p["scores"]).parent.mkdir(parents=True, exist_ok=True)
    scores.to_csv(p["scores"], index=False, float_format="%.6f")

    report = {
        "n_windows": int(len(w)), "n_performances": int(w["performance_id"].nunique()),
        "n_folders": int(w["folder"].nunique()), "n_passages": int(len(set(passage))),
        "retrieval_across_performers": {"embedding": across, "duration_baseline": dur_across},
        "retrieval_within_piece": {"embedding": within, "duration_baseline": dur_within},
        "variance_split": {
            "embedding": {**emb_split, "ci": emb_ci},
            "predicted_quality_19": {**q_split, "ci": q_ci,
                                     "performer_share_by_dim": {d: float(per_dim[1, j]) for j, d in enumerate(DIMENSIONS)}},
            "predicted_overall": {**o_split, "ci": o_ci},
        },
        "scoring": guard,
        "n_boot": nb, "n_perm": int(p["n_perm"]),
    }
    write_json("metrics/t3.json", report)
    print(f"t3_eval: {len(w)} windows, {report['n_passages']} passages; retrieval across performers top-1 "
          f"{across['top1']:.2f} (chance {across['chance']['top1']:.2f}, duration-only {dur_across['top1']:.2f}), "
          f"mAP {across['map']:.2f}; within piece top-1 {within['top1']:.2f} (chance {within['chance']['top1']:.2f}); "
          f"embedding variance passage {emb_split['passage']:.2f} / performer {emb_split['performer']:.2f}; "
          f"predicted overall passage {o_split['passage']:.2f} / performer {o_split['performer']:.2f}")


if __name__ == "__main__":
    main()
