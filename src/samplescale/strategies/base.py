"""The strategy protocol: ``init -> step* -> finalize`` over immutable state.

A strategy is a frozen configuration object. ``init(prompt, params)`` makes the first
state, ``step(rng, state, backend)`` returns a new state and an info record (one backend
call), ``done(state)`` says when to stop, and ``finalize(state)`` builds the
:class:`~samplescale.types.Result`. ``run`` drives the loop. Strategies do no I/O.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from samplescale.backends.base import Backend, prefix_session
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.errors import BackendError, ConfigError, check_instance
from samplescale.rng import derived_seed
from samplescale.types import Prompt, Result, Sample, Usage
from samplescale.verifiers.extract import sample_answer
from samplescale.verifiers.math import answers_equivalent, extract_answer

Extractor = Callable[[str], str | None]


def check_callable(name: str, value: object, signature: str, allow_none: bool = False) -> None:
    """Raise ConfigError naming option ``name`` unless ``value`` is callable (or None when
    ``allow_none``)."""
    if value is None and allow_none:
        return
    if not callable(value):
        none = " or None" if allow_none else ""
        raise ConfigError(
            f"{name} must be a callable {signature}{none}, got {type(value).__name__} "
            f"{value!r:.40}"
        )


def check_int(name: str, value: object, lo: int, hi: int) -> None:
    """Raise ConfigError naming option ``name`` and the range ``[lo, hi]`` unless ``value``
    is an integer in it (a bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r:.40}")


