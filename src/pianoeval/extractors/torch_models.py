"""Shared pieces of the pretrained-network backends (MuQ, transformers models): device and dtype
resolution, layer selection, chunked inference over long clips, and strict checkpoint loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cpu`` / ``cuda`` / ``cuda:1`` as given (cuda checked)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device '{device}' requested but torch sees no CUDA device (torch {torch.__version__})")
    if device != "cpu" and not str(device).startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:i], got {device!r}")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    if dtype == "float16" and device.type == "cpu":
        raise ValueError("dtype float16 is for GPUs (CPU half-precision kernels are slow or missing): use float32")
    return DTYPES[dtype]


def check_layers(layers, default_layers, n_hidden: int, who: str) -> tuple[list[int], list[int]]:
    """Validate stored and default layer indices against the model's ``n_hidden`` hidden states
    (index 0 = the input embedding, n_hidden - 1 = the last layer)."""
    layers = list(range(n_hidden)) if layers is None else [int(i) for i in layers]
    default_layers = list(layers) if default_layers is None else [int(i) for i in default_layers]
    bad = [i for i in layers if not 0 <= i < n_hidden]
    if bad or not layers or len(set(layers)) != len(layers):
        raise ValueError(f"{who}: layers {layers} invalid for a model with {n_hidden} hidden states "
                         f"(0..{n_hidden - 1})")
    missing = [i for i in default_layers if i not in layers]
    if missing or not default_layers:
        raise ValueError(f"{who}: default_layers {default_layers} must be a non-empty subset of layers {layers}")
    return sorted(layers), default_layers


def quartile_layers(n_layers: int) -> list[int]:
    """Hidden-state indices at the quartiles of an ``n_layers`` encoder: [L/4, L/2, 3L/4, L]."""
    return sorted({max(1, round(n_layers * q / 4)) for q in (1, 2, 3, 4)})


def chunks(x: np.ndarray, size: int) -> list[np.ndarray]:
    """Split a clip into consecutive chunks of ``size`` samples (the last one shorter)."""
    return [x[i:i + size] for i in range(0, len(x), size)] or [x]


def load_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """Weights of a checkpoint folder: ``model.safetensors`` (preferred) or ``pytorch_model.bin``
    (loaded with ``weights_only=True``: no pickled code runs)."""
    st = folder / "model.safetensors"
    if st.is_file():
        from safetensors.torch import load_file

        return load_file(str(st))
    pt = folder / "pytorch_model.bin"
    if pt.is_file():
        return torch.load(pt, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{folder}: no model.safetensors or pytorch_model.bin")


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint config not found (a local snapshot folder is expected)")
    return json.loads(path.read_text())


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], *, prefix: str = "",
                ignore: tuple[str, ...] = (), who: str = "") -> None:
    """Load ``state`` (keys under ``prefix``) into ``module``: every module weight must be present and
    every checkpoint key must be used, except keys starting with one of ``ignore`` (training-only heads)."""
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    unexpected = sorted(k for k in sub if k not in module.state_dict() and not k.startswith(ignore))
    result = module.load_state_dict({k: v for k, v in sub.items() if not k.startswith(ignore)}, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{who}: checkpoint does not match the model: missing {missing[:5]} "
                         f"({len(missing)} in all), unexpected {unexpected[:5]} ({len(unexpected)} in all)")
