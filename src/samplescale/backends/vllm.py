"""The vLLM backend: a model run in-process by ``vllm.LLM`` on a GPU.

vLLM samples on the GPU with its own sampler, so only the samplescale parameters that vLLM
computes exactly as samplescale defines them are passed on (:func:`vllm_sampling_kwargs`);
every other one is refused with a ``ConfigError`` before a request runs, never dropped or
approximated. vLLM's V1 sampler applies, in order: penalties (repetition, frequency,
presence), temperature, min-p, top-k, top-p (vLLM docs, ``vllm.v1.sample.sampler``);
samplescale applies penalties, top-k, top-p, min-p, then temperature
(:mod:`samplescale.sampling.pipeline`). The two agree exactly when:

- ``temperature``: 0 (greedy) or >= 0.01 (vLLM treats smaller values as greedy);
- ``top_k``: any temperature (the k largest logits are the same set at every temperature);
- ``top_p`` and ``min_p``: only at temperature 1 or 0 (vLLM truncates the tempered
  distribution, samplescale the temperature-1 one), and ``min_p`` not together with
  ``top_p`` (vLLM applies min-p first, samplescale after top-p);
- ``presence_penalty`` / ``frequency_penalty``: OpenAI's additive penalties on generated
  tokens in both;
- ``repetition_penalty`` is refused: vLLM also penalises prompt tokens, samplescale only
  generated ones. Typical, epsilon, eta, top-nσ, FIRE, KL-guided temperature, arithmetic
  and priority decoding have no vLLM equivalent and are refused (use ``--backend
  transformers`` or ``llamacpp`` for them: they sample with samplescale's own pipeline).

vLLM's logits-processor interface is not used to apply the other samplers: it runs before
vLLM's own temperature and truncation, so the order above would still differ.

Log-probabilities are vLLM's default ``raw_logprobs`` (the model's distribution before any
processing), which is what ``Sample.logprobs`` holds on every backend. Seeds are vLLM's
per-request seeds: reproducible on the same vLLM version and GPU, but not the same draws
as samplescale's own samplers. Prefix caching (``enable_prefix_caching``) is on: the
``n`` samples of a prompt and later requests with the same prefix reuse its KV cache.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from samplescale.backends.base import Capabilities
from samplescale.backends.decoding import check_constraint, check_decoding
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, MissingDependencyError
from samplescale.types import Generation, Prompt, Sample, Usage

INSTALL_HINT = "install the 'vllm' extra on a machine with a CUDA GPU: pip install -e '.[vllm]'"
MIN_TEMPERATURE = 0.01  # vLLM samples greedily below this

_REFUSED = {  # field: why vLLM cannot apply it as samplescale defines it
    "repetition_penalty": "vLLM's repetition penalty also counts prompt tokens",
    "typical_p": "vLLM has no locally typical sampling",
    "epsilon": "vLLM has no epsilon sampling",
    "eta": "vLLM has no eta sampling",
    "top_n_sigma": "vLLM has no top-n-sigma",
    "fire_temperature": "vLLM has no FIRE temperature schedule",
    "kl_sigma": "KL-guided temperature needs next-token logits",
}
ELSEWHERE = "use --backend transformers or llamacpp, which sample with samplescale's own pipeline"


def vllm_sampling_kwargs(params: SamplingParams) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` that sample exactly as ``params``.

    Parameters
    ----------
    params : SamplingParams

    Returns
    -------
    dict
        ``n``, ``temperature``, ``top_k`` (-1 = off), ``top_p``, ``min_p``,
        ``presence_penalty``, ``frequency_penalty``, ``max_tokens``, ``stop``, ``seed``,
        ``logprobs=0`` (the sampled token's log-probability).

    Raises
    ------
    ConfigError
        Naming the first field vLLM cannot apply exactly (see the module docstring).
    """
    defaults = SamplingParams()
    for field, why in _REFUSED.items():
        if getattr(params, field) != getattr(defaults, field):
            raise ConfigError(
                f"{field}={getattr(params, field)!r} is refused on vllm: {why}; {ELSEWHERE}"
            )
    if params.decoding != "independent":
        raise ConfigError(
            f"decoding={params.decoding!r} needs next-token logits, which vllm does not expose; {ELSEWHERE}"
        )
    t = params.temperature
    if 0 < t < MIN_TEMPERATURE:
        raise ConfigError(
            f"temperature={t} is refused on vllm: it samples greedily below {MIN_TEMPERATURE}; "
            "use temperature 0 (greedy) or a value >= 0.01"
        )
    plain = t in (0.0, 1.0)
    for field, off in (("top_p", 1.0), ("min_p", 0.0)):
        if getattr(params, field) != off and not plain:
            raise ConfigError(
                f"{field}={getattr(params, field)} with temperature={t} is refused on vllm: vLLM "
                f"truncates after temperature, samplescale before it (they agree at temperature "
                f"0 or 1); {ELSEWHERE}"
            )
    if params.min_p > 0 and params.top_p < 1:
        raise ConfigError(
            f"min_p={params.min_p} with top_p={params.top_p} is refused on vllm: vLLM applies "
            f"min-p before top-p, samplescale after it; {ELSEWHERE}"
        )
    return {
        "n": params.n,
        "temperature": t,
        "top_k": params.top_k if params.top_k > 0 else -1,
        "top_p": params.top_p,
        "min_p": params.min_p,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "max_tokens": params.max_tokens,
        "stop": list(params.stop),
        "seed": params.seed,
        "logprobs": 0,
    }


