import numpy as np
import pytest

from pianoeval.audio_store import AudioStore, AudioStoreWriter
from pianoeval.render import MidiError, SynthConfig, render_many, render_midi, resolve_soundfont

from conftest import write_midi

SR = 24000


@pytest.fixture(scope="module")
def cfg():
    return SynthConfig(soundfont=str(resolve_soundfont("pretty_midi")), sample_rate=SR, tail_seconds=1.0)


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_render_is_deterministic_and_keeps_tail(tmp_path, cfg):
    path = tmp_path / "a.mid"
    write_midi(path, [(0.0, 0.5, 60, 80), (0.5, 1.0, 64, 80)])
    a, b = render_midi(path, cfg), render_midi(path, cfg)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert len(a) == int(round(1.0 * SR)) + int(round(1.0 * SR))  # last event at 1.0 s + 1.0 s tail
    assert rms(a[int(1.05 * SR):int(1.3 * SR)]) > 1e-4  # the release rings into the tail


def test_effects_switch_adds_reverb_and_chorus(tmp_path, cfg):
    """render.effects: FluidSynth's reverb/chorus, off by default: the dry render is silent sooner after
    a staccato note, the wet one keeps a reverb tail; both deterministic."""
    import dataclasses

    write_midi(tmp_path / "a.mid", [(0.0, 0.1, 72, 100), (1.4, 1.5, 21, 1)])
    assert cfg.effects is False
    dry = render_midi(tmp_path / "a.mid", cfg)
    wet_cfg = dataclasses.replace(cfg, effects=True)
    wet = render_midi(tmp_path / "a.mid", wet_cfg)
    assert np.array_equal(wet, render_midi(tmp_path / "a.mid", wet_cfg)) and len(wet) == len(dry)
    late = slice(int(0.8 * SR), int(1.3 * SR))  # after the short note's release, before the next note
    assert rms(wet[late]) > 3 * rms(dry[late])


def test_loudness_is_kept(tmp_path, cfg):
    write_midi(tmp_path / "soft.mid", [(0.0, 1.0, 60, 30)])
    write_midi(tmp_path / "loud.mid", [(0.0, 1.0, 60, 110)])
    soft, loud = render_midi(tmp_path / "soft.mid", cfg), render_midi(tmp_path / "loud.mid", cfg)
    assert rms(loud) > 2 * rms(soft)


def test_sustain_pedal_is_honoured(tmp_path, cfg):
    notes = [(0.0, 0.2, 60, 90)]
    write_midi(tmp_path / "dry.mid", notes + [(2.0, 2.05, 30, 1)])
    write_midi(tmp_path / "ped.mid", notes + [(2.0, 2.05, 30, 1)], pedal=[(0.0, 127), (1.9, 0)])
    dry, ped = render_midi(tmp_path / "dry.mid", cfg), render_midi(tmp_path / "ped.mid", cfg)
    window = slice(int(0.8 * SR), int(1.6 * SR))  # after the key is released, before the pedal is
    assert rms(ped[window]) > 3 * rms(dry[window])


def test_bad_midi_and_missing_soundfont(tmp_path, cfg):
    (tmp_path / "bad.mid").write_bytes(b"not a midi file")
    with pytest.raises(MidiError, match="bad.mid: unreadable MIDI"):
        render_midi(tmp_path / "bad.mid", cfg)
    write_midi(tmp_path / "empty.mid", [])
    with pytest.raises(MidiError, match="no notes"):
        render_midi(tmp_path / "empty.mid", cfg)
    with pytest.raises(FileNotFoundError, match="render.soundfont: soundfont not found: .*nope.sf2"):
        resolve_soundfont(str(tmp_path / "nope.sf2"))
    # In a parallel run a bad file comes back as an error (the stage fails or counts it per policy).
    write_midi(tmp_path / "ok.mid", [(0.0, 0.3, 60, 80)])
    out = list(render_many([("ok", str(tmp_path / "ok.mid")), ("bad", str(tmp_path / "bad.mid"))], cfg,
                           workers=1, progress=False))
    assert [k for k, *_ in out] == ["ok", "bad"]
    assert out[0][1] is not None and out[1][1] is None and "unreadable" in out[1][2]


def test_audio_store_roundtrip_and_clipping_guard(tmp_path):
    rng = np.random.default_rng(0)
    segs = {f"k{i}": (rng.uniform(-0.9, 0.9, 1000 + 37 * i)).astype(np.float32) for i in range(5)}
    w = AudioStoreWriter(tmp_path / "store", SR)
    for k, a in segs.items():
        w.append(k, a)
    with pytest.raises(ValueError, match="'loud' peaks at 1.500"):
        w.append("loud", np.array([1.5], dtype=np.float32))
    w.close({"note": "x"})
    with AudioStore(tmp_path / "store") as st:
        assert st.keys == list(segs) and st.meta == {"note": "x"}
        for k in ["k3", "k0", "k4"]:  # random access
            np.testing.assert_allclose(st.read(k), segs[k], atol=0.5 / 32768 + 1e-7)
        assert st.duration("k1") == pytest.approx(1037 / SR)
        with pytest.raises(KeyError, match="no segment 'zz'"):
            st.read("zz")


def test_render_store_policy_and_global_level(tmp_path, cfg):
    from pianoeval.render import render_store

    write_midi(tmp_path / "soft.mid", [(0.0, 0.5, 60, 30)])
    write_midi(tmp_path / "loud.mid", [(0.0, 0.5, 60, 110)])
    (tmp_path / "bad.mid").write_bytes(b"MThd garbage")
    items = [("soft", str(tmp_path / "soft.mid")), ("bad", str(tmp_path / "bad.mid")),
             ("loud", str(tmp_path / "loud.mid"))]
    with pytest.raises(MidiError, match=r"1 bad MIDI file\(s\).*bad.mid"):
        render_store(items, cfg, tmp_path / "fail", workers=1, progress=False)
    report = render_store(items, cfg, tmp_path / "store", peak_target=0.5, on_bad_midi="skip", workers=1,
                          progress=False)
    assert report["rendered"] == 2 and report["excluded_bad_midi"] == 1 and report["excluded_keys"] == ["bad"]
    with AudioStore(tmp_path / "store") as st:
        assert st.keys == ["soft", "loud"] and st.meta["excluded"][0]["key"] == "bad"
        loud, soft = st.read("loud"), st.read("soft")
        assert np.abs(loud).max() == pytest.approx(0.5, abs=1e-4)  # loudest file at the target
        # One global factor: the level ratio between files is what the synth produced.
        raw_ratio = rms(render_midi(tmp_path / "loud.mid", cfg)) / rms(render_midi(tmp_path / "soft.mid", cfg))
        assert rms(loud) / rms(soft) == pytest.approx(raw_ratio, rel=1e-3)
