"""Benchmark: the audit stage's heavy sections vs a loop-style reference, on the real demo data.

    python scripts/bench_audit.py [--out benchmarks/audit.json] [--max-ref-seconds 900]

Sections compared (same data, same folds, same validation splits, same model definitions,
one BLAS / torch thread for both, as the stage runs):

* parallel analysis (factors + residuals, 2 x 1000 random matrices): one batched
  ``eigvalsh`` per chunk vs 1000 separate ``StandardScaler + sklearn PCA`` fits each;
* MLP probe (one hidden layer of 256 per dimension): one batched model for all 19 dimensions
  on the leading 64 principal axes of the pooled embedding (the stage's settings) vs 19 separate
  ``nn.Sequential`` training loops per fold on the full pooled embedding;
* attention probe: length-bucketed, masked mini-batches with early stopping vs per-sample SGD
  (batch size 1, Adam) for 50 epochs, keeping the best validation epoch.

If the reference attention probe would run longer than ``--max-ref-seconds``, it is run on
the first fold only and its time is extrapolated to all folds (the output says so).
The whole stage is also timed (``run_audit``); "reference stage" = stage time with the three
fast sections replaced by their reference times. Writes JSON and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from pianoeval.audit import _leading_count, _r2
from pianoeval.audit.downstream import window_frames
from pianoeval.audit.factors import parallel_analysis_thresholds, pca_correlation
from pianoeval.audit.probes import (AttentionPoolProbe, _FrameStore, _split_val, _standardise, _yscale,
                                    attention_probe_cv, mlp_probe_cv, ridge_probe_cv)
from pianoeval.embedding_store import default_store_path
from pianoeval.io import load_params, write_json
from pianoeval.audit.pipeline import load_t1, run_audit


# --------------------------------------------------------------------------- references
def reference_parallel_analysis(n: int, q: int, n_iter: int, percentile: float, seed: int) -> np.ndarray:
    """Thresholds from ``n_iter`` separate sklearn PCA fits of standardised random matrices."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed + 1000)
    ev = np.empty((n_iter, q))
    for i in range(n_iter):
        Z = StandardScaler().fit_transform(rng.standard_normal((n, q)))
        ev[i] = PCA().fit(Z).explained_variance_ * (n - 1) / n  # -> eigenvalues of the correlation matrix
    return np.percentile(ev, percentile, axis=0)


