"""The vLLM backend on a real GPU (skipped without vLLM and CUDA: run benchmarks/gpu_check.sh
on a GPU machine). The model is the embedded SmolLM2 exported from its GGUF to a Hugging
Face directory (``SAMPLESCALE_VLLM_MODEL``, which gpu_check.sh sets)."""

from __future__ import annotations

import os

import pytest

from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.types import Prompt

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip("vllm", reason="vLLM is not installed (the 'vllm' extra, GPU only)")
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():  # pragma: no cover - depends on the machine
    pytest.skip("vLLM needs a CUDA GPU", allow_module_level=True)
MODEL = os.environ.get("SAMPLESCALE_VLLM_MODEL")
if not MODEL:  # pragma: no cover
    pytest.skip(
        "set SAMPLESCALE_VLLM_MODEL to a model directory (gpu_check.sh does)",
        allow_module_level=True,
    )

PROMPT = Prompt.user("What is 7 + 5? Answer with the number.")


@pytest.fixture(scope="module")
def backend():
    from samplescale.backends.vllm import VLLMBackend

    return VLLMBackend(MODEL, gpu_memory_utilization=0.3, max_model_len=2048)


def test_n_samples_seeds_and_raw_logprobs(backend):
    params = SamplingParams(n=16, temperature=0.8, max_tokens=32, seed=3)
    g = backend.generate(PROMPT, params)
    assert len(g.samples) == 16 and g.usage.model_calls == 1
    assert g.usage.completion_tokens == sum(s.num_tokens for s in g.samples)
    assert [s.token_ids for s in backend.generate(PROMPT, params).samples] == [
        s.token_ids for s in g.samples
    ]
    assert len({s.token_ids for s in g.samples}) > 1
    for s in g.samples:
        assert len(s.logprobs) == s.num_tokens and all(lp <= 0 for lp in s.logprobs)


def test_greedy_matches_the_transformers_backend_on_the_same_weights(backend):
    from samplescale.backends.transformers import TransformersBackend

    hf = TransformersBackend(MODEL)
    greedy = SamplingParams(temperature=0, max_tokens=12)
    assert backend.tokenize_prompt(PROMPT) == hf.tokenize_prompt(PROMPT)
    a = backend.generate(PROMPT, greedy).samples[0]
    b = hf.generate(PROMPT, greedy).samples[0]
    assert (
        a.token_ids[:6] == b.token_ids[:6]
    )  # bf16/fp16 GPU kernels vs float32 CPU: near-ties may part later
    stop = backend.generate(
        PROMPT, SamplingParams(temperature=0, max_tokens=32, stop=("\n",))
    ).samples[0]
    assert "\n" not in stop.text


def test_inexact_samplers_are_refused(backend):
    with pytest.raises(ConfigError, match="refused on vllm"):
        backend.generate(PROMPT, SamplingParams(typical_p=0.9))
