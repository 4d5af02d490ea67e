"""Embedding a packed audio store with a configured extractor, locally or on a Ray cluster.

Both engines embed the same segments with the same model settings and hand the store writer the
results in audio-store order, so they write byte-identical stores (tested on a local 2-CPU Ray).

Ray engine: one actor per worker loads the model once (``num_gpus`` per actor when the cluster has
GPUs and the model's ``device`` is ``cuda``/``auto``); the driver reads the audio and maps shards of
``shard_size`` segments over the actors (``ActorPool.map``: at most one shard in flight per actor, so
memory stays bounded); results come back in submission order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .audio_store import AudioStore
from .embedding_store import write_embedding_store
from .extractors import configured, load_model
from .loudness import LoudnessCounter, embedding_params


@dataclass(frozen=True)
class EngineConfig:
    """``engine``: local | ray. ``ray_address``: local (in-process cluster of ``ray_workers`` CPUs) | auto |
    ray://host:10001 (always explicit: ``ray.init()`` alone attaches to whatever RAY_ADDRESS says).
    ``ray_workers``: actors. ``ray_shard_size``: segments per task. ``ray_gpus_per_worker``: 0 on CPU clusters."""

    engine: str = "local"
    ray_address: str = "local"
    ray_workers: int = 2
    ray_shard_size: int = 16
    ray_gpus_per_worker: float = 0.0

    @classmethod
    def from_params(cls, p: dict) -> EngineConfig:
        cfg = cls(**{k: p[k] for k in ("engine", "ray_address", "ray_workers", "ray_shard_size",
                                       "ray_gpus_per_worker") if k in p})
        if cfg.engine not in ("local", "ray"):
            raise ValueError(f"params extract.engine: expected local or ray, got {cfg.engine!r}")
        if cfg.engine == "ray" and not (cfg.ray_address in ("local", "auto") or cfg.ray_address.startswith("ray://")):
            raise ValueError(f"params extract.ray_address: expected local, auto or ray://host:port, "
                             f"got {cfg.ray_address!r}")
        if cfg.ray_workers < 1 or cfg.ray_shard_size < 1:
            raise ValueError("params extract.ray_workers and extract.ray_shard_size must be >= 1")
        return cfg


def _local_items(audio_dir: str, model, loud: LoudnessCounter,
                 progress_desc: str | None) -> Iterator[tuple[str, np.ndarray]]:
    from tqdm import tqdm

    with AudioStore(audio_dir) as store:
        it = store.iter_audio()
        if progress_desc:
            it = tqdm(it, total=len(store), desc=progress_desc, unit="seg", mininterval=2.0)
        # fixed chunks of clips in store order: backends that batch (Basic Pitch) batch across them, and the
        # same store always gives the same chunks (so the same bytes: see BasicPitch.timestamp_embeddings_many)
        for chunk in _chunks(it, CHUNK_CLIPS):
            clips = [loud(audio, store.sample_rate) for _, audio in chunk]
            for (key, _), out in zip(chunk, model.store_embeddings_many(clips, store.sample_rate)):
                yield (key, *out)


CHUNK_CLIPS = 16  # clips per model call in the local engine (memory: 16 T1 segments are ~40 MB of audio)


def _chunks(it, size: int):
    chunk = []
    for item in it:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _shards(audio_dir: str, size: int, loud: LoudnessCounter) -> Iterator[tuple[int, list[tuple[str, np.ndarray]]]]:
    # Loudness is normalised here, in the driver (cheap: ~2,400x real time), so its counts stay in one place.
    with AudioStore(audio_dir) as store:
        shard: list = []
        for key, audio in store.iter_audio():
            shard.append((key, loud(audio, store.sample_rate)))
            if len(shard) == size:
                yield store.sample_rate, shard
                shard = []
        if shard:
            yield store.sample_rate, shard


def _ray_items(audio_dir: str, backend: str, params: dict, cfg: EngineConfig, loud: LoudnessCounter,
               progress_desc: str | None) -> Iterator[tuple[str, np.ndarray]]:
    import ray
    from ray.util import ActorPool

    started = False
    if not ray.is_initialized():
        if cfg.ray_address == "local":
            ray.init(address="local", num_cpus=cfg.ray_workers, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=cfg.ray_address, log_to_driver=False, configure_logging=False)
        started = True
    try:
        @ray.remote(num_cpus=1, num_gpus=cfg.ray_gpus_per_worker)
        class EmbedActor:
            def __init__(self, backend: str, params: dict):
                import torch

                torch.set_num_threads(1)  # one actor per CPU: no oversubscription
                self.model = load_model(backend, **params)

            def embed(self, job):
                sr, shard = job
                return [(k, *out) for (k, _), out in zip(shard, self.model.store_embeddings_many([a for _, a in shard], sr))]

        pool = ActorPool([EmbedActor.remote(backend, params) for _ in range(cfg.ray_workers)])
        results: list[tuple[str, np.ndarray]] = []
        shards = pool.map(lambda a, job: a.embed.remote(job), _shards(audio_dir, cfg.ray_shard_size, loud))
        if progress_desc:
            from tqdm import tqdm

            shards = tqdm(shards, desc=f"{progress_desc} (ray, {cfg.ray_shard_size} seg/shard)", unit="shard",
                          mininterval=2.0)
        for shard_out in shards:
            results.extend(shard_out)
        # Same order as the local engine (audio-store order) whatever order the shards finished in.
        with AudioStore(audio_dir) as store:
            rank = {k: i for i, k in enumerate(store.keys)}
        results.sort(key=lambda kv: rank[kv[0]])
        yield from results
    finally:
        if started:
            ray.shutdown()


def embed_audio_store(audio_dir: str, out: str, name: str, extract_params: dict, *, engine: EngineConfig | None = None,
                      progress_desc: str | None = None) -> dict:
    """Embed every segment of an audio store with configured extractor ``name`` into one embedding store.

    Each clip is first scaled to ``extract_params["loudness_lufs"]`` (ITU-R BS.1770 integrated loudness;
    absent or None = off), and the target is recorded with the extractor's identity, so quality
    checkpoints trained on these embeddings refuse embeddings made without it.

    Returns the store summary plus extractor name, backend, frame rate and what the loudness step did
    (``loudness``; ``loudness_line`` for the console).
    """
    engine = engine or EngineConfig()
    backend, params = configured(name, extract_params)
    model = load_model(backend, **params)
    target = extract_params.get("loudness_lufs")
    loud = LoudnessCounter(target)
    if engine.engine == "local":
        items = _local_items(audio_dir, model, loud, progress_desc)
    else:
        items = _ray_items(audio_dir, backend, params, engine, loud, progress_desc)
    summary = write_embedding_store(
        out, items, extractor=name, extractor_params=embedding_params(model.identity(), target),
        frame_rate=model.frame_rate, dtype=extract_params.get("dtype", "float32"),
        layers=model.layers, default_layers=model.default_layers,
        parts=model.parts() if hasattr(model, "parts") else None)
    summary.update(extractor=name, backend=backend, frame_rate=model.frame_rate, loudness=loud.summary(),
                   loudness_line=loud.line())
    return summary
