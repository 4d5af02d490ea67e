"""Reading recorded audio in any common format: one decoder (PyAV, FFmpeg's libraries bundled in its wheel).

Every tier that reads user or downloaded recordings goes through this module, so a format accepted in
one place is accepted everywhere (soundfile reads wav/flac/ogg but not m4a/AAC, webm or opus, which is
what yt-dlp delivers from YouTube).

API
---
``AUDIO_SUFFIXES``
    the accepted file suffixes (lower case): wav, flac, mp3, m4a/aac/mp4, webm/opus/ogg/oga/mka, aiff.
``is_audio_file(path) -> bool``
    suffix test, case-insensitive (``ID.WAV`` and ``id.M4A`` count).
``audio_info(path) -> AudioInfo``
    sample rate, channels, codec, duration in seconds (from the headers; decoded to count samples only
    when no header gives a duration).
``load_audio(path, sample_rate=None) -> (n,) float32``
    the whole file, downmixed to mono (mean of the channels), resampled to ``sample_rate`` with exact
    rational polyphase filtering (``None`` keeps the file's rate; read it with :func:`audio_info`).
``AudioReader(path).read(start, end) -> ((n,) float32, sample_rate)``
    windows in seconds at the file's own rate, mono, sample-exact; windows requested in increasing start
    order decode the file once (the reader keeps only what later windows can still need).

Sample positions count decoded samples from the first one FFmpeg outputs (codec priming samples that
the container marks for skipping are dropped by FFmpeg), so ``round(t * sr)`` is sample ``t`` seconds
into the audio as every player plays it. Integer PCM is scaled like libsndfile (``x / 2**(bits-1)``):
a 16-bit WAV or FLAC gives the same float32 samples as ``soundfile``.

Errors name the file: :class:`AudioDecodeError` for a file FFmpeg cannot open or decode, ``ValueError``
for an empty window or a file without an audio stream.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

# What yt-dlp delivers (m4a, webm, opus, mp3, ogg) plus the lossless formats users record in.
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".mp4", ".webm", ".opus", ".ogg",
                                   ".oga", ".mka", ".aiff", ".aif")

_INT_SCALE = {"u8": None, "s16": 2.0 ** 15, "s32": 2.0 ** 31, "s64": 2.0 ** 63}


class AudioDecodeError(ValueError):
    """FFmpeg could not open or decode a file (the message names it and FFmpeg's reason)."""


def is_audio_file(path: str | os.PathLike) -> bool:
    """True when the suffix is one of :data:`AUDIO_SUFFIXES`, in any letter case."""
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of one file. ``duration`` in seconds; ``exact`` when it counts the samples exactly
    (lossless formats whose header holds the sample count, or a file decoded to count them); lossy
    formats give FFmpeg's header estimate, which may differ from the decoded length by a frame of
    encoder padding."""

    path: str
    sample_rate: int
    channels: int
    codec: str
    duration: float
    exact: bool


def _open(path: str | os.PathLike):
    import av

    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as e:
        raise AudioDecodeError(f"{path}: cannot open audio ({e})") from None
    if not container.streams.audio:
        container.close()
        raise ValueError(f"{path}: no audio stream in the file")
    return container, container.streams.audio[0]


def _to_mono_float(frame) -> np.ndarray:
    """One decoded frame -> (n,) float32 mono (mean of the channels)."""
    a = frame.to_ndarray()
    fmt = frame.format
    n_ch = len(frame.layout.channels)
    if not fmt.is_planar:  # packed: (1, n * ch) interleaved
        a = a.reshape(-1, n_ch).T
    base = fmt.name.rstrip("p")
    if base == "u8":
        a = (a.astype(np.float32) - 128.0) / 128.0
    elif base in _INT_SCALE:
        a = (a / _INT_SCALE[base]).astype(np.float32)
    else:  # flt / dbl
        a = a.astype(np.float32, copy=False)
    if n_ch == 1:
        return np.ascontiguousarray(a[0])
    return a.mean(axis=0, dtype=np.float32)


def _decode_error(path, e) -> AudioDecodeError:
    return AudioDecodeError(f"{path}: decoding failed ({e})")


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Sample rate, channels, codec and duration of an audio file.

    The duration comes from the stream header when it counts samples at the sample rate (wav, flac,
    aiff: exact), else from the stream or container header (compressed formats: FFmpeg's estimate),
    else by decoding the file.
    """
    import av

    container, stream = _open(path)
    try:
        sr = int(stream.codec_context.sample_rate or stream.rate or 0)
        if sr <= 0:
            raise ValueError(f"{path}: audio stream has no sample rate")
        ch = len(stream.codec_context.layout.channels) if stream.codec_context.layout else stream.channels
        codec = stream.codec_context.name
        tb = stream.time_base
        lossless = codec.startswith("pcm_") or codec in ("flac", "alac")
        if lossless and stream.duration is not None and tb is not None and tb.numerator == 1 and tb.denominator == sr:
            return AudioInfo(str(path), sr, ch, codec, stream.duration / sr, True)
        if stream.duration is not None and tb is not None:
            return AudioInfo(str(path), sr, ch, codec, float(stream.duration * tb), False)
        if container.duration is not None:
            return AudioInfo(str(path), sr, ch, codec, container.duration / 1e6, False)
        n = 0
        try:
            for frame in container.decode(stream):
                n += frame.samples
        except av.error.FFmpegError as e:
            raise _decode_error(path, e) from None
        return AudioInfo(str(path), sr, ch, codec, n / sr, True)
    finally:
        container.close()


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Exact rational polyphase resampling (scipy ``resample_poly``), float32; no-op at equal rates."""
    if sr_in == sr_out:
        return audio
    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(audio, sr_out // g, sr_in // g).astype(np.float32)


class AudioReader:
    """Sample-exact mono windows of one file, decoding forward.

    ``read(start, end)`` returns samples ``[round(start*sr), round(end*sr))`` (clipped to the audio) at the
    file's rate. Windows asked for in increasing ``start`` decode the file once; asking for an earlier
    start reopens the file and decodes from its beginning again. Use as a context manager or ``close()``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self._container = None
        self._start()

    def _start(self) -> None:
        self.close()
        self._container, stream = _open(self.path)
        sr = int(stream.codec_context.sample_rate or stream.rate or 0)
        if sr <= 0:
            self.close()
            raise ValueError(f"{self.path}: audio stream has no sample rate")
        self.sample_rate = sr
        self._frames = self._container.decode(stream)
        self._chunks: list[np.ndarray] = []
        self._buf_start = 0  # sample index of the first buffered sample
        self._buf_len = 0
        self._eof = False

    def _fill(self, upto: int) -> None:
        import av

        while not self._eof and self._buf_start + self._buf_len < upto:
            try:
                frame = next(self._frames)
            except StopIteration:
                self._eof = True
                break
            except av.error.FFmpegError as e:
                raise _decode_error(self.path, e) from None
            x = _to_mono_float(frame)
            self._chunks.append(x)
            self._buf_len += len(x)

    def _drop_before(self, i0: int) -> None:
        while self._chunks and self._buf_start + len(self._chunks[0]) <= i0:
            self._buf_start += len(self._chunks[0])
            self._buf_len -= len(self._chunks[0])
            self._chunks.pop(0)

    def read(self, start: float, end: float) -> tuple[np.ndarray, int]:
        """(n,) float32 mono samples of ``[start, end)`` seconds and the sample rate."""
        sr = self.sample_rate
        i0, i1 = int(round(start * sr)), int(round(end * sr))
        if i0 < self._buf_start:
            self._start()
        self._drop_before(i0)
        self._fill(i1)
        buf = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        out = buf[max(i0 - self._buf_start, 0):max(i1 - self._buf_start, 0)]
        if i0 < 0 or i1 <= i0 or len(out) == 0:
            total = f"{(self._buf_start + self._buf_len) / sr:.3f} s" if self._eof else "unknown length"
            raise ValueError(f"{self.path}: window [{start}, {end}] s is empty or outside the audio ({total})")
        self._chunks, self._buf_start, self._buf_len = [buf], self._buf_start, len(buf)
        return np.ascontiguousarray(out), sr

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_audio(path: str | os.PathLike, sample_rate: int | None = None) -> np.ndarray:
    """Decode a whole file to (n,) float32 mono at ``sample_rate`` (None: the file's own rate).

    Raises
    ------
    AudioDecodeError : FFmpeg cannot open or decode the file.
    ValueError : no audio stream, or no samples.
    """
    import av

    container, stream = _open(path)
    try:
        sr = int(stream.codec_context.sample_rate or stream.rate or 0)
        chunks = []
        try:
            for frame in container.decode(stream):
                chunks.append(_to_mono_float(frame))
        except av.error.FFmpegError as e:
            raise _decode_error(path, e) from None
    finally:
        container.close()
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise ValueError(f"{path}: no audio samples decoded")
    x = np.concatenate(chunks)
    return x if sample_rate is None else resample(x, sr, int(sample_rate))
