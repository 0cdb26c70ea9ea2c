"""Samplers by name: ``"top-n-sigma:1.0"``, ``"fire:1.5:4"``, ``"arithmetic"``.

A sampler spec is ``NAME[:VALUE[:VALUE]]``; each name sets fields of
:class:`~samplescale.config.SamplingParams` (``samplescale list`` prints the table). Several
specs combine; the pipeline applies them in its one documented order, whatever the order of
the specs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.registry import Registry


class SamplerSpec(NamedTuple):
    """What a sampler name sets: ``fields`` take the spec's values in order; ``fixed``
    holds values the name itself implies (``arithmetic`` -> ``decoding="arithmetic"``)."""

    fields: tuple[str, ...]
    fixed: dict[str, Any]
    help: str


SAMPLERS: Registry[SamplerSpec] = Registry("sampler")


def _add(name: str, fields: tuple[str, ...], help: str, **fixed: Any) -> None:
    SAMPLERS.register(name)(SamplerSpec(fields, fixed, help))


_add("temperature", ("temperature",), "temperature:T (0 = greedy)")
_add("top-k", ("top_k",), "top-k:K (Fan et al., 2018)")
_add("top-p", ("top_p",), "top-p:P, nucleus (Holtzman et al., 2020)")
_add("nucleus", ("top_p",), "nucleus:P, same as top-p")
_add("min-p", ("min_p",), "min-p:P (Nguyen et al., 2024)")
_add("typical", ("typical_p",), "typical:P, locally typical (Meister et al., 2023)")
_add("epsilon", ("epsilon",), "epsilon:E (Hewitt et al., 2022)")
_add("eta", ("eta",), "eta:E (Hewitt et al., 2022)")
_add("top-n-sigma", ("top_n_sigma",), "top-n-sigma:N (Tang et al., 2024)")
_add("repetition-penalty", ("repetition_penalty",), "repetition-penalty:R (CTRL)")
_add("presence-penalty", ("presence_penalty",), "presence-penalty:A (OpenAI)")
_add("frequency-penalty", ("frequency_penalty",), "frequency-penalty:A (OpenAI)")
_add("fire", ("fire_temperature", "fire_tokens"), "fire:T[:TOKENS] (Chen et al., 2024)")
_add("kl", ("kl_sigma",), "kl:SIGMA, KL-guided temperature (Chang et al., 2023); needs --grounding")
_add("independent", (), "independent: i.i.d. samples (default)", decoding="independent")
_add(
    "arithmetic", (), "arithmetic: arithmetic sampling (Vilnis et al., 2023)", decoding="arithmetic"
)
_add("priority", (), "priority: priority sampling (Grubisic et al., 2024)", decoding="priority")


def _number(text: str, field: str) -> int | float:
    kind = SamplingParams.model_fields[field].annotation
    try:
        return int(text) if kind in ("int", int) else float(text)
    except ValueError:
        raise ConfigError(f"sampler value for {field} must be a number, got {text!r}") from None


def parse_sampler(spec: str) -> dict[str, Any]:
    """The ``SamplingParams`` fields that ``spec`` sets.

    Raises
    ------
    UnknownNameError
        If the name is not a registered sampler (the message lists them).
    ConfigError
        If the spec has too few or too many values, or a value is not a number.
    """
    name, *values = spec.strip().split(":")
    entry = SAMPLERS.get(name)
    needed = 1 if entry.fields else 0
    if not needed <= len(values) <= len(entry.fields):
        shape = ":".join(["NAME", *(f.upper() for f in entry.fields)]) if entry.fields else "NAME"
        raise ConfigError(f"sampler {spec!r} has the wrong number of values; form: {shape}")
    out: dict[str, Any] = dict(entry.fixed)
    for field, text in zip(entry.fields, values):
        out[field] = _number(text, field)
    return out


def with_samplers(
    params: SamplingParams, specs: list[str] | tuple[str, ...], given: set[str] | None = None
) -> SamplingParams:
    """``params`` with every spec in ``specs`` applied (validated).

    Parameters
    ----------
    params : SamplingParams
    specs : sequence of str
        Sampler specs, e.g. ``["top-n-sigma:1.0", "arithmetic"]``.
    given : set of str, optional
        Fields the caller set explicitly (e.g. by command-line flags); a spec that sets one
        of them to another value is a contradiction.

    Raises
    ------
    UnknownNameError, ConfigError
        See :func:`parse_sampler`; also when two specs (or a spec and ``given``) set one
        field to different values, e.g. ``arithmetic`` and ``priority``.
    pydantic.ValidationError
        If a value is out of its field's range (the message names the field).
    """
    changes: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for spec in specs:
        for field, value in parse_sampler(spec).items():
            earlier = changes.get(
                field, getattr(params, field) if given and field in given else value
            )
            if earlier != value:
                who = origin.get(field, "a flag")
                raise ConfigError(
                    f"sampler {spec!r} sets {field}={value!r} but {who} set {field}={earlier!r}"
                )
            changes[field], origin[field] = value, repr(spec)
    return params.replace(**changes) if changes else params
