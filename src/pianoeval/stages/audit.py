"""Stage `audit`: how redundant, noisy and audible are the 19 PercePiano dimensions, and does a
reduced set predict STOP moments as well? Runs the nine sections (pianoeval.audit.pipeline) and
writes the full report (JSON), headline metrics, a Markdown report with figures and plot CSVs
(docs/audit.md)."""

from __future__ import annotations

import time

import torch
from threadpoolctl import threadpool_limits

from ..audit.pipeline import run_audit
from ..audit.report import write_outputs
from ..embedding_store import default_store_path
from ..io import load_params, write_json


def main() -> None:
    t0 = time.perf_counter()
    p = load_params("audit")
    p["embeddings"] = str(default_store_path())  # T1 embeddings of the configured extractor (extract.extractor)
    classify_C = float(p["downstream"]["C"])
    masterclass_dir = load_params("masterclass_segments")["input_dir"]
    # Cores are shared with other jobs: one BLAS / torch thread is ~10x faster than two fighting
    # over small matrices (measured).
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        report, _ = run_audit(p, classify_C, masterclass_dir)
    write_json(p["report"], report)
    write_json("metrics/audit.json", report["headline"])
    write_outputs(report, markdown_path=p["markdown"], figures=p["figures"], plots_dir="plots")
    h = report["headline"]
    ann = report["reliability"]["annotations"]
    auc = h.get("downstream.all19.auc")
    print(f"audit: {h['data.n_segments']} segments ({h['data.n_excluded_no_embedding']} excluded: no embedding), "
          f"{h['pca.n_significant']} significant factors, noise ceiling "
          f"{h['reliability.noise_ceiling_mean']:.2f}, ridge_cv R2 "
          f"{h['probe.ridge_cv.' + p['default_split'] + '.r2_mean']:.3f}, STOP AUC all19 "
          f"{'n/a' if auc is None else f'{auc:.2f}'}; annotation rows excluded: {ann['n_rows_no_rating']} without a "
          f"rating, {ann['n_rows_unlabeled_segment']} of segments not used, {ann['n_copy_rows_dropped']} copies; competition "
          + (f"rho {h['competition.performer_year.rho']:.3f} over {h['competition.n_performer_years']} performer-years "
             f"({h['competition.excluded_percepiano_overlap']} segments excluded: PercePiano overlap)"
             if h.get("competition.performer_year.rho") is not None else "skipped")
          + f" ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
