"""The error taxonomy of samplescale.

Every error the library raises on purpose derives from :class:`SamplescaleError`, so
callers can catch the whole family. Errors are never turned into data: a failed model
call raises (or becomes a ``Sample`` with ``status="error"`` that aggregators exclude).
"""

from __future__ import annotations


class SamplescaleError(Exception):
    """Base class of every error samplescale raises on purpose."""


class ConfigError(SamplescaleError, ValueError):
    """An argument or configuration value is outside its valid range.

    The message names the field and the valid range.
    """


class UnknownNameError(SamplescaleError, KeyError):
    """A registry lookup failed; the message lists the registered names."""

    def __str__(self) -> str:  # KeyError quotes its argument; show it plainly
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(SamplescaleError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class ModelNotFoundError(SamplescaleError, FileNotFoundError):
    """A model file does not exist or cannot be loaded; the message says how to fix it."""


class BackendError(SamplescaleError, RuntimeError):
    """A model call failed inside a backend (decode error, context overflow, ...)."""


class DataError(SamplescaleError, ValueError):
    """A task file is missing, malformed, or lacks a required field."""
