"""Stage `extract`: packed audio store -> one embedding store with the configured extractor."""

from __future__ import annotations

from ..audio_store import AudioStore
from ..embedding_store import write_embedding_store
from ..extractors import load_model
from ..io import load_params, write_json
from ..loudness import LoudnessCounter, embedding_params


def embed_store(audio_dir: str, out: str, name: str, params: dict, dtype: str, progress_desc: str,
                loudness_lufs: float | None = None) -> dict:
    """Embed every segment of an audio store into one embedding store; returns its summary.
    ``loudness_lufs``: normalise each segment to this integrated loudness first (None = off)."""
    from tqdm import tqdm

    model = load_model(name, **params)
    loud = LoudnessCounter(loudness_lufs)
    with AudioStore(audio_dir) as store:
        items = ((k, model.timestamp_embeddings(loud(a, store.sample_rate), store.sample_rate)[0])
                 for k, a in tqdm(store.iter_audio(), total=len(store), desc=progress_desc, unit="seg",
                                  mininterval=2.0))
        summary = write_embedding_store(out, items, extractor=name,
                                        extractor_params=embedding_params(model.params(), loudness_lufs),
                                        frame_rate=model.frame_rate, dtype=dtype)
    summary.update(extractor=name, frame_rate=model.frame_rate, loudness=loud.summary(), loudness_line=loud.line())
    return summary


def main() -> None:
    p = load_params("extract")
    name = p["extractor"]
    summary = embed_store(p["audio"], p["out"], name, p.get(name) or {}, p["dtype"], f"extract[{name}]",
                          p.get("loudness_lufs"))
    write_json("metrics/extract.json", {k: v for k, v in summary.items() if k not in ("bytes", "loudness_line")})
    print(f"extract: {summary['segments']} segments, {summary['frames']} frames x {summary['dim']} "
          f"({summary['bytes'] / 1e6:.0f} MB) with {name}; {summary['loudness_line']}")


if __name__ == "__main__":
    main()