def reference_mlp(X, Y, fold_ids, *, hidden, epochs, lr, batch_size, weight_decay, patience, val_frac, seed):
    """One ``nn.Sequential`` per dimension and fold, trained in its own loop (full input)."""
    oof = np.empty_like(Y)
    for i, f in enumerate(np.unique(fold_ids)):
        rng = np.random.default_rng([seed, i])
        tr_all, te = np.flatnonzero(fold_ids != f), np.flatnonzero(fold_ids == f)
        fit_pos, val_pos = _split_val(len(tr_all), val_frac, rng)
        fit, val = tr_all[fit_pos], tr_all[val_pos]
        xf, xv, xt = (torch.from_numpy(a.astype(np.float32)) for a in _standardise(X[fit], X[val], X[te]))
        ymu, ysd = _yscale(Y[fit])
        for j in range(Y.shape[1]):
            yf = torch.from_numpy(((Y[fit, j] - ymu[j]) / ysd[j]).astype(np.float32))[:, None]
            yv = torch.from_numpy(((Y[val, j] - ymu[j]) / ysd[j]).astype(np.float32))[:, None]
            torch.manual_seed(seed * 1000 + i * 100 + j)
            net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
            opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
            best, best_state, last = np.inf, copy.deepcopy(net.state_dict()), 0
            for epoch in range(epochs):
                for b in np.array_split(rng.permutation(len(fit)), max(1, len(fit) // batch_size)):
                    b = torch.from_numpy(b)
                    loss = torch.mean((net(xf[b]) - yf[b]) ** 2)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                with torch.no_grad():
                    v = float(torch.mean((net(xv) - yv) ** 2))
                if v < best - 1e-6:
                    best, best_state, last = v, copy.deepcopy(net.state_dict()), epoch + 1
                elif epoch + 1 - last >= patience:
                    break
            net.load_state_dict(best_state)
            with torch.no_grad():
                oof[te, j] = net(xt).numpy()[:, 0] * ysd[j] + ymu[j]
    return oof


def reference_attention(frames, Y, fold_ids, *, hidden, epochs, lr, weight_decay, val_frac, seed,
                        max_seconds: float):
    """Per-sample (batch size 1) training of the same attention-pooling model, best val epoch kept.

    Returns (oof (N, q) with NaN in folds not run, seconds, folds run, extrapolated seconds).
    """
    store = _FrameStore(frames)
    folds = np.unique(fold_ids)
    oof = np.full_like(Y, np.nan)
    t0 = time.perf_counter()
    run = []
    for i, f in enumerate(folds):
        rng = np.random.default_rng([seed, i])
        tr_all, te = np.flatnonzero(fold_ids != f), np.flatnonzero(fold_ids == f)
        fit_pos, val_pos = _split_val(len(tr_all), val_frac, rng)
        fit, val = tr_all[fit_pos], tr_all[val_pos]
        ymu, ysd = _yscale(Y[fit])
        yt = torch.from_numpy(((Y - ymu) / ysd).astype(np.float32))
        torch.manual_seed(int(rng.integers(2**31)))
        model = AttentionPoolProbe(store.d, Y.shape[1], hidden, *store.stats(fit))
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        xs = [torch.from_numpy(fr)[None] for fr in frames]
        ones = [torch.ones(1, len(fr), dtype=torch.bool) for fr in frames]

        def predict(rows):
            with torch.no_grad():
                return torch.cat([model(xs[r], ones[r]) for r in rows]).numpy()

        best, best_state = np.inf, copy.deepcopy(model.state_dict())
        for _ in range(epochs):
            for r in rng.permutation(fit):
                loss = torch.mean((model(xs[r], ones[r]) - yt[r:r + 1]) ** 2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            v = float(np.mean((predict(val) - yt[val].numpy()) ** 2))
            if v < best:
                best, best_state = v, copy.deepcopy(model.state_dict())
        model.load_state_dict(best_state)
        oof[te] = predict(te) * ysd + ymu
        run.append(int(f))
        elapsed = time.perf_counter() - t0
        if i == 0 and elapsed * len(folds) > max_seconds:
            return oof, elapsed, run, elapsed * len(folds)
    elapsed = time.perf_counter() - t0
    return oof, elapsed, run, elapsed


# --------------------------------------------------------------------------- main
def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _compare(Y, fast, ref, rows=None):
    rows = np.arange(len(Y)) if rows is None else rows
    a, b = _r2(Y[rows], fast[rows]), _r2(Y[rows], ref[rows])
    return {"fast_r2_mean": float(a.mean()), "ref_r2_mean": float(b.mean()),
            "mean_diff": float((a - b).mean()), "mean_abs_diff": float(np.abs(a - b).mean()),
            "max_abs_diff": float(np.abs(a - b).max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/audit.json")
    ap.add_argument("--max-ref-seconds", type=float, default=900.0)
    ap.add_argument("--ref-attention-lr", type=float, default=5e-4, help="Adam lr of the batch-size-1 reference")
    ap.add_argument("--ref-epochs", type=int, default=50)
    args = ap.parse_args()
    p = load_params("audit")
    p["embeddings"] = str(default_store_path())
    seed, default = int(p["seed"]), p["default_split"]
    torch.set_num_threads(1)
    res: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg(),
                             "python": platform.python_version(), "torch": torch.__version__,
                             "threads": "1 BLAS thread (threadpoolctl), torch.set_num_threads(1)"}}
    with threadpool_limits(limits=1):
        d = load_t1(p["labels"], p["splits"], p["embeddings"])
        Y, X, folds = d["Y"], d["X"], d["folds"][default]
        frames = [window_frames(d["store"].frames(k), p["attention"]["frame_hop"]) for k in d["keys"]]
        n, q = Y.shape
        fp = p["factors"]
        evals = pca_correlation(Y)[0]
        oof_ridge = ridge_probe_cv(X, Y, folds, alphas=p["ridge"]["alphas"], inner_folds=p["ridge"]["inner_folds"],
                                   seed=seed)["oof"]
        res_evals = pca_correlation(Y - oof_ridge)[0]
        n_res = p["residuals"]["n_iter"]

        # 1. parallel analysis
        (thr_f, thr_r), t_fast = _timed(lambda: (
            parallel_analysis_thresholds(n, q, n_iter=fp["n_iter"], percentile=fp["percentile"], seed=seed)[0],
            parallel_analysis_thresholds(n, q, n_iter=n_res, percentile=fp["percentile"], seed=seed)[0]))
        (rthr_f, rthr_r), t_ref = _timed(lambda: (
            reference_parallel_analysis(n, q, fp["n_iter"], fp["percentile"], seed),
            reference_parallel_analysis(n, q, n_res, fp["percentile"], seed)))
        res["parallel_analysis"] = {
            "fast_s": t_fast, "ref_s": t_ref, "speedup": t_ref / t_fast,
            "n_significant_fast": _leading_count(evals, thr_f), "n_significant_ref": _leading_count(evals, rthr_f),
            "n_residual_structured_fast": _leading_count(res_evals, thr_r),
            "n_residual_structured_ref": _leading_count(res_evals, rthr_r),
            "max_abs_threshold_diff": float(np.abs(thr_f - rthr_f).max())}
        print(f"parallel analysis: fast {t_fast:.2f} s, reference {t_ref:.2f} s")

        # 2. MLP probe
        mp = {k: p["mlp"][k] for k in ("hidden", "epochs", "lr", "batch_size", "weight_decay", "patience", "val_frac")}
        fast, t_fast = _timed(lambda: mlp_probe_cv(X, Y, folds, seed=seed, n_components=p["mlp"]["n_components"],
                                                   num_threads=1, **mp)["oof"])
        ref, t_ref = _timed(lambda: reference_mlp(X, Y, folds, seed=seed, **mp))
        res["mlp"] = {"fast_s": t_fast, "ref_s": t_ref, "speedup": t_ref / t_fast, **_compare(Y, fast, ref),
                      "fast": f"one batched model, input = {p['mlp']['n_components']} leading PCs",
                      "reference": f"{q} x {len(np.unique(folds))} separate loops, full {X.shape[1]}-d input"}
        print(f"mlp: fast {t_fast:.1f} s, reference {t_ref:.1f} s")

        # 3. attention probe
        at = p["attention"]
        fast, t_fast = _timed(lambda: attention_probe_cv(
            frames, Y, folds, seed=seed, epochs=at["epochs"], lr=at["lr"], batch_size=at["batch_size"],
            hidden=at["hidden"], weight_decay=at["weight_decay"], patience=at["patience"], val_frac=at["val_frac"],
            num_threads=1)["oof"])
        ref, t_run, run, t_ref = reference_attention(
            frames, Y, folds, hidden=at["hidden"], epochs=args.ref_epochs, lr=args.ref_attention_lr,
            weight_decay=at["weight_decay"], val_frac=at["val_frac"], seed=seed, max_seconds=args.max_ref_seconds)
        rows = np.flatnonzero(np.isin(folds, run))
        res["attention"] = {"fast_s": t_fast, "ref_s": t_ref, "ref_measured_s": t_run, "speedup": t_ref / t_fast,
                            "ref_folds_run": run, "extrapolated": len(run) < len(np.unique(folds)),
                            **_compare(Y, fast, ref, rows),
                            "fast": f"batches of {at['batch_size']}, <= {at['epochs']} epochs, early stopping",
                            "reference": f"batch size 1, {args.ref_epochs} epochs, Adam lr {args.ref_attention_lr}"}
        print(f"attention: fast {t_fast:.1f} s, reference {t_ref:.1f} s"
              + (" (extrapolated from one fold)" if res["attention"]["extrapolated"] else ""))

        # whole stage
        (_, timings), t_stage = _timed(lambda: run_audit(p, float(p["downstream"]["C"]),
                                                         load_params("masterclass_segments")["input_dir"],
                                                         log=lambda *a: None))
    sections = ("parallel_analysis", "mlp", "attention")
    fast_sum = sum(res[s]["fast_s"] for s in sections)
    ref_sum = sum(res[s]["ref_s"] for s in sections)
    res["sections_total"] = {"fast_s": fast_sum, "ref_s": ref_sum, "speedup": ref_sum / fast_sum}
    res["stage"] = {"fast_s": t_stage, "ref_estimate_s": t_stage - fast_sum + ref_sum,
                    "speedup": (t_stage - fast_sum + ref_sum) / t_stage, "steps_s": timings}
    res["machine"]["load_avg_end"] = os.getloadavg()
    write_json(args.out, res)

    print("\n| section | fast (s) | reference (s) | speedup | quality |")
    print("|---|---|---|---|---|")
    pa = res["parallel_analysis"]
    print(f"| parallel analysis (2 x 1000 matrices) | {pa['fast_s']:.2f} | {pa['ref_s']:.2f} | {pa['speedup']:.1f}x | "
          f"significant factors {pa['n_significant_fast']} vs {pa['n_significant_ref']}, residual components "
          f"{pa['n_residual_structured_fast']} vs {pa['n_residual_structured_ref']} |")
    for s in ("mlp", "attention"):
        r = res[s]
        note = " (reference extrapolated from 1 fold)" if r.get("extrapolated") else ""
        print(f"| {s} probe | {r['fast_s']:.1f} | {r['ref_s']:.1f}{note} | {r['speedup']:.1f}x | mean R² "
              f"{r['fast_r2_mean']:.3f} vs {r['ref_r2_mean']:.3f}, mean abs(ΔR²) {r['mean_abs_diff']:.3f} |")
    st = res["sections_total"]
    print(f"| **three sections** | {st['fast_s']:.1f} | {st['ref_s']:.1f} | {st['speedup']:.1f}x | |")
    sg = res["stage"]
    print(f"| **whole audit stage** | {sg['fast_s']:.1f} | {sg['ref_estimate_s']:.1f} (estimate) | "
          f"{sg['speedup']:.1f}x | |")
    print(f"\nload average start/end: {res['machine']['load_avg_start']} / {res['machine']['load_avg_end']}")


if __name__ == "__main__":
    main()
