"""Audio embedding backends behind one HEAR-style interface (see base.py)."""

from .base import REGISTRY, Extractor, load_model, mean_std, register, resample

__all__ = ["REGISTRY", "Extractor", "load_model", "mean_std", "register", "resample"]
