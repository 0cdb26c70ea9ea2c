"""Picking a backend on the command line: ``--backend`` and its options, shared by
``eval``, ``generate`` and ``serve``; the capability check that refuses, in one line and
before a model loads, a strategy or sampler that the chosen backend cannot run.

Options (eval / generate; serve has the same, with the upstream's key as
``--upstream-api-key`` because its ``--api-key`` protects the server itself, and
``--upstream URL`` kept as another name of ``--base-url``)::

    --backend {llamacpp,openai,transformers,vllm}   default llamacpp (openai with --base-url)
    --model PATH_OR_NAME     llamacpp: GGUF file; transformers: model directory or GGUF file
                             (both default to the embedded SmolLM2); vllm: directory or name
    --base-url URL           openai: the server's API root, e.g. http://127.0.0.1:8080/v1
    --api-key KEY            openai: Bearer key (env SAMPLESCALE_UPSTREAM_API_KEY)
    --upstream-model NAME    openai: the model name sent (default: the server's first model)
    --record FILE / --replay FILE   every backend call to / from a JSONL file
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from samplescale.backends.base import Capabilities
from samplescale.backends.catalog import BACKENDS, require
from samplescale.cli_model import add_threads_arg, n_threads
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError

UPSTREAM_KEY_ENV = "SAMPLESCALE_UPSTREAM_API_KEY"


def add_backend_args(p: argparse.ArgumentParser, *, serve: bool = False) -> None:
    """Add ``--backend`` and its options to a subcommand's parser (``serve=True``: the
    server's spelling, see the module docstring; serve adds ``--model`` itself)."""
    p.add_argument(
        "--backend",
        choices=tuple(BACKENDS),
        default=None,
        help="llamacpp (default), openai (with --base-url), transformers, vllm; "
        "the README's backend table says what each can run",
    )
    if not serve:
        p.add_argument(
            "--model",
            default=None,
            help="llamacpp: GGUF file; transformers: model directory or GGUF file (both "
            "default to the embedded SmolLM2-135M-Instruct); vllm: model directory or name",
        )
        p.add_argument(
            "--base-url",
            default=None,
            help="openai: API root of the server, e.g. http://127.0.0.1:8080/v1",
        )
        p.add_argument(
            "--api-key",
            dest="upstream_api_key",
            default=os.environ.get(UPSTREAM_KEY_ENV),
            help=f"openai: Bearer key of the server (env {UPSTREAM_KEY_ENV})",
        )
        p.add_argument(
            "--upstream-model",
            default=None,
            help="openai: model name sent (default: the first model the server lists)",
        )
        add_threads_arg(p)
    p.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="FILE",
        help="write every backend call (prompt, parameters, seed, reply) to FILE (JSONL)",
    )
    p.add_argument(
        "--replay",
        type=Path,
        default=None,
        metavar="FILE",
        help="serve every backend call from a --record FILE, with no model; an "
        "unrecorded call is an error",
    )


def backend_name(args: argparse.Namespace) -> str:
    """The backend ``args`` select: ``--backend``, else openai when a base URL is given,
    else llamacpp.

    Raises
    ------
    ConfigError
        If options of one backend are given to another (``--base-url`` without openai,
        openai without ``--base-url``, ``--threads`` or ``--model`` on openai).
    """
    url = getattr(args, "base_url", None)
    name = args.backend or ("openai" if url else "llamacpp")
    if name == "openai":
        if not url:
            raise ConfigError("--backend openai needs --base-url URL (the server's API root)")
        if args.model is not None:
            raise ConfigError(
                "--model names a local model; with --backend openai use --upstream-model NAME"
            )
    elif url:
        raise ConfigError(f"--base-url is for --backend openai, not --backend {name}")
    elif getattr(args, "upstream_model", None):
        raise ConfigError(f"--upstream-model is for --backend openai, not --backend {name}")
    if name in ("openai", "vllm") and args.threads is not None:
        raise ConfigError(f"--threads sets CPU threads of a local model; not with --backend {name}")
    if name == "vllm" and args.model is None:
        raise ConfigError("--backend vllm needs --model (a model directory or name)")
    if args.record is not None and args.replay is not None:
        raise ConfigError("--record and --replay exclude each other")
    return name


