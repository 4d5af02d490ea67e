"""Imports every backend module so it registers; add a new backend's import here."""

from . import logmel  # noqa: F401
