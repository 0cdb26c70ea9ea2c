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


class ProblemError(SamplescaleError):
    """One problem cannot be run or graded, while other problems can.

    An evaluation records such a problem as an error record (with this message as its
    reason) and goes on with the next one, unless asked to stop on errors.
    """


class PromptError(ProblemError, ConfigError):
    """A prompt cannot be run on this backend: longer than the context, or not valid text."""


class VerifierError(ProblemError, RuntimeError):
    """A verifier failed on one problem's answer (it raised, or its worker died)."""


def check_instance(name: str, value: object, types: type | tuple[type, ...], expected: str) -> None:
    """Raise :class:`ConfigError` naming argument ``name`` unless ``value`` is one of ``types``.

    ``expected`` says what was expected in words (``"a Prompt or str"``).
    """
    if not isinstance(value, types) or isinstance(value, bool) and bool not in (
        types if isinstance(types, tuple) else (types,)
    ):
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise ConfigError(f"{name} must be {expected}, got {type(value).__name__} {shown}")


def check_sequence(name: str, value: object) -> list[object]:
    """``value`` as a list, or :class:`ConfigError` naming ``name`` if it is not a sequence.

    A ``str`` or ``bytes`` is refused (it would be read as a sequence of characters), and
    so is a mapping, a set (no order) or any value without a length and indexing.
    """
    from collections.abc import Mapping, Set

    if isinstance(value, (str, bytes, Mapping, Set)) or not (
        hasattr(value, "__len__") and hasattr(value, "__getitem__")
    ):
        raise ConfigError(
            f"{name} must be a sequence (list, tuple or 1-D array), got {type(value).__name__}"
            + (f" {value!r:.40} (a string is not a list of items)" if isinstance(value, str) else "")
        )
    try:
        return list(value)  # type: ignore[call-overload]
    except TypeError as exc:  # a 0-d numpy array
        raise ConfigError(f"{name} must be a 1-D sequence, got {value!r:.40}") from exc


def check_answers(answers: object, name: str = "answers") -> list[str | None]:
    """``answers`` as a list of str or None, else :class:`ConfigError` naming the first
    item that is neither (a whole ``str`` is refused: it is not a list of answers)."""
    items = check_sequence(name, answers)
    for i, a in enumerate(items):
        if a is not None and not isinstance(a, str):
            raise ConfigError(f"{name}[{i}] must be a str or None, got {type(a).__name__} {a!r:.40}")
    return items  # type: ignore[return-value]


def check_int(value: object, name: str, minimum: int | None = None) -> int:
    """``value`` as a Python int, else :class:`ConfigError` naming ``name`` (a bool or a
    float such as ``2.0`` is refused); with ``minimum``, also refused below it."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_rng(rng: object) -> None:
    """:class:`ConfigError` unless ``rng`` is a ``numpy.random.Generator`` (randomness is
    an argument, DESIGN.md)."""
    import numpy as np

    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def check_confidence(confidence: object, name: str = "confidence") -> float:
    """A confidence (or credible) level as a float strictly inside ``(0, 1)``, else
    :class:`ConfigError` naming ``name`` and the range."""
    import numbers

    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise ConfigError(f"{name} must be a number in (0, 1), got {confidence!r}")
    conf = float(confidence)
    if not 0.0 < conf < 1.0:  # also rejects nan
        raise ConfigError(f"{name} must be in (0, 1), got {confidence!r}")
    return conf
