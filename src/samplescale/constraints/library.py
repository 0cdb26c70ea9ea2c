"""The optional ``llguidance`` dependency (extra ``constraints``), imported on first use."""

from __future__ import annotations

from types import ModuleType

from samplescale.errors import MissingDependencyError

INSTALL_HINT = "install the 'constraints' extra: pip install 'samplescale[constraints]'"


def llguidance() -> ModuleType:
    """The ``llguidance`` module.

    Raises
    ------
    MissingDependencyError
        If llguidance is not installed (the message names the extra).
    """
    try:
        import llguidance as llg
    except ImportError as exc:
        raise MissingDependencyError(f"constrained generation needs llguidance; {INSTALL_HINT}") from exc
    return llg
