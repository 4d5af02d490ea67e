"""Shared body of the t2_embed / t3_embed stages."""

from __future__ import annotations

from ..io import load_params, write_json


def embed_stage(tier: str) -> dict:
    """Embed the tier's audio store with the configured extractor (the `extract` stage's function)."""
    from ..extraction import EngineConfig, embed_audio_store

    p = load_params(f"{tier}_embed")
    ex = load_params("extract")
    name = ex["extractor"]
    # Same extractor and loudness normalisation as the T1 store: the T1 checkpoints score these windows.
    summary = embed_audio_store(p["audio"], p["out"], name, ex, engine=EngineConfig.from_params(ex),
                                progress_desc=f"{tier}_embed[{name}]")
    write_json(f"metrics/{tier}_embed.json", {k: v for k, v in summary.items() if k not in ("bytes", "loudness_line")})
    print(f"{tier}_embed: {summary['segments']} windows, {summary['frames']} frames x {summary['dim']} with {name}; "
          f"{summary['loudness_line']}")
    return summary
