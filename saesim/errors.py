"""Errors shared across saesim's layers (each names the bad input and the fix)."""

from __future__ import annotations

__all__ = ["ModelPackageError"]


class ModelPackageError(RuntimeError):
    """A model-weight package is missing or damaged; the message names the ``pip install`` that fixes it."""
