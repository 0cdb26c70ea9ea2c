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
        help="CPU threads of the embedded model (default: all cores; with eval --executor "
        "ray: 1 per worker, which Ray reserves as CPUs; on a busy machine fewer threads "
        "than cores is often much faster)",
    )


def n_threads(args: argparse.Namespace) -> int | None:
    """``--threads``, checked: ``None`` (all cores) or an integer in [1, cores].

    Raises
    ------
    ConfigError
        If ``--threads`` is below 1 or above the CPU cores this process may use (more
        threads than cores only slows llama.cpp down, and very many crash it).
    """
    from samplescale.backends.llamacpp import available_cores

    cores = available_cores()
    if args.threads is not None and not 1 <= args.threads <= cores:
        raise ConfigError(
            f"--threads must be in [1, {cores}] (the CPU cores this process may use; omit "
            f"it for all of them), got {args.threads}"
        )
    return args.threads