def capabilities(args: argparse.Namespace) -> tuple[str, Capabilities]:
    """The selected backend's name and capabilities before it loads (a ``--replay`` file's
    recorded ones)."""
    if args.record is not None and args.replay is not None:
        raise ConfigError("--record and --replay exclude each other")
    if args.replay is not None:
        from samplescale.backends.record import read_header

        header = read_header(args.replay)
        return header.name, header.capabilities
    name = backend_name(args)
    if args.record is not None:  # logits_at calls are not recorded
        return f"{name} with --record", BACKENDS[name].capabilities.model_copy(
            update={"logits": False}
        )
    return name, BACKENDS[name].capabilities


def check_run(args: argparse.Namespace, params: SamplingParams, strategy: Any) -> None:
    """Refuse, in one line and before a model loads, what the selected backend cannot run.

    Raises
    ------
    ConfigError
        Naming what is missing and which backends have it: next-token logits for
        ``decoding`` arithmetic / priority, ``kl_sigma``, ``--draft-model``, and step-level
        search, SMC and ``refine`` with the default P(True) process scorer; continuing a partial chat
        reply for step-level search and SMC. Samplers a backend cannot apply exactly are
        refused by the backend (``check_params``) when it is built.
    """
    from samplescale.strategies.particle_filtering import ParticleFiltering
    from samplescale.strategies.refine import Refine
    from samplescale.strategies.tree import TreeSearch

    name, caps = capabilities(args)
    if name == "vllm":  # the samplers vLLM computes exactly (no vLLM import needed)
        from samplescale.backends.vllm import vllm_sampling_kwargs

        vllm_sampling_kwargs(params)
    if params.decoding != "independent":
        require(name, caps, "logits", f"decoding={params.decoding!r}")
    if params.kl_sigma is not None:
        require(name, caps, "logits", "kl_sigma (KL-guided temperature)")
    if getattr(args, "draft_model", None) is not None:
        require(name, caps, "logits", "--draft-model (speculative sampling)")
    if params.constraint is not None:
        require(name, caps, "constraints", f"a constraint ({params.constraint.kind})")
    for feature in getattr(strategy, "requires", ()):
        require(name, caps, feature, f"strategy {strategy.name!r}")
    check_budget = getattr(strategy, "check_budget", None)  # adaptive strategies: fits N?
    if check_budget is not None:
        check_budget(params.n)
    if getattr(strategy, "name", None) == "constrained-smc":
        require(name, caps, "logits", "strategy 'constrained-smc'")
    if isinstance(strategy, Refine) and strategy.scorer in (None, "p-true"):
        require(name, caps, "logits", f"strategy {strategy.name!r} with the default P(True) scorer")
    if isinstance(strategy, (TreeSearch, ParticleFiltering)):
        label = f"strategy {strategy.name!r}"
        if getattr(strategy, "scorer", None) in (None, "p-true"):
            require(name, caps, "logits", f"{label} with the default P(True) scorer")
        require(name, caps, "prefix", label)


def backend_identity(args: argparse.Namespace) -> Any:
    """The model as an eval's run.json records it (JSON). llama.cpp keeps the form runs
    written before ``--backend`` existed use (the GGUF's name, size and SHA-256), so they
    resume; other backends add their name; a model directory is identified by its files'
    names and sizes and its config's digest; a replay is the recorded run's identity.

    Raises
    ------
    ConfigError
        If a local ``--model`` (or the default model file) cannot be read.
    """
    from samplescale.backends.llamacpp import default_model_path
    from samplescale.cli_settings import file_identity

    if args.replay is not None:
        from samplescale.backends.record import read_header

        return read_header(args.replay).identity
    name = backend_name(args)
    if name == "openai":
        return {"backend": name, "base_url": args.base_url, "model": args.upstream_model}
    if name == "vllm":
        return {"backend": name, "model": args.model}
    path = Path(args.model).resolve() if args.model else default_model_path()
    if path.is_dir():
        files = sorted((f.name, f.stat().st_size) for f in path.iterdir() if f.is_file())
        config = file_identity(path / "config.json", "--model")
        return {"backend": name, "directory": path.name, "files": files, "config": config}
    ident = file_identity(path, "--model")
    return ident if name == "llamacpp" else {"backend": name, **ident}


