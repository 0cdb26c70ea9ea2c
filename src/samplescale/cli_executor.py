"""``samplescale eval --executor {local,ray} [--address ADDR] [--workers N]`` (CLI layer).

With ``--executor ray`` every worker is a Ray actor that builds the backend from the
command's options (never a live model sent over the wire), reserving ``--threads`` CPUs
(default 1: llama.cpp's and torch's threads per worker) or, for ``--backend vllm``, one
GPU. ``--address`` joins a running cluster (``ray start --head`` on the first machine);
without it a fresh local Ray instance is started (a running ``ray start`` cluster is not
joined). The run's settings (run.json) do not include the executor, but they do include
the thread count, which differs between the executors' defaults (see the README).
"""

from __future__ import annotations

import argparse

from samplescale.cli_backend import backend_name
from samplescale.errors import ConfigError
from samplescale.executors import Executor, LocalExecutor, RayExecutor
from samplescale.executors.ray_executor import check_address

LOCAL_THREAD_BACKENDS = ("llamacpp", "transformers")


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """Add ``--executor``, ``--address`` and ``--workers`` to ``eval``'s parser."""
    p.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where problems run: here, one after another (default), or on Ray actors "
        "(the 'ray' extra), each loading the model once",
    )
    p.add_argument(
        "--address",
        default=None,
        help="ray: the cluster to join: HOST:PORT of the head (ray start --head --port "
        "PORT), or auto for the cluster ray start runs on this machine (ray://HOST:10001 "
        "needs pip install \"ray[client]\"); default: start a fresh local Ray instance",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="ray: number of actors (default: as many as the cluster's CPUs allow at "
        "--threads CPUs each, or its GPUs for --backend vllm)",
    )


def make_executor(args: argparse.Namespace) -> Executor:
    """The executor ``args`` select; for ``ray`` with a local-model backend and no
    ``--threads``, sets ``args.threads = 1`` (each worker's thread count, recorded in
    run.json: llama.cpp's samples depend on it).

    Raises
    ------
    ConfigError
        If ``--address`` or ``--workers`` is given without ``--executor ray``, ``--workers``
        or ``--threads`` is below 1, ``--address`` is malformed, or ``--record`` is combined with ``--executor ray`` (one file cannot
        take the calls of many processes).
    """
    if args.executor != "ray":
        for flag, value in (("--address", args.address), ("--workers", args.workers)):
            if value is not None:
                raise ConfigError(f"{flag} is for --executor ray")
        return LocalExecutor()
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be an integer >= 1, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be an integer >= 1, got {args.threads}")
    check_address(args.address, "--address")
    if args.record is not None:
        raise ConfigError(
            "--record writes one file from one process; run it with --executor local "
            "(--replay works with --executor ray)"
        )
    name = "replay" if args.replay is not None else backend_name(args)
    if name in LOCAL_THREAD_BACKENDS and args.threads is None:
        args.threads = 1
    return RayExecutor(
        workers=args.workers,
        address=args.address,
        num_cpus=float(args.threads or 1),
        num_gpus=1.0 if name == "vllm" else 0.0,
    )
