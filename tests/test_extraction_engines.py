"""The extraction engines: local and Ray write byte-identical stores; Basic Pitch and concat backends;
the layer axis of the embedding store."""

from __future__ import annotations

import numpy as np
import pytest

from pianoeval.audio_store import AudioStoreWriter
from pianoeval.embedding_store import EmbeddingStore, write_embedding_store
from pianoeval.extraction import EngineConfig, embed_audio_store
from pianoeval.extractors import configured, load_model, mean_std

SR = 24000
EXTRACT = {"dtype": "float16", "logmel": {"n_mels": 32, "deltas": True},
           "basic_pitch": {"window_stride": 2, "batch_size": 4, "threads": 1},
           "logmel_bp": {"backend": "concat", "members": ["logmel", "basic_pitch"]}}


def chord(seconds: float, freqs, sr: int = SR, amp: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    env = np.exp(-1.5 * (t % 1.0))  # a new attack every second
    return (amp * env * sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)).astype(np.float32)


def make_store(folder, n: int = 6):
    w = AudioStoreWriter(folder, SR)
    for i in range(n):
        w.append(f"seg{i:02d}", chord(1.0 + 0.7 * i, [220.0 * 2 ** (i / 12), 330.0]))
    w.close()


def test_basic_pitch_finds_the_played_pitch_and_is_batch_invariant():
    m = load_model("basic_pitch", threads=1, batch_size=1, cache=False)
    x = chord(6.0, [440.0])
    frames, times = m.timestamp_embeddings(x, SR)
    assert frames.shape[1] == 440 and m.frame_rate == pytest.approx(86.1328125)
    assert len(frames) == int(6.0 * 22050 / 256) and times[1] == pytest.approx(1 / m.frame_rate)
    note = frames[:, 264:352].mean(0)
    assert note.argmax() == 48  # A4 = 27.5 Hz * 2^(48/12)
    # A window's output does not depend on which windows share its batch (onnxruntime CPU kernels).
    m8 = load_model("basic_pitch", threads=1, batch_size=8, cache=False)
    np.testing.assert_array_equal(m8.timestamp_embeddings(x, SR)[0], frames)
    # window_stride 2: every other 2-s window, times of the frames it kept
    m2 = load_model("basic_pitch", threads=1, window_stride=2, cache=False)
    f2, t2 = m2.timestamp_embeddings(x, SR)
    assert 0 < len(f2) < len(frames) and set(np.round(t2, 6)) <= set(np.round(times, 6))
    np.testing.assert_allclose(f2, frames[np.isin(np.round(times, 6), np.round(t2, 6))], atol=1e-5)
    with pytest.raises(ValueError, match="outputs must be a non-empty subset"):
        load_model("basic_pitch", outputs=["pitch"], cache=False)


def test_concat_aligns_members_on_the_first_members_grid():
    backend, params = configured("logmel_bp", EXTRACT)
    assert backend == "concat" and [m["name"] for m in params["members"]] == ["logmel", "basic_pitch"]
    c = load_model(backend, **params)
    x = chord(5.0, [262.0, 330.0])
    frames, times = c.timestamp_embeddings(x, SR)
    lm = load_model("logmel", n_mels=32, deltas=True)
    lm_frames, lm_times = lm.timestamp_embeddings(x, SR)
    assert frames.shape[1] == 64 + 440 and c.frame_rate == 25.0
    assert [p["name"] for p in c.parts()] == ["logmel", "basic_pitch"] and c.parts()[1]["start"] == 64
    # Log-mel columns are the log-mel frames of the bins Basic Pitch covered (stride 2 skips some).
    idx = np.round(times * 25).astype(int)
    assert len(idx) < len(lm_frames)
    np.testing.assert_allclose(frames[:, :64], lm_frames[idx], rtol=1e-6)
    with pytest.raises(ValueError, match="refer back"):
        configured("a", {"a": {"backend": "concat", "members": ["a", "logmel"]}})


