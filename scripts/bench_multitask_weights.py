"""Sensitivity of the multi-task ablation to the auxiliary loss weights (not part of `dvc repro`).

Runs the `train_multitask` stage code (``pianoeval.stages.train_multitask.run``) with every auxiliary
weight of params.yaml multiplied by each given factor, outputs in a temporary folder, and writes the
headline metrics of every variant to ``benchmarks/multitask_weights.json``. The run reads the committed
inputs (`dvc checkout` first). These runs look at the test folds: they say how much the committed result
depends on the a-priori weights, they are not a way to pick weights (that needs the inner split).

Usage: ``python scripts/bench_multitask_weights.py [factor ...]`` (default: 0.1).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main(argv: list[str]) -> int:
    import torch
    from threadpoolctl import threadpool_limits

    from pianoeval.embedding_store import default_store_path
    from pianoeval.io import load_params, write_json
    from pianoeval.stages.train_multitask import run

    factors = [float(a) for a in argv] or [0.1]
    os.chdir(REPO)
    base = {**load_params("train_multitask"), "embeddings": str(default_store_path())}
    inputs = ("labels", "splits", "embeddings", "t2_segments", "t2_pairs", "t2_embeddings", "t3_segments",
              "t3_embeddings", "t4_pairs", "t4_clean", "t4_augmented", "overlap")
    out = {"weights_committed": base["weights"], "runs": {}}
    torch.set_num_threads(1)
    for f in factors:
        with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
            p = {**base, **{k: str(REPO / base[k]) for k in inputs}, "seed_control": False,
                 "weights": {"t1": base["weights"]["t1"], **{t: base["weights"][t] * f for t in ("t2", "t3", "t4")}},
                 "checkpoints": f"{tmp}/ckpt", "oof": f"{tmp}/oof.csv", "live_dir": f"{tmp}/live"}
            os.chdir(tmp)
            t0 = time.perf_counter()
            run(p)
            m = json.loads(Path("metrics/multitask.json").read_text())
            os.chdir(REPO)
        row = {"weights": p["weights"], "wall_s": time.perf_counter() - t0, "variants": {}}
        for n in m["t1"]["variants"]:
            t1, t2, t3, t4 = (m[t]["variants"][n] for t in ("t1", "t2", "t3", "t4"))
            row["variants"][n] = {
                "t1_r2": t1["r2"], "t1_r2_delta_ci": t1.get("vs_reference", {}).get("r2", {}).get("delta_ci"),
                "t1_within_passage_ranking": t1["within_passage_ranking"],
                "t2_rho": t2["rho"], "t2_rho_ci": t2["rho_ci"], "t2_within_piece_rho": (t2["within_piece"] or {}).get("rho"),
                "t3_map": t3["map"], "t4_shift": t4["shift_abs_mean"],
                "t4_shift_delta_ci": t4.get("vs_reference", {}).get("shift_abs_mean", {}).get("delta_ci")}
        out["runs"][f"x{f:g}"] = row
    Path("benchmarks").mkdir(exist_ok=True)
    write_json("benchmarks/multitask_weights.json", out)
    print(json.dumps(out["runs"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