def upstream_model(url: str, api_key: str | None) -> str:
    """The first model an OpenAI-compatible server lists at ``GET {url}/models``.

    Raises
    ------
    ConfigError
        If the list cannot be read.
    """
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        r = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=10.0)
        r.raise_for_status()
        return str(r.json()["data"][0]["id"])
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"could not read the model list of {url} ({exc}); give --upstream-model"
        ) from exc


def make_backend(
    args: argparse.Namespace,
    params: SamplingParams | None = None,
    *,
    n_seq_max: int = 16,
    n_ctx: int | None = None,
    **openai_options: Any,
) -> Any:
    """Build the selected backend (wrapped for ``--record``, or a replay).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options (see the module docstring).
    params : SamplingParams, optional
        The run's parameters: checked against the backend (``check_params``) and used to
        size llama.cpp's KV cache (``max_tokens``).
    n_seq_max : int
        llama.cpp: sequences decoded in one batch; transformers: samples per batch.
    n_ctx : int or None
        llama.cpp: KV cells (None: sized from ``max_tokens``).
    **openai_options
        Passed to :class:`~samplescale.backends.openai_http.OpenAIHTTPBackend`.

    Raises
    ------
    ConfigError, MissingDependencyError, ModelNotFoundError
        From the options and the backend.
    """
    if args.replay is not None:
        from samplescale.backends.record import ReplayBackend

        return ReplayBackend(args.replay)
    name = backend_name(args)
    max_tokens = params.max_tokens if params is not None else None
    draft = getattr(args, "draft_model", None)
    if draft is not None and not draft.is_file():
        raise ConfigError(f"--draft-model: file not found: {draft}")
    if draft is not None:  # target and draft: a few sequences each (speculative rounds)
        n_seq_max = min(n_seq_max, 4)
    backend = _build(name, args, args.model, n_seq_max, n_ctx, max_tokens, openai_options)
    if draft is not None:
        from samplescale.decoders.speculative import SpeculativeBackend

        drafter = _build(name, args, draft, n_seq_max, n_ctx, max_tokens, openai_options)
        backend = SpeculativeBackend(backend, drafter, k=args.draft_k, drafts=args.drafts)
    check = getattr(backend, "check_params", None)
    if params is not None and check is not None:
        check(params)
    if args.record is not None:
        from samplescale.backends.record import RecordingBackend

        backend = RecordingBackend(backend, args.record, identity=backend_identity(args))
    return backend


def _build(
    name: str,
    args: argparse.Namespace,
    model: Any,
    n_seq_max: int,
    n_ctx: int | None,
    max_tokens: int | None,
    openai_options: dict[str, Any],
) -> Any:
    if name == "llamacpp":
        from samplescale.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(
            model,
            n_ctx=n_ctx,
            n_seq_max=n_seq_max,
            max_tokens=max_tokens,
            n_threads=n_threads(args),
            batching=getattr(args, "batching", True),  # serve --no-batching
        )
    if name == "transformers":
        from samplescale.backends.transformers import TransformersBackend

        return TransformersBackend(model, max_batch=n_seq_max, n_threads=n_threads(args))
    if name == "vllm":
        from samplescale.backends.vllm import VLLMBackend

        return VLLMBackend(str(model))
    from samplescale.backends.openai_http import OpenAIHTTPBackend

    served = args.upstream_model or upstream_model(args.base_url, args.upstream_api_key)
    return OpenAIHTTPBackend(args.base_url, served, api_key=args.upstream_api_key, **openai_options)
