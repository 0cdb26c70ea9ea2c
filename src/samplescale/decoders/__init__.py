"""Decoders that need more than one draw per token: set-level samplers and search over
prefixes (priority sampling), speculative sampling, Gumbel-max counterfactuals and
KL-guided temperature.

Layer: between ``backends`` and ``tasks`` (DESIGN.md): decoders use the sampling pipeline
and the backends' :class:`~samplescale.backends.base.LogitsModel` interface.

:func:`generate` is the one entry point the strategies use to draw samples: it runs
``params.decoding`` (independent, arithmetic or priority) on any backend.
"""

from __future__ import annotations

import numpy as np

from samplescale.backends.base import Backend, LogitsModel
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.types import Generation, Prompt

__all__ = ["generate"]


def generate(
    backend: Backend,
    prompt: Prompt,
    params: SamplingParams,
    rng: np.random.Generator | None = None,
) -> Generation:
    """Draw ``params.n`` samples of ``prompt`` with ``params.decoding``.

    ``independent`` and ``arithmetic`` run in the backend's own batched loop; ``priority``
    runs :func:`samplescale.decoders.priority.priority_generate` and ``kl_sigma``
    :func:`samplescale.decoders.kl_guided.kl_guided_generate` on the backend's next-token
    logits.

    Raises
    ------
    ConfigError
        If the decoding needs next-token logits and the backend does not expose them, or
        ``kl_sigma`` is set and the prompt has no grounding.
    """
    needs_logits = params.decoding != "independent" or params.kl_sigma is not None
    if not needs_logits:
        return backend.generate(prompt, params, rng)
    if not backend.capabilities.logits or not isinstance(backend, LogitsModel):
        what = "kl_sigma" if params.kl_sigma is not None else f"decoding={params.decoding!r}"
        raise ConfigError(
            f"{what} needs a backend that exposes next-token logits (llamacpp, transformers, toy); "
            f"{backend.name!r} does not"
        )
    if params.kl_sigma is not None:
        from samplescale.decoders.kl_guided import kl_guided_generate

        return kl_guided_generate(backend, prompt, params, rng).generation
    if params.decoding == "priority":
        from samplescale.decoders.priority import priority_generate

        return priority_generate(backend, prompt, params, rng)
    return backend.generate(prompt, params, rng)
