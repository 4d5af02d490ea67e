"""Shared body of the t2_embed / t3_embed stages."""

from __future__ import annotations

from ..io import load_params, write_json


def embed_stage(tier: str) -> dict:
    """Embed the tier's audio store with the configured extractor (the `extract` stage's function)."""
    from .extract import embed_store

    p = load_params(f"{tier}_embed")
    ex = load_params("extract")
    name = ex["extractor"]
    # Same extractor and loudness normalisation as the T1 store: the T1 checkpoints score these windows.
    summary = embed_store(p["audio"], p["out"], name, ex.get(name) or {}, ex["dtype"], f"{tier}_embed[{name}]",
                          ex.get("loudness_lufs"))
    write_json(f"metrics/{tier}_embed.json", {k: v for k, v in summary.items() if k not in ("bytes", "loudness_line")})
    print(f"{tier}_embed: {summary['segments']} windows, {summary['frames']} frames x {summary['dim']} with {name}; "
          f"{summary['loudness_line']}")
    return summary
