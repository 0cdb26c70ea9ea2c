"""Validated configuration records.

Every config is a frozen pydantic model with ``extra="forbid"``: an unknown field or a value
outside its range raises ``pydantic.ValidationError`` (a ``ValueError``) whose message names
the field and the valid range. Values are never rewritten silently.
"""

from __future__ import annotations

from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FROZEN = ConfigDict(frozen=True, extra="forbid")


def valid_range(model: type[BaseModel], field: str) -> str | None:
    """The valid range of a numeric field as text, e.g. ``"[1, 100000]"`` or ``"(0, 100]"``."""
    info = model.model_fields.get(field)
    if info is None:
        return None
    lo = next((f"[{m.ge}" for m in info.metadata if isinstance(m, Ge)), None)
    lo = lo or next((f"({m.gt}" for m in info.metadata if isinstance(m, Gt)), None)
    hi = next((f"{m.le}]" for m in info.metadata if isinstance(m, Le)), None)
    hi = hi or next((f"{m.lt})" for m in info.metadata if isinstance(m, Lt)), None)
    if lo is None and hi is None:
        return None
    return f"{lo or '(-inf'}, {hi or 'inf)'}"


MAX_TOP_K = 2**31 - 1  # more than any vocabulary; the bound only refuses nonsense
MAX_SEED = 2**63 - 1  # a signed 64-bit integer, as every engine's seed field


