"""Validated configuration records.

Every config is a frozen pydantic model with ``extra="forbid"``: an unknown field or a value
outside its range raises ``pydantic.ValidationError`` (a ``ValueError``) whose message names
the field and the valid range. Values are never rewritten silently.
"""

from __future__ import annotations

from typing import Any

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, Field, field_validator

FROZEN = ConfigDict(frozen=True, extra="forbid")


def valid_range(model: type[BaseModel], field: str) -> str | None:
    """The valid range of a numeric field as text, e.g. ``"[1, 100000]"``, or None."""
    info = model.model_fields.get(field)
    if info is None:
        return None
    lo = next((m.ge for m in info.metadata if isinstance(m, Ge)), None)
    hi = next((m.le for m in info.metadata if isinstance(m, Le)), None)
    if lo is None and hi is None:
        return None
    return f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"


class SamplingParams(BaseModel):
    """How each token of each sample is drawn, and how many samples.

    The token-level transforms are applied in the one order documented in
    :mod:`samplescale.sampling.pipeline` (truncation on the temperature-1 distribution,
    temperature last).

    Numeric fields are strict: ``True`` is not a number and ``"3"`` is not an int.

    Attributes
    ----------
    temperature : float
        >= 0. Divides the logits. ``0`` means greedy decoding (argmax, ties to the lowest
        token id); there is no second switch for greedy.
    top_k : int
        Keep the ``k`` most likely tokens; ``0`` or ``-1`` disables it. Valid: >= -1.
    top_p : float
        Nucleus sampling (Holtzman et al., 2020): keep the smallest set of most likely tokens
        whose probability mass is >= ``top_p``. ``1.0`` disables it; ``0`` keeps only the
        argmax. Valid: [0, 1].
    min_p : float
        Min-p sampling (Nguyen et al., 2024): keep tokens with probability >= ``min_p``
        times the top probability. ``0`` disables it. Valid: [0, 1].
    max_tokens : int
        Maximum generated tokens per sample. Valid: [1, 1_000_000].
    stop : tuple of str
        Stop strings; generation ends when the decoded text contains one (also when it spans
        several tokens), and the stop string is excluded from the text.
    seed : int or None
        Seed (>= 0) for reproducible draws. The ``n`` samples of one request get independent
        streams spawned from it, so they are i.i.d. and the same seed gives the same n-tuple.
    n : int
        Number of samples to draw for the prompt. Valid: [1, 100_000].
    """

    model_config = FROZEN

    temperature: float = Field(strict=True, default=1.0, ge=0.0, le=100.0, allow_inf_nan=False)
    top_k: int = Field(strict=True, default=0, ge=-1)
    top_p: float = Field(strict=True, default=1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    min_p: float = Field(strict=True, default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    max_tokens: int = Field(strict=True, default=256, ge=1, le=1_000_000)
    stop: tuple[str, ...] = ()
    seed: int | None = Field(strict=True, default=None, ge=0)
    n: int = Field(strict=True, default=1, ge=1, le=100_000)

    @field_validator("stop")
    @classmethod
    def _stop_nonempty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(s == "" for s in v):
            raise ValueError("stop strings must be non-empty")
        return v

    def replace(self, **changes: Any) -> SamplingParams:
        """A validated copy with ``changes`` applied (``model_copy`` would skip validation).

        Raises
        ------
        pydantic.ValidationError
            If a changed value is out of range.
        """
        return SamplingParams.model_validate({**self.model_dump(), **changes})

    @property
    def greedy(self) -> bool:
        """True when ``temperature == 0`` (argmax decoding)."""
        return self.temperature == 0.0
