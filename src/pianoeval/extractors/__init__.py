"""Audio embedding backends behind one HEAR-style interface (see base.py); backends load lazily (registry.py)."""

from .base import Extractor, mean_std, resample
from .registry import (BACKENDS, REGISTRY, clear_cache, configured, load_configured, load_from_identity, load_model,
                       register)

__all__ = ["BACKENDS", "REGISTRY", "Extractor", "clear_cache", "configured", "load_configured", "load_from_identity",
           "load_model", "mean_std", "register", "resample"]
