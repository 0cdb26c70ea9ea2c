"""``samplescale serve``: the OpenAI-compatible server on the embedded model or an upstream.

Examples::

    samplescale serve --port 8000                       # embedded SmolLM2-135M
    samplescale serve --model model.gguf --api-key KEY  # a GGUF file, Bearer auth
    samplescale serve --backend transformers --model ./my-hf-model   # a transformers model
    samplescale serve --base-url http://127.0.0.1:8080/v1 --upstream-model qwen   # an upstream
    samplescale serve --base-url http://127.0.0.1:8000/v1 --upstream-stream   # vLLM, live text

``--upstream URL`` is another name of ``--base-url`` (it implies ``--backend openai``).

SIGINT / SIGTERM stop accepting connections and finish the requests in flight first.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from samplescale.cli_backend import UPSTREAM_KEY_ENV, add_backend_args, backend_name, make_backend
from samplescale.cli_model import add_threads_arg
from samplescale.errors import ConfigError, MissingDependencyError

DEFAULT_MODEL_ID = "smollm2"  # the embedded SmolLM2-135M-Instruct
SERVER_HINT = "install the 'server' extra: .venv/bin/pip install -e '.[server]'"


def add_serve_parser(subparsers: Any) -> None:
    """Add the ``serve`` subcommand to the ``samplescale`` argument parser."""
    p = subparsers.add_parser(
        "serve", help="run the OpenAI-compatible server (strategies via the model name)"
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    add_backend_args(p, serve=True)
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--model", default=None, help="llamacpp: GGUF file; transformers: model directory or "
        "GGUF file (both default to the embedded SmolLM2); vllm: model directory or name",
    )
    src.add_argument(
        "--base-url", "--upstream", dest="base_url", default=None,
        help="openai backend: the upstream's API root, e.g. http://host:8080/v1",
    )
    p.add_argument("--upstream-model", default=None, help="model name sent upstream "
                   "(default: the first model the upstream lists)")
    p.add_argument("--upstream-api-key", default=os.environ.get(UPSTREAM_KEY_ENV),
                   help=f"Bearer key for the upstream (env {UPSTREAM_KEY_ENV})")
    p.add_argument("--upstream-in-flight", type=int, default=8,
                   help="most requests in flight to the upstream (default %(default)s)")
    p.add_argument("--upstream-stream", action="store_true",
                   help="stream plain requests from the upstream as it generates (needs an "
                   "upstream that reports usage in streams (stream_options.include_usage: "
                   "vLLM, SGLang); not llama-cpp-python's server)")
    p.add_argument("--model-name", default=None,
                   help="served model id (default: 'smollm2' for the embedded model, the GGUF "
                   "file stem, or the upstream model)")
    p.add_argument("--api-key", default=os.environ.get("SAMPLESCALE_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (env SAMPLESCALE_API_KEY)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="requests admitted at once; more get 429 (default %(default)s)")
    p.add_argument("--max-concurrency", type=int, default=4,
                   help="requests run at once (default %(default)s)")
    p.add_argument("--adaptive-budget", type=int, default=None, metavar="TOKENS_PER_MINUTE",
                   help="generated tokens per minute shared by strategy requests: adaptive "
                   "strategies (esc, adaptive-consistency, semantic-entropy, confidence-stop) "
                   "get more rounds where votes are split and fewer where settled (default: "
                   "no shared budget)")
    p.add_argument("--max-samples", type=int, default=64,
                   help="most samples per request (default %(default)s)")
    p.add_argument("--max-request-tokens", type=int, default=200_000,
                   help="most tokens one request may spend (default %(default)s)")
    p.add_argument("--max-body-bytes", type=int, default=8 * 2**20,
                   help="largest request body in bytes; larger ones get a 413 (default 8 MiB)")
    p.add_argument("--body-timeout", type=float, default=30.0,
                   help="seconds a client may take to send its request body; then 408 "
                   "(default %(default)s)")
    p.add_argument("--n-ctx", type=int, default=8192,
                   help="embedded model: KV cells (default %(default)s)")
    p.add_argument("--n-seq-max", type=int, default=16,
                   help="embedded model: the cap on live sequences, decoded together in each "
                   "batch step across concurrent requests (default %(default)s)")
    p.add_argument("--no-batching", dest="batching", action="store_false",
                   help="embedded model: decode one request at a time instead of batching "
                   "concurrent requests' steps together (continuous batching is on by default; "
                   "raise --max-concurrency to let more requests run at once)")
    add_threads_arg(p)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


#: Valid range of every numeric ``serve`` flag (n_ctx and n_seq_max: the backend checks).
SERVE_BOUNDS = {
    "port": (0, 65535),
    "upstream_in_flight": (1, 1024),
    "max_queue": (1, 100_000),
    "max_concurrency": (1, 1024),
    "max_samples": (1, 4096),
    "max_request_tokens": (1, 10**9),
    "max_body_bytes": (1, 2**30),
    "body_timeout": (0.1, 3600),
    "adaptive_budget": (1, 10**9),  # optional: None is no shared budget
}


def check_serve_args(args: argparse.Namespace) -> None:
    """Refuse out-of-range numeric flags and empty keys before anything is loaded.

    Raises
    ------
    ConfigError
        If a flag of :data:`SERVE_BOUNDS` is outside its range, or ``--api-key`` /
        ``--upstream-api-key`` (or their environment variables) is set but empty: an
        empty key would silently turn authentication off (``--api-key "$UNSET"``).
    """
    for name, (lo, hi) in SERVE_BOUNDS.items():
        value = getattr(args, name)
        if value is not None and not lo <= value <= hi:
            raise ConfigError(
                f"--{name.replace('_', '-')} must be in [{lo}, {hi}], got {value}"
            )
    for name, env in (("api_key", "SAMPLESCALE_API_KEY"), ("upstream_api_key",
                                                            "SAMPLESCALE_UPSTREAM_API_KEY")):
        key = getattr(args, name)
        if key is not None and not key.strip():
            raise ConfigError(
                f"--{name.replace('_', '-')} (or {env}) is empty; an empty key would turn "
                "authentication off. Give a key, or leave both unset for an open server"
                if name == "api_key"
                else f"--{name.replace('_', '-')} (or {env}) is empty; give a key or "
                "leave both unset"
            )


def _backend(args: argparse.Namespace) -> tuple[Any, str]:
    if args.upstream_stream and backend_name(args) != "openai":
        raise ConfigError("--upstream-stream streams from an upstream; give --upstream URL (or --base-url URL)")
    backend = make_backend(
        args, n_seq_max=args.n_seq_max, n_ctx=args.n_ctx,
        **({"max_in_flight": args.upstream_in_flight, "stream": args.upstream_stream}
           if backend_name(args) == "openai" and args.replay is None else {}),
    )
    if args.replay is not None:
        return backend, backend.name
    name = backend_name(args)
    if name == "openai":
        return backend, backend.model
    if args.model is None:
        return backend, DEFAULT_MODEL_ID
    return backend, Path(args.model).name.removesuffix(".gguf")


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until SIGINT / SIGTERM; returns the exit status.

    Raises
    ------
    MissingDependencyError
        If FastAPI / uvicorn (the ``server`` extra) are not installed.
    ConfigError
        If an option is out of range or the upstream's model list cannot be read.
    """
    try:
        import uvicorn

        from samplescale.server import Limits, create_app
    except ImportError as exc:
        raise MissingDependencyError(f"samplescale serve needs FastAPI and uvicorn; {SERVER_HINT}") from exc
    check_serve_args(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    backend, default_name = _backend(args)
    try:
        app = create_app(
            backend,
            args.model_name or default_name,
            api_key=args.api_key,
            max_queue=args.max_queue,
            max_concurrency=args.max_concurrency,
            limits=Limits(
                max_samples=args.max_samples,
                max_request_tokens=args.max_request_tokens,
                max_body_bytes=args.max_body_bytes,
                body_timeout_s=args.body_timeout,
            ),
            adaptive_budget=args.adaptive_budget,
        )
        config = uvicorn.Config(
            app, host=args.host, port=args.port, log_level=args.log_level, access_log=False
        )  # the request-id middleware logs each request, with its id and duration
        uvicorn.Server(config).run()
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    return 0
