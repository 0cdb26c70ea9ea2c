"""Command-line options of the embedded llama.cpp model shared by every subcommand."""

from __future__ import annotations

import argparse

from samplescale.errors import ConfigError


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    """``--threads N``: CPU threads of the embedded model."""
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of the embedded model (default: all cores; on a busy machine "
        "fewer threads than cores is often much faster)",
    )


def n_threads(args: argparse.Namespace) -> int | None:
    """``--threads``, checked: ``None`` (all cores) or an integer >= 1.

    Raises
    ------
    ConfigError
        If ``--threads`` is below 1.
    """
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1 (omit it for all cores), got {args.threads}")
    return args.threads
