"""The backend protocol and its capability record."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from samplescale.config import SamplingParams
from samplescale.types import Generation, Prompt


class Capabilities(BaseModel):
    """What a backend can do.

    Attributes
    ----------
    logits : bool
        The backend exposes next-token logits and samples with samplescale's own pipeline
        (:mod:`samplescale.sampling.pipeline`), so sampling is identical across such backends.
    seeds : bool
        ``SamplingParams.seed`` makes results reproducible.
    parallel_n : bool
        ``n`` samples of one prompt are decoded together in one call sharing the prompt.
    chat : bool
        Chat ``messages`` are rendered with the model's chat template.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    logits: bool
    seeds: bool
    parallel_n: bool
    chat: bool


@runtime_checkable
class Backend(Protocol):
    """A language model that generates samples.

    Implementations must be safe to call from several threads (they may serialise calls).
    """

    name: str
    capabilities: Capabilities

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """Draw ``params.n`` samples continuing ``prompt``.

        Parameters
        ----------
        prompt : Prompt
        params : SamplingParams
        rng : numpy.random.Generator, optional
            Source of randomness when ``params.seed`` is None.

        Returns
        -------
        Generation
            ``params.n`` samples, in order, and the usage of the call.
        """
        ...