class Constraint(BaseModel):
    """What the generated text must match (constrained generation).

    The backend allows at each step only the tokens that keep the text a prefix of a string
    in the constraint's language (a token mask, :mod:`samplescale.constraints`), and only
    end-of-generation tokens once the text is complete and nothing more can follow.

    Attributes
    ----------
    kind : {"json_schema", "json_object", "regex", "grammar"}
        ``json_schema``: a JSON value valid under the JSON Schema in ``source``;
        ``json_object``: any JSON object (``source`` empty); ``regex``: a string fully
        matching the regular expression ``source`` (Rust ``regex`` syntax, as Python's
        for common patterns); ``grammar``: a string of the Lark grammar ``source``
        (llguidance's Lark dialect; rule ``start``; also ``%json`` and regex terminals).
    source : str
        The schema (JSON text), pattern or grammar; at most 1,000,000 characters.
    strict : bool
        For ``json_schema``: True (OpenAI's ``strict``) makes a schema keyword that cannot
        be enforced an error, so every complete output validates; False ignores such
        keywords (the output then follows the rest of the schema only).
    """

    model_config = FROZEN

    kind: Literal["json_schema", "json_object", "regex", "grammar"]
    source: str = Field(default="", max_length=1_000_000)
    strict: bool = True

    @model_validator(mode="after")
    def _source_given(self) -> Constraint:
        if (self.kind == "json_object") != (self.source == ""):
            want = "empty" if self.kind == "json_object" else "non-empty"
            raise ValueError(f"constraint source must be {want} for kind {self.kind!r}")
        return self


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
        Keep the ``k`` most likely tokens; ``0`` or ``-1`` disables it (and so does a ``k``
        at least the vocabulary size). Valid: [-1, 2**31 - 1].
    top_p : float
        Nucleus sampling (Holtzman et al., 2020): keep the smallest set of most likely tokens
        whose probability mass is >= ``top_p``. ``1.0`` disables it; ``0`` keeps only the
        argmax. Valid: [0, 1].
    min_p : float
        Min-p sampling (Nguyen et al., 2024): keep tokens with probability >= ``min_p``
        times the top probability. ``0`` disables it. Valid: [0, 1].
    typical_p : float
        Locally typical sampling (Meister et al., 2023). ``1.0`` disables it. Valid: [0, 1].
    epsilon : float
        Epsilon sampling (Hewitt et al., 2022): keep tokens with probability >= epsilon.
        ``0`` disables it. Valid: [0, 1).
    eta : float
        Eta sampling (Hewitt et al., 2022): threshold ``min(eta, sqrt(eta) * exp(-H))``.
        ``0`` disables it. Valid: [0, 1).
    top_n_sigma : float or None
        Top-nσ (Tang et al., 2024): keep logits >= max - n * std. ``None`` disables it.
        Valid: [0, 100].
    repetition_penalty : float
        CTRL penalty on tokens the sample already generated (> 1 discourages). ``1.0``
        disables it. Valid: (0, 100].
    presence_penalty, frequency_penalty : float
        OpenAI-style additive penalties on generated tokens. ``0`` disables. Valid: [-2, 2].
    fire_temperature : float or None
        FIRE (Chen et al., 2024, "Flaming-hot Initiation with Regular Execution Sampling"):
        the temperature of the first ``fire_tokens`` generated tokens; ``temperature``
        applies after them. ``None`` disables it. Valid: [0, 100].
    fire_tokens : int
        Length of FIRE's hot prefix in tokens. Valid: [1, 1_000_000].
    kl_sigma : float or None
        KL-guided temperature (Chang et al., 2023, "KL-Divergence Guided Temperature
        Sampling"): at each step the temperature is ``temperature * 2 ** (-KL / kl_sigma)``,
        where KL (nats) is the divergence of the next-token distribution with the prompt's
        ``grounding`` from the one without it; so the temperature lies in
        ``(0, temperature]`` and halves for every ``kl_sigma`` nats of KL. Needs a prompt
        with ``grounding`` and a backend with logits. ``None`` disables it. Valid: (0, 100].
    decoding : {"independent", "arithmetic", "priority"}
        How the ``n`` samples relate: ``independent`` i.i.d. ancestral samples;
        ``arithmetic`` arithmetic sampling (Vilnis et al., 2023: evenly spaced code points,
        each sample marginally exact, the set more diverse); ``priority`` priority sampling
        (Grubisic et al., 2024: unique samples in decreasing model probability). The last
        two need a backend that exposes logits.
    max_tokens : int
        Maximum generated tokens per sample. Valid: [1, 1_000_000].
    stop : tuple of str
        Stop strings; generation ends when the decoded text contains one (also when it spans
        several tokens), and the stop string is excluded from the text.
    seed : int or None
        Seed in [0, 2**63 - 1] for reproducible draws. The ``n`` samples of one request get independent
        streams spawned from it, so they are i.i.d. and the same seed gives the same n-tuple.
    n : int
        Number of samples to draw for the prompt. Valid: [1, 100_000].
    constraint : Constraint or None
        Constrained generation: every sample is a prefix of a string the constraint
        accepts (a whole one unless ``max_tokens`` or a stop string cut it). The mask is
        applied first, before the penalties and truncations
        (:mod:`samplescale.sampling.pipeline`). Needs a backend whose capabilities say
        ``constraints``. ``None``: unconstrained.
    """

    model_config = FROZEN

    temperature: float = Field(strict=True, default=1.0, ge=0.0, le=100.0, allow_inf_nan=False)
    top_k: int = Field(strict=True, default=0, ge=-1, le=MAX_TOP_K)
    top_p: float = Field(strict=True, default=1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    min_p: float = Field(strict=True, default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    typical_p: float = Field(strict=True, default=1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    epsilon: float = Field(strict=True, default=0.0, ge=0.0, lt=1.0, allow_inf_nan=False)
    eta: float = Field(strict=True, default=0.0, ge=0.0, lt=1.0, allow_inf_nan=False)
    top_n_sigma: float | None = Field(
        strict=True, default=None, ge=0.0, le=100.0, allow_inf_nan=False
    )
    repetition_penalty: float = Field(
        strict=True, default=1.0, gt=0.0, le=100.0, allow_inf_nan=False
    )
    presence_penalty: float = Field(strict=True, default=0.0, ge=-2.0, le=2.0, allow_inf_nan=False)
    frequency_penalty: float = Field(strict=True, default=0.0, ge=-2.0, le=2.0, allow_inf_nan=False)
    fire_temperature: float | None = Field(
        strict=True, default=None, ge=0.0, le=100.0, allow_inf_nan=False
    )
    fire_tokens: int = Field(strict=True, default=1, ge=1, le=1_000_000)
    kl_sigma: float | None = Field(strict=True, default=None, gt=0.0, le=100.0, allow_inf_nan=False)
    decoding: Literal["independent", "arithmetic", "priority"] = "independent"
    max_tokens: int = Field(strict=True, default=256, ge=1, le=1_000_000)
    stop: tuple[str, ...] = ()
    seed: int | None = Field(strict=True, default=None, ge=0, le=MAX_SEED)
    n: int = Field(strict=True, default=1, ge=1, le=100_000)
    constraint: Constraint | None = None

    @field_validator("stop")
    @classmethod
    def _stop_nonempty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(s == "" for s in v):
            raise ValueError("stop strings must be non-empty")
        return v

    @model_validator(mode="after")
    def _coherent(self) -> SamplingParams:
        if self.fire_temperature is None and self.fire_tokens != 1:
            raise ValueError("fire_tokens needs fire_temperature (the hot prefix's temperature)")
        if self.kl_sigma is not None and self.decoding != "independent":
            raise ValueError(
                f"kl_sigma works with decoding='independent', got decoding={self.decoding!r}"
            )
        if self.constraint is not None and (self.kl_sigma is not None or self.decoding == "priority"):
            what = "kl_sigma" if self.kl_sigma is not None else "decoding='priority'"
            raise ValueError(f"constraint does not work with {what} (its decoder has no mask)")
        return self

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
        """True when ``temperature == 0`` (argmax decoding) and no FIRE prefix is hot."""
        return self.temperature == 0.0 and not self.fire_temperature

    def temperature_at(self, position: int) -> float:
        """The temperature of the token at 0-based ``position`` of a sample (FIRE schedule)."""
        if self.fire_temperature is not None and position < self.fire_tokens:
            return self.fire_temperature
        return self.temperature

    @property
    def penalized(self) -> bool:
        """True when a repetition, presence or frequency penalty is active."""
        return (
            self.repetition_penalty != 1.0
            or self.presence_penalty != 0.0
            or self.frequency_penalty != 0.0
        )
