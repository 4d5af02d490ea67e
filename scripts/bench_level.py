"""Benchmark: level sensitivity of ``pianoeval score`` on rendered PercePiano segments.

    python scripts/bench_level.py --label after [--n 60] [--checkpoints checkpoints/quality]

Takes ``--n`` labeled, non-score segments of the rendered T1 audio store (a seeded random choice),
scores each one as a whole recording with the ensemble of the fold checkpoints, then again at
-6 dB and +6 dB (float scaling, nothing clips), through the same code as ``pianoeval score``
(:func:`pianoeval.score.level_sensitivity`). Reports the mean absolute change of the 19 predictions
(bootstrap 95% CI over segments), per dimension, and beside it the baseline it must be small against:
the quality model's own error, the mean absolute difference between its out-of-fold predictions
(pianist split) and the crowd labels, on the same segments and on all of them.

Writes ``benchmarks/level_sensitivity.json`` under ``--label`` (other labels in the file are kept, so
the figures before and after a change sit side by side) and prints a summary.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pianoeval.audio_store import AudioStore
from pianoeval.dimensions import DIMENSIONS
from pianoeval.io import load_params, read_json, write_json
from pianoeval.labels import load_labels
from pianoeval.score import level_sensitivity, load_ensemble


def model_error(keys: list[str], labels: pd.DataFrame, oof_path: str) -> dict:
    """Mean |out-of-fold prediction - crowd label| (pianist split, MLP), on ``keys`` and on all labeled keys."""
    oof = pd.read_csv(oof_path)
    oof = oof[oof["split"] == "pianist"].set_index("key")
    lab = labels.set_index("key")
    def mae(ks):
        p = oof.loc[ks, [f"pred_{d}" for d in DIMENSIONS]].to_numpy()
        y = lab.loc[ks, [f"mean_{d}" for d in DIMENSIONS]].to_numpy()
        return float(np.abs(p - y).mean())
    return {"benchmark_segments": mae(keys), "all_labeled": mae(list(oof.index)), "n_all": int(len(oof))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("--label", required=True, help="name of this measurement, e.g. before / after")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", type=float, default=6.0)
    ap.add_argument("--checkpoints", default="checkpoints/quality")
    ap.add_argument("--out", default="benchmarks/level_sensitivity.json")
    args = ap.parse_args()
    torch.set_num_threads(1)

    tq = load_params("train_quality")
    labels = load_labels(tq["labels"])
    pool = labels[labels["labeled"] & ~labels["is_score"]]["key"].tolist()
    keys = sorted(np.random.default_rng(args.seed).choice(sorted(pool), size=args.n, replace=False).tolist())
    ens = load_ensemble(args.checkpoints)
    with AudioStore(load_params("extract")["audio"]) as store:
        sr = store.sample_rate
        clips = [store.read(k) for k in keys]
    t0 = time.perf_counter()
    res = level_sensitivity(ens, clips, sr, gains_db=(-args.db, args.db), seed=args.seed)
    seconds = time.perf_counter() - t0
    res.update(
        label=args.label, checkpoints=ens.names, loudness_target_lufs=ens.loudness_lufs, extractor=ens.extractor,
        segment_seconds=float(sum(len(c) for c in clips) / sr), seed=args.seed, keys=keys,
        model_error_mae=model_error(keys, labels, tq["oof"]), wall_seconds=seconds,
        machine=f"{platform.machine()}, {torch.get_num_threads()} torch thread",
    )
    out = Path(args.out)
    allres = read_json(out) if out.is_file() else {}
    allres[args.label] = res
    write_json(out, dict(sorted(allres.items())))
    me = res["model_error_mae"]
    print(f"level sensitivity [{args.label}], n = {res['n_clips']} segments ({res['segment_seconds'] / 60:.1f} min), "
          f"loudness target {ens.loudness_lufs}:")
    for g, r in res["per_gain"].items():
        worst = max(r["per_dimension_mean_abs"], key=r["per_dimension_mean_abs"].get)
        print(f"  {g}: mean |change| {r['mean_abs_change']:.4f} [95% CI {r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}], "
              f"max {r['max_abs_change']:.4f}; largest dimension {worst} "
              f"{r['per_dimension_mean_signed'][worst]:+.4f}")
    print(f"  model error (OOF MAE vs crowd labels): {me['benchmark_segments']:.4f} on these segments, "
          f"{me['all_labeled']:.4f} on all {me['n_all']}; wall {seconds:.0f} s -> {out}")


if __name__ == "__main__":
    main()
