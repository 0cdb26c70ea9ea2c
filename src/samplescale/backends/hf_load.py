"""Loading a Hugging Face model for the transformers backend: its modules and source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from samplescale.errors import MissingDependencyError, ModelNotFoundError

INSTALL_HINT = "install the 'transformers' extra: scripts/setup.sh --transformers"


def modules() -> tuple[Any, Any]:
    """``(torch, transformers)``, transformers' logging at error level, no progress bars.

    Raises
    ------
    MissingDependencyError
        If either is not installed (naming the extra to install).
    """
    try:
        import torch
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"the transformers backend needs torch and transformers; {INSTALL_HINT}"
        ) from exc
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return torch, transformers


def model_source(path: Path) -> dict[str, str]:
    """``from_pretrained`` arguments for a model directory or a GGUF file."""
    if path.is_file() and path.suffix == ".gguf":
        return {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}
    if path.is_dir() and (path / "config.json").is_file():
        return {"pretrained_model_name_or_path": str(path)}
    raise ModelNotFoundError(
        f"model not found: {path} (the transformers backend takes a local Hugging Face model "
        "directory with config.json, or a .gguf file; on the command line: --model PATH)"
    )
