"""Stage `masterclass_embed`: every distinct segment window -> one embedding store (the `extract` extractor)."""

from __future__ import annotations

import time

import torch

from ..extractors import load_configured
from ..io import load_params, write_json
from ..masterclass.features import embed_segments, read_segment_table


def main() -> None:
    # One torch thread: with two, the float results (and the store's bytes) changed with the machine's
    # load between otherwise identical runs; one thread gives the same bytes every time (measured).
    torch.set_num_threads(1)
    p = load_params("masterclass_embed")
    ex = load_params("extract")
    input_dir = load_params("masterclass_segments")["input_dir"]
    name = ex["extractor"]
    t0 = time.perf_counter()
    model = load_configured(name, ex)  # the default extractor, as configured for extract@<name>
    summary = embed_segments(read_segment_table(p["segments"]), input_dir, p["out"], model, extractor=name,
                             dtype=ex["dtype"], loudness_lufs=ex.get("loudness_lufs"))
    summary.update(extractor=name, seconds_wall=time.perf_counter() - t0)
    # bytes and wall time vary between machines: kept out of the committed metrics
    write_json("metrics/masterclass_embed.json",
               {k: v for k, v in summary.items() if k not in ("bytes", "seconds_wall", "loudness_line")})
    print(f"masterclass_embed: {summary['segments']} windows ({summary['seconds'] / 60:.0f} min of audio), "
          f"{summary['frames']} frames x {summary['dim']} with {name} in {summary['seconds_wall']:.0f} s; "
          f"{summary['loudness_line']}")


if __name__ == "__main__":
    main()
