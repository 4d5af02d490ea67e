"""audio_io: every format decodes to mono float32 at the asked rate, windows are sample-exact, errors name
the file. Files are made in the test with PyAV's encoders (media_server.encode)."""

import numpy as np
import pytest
import soundfile as sf

from media_server import encode, piano_like
from pianoeval.audio_io import (
    AUDIO_SUFFIXES,
    AudioDecodeError,
    AudioReader,
    audio_info,
    is_audio_file,
    load_audio,
    resample,
)

SR = 24000
# relative RMS error of the decoded signal against the source: lossless ~ 16-bit rounding, lossy codecs
# at their default bitrates (measured 0.01-0.07 on this signal; the bound leaves room across FFmpeg builds)
TOLERANCE = {".wav": 1e-3, ".flac": 1e-3, ".mp3": 0.15, ".m4a": 0.1, ".webm": 0.1, ".opus": 0.1, ".ogg": 0.1}


def rel_err(ref: np.ndarray, got: np.ndarray) -> float:
    n = min(len(ref), len(got))
    return float(np.sqrt(np.mean((ref[:n] - got[:n]) ** 2) / np.mean(ref[:n] ** 2)))


@pytest.fixture(scope="module")
def source():
    return piano_like(4.0, SR, seed=1)


@pytest.mark.parametrize("suffix", sorted(TOLERANCE))
def test_every_format_decodes_to_mono_at_the_asked_rate(tmp_path, source, suffix):
    file_sr = 48000 if suffix in (".webm", ".opus") else SR  # Opus runs at 48 kHz
    path = encode(tmp_path / f"clip{suffix.upper()}", resample(source, SR, file_sr), file_sr)  # upper-case suffix
    assert is_audio_file(path)
    x = load_audio(path, SR)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - len(source)) <= 2048  # encoder padding: at most about one codec frame
    assert rel_err(source, x) < TOLERANCE[suffix]
    info = audio_info(path)
    assert info.sample_rate == file_sr and abs(info.duration - 4.0) < 0.1


def test_wav_matches_soundfile_exactly_and_stereo_is_downmixed(tmp_path, source):
    stereo = np.stack([source, 0.5 * source], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 44100, subtype="PCM_16")
    ref = sf.read(tmp_path / "s.wav", dtype="float32")[0].mean(axis=1, dtype=np.float32)
    got = load_audio(tmp_path / "s.wav")
    assert np.array_equal(got, ref)
    info = audio_info(tmp_path / "s.wav")
    assert (info.sample_rate, info.channels, info.exact) == (44100, 2, True)
    assert info.duration == len(source) / 44100
    at24 = load_audio(tmp_path / "s.wav", SR)
    assert len(at24) == round(len(source) * SR / 44100)


@pytest.mark.parametrize("suffix", [".flac", ".m4a"])
def test_reader_windows_are_slices_of_the_whole_decode(tmp_path, source, suffix):
    path = encode(tmp_path / f"w{suffix}", source, SR)
    whole = load_audio(path)
    with AudioReader(path) as r:
        a, sr = r.read(0.5, 1.25)
        b, _ = r.read(1.0, 3.0)      # overlaps the previous window
        c, _ = r.read(0.1, 0.2)      # earlier start: the reader reopens the file
        d, _ = r.read(3.5, 99.0)     # past the end: clipped
    assert sr == SR
    assert np.array_equal(a, whole[12000:30000]) and np.array_equal(b, whole[24000:72000])
    assert np.array_equal(c, whole[2400:4800]) and np.array_equal(d, whole[84000:])


def test_errors_name_the_file(tmp_path, source):
    bad = tmp_path / "notaudio.wav"
    bad.write_text("<html>404</html>")
    with pytest.raises(AudioDecodeError, match="notaudio.wav"):
        load_audio(bad)
    with pytest.raises(AudioDecodeError, match="notaudio.wav"):
        audio_info(bad)
    path = encode(tmp_path / "short.flac", source[:SR], SR)
    with AudioReader(path) as r, pytest.raises(ValueError, match=r"short.flac: window \[2.0, 3.0\] s is empty"):
        r.read(2.0, 3.0)


def test_suffixes_case_insensitive():
    assert {".wav", ".flac", ".mp3", ".m4a", ".webm", ".opus", ".ogg"} <= set(AUDIO_SUFFIXES)
    assert is_audio_file("ID.WAV") and is_audio_file("a/b/x.M4a") and not is_audio_file("notes.txt")
