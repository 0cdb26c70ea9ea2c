"""Steps: the unit of step-level search and sequential Monte Carlo.

A *step* is the text a model generates up to a delimiter (default a blank line, ``"\\n\\n"``)
or up to the end of the sequence. A partial solution is a sequence of steps; its text is
the steps concatenated (each step that ended on the delimiter keeps it, so
``"".join(steps)`` is the solution text and :func:`split_steps` inverts it).

:func:`generate_steps` draws ``n`` next steps continuing a partial solution in ONE backend
call: the delimiter is a stop string and the partial solution is the reply prefix
(:meth:`samplescale.types.Prompt.continued`).

How a step's end is told apart
------------------------------
A backend cuts the sample text before a stop string, and a sample that ended on an
end-of-sequence (EOS) token also finishes with ``finish_reason == "stop"``. The rule used
here: a step ended on the delimiter exactly when the text decoded from its generated tokens
(the bytes of ``backend.piece(token)``, end tokens left out) continues the sample text with
the delimiter. A stop string always sits in the decoded tokens (the stop fired on it); an
EOS token adds no text, so a sequence that ended on EOS never has the delimiter after its
text (it would have stopped there first). This is exact on every backend that exposes
``piece`` (``LlamaCppBackend``, ``ToyLM``, ``ScriptedBackend``). A backend that exposes no
token pieces (e.g. a remote API) cannot tell the two apart; there a ``"stop"`` finish with
non-empty text counts as the delimiter, and the sequence ends at the first empty step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.errors import ConfigError
from samplescale.types import Prompt, Sample, Usage

DEFAULT_DELIMITER = "\n\n"

StepEnd = Literal["delimiter", "eos", "length", "error"]


class Step(BaseModel):
    """One generated step.

    Attributes
    ----------
    text : str
        The step text; ends with the delimiter when ``end == "delimiter"`` (re-appended:
        the backend excluded the stop string from ``sample.text``).
    end : {"delimiter", "eos", "length", "error"}
        Why the step ended: the delimiter (the solution continues), an end-of-sequence
        token or other stop (the solution is complete), the per-step ``max_tokens`` limit,
        or a failed model call (``sample.status == "error"``).
    sample : Sample
        The backend's sample for this step (token ids and per-token natural-log
        probabilities).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    text: str
    end: StepEnd
    sample: Sample

    @property
    def done(self) -> bool:
        """True when the solution cannot continue after this step (ended, cut or failed)."""
        return self.end != "delimiter"

    @property
    def failed(self) -> bool:
        """True for a failed model call (never scored, never part of a solution)."""
        return self.end == "error"

    @property
    def tokens(self) -> int:
        """Number of generated tokens of the step."""
        return self.sample.num_tokens


class StepBatch(list[Step]):
    """The ``n`` steps of one backend call, in sample order, with the call's ``usage``."""

    def __init__(self, steps: Iterable[Step], usage: Usage) -> None:
        super().__init__(steps)
        self.usage = usage


def check_delimiter(delimiter: object) -> str:
    """Return ``delimiter`` if it is a non-empty string, else raise ConfigError naming it."""
    if not isinstance(delimiter, str) or delimiter == "":
        raise ConfigError(f"delimiter must be a non-empty string, got {delimiter!r}")
    return delimiter


def ended_on_delimiter(backend: object, sample: Sample, delimiter: str) -> bool:
    """Whether ``sample`` stopped on ``delimiter`` (see the module docstring for the rule).

    Parameters
    ----------
    backend : object
        The backend that drew ``sample``; its ``piece`` (and ``is_end``) are used if present.
    sample : Sample
    delimiter : str
    """
    if sample.status == "error" or sample.finish_reason != "stop":
        return False
    piece = getattr(backend, "piece", None)
    if piece is None:
        return sample.text != ""
    is_end = getattr(backend, "is_end", None)
    raw = b"".join(piece(t) for t in sample.token_ids if is_end is None or not is_end(t))
    return raw.decode("utf-8", errors="replace").startswith(sample.text + delimiter)


def make_step(backend: object, sample: Sample, delimiter: str) -> Step:
    """Classify one backend sample as a :class:`Step` (re-appending the delimiter)."""
    if sample.status == "error":
        return Step(text="", end="error", sample=sample)
    if ended_on_delimiter(backend, sample, delimiter):
        return Step(text=sample.text + delimiter, end="delimiter", sample=sample)
    return Step(
        text=sample.text, end="length" if sample.finish_reason == "length" else "eos", sample=sample
    )


def generate_steps(
    backend: Backend,
    prompt: Prompt,
    prefix_steps: Sequence[str],
    params: SamplingParams,
    n: int,
    rng: np.random.Generator | None = None,
    delimiter: str = DEFAULT_DELIMITER,
) -> StepBatch:
    """Draw ``n`` next steps continuing the partial solution ``prefix_steps``, in ONE call.

    Parameters
    ----------
    backend : Backend
    prompt : Prompt
        The problem. The partial solution is appended to ``prompt.prefix`` as the start
        of the reply.
    prefix_steps : sequence of str
        The steps so far (each ending in the delimiter), possibly empty.
    params : SamplingParams
        Token-level parameters; ``max_tokens`` is the limit per step. The call uses
        ``params.replace(n=n, stop=params.stop + (delimiter,))``: the user's stop strings
        stay and end the solution like an EOS token.
    n : int
        Number of steps to draw, in [1, 100000].
    rng : numpy.random.Generator, optional
        Randomness when ``params.seed`` is None.
    delimiter : str
        Non-empty step delimiter.

    Returns
    -------
    StepBatch
        ``n`` steps in sample order (failed samples become steps with ``end="error"``),
        and the call's usage.

    Raises
    ------
    ConfigError
        If ``delimiter`` is empty or not a string.
    pydantic.ValidationError
        If ``n`` is out of range.
    """
    return generate_steps_many(backend, prompt, [(prefix_steps, params, n, rng)], delimiter)[0]


