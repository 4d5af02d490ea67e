"""Stage `extract`: packed audio store -> one embedding store with the configured extractor."""

from __future__ import annotations

from ..audio_store import AudioStore
from ..embedding_store import write_embedding_store
from ..extractors import load_model
from ..io import load_params, write_json


def embed_store(audio_dir: str, out: str, name: str, params: dict, dtype: str, progress_desc: str) -> dict:
    """Embed every segment of an audio store into one embedding store; returns its summary."""
    from tqdm import tqdm

    model = load_model(name, **params)
    with AudioStore(audio_dir) as store:
        items = ((k, model.timestamp_embeddings(a, store.sample_rate)[0])
                 for k, a in tqdm(store.iter_audio(), total=len(store), desc=progress_desc, unit="seg",
                                  mininterval=2.0))
        summary = write_embedding_store(out, items, extractor=name, extractor_params=model.params(),
                                        frame_rate=model.frame_rate, dtype=dtype)
    summary.update(extractor=name, frame_rate=model.frame_rate)
    return summary


def main() -> None:
    p = load_params("extract")
    name = p["extractor"]
    summary = embed_store(p["audio"], p["out"], name, p.get(name) or {}, p["dtype"], f"extract[{name}]")
    write_json("metrics/extract.json", {k: v for k, v in summary.items() if k != "bytes"})
    print(f"extract: {summary['segments']} segments, {summary['frames']} frames x {summary['dim']} "
          f"({summary['bytes'] / 1e6:.0f} MB) with {name}")


if __name__ == "__main__":
    main()