def test_layer_axis_store_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    items = [(f"s{i}", rng.normal(size=(4 + i, 3, 5)).astype(np.float32)) for i in range(4)]
    path = tmp_path / "ml.safetensors"
    s = write_embedding_store(path, items, extractor="m", extractor_params={}, frame_rate=25.0,
                              layers=[4, 8, 12], default_layers=[8, 12])
    assert s["layers"] == 3 and s["dim"] == 5
    st = EmbeddingStore(path)
    assert st.layers == [4, 8, 12] and st.default_layers == [8, 12]
    f = items[2][1]
    np.testing.assert_allclose(st.frames("s2"), f[:, 1:].mean(1), rtol=1e-6)      # default combination
    np.testing.assert_array_equal(st.frames("s2", layers=4), f[:, 0])
    np.testing.assert_allclose(st.pooled(["s2"])[0], mean_std(f[:, 1:].mean(1)), rtol=1e-5)
    np.testing.assert_allclose(st.pooled(["s2"], layers=12)[0], mean_std(f[:, 2]), rtol=1e-5)
    np.testing.assert_allclose(st.pooled(["s2"], layers=[4, 8])[0], mean_std(f[:, :2].mean(1)), rtol=1e-5)
    assert st.frames_all_layers("s3").shape == (7, 3, 5)
    with pytest.raises(KeyError, match=r"layers \[5\] not stored"):
        st.frames("s0", layers=5)
    with pytest.raises(ValueError, match="default_layers \\[3\\] are not among"):
        write_embedding_store(tmp_path / "bad.safetensors", items, extractor="m", extractor_params={},
                              frame_rate=25.0, layers=[4, 8, 12], default_layers=[3])


def test_engine_params_are_checked():
    with pytest.raises(ValueError, match="extract.engine"):
        EngineConfig.from_params({"engine": "spark"})
    with pytest.raises(ValueError, match="ray_address"):
        EngineConfig.from_params({"engine": "ray", "ray_address": "10.0.0.1:6379"})


@pytest.mark.slow
def test_ray_engine_writes_the_same_bytes_as_the_local_engine(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    make_store(tmp_path / "audio")
    local = embed_audio_store(str(tmp_path / "audio"), str(tmp_path / "local.safetensors"), "logmel_bp", EXTRACT)
    ray_cfg = EngineConfig(engine="ray", ray_address="local", ray_workers=2, ray_shard_size=2)
    remote = embed_audio_store(str(tmp_path / "audio"), str(tmp_path / "ray.safetensors"), "logmel_bp", EXTRACT,
                               engine=ray_cfg)
    assert local == remote and local["segments"] == 6
    assert (tmp_path / "local.safetensors").read_bytes() == (tmp_path / "ray.safetensors").read_bytes()
    st = EmbeddingStore(tmp_path / "ray.safetensors")
    assert st.keys == [f"seg{i:02d}" for i in range(6)] and [p["name"] for p in st.parts] == ["logmel", "basic_pitch"]
    assert st.pooled(part="basic_pitch").shape == (6, 880)


def test_concat_pools_each_member_over_its_own_frames(tmp_path):
    backend, params = configured("logmel_bp", EXTRACT)
    c = load_model(backend, **params)
    x = chord(7.0, [262.0, 330.0])
    lm = load_model("logmel", n_mels=32, deltas=True).timestamp_embeddings(x, SR)[0]
    bp = load_model("basic_pitch", window_stride=2, batch_size=4, threads=1).timestamp_embeddings(x, SR)[0]
    frames, pooled = c.store_embeddings(x, SR)
    lm_p, bp_p = mean_std(lm), mean_std(bp)
    # [means of log-mel (all its frames) and Basic Pitch (its windows) ‖ their stds]
    np.testing.assert_allclose(pooled, np.concatenate([lm_p[:64], bp_p[:440], lm_p[64:], bp_p[440:]]), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(c.scene_embedding(x, SR), pooled)
    write_embedding_store(tmp_path / "c.safetensors", [("a", frames, pooled)], extractor="logmel_bp",
                          extractor_params=c.identity(), frame_rate=25.0, parts=c.parts())
    st = EmbeddingStore(tmp_path / "c.safetensors")
    np.testing.assert_allclose(st.pooled(part="logmel")[0], lm_p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(st.pooled(part="basic_pitch")[0], mean_std(bp), rtol=1e-5, atol=1e-6)


def test_batching_across_clips_gives_the_per_clip_results():
    """The engines hand chunks of clips to `store_embeddings_many`; Basic Pitch batches their windows
    together (cheaper per window) and concat passes the chunk to each member: same numbers as clip by clip."""
    clips = [chord(1.0 + 1.3 * i, [220.0 * 2 ** (i / 12), 330.0]) for i in range(5)]
    for name in ("basic_pitch", "logmel_bp", "logmel"):
        backend, params = configured(name, EXTRACT)
        m = load_model(backend, **params)
        many = m.store_embeddings_many(clips, SR)
        assert len(many) == len(clips)
        for clip, (frames, pooled) in zip(clips, many):
            one_frames, one_pooled = m.store_embeddings(clip, SR)
            np.testing.assert_array_equal(frames, one_frames)
            if one_pooled is None:
                assert pooled is None
            else:
                np.testing.assert_array_equal(pooled, one_pooled)