def generate_steps_many(
    backend: Backend,
    prompt: Prompt,
    calls: Sequence[tuple[Sequence[str], SamplingParams, int, np.random.Generator | None]],
    delimiter: str = DEFAULT_DELIMITER,
) -> list[StepBatch]:
    """:func:`generate_steps` for several partial solutions of one problem, decoded in
    ONE backend call where the backend batches prompts.

    On a backend with ``capabilities.prompt_batching``
    (:class:`~samplescale.backends.base.PromptBatching`, e.g. llama.cpp) and independent
    sampling, every call's samples are decoded in shared batch steps, each with the random
    streams its own :func:`generate_steps` call would use; otherwise (other backends,
    wrappers such as a token budget, ``decoding`` other than ``"independent"``,
    ``kl_sigma`` or a constraint) the calls run one after the other. The tokens drawn are
    the same either way, up to float differences of a wider batch (a near-tie can flip).

    Parameters
    ----------
    backend : Backend
    prompt : Prompt
    calls : sequence of (prefix_steps, params, n, rng)
        The arguments of one :func:`generate_steps` call each.
    delimiter : str

    Returns
    -------
    list of StepBatch
        One per call, in order; each with its call's share of the usage
        (:meth:`~samplescale.backends.base.PromptBatching.generate_prompts`).

    Raises
    ------
    ConfigError
        As :func:`generate_steps`.
    """
    check_delimiter(delimiter)
    requests = []
    for prefix_steps, params, n, _ in calls:
        stops = params.stop if delimiter in params.stop else (*params.stop, delimiter)
        requests.append((prompt.continued(prompt.prefix + "".join(prefix_steps)),
                         params.replace(n=n, stop=stops)))
    batching = (
        len(calls) > 1
        and backend.capabilities.prompt_batching
        and callable(getattr(type(backend), "generate_prompts", None))  # not via a wrapper
        and all(p.decoding == "independent" and p.kl_sigma is None and p.constraint is None
                for _, p in requests)
    )
    if batching:
        gens = backend.generate_prompts(requests, [c[3] for c in calls])  # type: ignore[attr-defined]
    else:
        gens = [generate(backend, pr, p, c[3]) for (pr, p), c in zip(requests, calls)]
    return [
        StepBatch((make_step(backend, s, delimiter) for s in g.samples), g.usage) for g in gens
    ]


def generate_rest(
    backend: Backend,
    prompt: Prompt,
    prefix_steps: Sequence[str],
    params: SamplingParams,
    n: int,
    rng: np.random.Generator | None = None,
) -> StepBatch:
    """Draw ``n`` completions of the partial solution ``prefix_steps`` (no step delimiter:
    the rest of the solution at once), as steps ending ``"eos"``, ``"length"`` or
    ``"error"``, in ONE call of ``params.replace(n=n)``.

    Raises
    ------
    pydantic.ValidationError
        If ``n`` is out of range.
    """
    gen = generate(
        backend, prompt.continued(prompt.prefix + "".join(prefix_steps)), params.replace(n=n), rng
    )
    ends: dict[str, StepEnd] = {"stop": "eos", "length": "length", "error": "error"}
    steps = (Step(text=s.text, end=ends[s.finish_reason], sample=s) for s in gen.samples)
    return StepBatch(steps, gen.usage)


def split_steps(text: str, delimiter: str = DEFAULT_DELIMITER) -> list[str]:
    """Split a solution text into steps, each keeping its delimiter.

    ``"".join(split_steps(t, d)) == t`` for every text; an empty text has no steps.

    Raises
    ------
    ConfigError
        If ``delimiter`` is empty or not a string.
    """
    check_delimiter(delimiter)
    parts = text.split(delimiter)
    steps = [p + delimiter for p in parts[:-1]]
    return steps + [parts[-1]] if parts[-1] else steps


def trajectory_sample(steps: Sequence[Step], complete: bool) -> Sample:
    """One Sample for a whole solution: the steps' text, tokens and logprobs concatenated.

    Parameters
    ----------
    steps : sequence of Step
        The solution's steps in order; none may have failed.
    complete : bool
        True when the solution ended (finish ``"stop"``, or ``"length"`` if its last step
        hit ``max_tokens``); False when search stopped it early (finish ``"length"``).

    Returns
    -------
    Sample
        ``token_ids`` and ``logprobs`` are those of each step's own call, so they may
        tokenise the text differently from one pass over the whole text.

    Raises
    ------
    ConfigError
        If a step failed.
    """
    if any(s.failed for s in steps):
        raise ConfigError("a solution cannot contain a failed step")
    ended_by_length = bool(steps) and steps[-1].end == "length"
    return Sample(
        text="".join(s.text for s in steps),
        token_ids=tuple(t for s in steps for t in s.sample.token_ids),
        logprobs=tuple(lp for s in steps for lp in s.sample.logprobs),
        sampling_logprobs=tuple(lp for s in steps for lp in s.sample.sampling_logprobs),
        finish_reason="stop" if complete and not ended_by_length else "length",
    )