class VLLMBackend:
    """A model run in-process by vLLM (``vllm.LLM``) with prefix caching.

    Parameters
    ----------
    model : str
        A local model directory or a model name vLLM can load (a hub name needs the hub).
    seed : int
        Engine seed (requests without a seed draw from it).
    **engine_args
        Passed to ``vllm.LLM`` (e.g. ``gpu_memory_utilization=0.5``, ``max_model_len``,
        ``dtype``, ``tokenizer``).

    Raises
    ------
    MissingDependencyError
        If vLLM is not installed.
    """

    name = "vllm"
    capabilities = Capabilities(
        logits=False,
        seeds=True,
        parallel_n=True,
        chat=True,
        streaming=False,
        prefix_caching=True,
    )

    def __init__(self, model: str, *, seed: int = 0, **engine_args: Any) -> None:
        try:
            import vllm
        except ImportError as exc:  # pragma: no cover - needs a GPU machine
            raise MissingDependencyError(f"the vllm backend needs vLLM; {INSTALL_HINT}") from exc
        self._vllm = vllm
        engine_args.setdefault("enable_prefix_caching", True)
        self.llm = vllm.LLM(model=model, seed=seed, **engine_args)
        self.model = model
        self._tok = self.llm.get_tokenizer()
        self._lock = threading.Lock()

    def check_params(self, params: SamplingParams) -> None:
        """Raise ``ConfigError`` if vLLM cannot sample ``params`` exactly."""
        vllm_sampling_kwargs(params)

    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of ``prompt``: chat messages rendered with the tokenizer's chat template
        (generation prompt added), then ``prompt.prefix`` appended as text."""
        prompt = prompt.resolved()
        if prompt.messages is not None:
            messages = [{"role": m.role, "content": m.content} for m in prompt.messages]
            text = self._tok.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            special = False
        else:
            assert prompt.text is not None
            text, special = prompt.text, True
        return [
            int(t) for t in self._tok(text + prompt.prefix, add_special_tokens=special)["input_ids"]
        ]

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """Draw ``params.n`` samples in one vLLM request (``rng`` seeds it when
        ``params.seed`` is None).

        Raises
        ------
        ConfigError
            If a sampler cannot be applied exactly (:func:`vllm_sampling_kwargs`).
        """
        start = time.perf_counter()
        check_decoding(params)
        check_constraint(params, self.capabilities, self.name)
        kwargs = vllm_sampling_kwargs(params)
        if kwargs["seed"] is None and rng is not None:
            kwargs["seed"] = int(rng.integers(0, 2**31 - 1))
        ids = self.tokenize_prompt(prompt)
        with self._lock:
            out = self.llm.generate(
                {"prompt_token_ids": ids}, self._vllm.SamplingParams(**kwargs), use_tqdm=False
            )[0]
        samples = tuple(_sample(c) for c in out.outputs)
        usage = Usage(
            prompt_tokens=len(ids),
            completion_tokens=sum(s.num_tokens for s in samples),
            model_calls=1,
            wall_time_s=time.perf_counter() - start,
        )
        return Generation(samples=samples, usage=usage)


def _sample(c: Any) -> Sample:
    """A samplescale Sample from a vLLM ``CompletionOutput`` (logprobs: one dict per token,
    ``{token_id: Logprob}``)."""
    ids = tuple(int(t) for t in c.token_ids)
    lps = tuple(float(d[t].logprob) for d, t in zip(c.logprobs or (), ids))
    return Sample(
        text=c.text,
        token_ids=ids,
        logprobs=lps,
        finish_reason="length" if c.finish_reason == "length" else "stop",
    )
