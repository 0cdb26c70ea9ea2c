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
    runs :func:`samplescale.decoders.priority.priority_generate` on the backend's
    next-token logits.

    Raises
    ------
    ConfigError
        If the decoding needs next-token logits and the backend does not expose them.
    """
    if params.decoding == "independent":
        return backend.generate(prompt, params, rng)
    if not backend.capabilities.logits or not isinstance(backend, LogitsModel):
        raise ConfigError(
            f"decoding={params.decoding!r} needs a backend that exposes next-token logits "
            f"(llamacpp, toy); {backend.name!r} does not"
        )
    if params.decoding == "priority":
        from samplescale.decoders.priority import priority_generate

        return priority_generate(backend, prompt, params, rng)
    return backend.generate(prompt, params, rng)
