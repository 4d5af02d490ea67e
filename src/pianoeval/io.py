"""Small, deterministic file helpers shared by all stages."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import yaml


def _clean(obj: Any) -> Any:
    """Make numpy scalars/arrays JSON-serialisable; NaN/inf become None (JSON has no NaN)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return round(obj, 6)  # stable diffs; 6 decimals is far below any metric's noise
    return obj


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> None:
    """Write JSON atomically with sorted-free, stable formatting (keys keep insertion order)."""
    path = Path(path)
    text = json.dumps(_clean(obj), indent=indent, allow_nan=False) + "\n"
    _write_atomic(path, lambda fh: fh.write(text.encode()))


def _write_atomic(path: Path, write) -> None:
    """``write(binary file)`` to a scratch file (:func:`pianoeval.scratch.temp_path`), then rename it
    onto ``path``: readers never see half a file, and a failed write leaves nothing behind."""
    from .scratch import temp_path

    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as fh:
        return json.load(fh)


def flatten(d: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}: flat keys read well in `dvc metrics diff`."""
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def load_params(section: str | None = None, path: str | os.PathLike = "params.yaml", *,
                check_paths: bool = False) -> dict:
    """Read params.yaml, or one top-level section of it validated against its schema
    (:mod:`pianoeval.params_schema`: a bad value raises ``ParamsError`` naming ``section.key``, the
    value and what is allowed). A missing section is a KeyError naming it. ``check_paths``: the
    section's input paths must also exist."""
    from .params_schema import validate_section

    with open(path) as fh:
        params = yaml.safe_load(fh) or {}
    if section is None:
        return params
    if section not in params:
        raise KeyError(f"{path}: no section '{section}' (have: {', '.join(params)})")
    return validate_section(section, params[section], source=str(path), check_paths=check_paths)


_ST_DTYPES = {"float16": "F16", "float32": "F32", "float64": "F64", "int64": "I64", "int32": "I32",
              "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write numpy arrays in the safetensors format with a byte-stable header.

    ``safetensors.numpy.save_file`` serialises metadata from a hash map, so the same inputs can give
    different bytes (and different ``dvc.lock`` hashes). Here header keys are sorted and tensors are
    laid out in name order; any safetensors reader loads the file.
    """
    import numpy as np

    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    arrays, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype.name not in _ST_DTYPES:
            raise ValueError(f"save_safetensors: tensor '{name}' has unsupported dtype {a.dtype}")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        header[name] = {"dtype": _ST_DTYPES[a.dtype.name], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        arrays.append(a)
        offset += a.nbytes
    blob = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    blob += b" " * (-len(blob) % 8)  # the format allows space padding; keeps tensor data 8-byte aligned

    def write(fh) -> None:
        fh.write(len(blob).to_bytes(8, "little"))
        fh.write(blob)
        for a in arrays:
            if a.nbytes:  # memoryview cannot cast an empty array (a zero in its shape)
                fh.write(memoryview(a).cast("B"))

    _write_atomic(Path(path), write)
