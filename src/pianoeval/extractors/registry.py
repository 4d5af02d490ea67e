"""Extractor registry: name -> backend module, imported only when that name is asked for.

Backends register their class with :func:`register` when their module is imported; this module imports
no backend at import time, so ``import pianoeval.extractors`` never pulls onnxruntime, transformers or
a model checkpoint. :func:`load_model` builds a model once per (name, params) and keeps it in a
process-wide cache, so switching between models in one process (or asking for the same model again,
e.g. from a ``concat`` and on its own) reuses the loaded weights.
"""

from __future__ import annotations

import importlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Extractor

# name -> module under pianoeval.extractors that registers it. A new backend is one module plus one line here.
BACKENDS: dict[str, str] = {
    "logmel": "logmel",
    "basic_pitch": "basic_pitch",
    "concat": "concat",
    "muq": "muq",
    "hubert": "transformers_models",
    "wav2vec2": "transformers_models",
    "mert": "transformers_models",
    "ast": "transformers_models",
}

REGISTRY: dict[str, type[Extractor]] = {}
_CACHE: dict[tuple[str, str], Extractor] = {}


def register(name: str):
    """Class decorator: ``@register("logmel")`` makes the class loadable by that name."""
    def deco(cls):
        if name in REGISTRY:
            raise ValueError(f"extractor '{name}' registered twice")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return deco


def extractor_class(name: str) -> type[Extractor]:
    """The registered class of ``name``, importing its backend module on first use."""
    if name not in REGISTRY and name in BACKENDS:
        importlib.import_module(f"{__package__}.{BACKENDS[name]}")
    if name not in REGISTRY:
        raise KeyError(f"unknown extractor '{name}' (have: {', '.join(sorted(set(BACKENDS) | set(REGISTRY)))})")
    return REGISTRY[name]


def cache_key(name: str, params: dict) -> tuple[str, str]:
    return name, json.dumps(params, sort_keys=True, default=str)


def load_model(name: str, *, cache: bool = True, **params) -> Extractor:
    """Build a registered extractor once (HEAR's ``load_model``); later calls with the same name and
    params return the same object (``cache=False`` builds a fresh one)."""
    key = cache_key(name, params)
    if cache and key in _CACHE:
        return _CACHE[key]
    model = extractor_class(name)(**params)
    if cache:
        _CACHE[key] = model
    return model


def clear_cache() -> None:
    """Drop every cached model (frees their weights)."""
    _CACHE.clear()


def configured(name: str, extract_params: dict, _seen: tuple = ()) -> tuple[str, dict]:
    """(backend, params) of a configured extractor ``name`` from the params.yaml ``extract`` section.

    ``extract.<name>`` holds the extractor's params; its optional ``backend`` key names the registered
    backend (default: ``name`` itself), so one backend can be configured several times (``mert_95m:
    {backend: mert, ...}``). A ``concat`` lists its members by configured name (or as inline dicts with a
    ``name``); each member is resolved the same way, so ``logmel_bp`` uses exactly ``extract.logmel``'s
    and ``extract.basic_pitch``'s settings.
    """
    if name in _seen:
        raise ValueError(f"params extract.{name}: concat members refer back to '{name}'")
    section = extract_params.get(name)
    if section is not None and not isinstance(section, dict):
        raise ValueError(f"params extract.{name}: expected a mapping of extractor params, got {section!r}")
    params = dict(section or {})
    backend = params.pop("backend", name)
    if backend == "concat":
        members = []
        for m in params.get("members") or []:
            if isinstance(m, str):
                b, p = configured(m, extract_params, _seen + (name,))
                members.append({"name": b, **p})
            elif isinstance(m, dict) and "name" in m:
                members.append(dict(m))
            else:
                raise ValueError(f"params extract.{name}.members: expected names or dicts with 'name', got {m!r}")
        params["members"] = members
    return backend, params


def load_configured(name: str, extract_params: dict) -> Extractor:
    """The model of configured extractor ``name`` (see :func:`configured`), from the cache when loaded before."""
    backend, params = configured(name, extract_params)
    return load_model(backend, **params)


def load_from_identity(identity: dict, default_backend: str | None = None) -> Extractor:
    """The model an embedding store (or a checkpoint trained on one) was made with, from the identity it
    records (``Extractor.identity()``: backend name and params; a loudness target is not part of it).
    ``default_backend``: the backend of an identity written without one (the store's extractor name)."""
    params = dict(identity)
    backend = params.pop("backend", default_backend)
    if backend is None:
        raise ValueError(f"extractor identity {identity!r} names no backend")
    return load_model(backend, **params)
