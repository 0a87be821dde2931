"""Typed errors for problems a user can fix.

Every error the engine raises for bad input derives from :class:`ResqueError`; its ``str()`` is a
complete, actionable sentence. The CLI prints it as ``error: <message>`` (exit 2) and the app
shows it with ``st.error``. Anything else escaping the engine is a bug.
"""

from __future__ import annotations

__all__ = [
    "Cancelled",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "LayerError",
    "ResqueError",
    "ShiftError",
]


class ResqueError(Exception):
    """Base class: a problem with the user's input, with a message saying how to fix it."""


class CheckpointError(ResqueError):
    """The checkpoint file is missing, unreadable, untrusted or does not fit the architecture."""


class DataError(ResqueError):
    """A data source is missing, malformed, empty or incompatible with the model."""


class ShiftError(ResqueError):
    """An unknown corruption name or a severity out of range."""


class LayerError(ResqueError):
    """An unknown layer name, or a layer whose output cannot be reached."""


class ConfigError(ResqueError):
    """An invalid option value (plan field, CLI flag, preprocessing setting)."""


class Cancelled(ResqueError):
    """The user cancelled a computation; nothing partial was stored."""
