"""Exceptions raised by clipasync.

One small hierarchy so that callers can catch everything from the library with
``ClipasyncError`` and user mistakes with ``ConfigError`` (also a ``ValueError``).
"""

from __future__ import annotations


class ClipasyncError(Exception):
    """Base class of every error raised on purpose by clipasync."""


class ConfigError(ClipasyncError, ValueError):
    """An invalid configuration or hyperparameter; the message names the field."""


class SimulationExhausted(ClipasyncError):
    """A pool was asked for the next arrival while no job is in flight."""


class WorkerFailed(ClipasyncError):
    """A worker died and could not be replaced."""
