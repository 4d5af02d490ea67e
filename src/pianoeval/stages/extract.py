"""Stage `extract@<name>`: packed audio store -> ``<extract.out_dir>/<name>.safetensors`` with configured
extractor ``name`` (dvc.yaml runs one stage per name in ``extract.extractors``)."""

from __future__ import annotations

import sys
import time

from ..embedding_store import store_path
from ..extraction import EngineConfig, embed_audio_store
from ..io import load_params, write_json


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = load_params("extract")
    if len(argv) != 1:
        raise SystemExit(f"usage: python -m pianoeval.stages.extract <name>, "
                         f"name in extract.extractors {p['extractors']}")
    name = argv[0]
    if name not in p["extractors"]:
        raise SystemExit(f"params.yaml: '{name}' is not in extract.extractors {p['extractors']}")
    engine = EngineConfig.from_params(p)
    t0 = time.perf_counter()
    summary = embed_audio_store(p["audio"], str(store_path(name, p["out_dir"])), name, p, engine=engine,
                                progress_desc=f"extract[{name}]")
    wall = time.perf_counter() - t0
    audio_seconds = load_audio_seconds(p["audio"])
    # bytes and wall time vary between machines: printed, kept out of the committed metrics
    write_json(f"metrics/extract/{name}.json", {k: v for k, v in summary.items() if k not in ("bytes", "loudness_line")}
               | {"audio_hours": audio_seconds / 3600})
    print(f"extract[{name}]: {summary['segments']} segments, {summary['frames']} frames x {summary['layers']} "
          f"layer(s) x {summary['dim']} ({summary['bytes'] / 1e6:.0f} MB) in {wall:.0f} s "
          f"({audio_seconds / wall:.0f}x real time, engine {engine.engine}); {summary['loudness_line']}")


def load_audio_seconds(audio_dir: str) -> float:
    from ..audio_store import AudioStore

    with AudioStore(audio_dir) as s:
        return float(sum(s.duration(k) for k in s.keys))


if __name__ == "__main__":
    main()
