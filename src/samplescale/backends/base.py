"""The backend protocol and its capability record."""

from __future__ import annotations

from collections.abc import Sequence
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


@runtime_checkable
class LogitsModel(Protocol):
    """A model that scores next tokens: what set-level samplers, speculative sampling and
    token-level SMC need (:mod:`samplescale.decoders`).

    Token ids index a vocabulary of ``vocab_size`` tokens. Implementations: ``ToyLM`` and
    ``LlamaCppBackend`` (which keeps recently scored prefixes in its KV cache, so extending
    a prefix by a few tokens costs only those tokens).
    """

    vocab_size: int

    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of ``prompt`` as the model sees it (chat template applied)."""
        ...

    def logits_at(self, tokens: Sequence[int], last: int = 1) -> np.ndarray:
        """Raw next-token logits after each of the last ``last`` prefixes of ``tokens``.

        Parameters
        ----------
        tokens : sequence of int, length L
            Prompt ids followed by generated ids.
        last : int
            Number of positions, ``1 <= last <= L`` (the toy LM also allows ``L + 1``: the
            empty prefix).

        Returns
        -------
        ndarray, shape (last, vocab_size), float
            Row ``i`` is the logits after ``tokens[: L - last + 1 + i]``; the final row is
            the next-token logits after all of ``tokens``.
        """
        ...

    def piece(self, token: int) -> bytes:
        """The bytes of one token (UTF-8 may be split across tokens)."""
        ...

    def is_end(self, token: int) -> bool:
        """True for end-of-generation tokens."""
        ...
