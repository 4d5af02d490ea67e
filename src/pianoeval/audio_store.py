"""A packed audio store: every segment of a dataset in ONE FLAC file plus a JSON index.

DVC transfers and hashes per file, so one 400 MB file beats 1200 small ones on Drive. Segments are
laid end to end; ``index.json`` maps key -> (sample offset, length). FLAC decoding is
sample-accurate on seek, so reading one segment does not decode the whole store.

Layout of a store folder::

    audio.flac   mono 16-bit FLAC at ``sample_rate``
    index.json   {"sample_rate", "keys", "offsets", "lengths", "meta": {...}}
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

AUDIO_FILE = "audio.flac"
INDEX_FILE = "index.json"


class AudioStoreWriter:
    """Append float32 mono segments in order; ``close(meta)`` writes the index.

    Samples are written as 16-bit PCM: values must already lie in [-1, 1] (the renderer scales
    globally beforehand); anything outside raises rather than clipping silently.
    """

    def __init__(self, folder: str | Path, sample_rate: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sample_rate = int(sample_rate)
        self._file = sf.SoundFile(self.folder / AUDIO_FILE, "w", samplerate=self.sample_rate, channels=1,
                                  subtype="PCM_16", format="FLAC")
        self.keys: list[str] = []
        self.offsets: list[int] = []
        self.lengths: list[int] = []
        self._pos = 0

    def append(self, key: str, audio: np.ndarray) -> None:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"audio store: segment '{key}' must be mono (1-D), got shape {audio.shape}")
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        if peak > 1.0:
            raise ValueError(f"audio store: segment '{key}' peaks at {peak:.3f} > 1.0 and would clip")
        # Explicit rounding to int16 so the bytes do not depend on libsndfile's float conversion;
        # x32768 matches libsndfile's int16 -> float read scaling (1/32768), so reads round-trip.
        self._file.write(np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16))
        self.keys.append(key)
        self.offsets.append(self._pos)
        self.lengths.append(int(audio.size))
        self._pos += int(audio.size)

    def close(self, meta: dict | None = None) -> None:
        self._file.close()
        index = {"sample_rate": self.sample_rate, "keys": self.keys, "offsets": self.offsets,
                 "lengths": self.lengths, "meta": meta or {}}
        (self.folder / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")


class AudioStore:
    """Read-only access to a packed store; ``read(key)`` -> float32 mono array in [-1, 1]."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        index_path = self.folder / INDEX_FILE
        if not index_path.is_file():
            raise FileNotFoundError(f"{index_path}: audio store index not found (run the render stage)")
        index = json.loads(index_path.read_text())
        self.sample_rate: int = index["sample_rate"]
        self.keys: list[str] = index["keys"]
        self.meta: dict = index.get("meta", {})
        self._offsets = np.asarray(index["offsets"], dtype=np.int64)
        self._lengths = np.asarray(index["lengths"], dtype=np.int64)
        self._pos = {k: i for i, k in enumerate(self.keys)}
        self._file: sf.SoundFile | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: str) -> bool:
        return key in self._pos

    def duration(self, key: str) -> float:
        return float(self._lengths[self._index(key)]) / self.sample_rate

    def _index(self, key: str) -> int:
        try:
            return self._pos[key]
        except KeyError:
            raise KeyError(f"{self.folder}: no segment '{key}' in the audio store") from None

    def _open(self) -> sf.SoundFile:
        if self._file is None:
            self._file = sf.SoundFile(self.folder / AUDIO_FILE)
        return self._file

    def read(self, key: str) -> np.ndarray:
        i = self._index(key)
        start, n = int(self._offsets[i]), int(self._lengths[i])
        where = f"{self.folder / AUDIO_FILE}: segment '{key}' (samples {start}..{start + n})"
        try:
            f = self._open()
            f.seek(start)
            audio = f.read(n, dtype="float32")
        except RuntimeError as e:  # soundfile.LibsndfileError: a damaged or cut-short store
            self.close()  # libsndfile keeps the error on the handle
            raise ValueError(f"{where}: cannot decode ({e}); rerun the render stage") from None
        if audio.size != n:
            raise ValueError(f"{where}: decoding stopped after {audio.size} of {n} samples (store cut short?); "
                             "rerun the render stage")
        return audio

    def iter_audio(self, keys: list[str] | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """Yield (key, audio) in store order (sequential reads: no seeks between neighbours)."""
        wanted = self.keys if keys is None else sorted(keys, key=self._index)
        for key in wanted:
            yield key, self.read(key)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> AudioStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
