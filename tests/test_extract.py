import numpy as np
import pytest

from pianoeval.embedding_store import EmbeddingStore, write_embedding_store
from pianoeval.extractors import REGISTRY, Extractor, load_model, mean_std, register


def tone(freq, seconds=2.0, sr=24000, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_logmel_shapes_rate_and_timestamps():
    m = load_model("logmel", n_mels=64)
    frames, times = m.timestamp_embeddings(tone(440), 24000)
    assert frames.shape == (1 + 48000 // 960, 64) and frames.dtype == np.float32
    np.testing.assert_allclose(np.diff(times), 1 / 25)
    assert m.scene_embedding(tone(440), 24000).shape == (128,)


def test_logmel_is_level_sensitive_and_spectral():
    m = load_model("logmel", n_mels=64)
    loud, soft = m.scene_embedding(tone(440, amp=0.5), 24000), m.scene_embedding(tone(440, amp=0.05), 24000)
    assert loud[:64].max() - soft[:64].max() == pytest.approx(20.0, abs=0.5)  # 20 dB quieter
    low, high = m.timestamp_embeddings(tone(200), 24000)[0], m.timestamp_embeddings(tone(3000), 24000)[0]
    assert low.mean(0).argmax() < high.mean(0).argmax()


def test_resampling_and_deltas():
    m = load_model("logmel", n_mels=32, deltas=True)
    a24 = m.timestamp_embeddings(tone(440, sr=24000), 24000)[0]
    a16 = m.timestamp_embeddings(tone(440, sr=16000), 16000)[0]
    assert a24.shape == a16.shape == (51, 64)
    # Same tone at another rate: same peak band and level (bands above 8 kHz are empty at 16 kHz).
    assert (a24[2:-2, :32].argmax(1) == a16[2:-2, :32].argmax(1)).all()
    np.testing.assert_allclose(a24[2:-2, :32].max(1), a16[2:-2, :32].max(1), atol=0.5)
    with pytest.raises(ValueError, match="mono"):
        m.timestamp_embeddings(np.zeros((2, 100), np.float32), 24000)


def test_registry_one_module_per_backend():
    with pytest.raises(KeyError, match="unknown extractor 'nope'"):
        load_model("nope")

    @register("_test_const")
    class Const(Extractor):
        sample_rate, frame_rate, dim = 8000, 10.0, 3

        def _embed(self, audio):
            return np.ones((len(audio) // 800, 3), np.float32)

    try:
        frames, times = load_model("_test_const").timestamp_embeddings(np.zeros(16000, np.float32), 16000)
        assert frames.shape == (10, 3) and times[-1] == pytest.approx(0.9)
    finally:
        REGISTRY.pop("_test_const")


def test_embedding_store_lazy_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    items = [(f"s{i}", rng.normal(size=(5 + i, 4)).astype(np.float32)) for i in range(6)]
    path = tmp_path / "emb.safetensors"
    summary = write_embedding_store(path, iter(items), extractor="x", extractor_params={"a": 1}, frame_rate=25.0)
    assert summary["segments"] == 6 and summary["frames"] == sum(5 + i for i in range(6))
    st = EmbeddingStore(path)
    assert st.keys == [k for k, _ in items] and st.extractor_params == {"a": 1} and st.frame_rate == 25.0
    np.testing.assert_array_equal(st.frames("s3"), items[3][1])
    np.testing.assert_allclose(st.pooled(["s5", "s0"]), np.stack([mean_std(items[5][1]), mean_std(items[0][1])]),
                               rtol=1e-6)
    with pytest.raises(KeyError, match="no segment 'zz'"):
        st.frames("zz")
    bad = [("a", np.zeros((3, 4))), ("b", np.full((2, 4), np.nan))]
    with pytest.raises(ValueError, match="'b' has non-finite"):
        write_embedding_store(tmp_path / "bad.safetensors", bad, extractor="x", extractor_params={}, frame_rate=1)
    # Same input -> same bytes (dvc.lock hashes stay put).
    write_embedding_store(tmp_path / "again.safetensors", iter(items), extractor="x", extractor_params={"a": 1},
                          frame_rate=25.0)
    assert path.read_bytes() == (tmp_path / "again.safetensors").read_bytes()
