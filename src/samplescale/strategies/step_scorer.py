"""Which process scorer a step-level strategy uses: the ``scorer`` / ``scorer_scale``
options of the search and SMC strategies, checked when a strategy is built and resolved
against a backend when it runs."""

from __future__ import annotations

from collections.abc import Callable

from samplescale.backends.base import Backend, LogitsModel
from samplescale.errors import ConfigError
from samplescale.types import Prompt
from samplescale.verifiers.process import PROCESS_SCORERS, CallableScorer, ProcessScorer
from samplescale.verifiers.scorers import Scale

ScorerSpec = ProcessScorer | str | Callable[[Prompt, tuple[str, ...]], float] | None



SCALES = ("probability", "log-probability", "reward")


def check_scorer(scorer: object, scale: object) -> None:
    """Check a step-level strategy's ``scorer`` and ``scorer_scale`` options.

    Raises
    ------
    ConfigError
        If ``scorer`` is not None, a :class:`ProcessScorer`, a callable or a string;
        ``scorer_scale`` is not None or one of :data:`SCALES`; or a callable scorer has
        no ``scorer_scale``.
    UnknownNameError
        If ``scorer`` is a string that is not a registered process scorer.
    """
    if scale is not None and scale not in SCALES:
        raise ConfigError(
            f"scorer_scale must be one of {', '.join(SCALES)} or None, got {scale!r:.40}"
        )
    if isinstance(scorer, str):
        PROCESS_SCORERS.get(scorer)
    elif scorer is not None and not isinstance(scorer, ProcessScorer):
        if not callable(scorer):
            raise ConfigError(
                "scorer must be a ProcessScorer, a registered name "
                f"({', '.join(PROCESS_SCORERS.names())}), a callable or None, "
                f"got {type(scorer).__name__} {scorer!r:.40}"
            )
        if scale is None:
            raise ConfigError(
                "a callable scorer needs scorer_scale: 'probability', 'log-probability' "
                "or 'reward'"
            )


def resolve_scorer(
    strategy: str, spec: ScorerSpec, scale: Scale | None, backend: Backend
) -> ProcessScorer:
    """The process scorer a step-level strategy uses on ``backend``.

    ``spec`` is a :class:`ProcessScorer` (used as is), a registered name (``"p-true"``,
    ``"judge"``), a callable ``(prompt, steps) -> float`` of the given ``scale``, or None:
    P(True) self-evaluation by the same model when it exposes next-token logits.

    Raises
    ------
    ConfigError
        If ``spec`` is None and ``backend`` exposes no next-token logits.
    """
    if isinstance(spec, ProcessScorer):
        return spec
    if isinstance(spec, str):
        return PROCESS_SCORERS.get(spec)(backend)
    if callable(spec):
        assert scale is not None  # checked when the strategy is built
        return CallableScorer(spec, scale)
    if isinstance(backend, LogitsModel):
        return PROCESS_SCORERS.get("p-true")(backend)
    raise ConfigError(
        f"strategy {strategy!r} needs a process scorer: backend {backend.name!r} exposes "
        "no next-token logits for the default P(True) self-evaluation; pass scorer=... "
        "(a ProcessScorer, 'judge', or a callable (prompt, steps) -> float with scorer_scale)"
    )
