"""Stage `t4_embed`: clean and augmented T4 clips -> two embedding stores (the `extract` extractor)."""

from __future__ import annotations

from ..io import load_params, write_json
from ..extraction import EngineConfig, embed_audio_store


def main() -> None:
    p = load_params("t4_embed")
    ex = load_params("extract")
    name = ex["extractor"]
    summary = {}
    for which in ("clean", "augmented"):
        # the default extractor, loudness target and engine of the T1 store: the T1 checkpoints score these clips
        s = embed_audio_store(p[f"{which}_audio"], p[f"{which}_out"], name, ex, engine=EngineConfig.from_params(ex),
                              progress_desc=f"t4_embed[{which}]")
        summary[which] = {k: v for k, v in s.items() if k not in ("bytes", "loudness_line")}
        print(f"t4_embed: {which}: {s['segments']} clips, {s['frames']} frames x {s['dim']} "
              f"({s['bytes'] / 1e6:.0f} MB) with {name}; {s['loudness_line']}")
    write_json("metrics/t4_embed.json", summary)


if __name__ == "__main__":
    main()
