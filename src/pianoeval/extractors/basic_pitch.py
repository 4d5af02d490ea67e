"""Basic Pitch (Spotify, ICASSP 2022): a pretrained polyphonic transcription network, run offline with
onnxruntime from the vendored ``basic_pitch_model/nmp.onnx`` (Apache-2.0, see its README).

Per frame (86.13 per second at 22,050 Hz) the model gives a pitch contour (264 bins), note (88) and
onset (88) posteriorgram; the frame embedding is their concatenation (D = 440 with all three).

Windowing follows the reference inference: windows of 43,844 samples overlapping by 30 frames, the
audio front-padded by half the overlap, 15 frames trimmed from each window's edges, so window ``w``
gives output frames ``142 w .. 142 w + 141``. ``window_stride`` k > 1 runs only every k-th window
(evenly spread, always including the first and the last): a pooled-statistics estimate at 1/k of the
cost (the network runs at only ~60x real time on 2 CPU cores). Windows go through the network in
batches of up to ``batch_size``; onnxruntime's CPU kernels give a window the same output whatever else
shares its batch (tested), so results do not depend on segment lengths or batch size.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np

from .base import Extractor
from .registry import register

SAMPLE_RATE = 22050
FFT_HOP = 256
WINDOW_SAMPLES = 2 * SAMPLE_RATE - FFT_HOP          # 43844, the model's fixed input length
WINDOW_FRAMES = 172                                  # output frames per window
OVERLAP_FRAMES = 30
TRIM = OVERLAP_FRAMES // 2
KEPT_FRAMES = WINDOW_FRAMES - 2 * TRIM               # 142
HOP_SAMPLES = WINDOW_SAMPLES - OVERLAP_FRAMES * FFT_HOP
OUTPUTS = {"contour": ("StatefulPartitionedCall:0", 264), "note": ("StatefulPartitionedCall:1", 88),
           "onset": ("StatefulPartitionedCall:2", 88)}
INPUT = "serving_default_input_2:0"


def default_model_path() -> Path:
    return Path(str(importlib.resources.files(__package__) / "basic_pitch_model" / "nmp.onnx"))


def window_starts(n_samples: int) -> np.ndarray:
    """Start sample (in the front-padded signal) of every reference window of an ``n_samples`` clip."""
    padded = n_samples + OVERLAP_FRAMES * FFT_HOP // 2
    return np.arange(0, padded, HOP_SAMPLES)


def selected_windows(n_windows: int, stride: int) -> np.ndarray:
    """Indices of the windows run with ``window_stride`` = stride: every window for 1, otherwise
    ceil(n / stride) windows evenly spread from the first to the last."""
    if stride == 1 or n_windows <= 2:
        return np.arange(n_windows)
    m = max(2, -(-n_windows // stride))
    return np.unique(np.round(np.linspace(0, n_windows - 1, m)).astype(int))


@register("basic_pitch")
class BasicPitch(Extractor):
    """Basic Pitch posteriorgrams as frame embeddings.

    Parameters
    ----------
    outputs : which of contour / note / onset to concatenate (in that order).
    window_stride : run every k-th 2-s window only (1 = all windows).
    batch_size : windows per network call.
    threads : onnxruntime intra-op threads (0 = onnxruntime's default: one per physical core).
    device : auto | cpu | cuda (cuda needs the onnxruntime-gpu build; auto takes it when present).
    model_path : an ONNX file with the same inputs/outputs (default: the vendored model).
    """

    sample_rate = SAMPLE_RATE
    frame_rate = SAMPLE_RATE / FFT_HOP

    def __init__(self, outputs=("contour", "note", "onset"), window_stride: int = 1, batch_size: int = 8,
                 threads: int = 0, device: str = "auto", model_path: str | None = None):
        import onnxruntime as ort

        bad = [o for o in outputs if o not in OUTPUTS]
        if bad or not outputs:
            raise ValueError(f"basic_pitch: outputs must be a non-empty subset of {list(OUTPUTS)}, got {list(outputs)}")
        if int(window_stride) < 1 or int(batch_size) < 1:
            raise ValueError(f"basic_pitch: window_stride and batch_size must be >= 1, "
                             f"got {window_stride}, {batch_size}")
        self.outputs = [o for o in OUTPUTS if o in outputs]
        self.window_stride, self.batch_size, self.threads = int(window_stride), int(batch_size), int(threads)
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise FileNotFoundError(f"basic_pitch: model file {self.model_path} not found")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # No busy-waiting between ops: on shared cores spinning threads starve everything else
        # (measured under load: 2 threads 4.8x -> 8.4x real time with spinning off).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"basic_pitch: device must be auto, cpu or cuda, got {device!r}")
        if device == "cuda" and not has_cuda:
            raise RuntimeError("basic_pitch: device cuda needs onnxruntime-gpu (CUDAExecutionProvider not available)")
        providers = (["CUDAExecutionProvider"] if device == "cuda" or (device == "auto" and has_cuda) else []) \
            + ["CPUExecutionProvider"]
        self._session = ort.InferenceSession(str(self.model_path), opts, providers=providers)
        self._names = [OUTPUTS[o][0] for o in self.outputs]
        self.dim = sum(OUTPUTS[o][1] for o in self.outputs)

    def params(self) -> dict:
        # threads, batch_size and device do not change what is computed: not identifying
        return {"outputs": self.outputs, "window_stride": self.window_stride,
                "model": self.model_path.name, "sample_rate": self.sample_rate}

    def _windows(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(selected window indices, (n_sel, WINDOW_SAMPLES) float32 windows)."""
        starts = window_starts(len(audio))
        sel = selected_windows(len(starts), self.window_stride)
        padded = np.concatenate([np.zeros(OVERLAP_FRAMES * FFT_HOP // 2, np.float32), audio,
                                 np.zeros(WINDOW_SAMPLES, np.float32)])
        return sel, np.stack([padded[s:s + WINDOW_SAMPLES] for s in starts[sel]])

    def run_windows(self, windows: np.ndarray) -> np.ndarray:
        """(n, 43844) float32 windows -> (n, 142, D) trimmed posteriorgram frames."""
        out = []
        for i in range(0, len(windows), self.batch_size):
            res = self._session.run(self._names, {INPUT: windows[i:i + self.batch_size, :, None]})
            out.append(np.concatenate(res, axis=2)[:, TRIM:TRIM + KEPT_FRAMES])
        return np.concatenate(out)

    def _frame_index(self, n_samples: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(selected windows, frame indices of their kept frames, total frames of the clip)."""
        n_total = int(np.floor(n_samples * self.frame_rate / SAMPLE_RATE))
        sel = selected_windows(len(window_starts(n_samples)), self.window_stride)
        idx = (sel[:, None] * KEPT_FRAMES + np.arange(KEPT_FRAMES)[None]).ravel()
        return sel, idx, n_total

    def _embed(self, audio: np.ndarray) -> np.ndarray:
        return self._frames_of(len(audio), self.run_windows(self._windows(audio)[1]))

    def _frames_of(self, n_samples: int, window_out: np.ndarray) -> np.ndarray:
        """(n_sel, 142, D) network output of a clip's selected windows -> its (T, D) frames."""
        frames = window_out.reshape(-1, self.dim)
        _, idx, n_total = self._frame_index(n_samples)
        # The reference trims the unwrapped output to the clip's length; keep at least one frame.
        return frames[idx < max(n_total, 1)]

    def timestamp_embeddings_many(self, clips: list[np.ndarray], sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Frames of several clips with their windows batched together: short clips have only 2-3
        selected windows each, and the network runs faster per window in full batches (48 T1 segments,
        2 threads: 8.2 s per clip vs 5.5 s in chunks of 16). With one onnxruntime thread a window's output
        does not depend on its batch (tested: equal to the per-clip result); with more threads the
        convolution kernels differ by batch size (measured with 2: mean |diff| 7e-6, max 0.04 on 0.16%
        of frame values >1e-3, pooled max 9e-4), so the engine's fixed chunking keeps reruns identical."""
        xs = [self.prepare(a, sample_rate) for a in clips]
        windows = [self._windows(x)[1] for x in xs]
        out = self.run_windows(np.concatenate(windows)) if windows else np.zeros((0, KEPT_FRAMES, self.dim))
        bounds = np.cumsum([0] + [len(w) for w in windows])
        result = []
        for x, a, b in zip(xs, bounds[:-1], bounds[1:]):
            frames = self._frames_of(len(x), out[a:b])
            result.append((frames, self.frame_times(len(x), len(frames))))
        return result

    def store_embeddings_many(self, clips: list[np.ndarray], sample_rate: int) -> list[tuple[np.ndarray, None]]:
        return [(frames[:, None, :], None) for frames, _ in self.timestamp_embeddings_many(clips, sample_rate)]

    def frame_times(self, n_samples: int, n_frames: int) -> np.ndarray:
        _, idx, n_total = self._frame_index(n_samples)
        return idx[idx < max(n_total, 1)] / self.frame_rate
