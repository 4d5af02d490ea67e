"""Stage `t4_augment`: clean T4 clips -> augmented versions (one packed store) + the pairs table."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..audio_store import AudioStore, AudioStoreWriter
from ..io import load_params, write_json
from ..t4.augment import (apply_augmentation, assign_conditions, draw_params, ordered_parallel_map, pair_rng,
                          params_json, parse_grid)
from ..t4.rooms import RoomBank


def main() -> None:
    p = load_params("t4_augment")
    t0 = time.perf_counter()
    grid = parse_grid(p["augmentations"])
    bank = RoomBank.load(p["rooms"])
    clips = pd.read_csv(p["clips"])
    workers = p["workers"] or os.cpu_count() or 1
    with AudioStore(p["pool"]) as store:
        missing = [c for c in clips["clip_id"] if c not in store]
        if missing:
            raise KeyError(f"{p['pool']}: clips {missing[:5]} of {p['clips']} are not in the pool store")
        plan = assign_conditions(len(clips), len(grid), p["pairs_per_clip"])
        jobs = []
        for clip_id, conds in zip(clips["clip_id"], plan):
            for k, c in enumerate(conds):
                jobs.append((clip_id, k, grid[c], draw_params(grid[c], pair_rng(p["seed"], clip_id, k), bank)))
        audio = {k: a for k, a in store.iter_audio(list(clips["clip_id"]))}
        sample_rate = store.sample_rate

    def run(job):
        clip_id, k, cond, params = job
        out, n_clipped = apply_augmentation(cond.augmentation, audio[clip_id], sample_rate, params, bank)
        return out, n_clipped

    out_dir = Path(p["out_dir"])
    writer = AudioStoreWriter(out_dir, sample_rate)
    rows = []
    for (clip_id, k, cond, params), (aug, n_clipped) in zip(jobs, ordered_parallel_map(run, jobs, workers)):
        pair_id = f"{clip_id}|{k}"
        writer.append(pair_id, aug)
        clean = audio[clip_id]
        rms = [float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) for x in (clean, aug)]
        rows.append({"pair_id": pair_id, "clip_id": clip_id, "k": k, "augmentation": cond.augmentation,
                     "severity": cond.severity, "params": params_json(params), "clipped_samples": n_clipped,
                     "clipped_fraction": n_clipped / aug.size,
                     "level_change_db": 20 * np.log10(max(rms[1], 1e-12) / max(rms[0], 1e-12))})
    writer.close({"pool": str(p["pool"]), "seed": p["seed"], "pairs_per_clip": p["pairs_per_clip"]})
    pairs = pd.DataFrame(rows)
    Path(p["pairs"]).parent.mkdir(parents=True, exist_ok=True)
    pairs.to_csv(p["pairs"], index=False, float_format="%.6f")
    per = pairs.groupby(["augmentation", "severity"], sort=False)
    report = {"pairs": len(pairs), "clips": len(clips), "conditions": len(grid),
              "design": "fully crossed" if p["pairs_per_clip"] in (0, None) or p["pairs_per_clip"] >= len(grid)
              else f"balanced, {p['pairs_per_clip']} conditions per clip",
              "audio_minutes": sum(writer.lengths) / sample_rate / 60,
              "pairs_with_clipping": int((pairs["clipped_samples"] > 0).sum()),
              "per_condition": {f"{a}/{s}": {"pairs": len(g), "pairs_with_clipping": int((g["clipped_samples"] > 0).sum()),
                                             "clipped_fraction_max": float(g["clipped_fraction"].max()),
                                             "level_change_db_mean": float(g["level_change_db"].mean())}
                                for (a, s), g in per}}
    write_json("metrics/t4_augment.json", report)
    print(f"t4_augment: {len(pairs)} pairs ({len(clips)} clips x {len(grid)} conditions, {report['design']}), "
          f"{report['audio_minutes']:.1f} min of audio, {report['pairs_with_clipping']} pairs clipped at full scale, "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
