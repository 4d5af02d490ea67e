"""Stage `t4_embed`: clean and augmented T4 clips -> two embedding stores (the `extract` extractor)."""

from __future__ import annotations

from ..io import load_params, write_json
from .extract import embed_store


def main() -> None:
    p = load_params("t4_embed")
    ex = load_params("extract")
    name = ex["extractor"]
    summary = {}
    for which in ("clean", "augmented"):
        s = embed_store(p[f"{which}_audio"], p[f"{which}_out"], name, ex.get(name) or {}, ex["dtype"],
                        f"t4_embed[{which}]", ex.get("loudness_lufs"))
        summary[which] = {k: v for k, v in s.items() if k not in ("bytes", "loudness_line")}
        print(f"t4_embed: {which}: {s['segments']} clips, {s['frames']} frames x {s['dim']} "
              f"({s['bytes'] / 1e6:.0f} MB) with {name}; {s['loudness_line']}")
    write_json("metrics/t4_embed.json", summary)


if __name__ == "__main__":
    main()