def check_number(name: str, value: object, ok: Callable[[float], bool], where: str) -> None:
    """Raise ConfigError naming option ``name`` and its range ``where`` (e.g. ``"(0, 1]"``)
    unless ``value`` is a real number (a bool is refused; NaN fails ``ok``) with
    ``ok(value)`` true."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not ok(value):
        raise ConfigError(f"{name} must be a number in {where}, got {value!r:.40}")


def check_run_args(backend: object, prompt: object, params: object, rng: object) -> None:
    """Raise ConfigError naming the argument unless ``backend`` is a Backend, ``prompt`` a
    Prompt or str, ``params`` a SamplingParams or None and ``rng`` a numpy Generator or
    None (checked before any model call)."""
    if isinstance(backend, type):
        raise ConfigError(
            f"backend must be a backend instance, got the class {backend.__name__}; "
            f"did you mean {backend.__name__}()?"
        )
    check_instance(
        "backend", backend, Backend,
        "a samplescale backend (with generate(prompt, params, rng)), e.g. LlamaCppBackend()",
    )
    check_instance("prompt", prompt, (Prompt, str), "a Prompt or str")
    if params is not None:
        check_instance("params", params, SamplingParams, "a SamplingParams or None")
    if rng is not None:
        check_instance("rng", rng, np.random.Generator, "a numpy.random.Generator or None")


class State(BaseModel):
    """Immutable state of a sampling strategy.

    Attributes
    ----------
    prompt : Prompt
    params : SamplingParams
        ``params.n`` is the number of samples the strategy draws (N).
    samples : tuple of Sample
        Samples drawn so far.
    usage : Usage
        Backend usage so far.
    trace : tuple of dict
        One record per step.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    prompt: Prompt
    params: SamplingParams
    samples: tuple[Sample, ...] = ()
    usage: Usage = Usage()
    trace: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Strategy(ABC):
    """Base of the sampling strategies (draw N samples, then select).

    Attributes
    ----------
    extract : callable str -> str or None
        Final-answer extraction (default :func:`samplescale.verifiers.math.extract_answer`).
    equivalent : callable (str, str) -> bool
        Answer equivalence for voting (default math equivalence).

    Raises
    ------
    ConfigError
        If ``extract`` or ``equivalent`` is not callable (checked when the strategy is
        built, so a bad option fails before any sampling).
    """

    name: ClassVar[str]
    #: ``Capabilities`` fields the strategy needs of its backend (e.g. ``("logprobs",)``);
    #: :meth:`run` and the CLI / server refuse a backend without them before sampling.
    requires: ClassVar[tuple[str, ...]] = ()
    extract: Extractor = extract_answer
    equivalent: Callable[[str, str], bool] = answers_equivalent

    def __post_init__(self) -> None:
        check_callable("extract", self.extract, "str -> str or None")
        check_callable("equivalent", self.equivalent, "(str, str) -> bool")

    def sampling_params(self, params: SamplingParams) -> SamplingParams:
        """The parameters actually used (greedy overrides temperature and n)."""
        return params

    def init(self, prompt: Prompt, params: SamplingParams) -> State:
        """The initial state: nothing drawn yet."""
        return State(prompt=prompt, params=self.sampling_params(params))

    def done(self, state: State) -> bool:
        """True once N samples have been drawn."""
        return len(state.samples) >= state.params.n

    def step(
        self, rng: np.random.Generator | None, state: State, backend: Backend
    ) -> tuple[State, dict[str, Any]]:
        """Draw the remaining samples in one backend call (parallel sequences where supported)."""
        return self.draw(rng, state, backend, state.params.n - len(state.samples))

    def draw(
        self, rng: np.random.Generator | None, state: State, backend: Backend, need: int
    ) -> tuple[State, dict[str, Any]]:
        """``state`` with ``need`` more samples drawn in one backend call, and the step's
        trace record (``step``, ``samples``, ``errors``, ``completion_tokens``,
        ``wall_time_s``), which is appended to the trace.

        With a run seed (``params.seed``) the first draw uses it as given (a one-draw
        strategy's samples are the pool of that seed) and every later draw its own stream,
        ``derived_seed(seed, samples drawn so far)``: rounds never repeat one another, and
        a rerun with the same seed reproduces every round.

        Raises
        ------
        BackendError
            If the backend returns no sample at all (a decoding may return fewer than
            ``need``, e.g. priority sampling, but never none: the run would not progress)."""
        params = state.params.replace(n=need)
        if params.seed is not None and state.samples:
            params = params.replace(seed=derived_seed(params.seed, len(state.samples)))
        gen = generate(backend, state.prompt, params, rng)
        if need > 0 and not gen.samples:  # no progress: the run would ask again forever
            raise BackendError(f"backend {getattr(backend, 'name', type(backend).__name__)!r} "
                               f"returned no sample for n={need}")
        info = {
            "step": len(state.trace),
            "samples": len(gen.samples),
            "errors": sum(s.status == "error" for s in gen.samples),
            "completion_tokens": gen.usage.completion_tokens,
            "wall_time_s": gen.usage.wall_time_s,
        }
        new = state.model_copy(
            update={
                "samples": state.samples + gen.samples,
                "usage": state.usage + gen.usage,
                "trace": state.trace + (info,),
            }
        )
        return new, info

    def answers(self, state: State) -> tuple[str | None, ...]:
        """Extracted answer of each sample (:func:`~samplescale.verifiers.extract.sample_answer`:
        None for error samples; only a stated answer for samples cut by ``max_tokens``)."""
        return tuple(sample_answer(s, self.extract) for s in state.samples)

    @staticmethod
    def scorer_errors(state: State, errors: list[str]) -> State:
        """``state`` with a trace record of the samples its outcome scorer failed on
        (``{"event": "scorer_errors", "errors": [...]}``), or unchanged when none did."""
        if not errors:
            return state
        record = {"event": "scorer_errors", "errors": errors}
        return state.model_copy(update={"trace": state.trace + (record,)})

    def result(self, state: State, answers: tuple[str | None, ...], **fields: Any) -> Result:
        """The Result of ``state``: its samples, trace and usage, plus the selection ``fields``."""
        return Result(
            strategy=self.name,
            samples=state.samples,
            answers=answers,
            trace=state.trace,
            usage=state.usage,
            **fields,
        )

    def check_backend(self, backend: Backend) -> None:
        """Raise ConfigError if ``backend`` lacks a capability in :attr:`requires`."""
        from samplescale.backends.catalog import require

        for feature in self.requires:
            require(getattr(backend, "name", type(backend).__name__), backend.capabilities,
                    feature, f"strategy {self.name!r}")

    @abstractmethod
    def finalize(self, state: State) -> Result:
        """Select from the drawn samples and build the Result."""

    def run(
        self,
        backend: Backend,
        prompt: Prompt | str,
        params: SamplingParams | None = None,
        rng: np.random.Generator | None = None,
    ) -> Result:
        """Run the strategy to completion.

        Parameters
        ----------
        backend : Backend
        prompt : Prompt or str
            A string becomes a single user message.
        params : SamplingParams, optional
            Token-level parameters and N (``params.n``); defaults to ``SamplingParams()``.
        rng : numpy.random.Generator, optional
            Randomness when ``params.seed`` is None.

        Returns
        -------
        Result
            ``usage.wall_time_s`` is the wall time of the whole run (sampling and selection).

        Notes
        -----
        The run is one :func:`~samplescale.backends.base.prefix_session` of the backend:
        on a backend with prefix caching, prompts and partial solutions stay in its KV
        cache between steps (``usage.cached_prompt_tokens``), and are released at the end
        (llama.cpp frees their cells when the cache needs room or empties).

        Raises
        ------
        ConfigError
            If an argument has the wrong type (see :func:`check_run_args`).
        """
        start = time.perf_counter()
        check_run_args(backend, prompt, params, rng)
        self.check_backend(backend)
        p = Prompt.user(prompt) if isinstance(prompt, str) else prompt
        state = self.init(p, params or SamplingParams())
        with prefix_session(backend):  # partial solutions stay in the KV cache between steps
            while not self.done(state):
                state, _ = self.step(rng, state, backend)
        result = self.finalize(state)
        usage = result.usage.model_copy(update={"wall_time_s": time.perf_counter() - start})
        return result.model_copy(update={"usage": usage})
