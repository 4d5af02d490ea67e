"""Test helpers: encode small audio files in every format with PyAV, and serve a folder over HTTP on
127.0.0.1 (a random free port) so yt-dlp's generic extractor can download them offline."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from pathlib import Path

import av
import numpy as np

# suffix -> (codec, sample format the encoder takes)
CODECS = {".wav": ("pcm_s16le", "s16"), ".flac": ("flac", "s16"), ".mp3": ("libmp3lame", "fltp"),
          ".m4a": ("aac", "fltp"), ".webm": ("libopus", "flt"), ".opus": ("libopus", "flt"), ".ogg": ("vorbis", "fltp")}
MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".webm": "audio/webm",
        ".opus": "audio/ogg", ".ogg": "audio/ogg"}


def piano_like(seconds: float, sr: int, seed: int = 0, level: float = 0.3) -> np.ndarray:
    """(n,) float32: decaying harmonic tones on random pitches every 0.5 s, plus a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = np.zeros(n, np.float32)
    t = np.arange(int(0.5 * sr)) / sr
    for k, start in enumerate(range(0, n, int(0.5 * sr))):
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3)) * np.exp(-4 * t)
        seg = tone[: n - start]
        x[start:start + len(seg)] += (level * rng.uniform(0.4, 1.0) * seg).astype(np.float32)
    x += 0.002 * rng.standard_normal(n).astype(np.float32)
    return x


def encode(path: Path, audio: np.ndarray, sr: int) -> Path:
    """Write (n,) mono or (n, ch) float audio to ``path``; the codec follows the suffix (see CODECS)."""
    path = Path(path)
    codec, fmt = CODECS[path.suffix.lower()]
    x = np.asarray(audio, np.float32)
    x = x[:, None] if x.ndim == 1 else x
    if codec == "vorbis" and x.shape[1] == 1:
        x = np.repeat(x, 2, axis=1)  # FFmpeg's own Vorbis encoder writes stereo only
    layout = "mono" if x.shape[1] == 1 else "stereo"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=sr, layout=layout)
        ctx = stream.codec_context
        ctx.format = fmt
        if codec == "vorbis":
            ctx.options = {"strict": "experimental"}  # FFmpeg's own Vorbis encoder is flagged experimental
        step = ctx.frame_size or 1024
        for i, start in enumerate(range(0, len(x), step)):
            chunk = x[start:start + step]
            if fmt == "s16":
                arr = np.clip(np.round(chunk * 32767), -32768, 32767).astype(np.int16).reshape(1, -1)
            elif fmt.endswith("p"):
                arr = np.ascontiguousarray(chunk.T)
            else:
                arr = np.ascontiguousarray(chunk.reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout=layout)
            frame.sample_rate, frame.pts = sr, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}

    def log_message(self, *args):  # keep test output clean
        pass

    def copyfile(self, source, outputfile):
        try:
            super().copyfile(source, outputfile)
        except (BrokenPipeError, ConnectionResetError):
            pass  # yt-dlp's generic extractor reads the headers of a direct link, then hangs up


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on http://127.0.0.1:<random port>; yields the base URL."""
    handler = functools.partial(_Handler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
