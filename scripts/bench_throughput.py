"""Throughput of every extractor backend as a multiple of real time on this machine.

Runs each backend on the same rendered piano audio (the first segments of the T1 audio store, 60 s in
all) after one warm-up call, and reports seconds of audio per second of wall time. The network
backends are measured at full size with random weights (no pretrained weights are downloadable here;
compute does not depend on the weight values): MuQ-large-like (1024-d, 12-layer conformer), HuBERT-base
(95M), MERT-v1-95M-like (HuBERT at 24 kHz) and AST-base. The load average is recorded: on a shared
machine the figures are lower bounds.

    python scripts/bench_throughput.py --out benchmarks/extractor_throughput.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def audio_sample(audio_dir: str, seconds: float) -> tuple[np.ndarray, int]:
    from pianoeval.audio_store import AudioStore

    parts, total = [], 0.0
    with AudioStore(audio_dir) as s:
        for _, a in s.iter_audio():
            parts.append(a)
            total += len(a) / s.sample_rate
            if total >= seconds:
                break
        return np.concatenate(parts)[: int(seconds * s.sample_rate)], s.sample_rate


def save_random(folder: Path, which: str) -> None:
    """A full-size random-init checkpoint folder for the network backends."""
    import json

    from safetensors.torch import save_file

    torch.manual_seed(0)
    if which == "muq":
        from pianoeval.extractors.muq import MuQNetwork

        cfg = {"label_rate": 25, "n_mels": 128, "conv_dim": 512, "encoder_dim": 1024, "encoder_depth": 12,
               "hop_length": 240, "stat": {"melspec_2048_mean": 6.77, "melspec_2048_std": 19.4},
               "w2v2_config": {"num_attention_heads": 16, "intermediate_size": 4096,
                               "conv_depthwise_kernel_size": 31, "position_embeddings_type": "rotary"}}
        net = MuQNetwork(cfg)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({f"model.{k}": v.contiguous() for k, v in net.state_dict().items()},
                  str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps(cfg))
    elif which in ("hubert", "mert"):
        from transformers import HubertConfig, HubertModel

        HubertModel(HubertConfig()).save_pretrained(folder)
    elif which == "ast":
        from transformers import ASTConfig, ASTModel

        ASTModel(ASTConfig()).save_pretrained(folder)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", default="benchmarks/extractor_throughput.json")
    ap.add_argument("--skip-networks", action="store_true")
    args = ap.parse_args()
    from pianoeval.extractors import load_model
    from pianoeval.io import load_params, write_json

    ex = load_params("extract")
    x, sr = audio_sample(ex["audio"], args.seconds)
    dur = len(x) / sr
    cases = [("logmel", "logmel", ex["logmel"]),
             ("basic_pitch (all windows)", "basic_pitch", {**ex["basic_pitch"], "window_stride": 1}),
             (f"basic_pitch (window_stride {ex['basic_pitch']['window_stride']})", "basic_pitch", ex["basic_pitch"]),
             ("logmel_bp (concat)", "concat", {"members": [{"name": "logmel", **ex["logmel"]},
                                                         {"name": "basic_pitch", **ex["basic_pitch"]}]})]
    tmp = Path(tempfile.mkdtemp(prefix="bench_throughput_"))
    if not args.skip_networks:
        for which in ("muq", "hubert", "mert", "ast"):
            save_random(tmp / which, which)
        net = {"device": "cpu", "batch_size": 1}
        cases += [("muq (MuQ-large size, random weights, 4 layers stored)", "muq",
                   {"checkpoint": str(tmp / "muq"), "layers": [9, 10, 11, 12], **net}),
                  ("hubert (base size, random weights)", "hubert", {"checkpoint": str(tmp / "hubert"), **net}),
                  ("mert (MERT-v1-95M size at 24 kHz, random weights)", "mert",
                   {"checkpoint": str(tmp / "mert"), "sample_rate": 24000, **net}),
                  ("ast (base size, random weights)", "ast", {"checkpoint": str(tmp / "ast"), **net})]
    rows = []
    for label, backend, params in cases:
        m = load_model(backend, cache=False, **params)
        m.layer_embeddings(x[: sr * 3], sr)  # warm-up
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        out = m.layer_embeddings(x, sr)
        wall = time.perf_counter() - t0
        rows.append({"extractor": label, "x_real_time": dur / wall, "seconds": wall, "frames": int(out.shape[0]),
                     "layers": int(out.shape[1]), "dim": int(out.shape[2]), "load_avg_1min": load0})
        print(f"{label:55s} {dur / wall:7.1f}x real time  (load {load0:.1f})", flush=True)
        del m
    write_json(args.out, {"audio_seconds": dur, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "rows": rows})


if __name__ == "__main__":
    main()
