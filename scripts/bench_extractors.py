"""Measure Basic Pitch and log-mel on T1: throughput (x real time) and the ridge-probe R² of pooled
statistics as a function of Basic Pitch's ``window_stride`` (the cost knob), to choose the settings of
the `extract@basic_pitch`/`extract@logmel_bp` stages and the default extractor.

Pass 1 (slow, ~6-10 min on 2 cores): every reference window of every labelled segment goes through
Basic Pitch once; per window it keeps sums and sums of squares of (a) Basic Pitch frames at 86 Hz,
(b) Basic Pitch frames averaged into the 25-Hz grid, (c) the log-mel(+deltas) frames of the same bins.
Pooled mean‖std for any window subset then follows exactly (up to bins shared by two neighbouring
windows). Pass 2: ridge (inner-CV alpha, models.ridge) on the pianist and segment splits per variant.

    python scripts/bench_extractors.py --cache /tmp/bp_windows.npz --out benchmarks/extractors.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def pass1(audio_dir: str, keys: list[str], cache: Path, threads: int, batch: int) -> None:
    from pianoeval.audio_store import AudioStore
    from pianoeval.extractors import load_model
    from pianoeval.extractors.basic_pitch import KEPT_FRAMES
    from pianoeval.extractors.concat import align_to_grid

    logmel = load_model("logmel", deltas=True)
    bp = load_model("basic_pitch", threads=threads, batch_size=batch)
    rows = {k: [] for k in ("key", "bp_sum", "bp_sq", "bp_n", "bpa_sum", "bpa_sq", "lm_sum", "lm_sq", "a_n")}
    lm_full = []
    t_bp = t_lm = 0.0
    seconds = 0.0
    with AudioStore(audio_dir) as store:
        for i, key in enumerate(keys):
            a = store.read(key)
            seconds += len(a) / store.sample_rate
            t0 = time.perf_counter()
            lm, lm_t = logmel.timestamp_embeddings(a, store.sample_rate)
            t_lm += time.perf_counter() - t0
            lm_full.append(np.concatenate([lm.mean(0), lm.std(0)]))
            t0 = time.perf_counter()
            x = bp.prepare(a, store.sample_rate)
            sel, windows = bp._windows(x)
            out = bp.run_windows(windows)                     # (n_win, 142, 440)
            t_bp += time.perf_counter() - t0
            _, idx, n_total = bp._frame_index(len(x))
            n_bins = len(lm)
            for w in range(len(out)):
                fi = w * KEPT_FRAMES + np.arange(KEPT_FRAMES)
                ok = fi < max(n_total, 1)
                if not ok.any():
                    continue
                f = out[w][ok]
                b, cov = align_to_grid(f, fi[ok] / bp.frame_rate, 25.0, n_bins)
                rows["key"].append(i)
                rows["bp_sum"].append(f.sum(0)); rows["bp_sq"].append((f.astype(np.float64) ** 2).sum(0))
                rows["bp_n"].append(len(f))
                rows["bpa_sum"].append(b[cov].sum(0)); rows["bpa_sq"].append((b[cov].astype(np.float64) ** 2).sum(0))
                l = lm[cov]
                rows["lm_sum"].append(l.sum(0)); rows["lm_sq"].append((l.astype(np.float64) ** 2).sum(0))
                rows["a_n"].append(int(cov.sum()))
            if i % 100 == 0:
                print(f"{i}/{len(keys)} segments, {seconds:.0f} s audio, BP {seconds / max(t_bp, 1e-9):.0f}x, "
                      f"log-mel {seconds / max(t_lm, 1e-9):.0f}x real time", flush=True)
    np.savez(cache, **{k: np.asarray(v) for k, v in rows.items()}, lm_full=np.stack(lm_full),
             timing=np.array([seconds, t_bp, t_lm]))


def pooled(rows, seg_count: int, stride: int, which: str) -> np.ndarray:
    """(N, 2D) mean‖std per segment from the windows ``selected_windows(n, stride)`` keeps."""
    from pianoeval.extractors.basic_pitch import selected_windows

    key = rows["key"]
    s_name, q_name, n_name = {"bp": ("bp_sum", "bp_sq", "bp_n"), "bpa": ("bpa_sum", "bpa_sq", "a_n"),
                              "lm": ("lm_sum", "lm_sq", "a_n")}[which]
    out = []
    for i in range(seg_count):
        w = np.flatnonzero(key == i)
        w = w[selected_windows(len(w), stride)]
        n = rows[n_name][w].sum()
        mu = rows[s_name][w].sum(0) / n
        var = np.maximum(rows[q_name][w].sum(0) / n - mu ** 2, 1e-12)
        out.append(np.concatenate([mu, np.sqrt(var)]))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="/tmp/bp_windows.npz")
    ap.add_argument("--out", default="benchmarks/extractors.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--strides", default="1,2,3,4,6")
    args = ap.parse_args()

    from pianoeval.io import load_params, write_json
    from pianoeval.labels import load_labels, load_splits
    from pianoeval.dimensions import MEAN_COLUMNS
    from pianoeval.quality import cross_validate_ridge

    splits = load_splits("data/interim/splits.json")
    keys = splits["keys"]
    cache = Path(args.cache)
    if not cache.is_file():
        pass1(load_params("extract")["audio"], keys, cache, args.threads, args.batch)
    rows = dict(np.load(cache))
    seconds, t_bp, t_lm = rows["timing"]
    table = load_labels("data/interim/labels.csv").set_index("key").loc[keys]
    Y = table[list(MEAN_COLUMNS)].to_numpy(np.float64)
    groups = {"pianist": table["pianist_id"].to_numpy(), "segment": None}
    alphas = load_params("train_quality")["ridge"]["alphas"]

    def r2(X):
        out = {}
        for split, g in groups.items():
            folds = np.asarray(splits["folds"][split])
            pred = cross_validate_ridge(X, Y, folds, g, alphas, 5, 0)
            ss = ((Y - pred) ** 2).sum(0) / ((Y - Y.mean(0)) ** 2).sum(0)
            out[split] = float(np.mean(1 - ss))
        return out

    n = len(keys)
    res = {"n_segments": n, "audio_hours": seconds / 3600,
           "throughput_x_realtime": {"basic_pitch_all_windows": seconds / t_bp, "logmel": seconds / t_lm},
           "ridge_r2": {}}
    res["ridge_r2"]["logmel_full"] = r2(rows["lm_full"])
    for k in map(int, args.strides.split(",")):
        bp = pooled(rows, n, k, "bp")
        bpa = pooled(rows, n, k, "bpa")
        lm = pooled(rows, n, k, "lm")
        frac = float(np.mean([len(__import__("pianoeval.extractors.basic_pitch", fromlist=["x"]).selected_windows(
            int((rows["key"] == i).sum()), k)) for i in range(n)]) / np.mean(np.bincount(rows["key"])))
        res["ridge_r2"][f"stride{k}"] = {
            "fraction_of_windows": frac,
            "basic_pitch_86hz": r2(bp), "basic_pitch_25hz": r2(bpa),
            "logmel_same_windows": r2(lm),
            "concat_store (logmel+bp on shared bins)": r2(np.hstack([lm, bpa])),
            "logmel_full+bp": r2(np.hstack([rows["lm_full"], bp])),
        }
        print(k, json.dumps(res["ridge_r2"][f"stride{k}"]), flush=True)
    write_json(args.out, res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
