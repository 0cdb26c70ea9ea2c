"""A generic sequential Monte Carlo (SMC) engine: weighted particles, a proposal, potentials.

The target over complete sequences ``x`` (of tokens, or of reasoning steps) is

    pi(x) = p(x) Phi(x) / Z,        Z = sum_x p(x) Phi(x),

where ``p`` is a base model and ``Phi`` a non-negative potential. A particle is extended one
unit at a time by a proposal ``q``; a twist (an intermediate potential ``psi_t`` of partial
sequences, equal to ``Phi`` once a sequence is complete) guides it. Each extension
``x_{1:t-1} -> x_{1:t}`` multiplies the particle's weight by

    log w_t = log p(x_t | x_{<t}) - log q(x_t | x_{<t}) + log psi_t(x_{1:t}) - log psi_{t-1}(x_{1:t-1})

(the standard incremental weight; the twists telescope, so a complete particle carries
``p(x) Phi(x) / (q(x) psi_0)``). Finished particles are absorbing: they are not extended and
their weight does not change. After each step the effective sample size (ESS) is computed;
when ``ESS <= ess_threshold * N`` the particles are resampled and their weights reset to
equal. The running estimate of the normalising constant is

    log Z_hat = log psi_0 + sum_{resampling times r} (logsumexp(lw_r) - log N) + logsumexp(lw) - log N

with ``lw`` the log-weights since the last resampling. With any unbiased resampling scheme
(:mod:`samplescale.smc.resampling`), also when resampling is triggered adaptively by the ESS,
``E[Z_hat] = Z`` (Del Moral, 2004; Whiteley, Lee & Heine, 2016). References: Doucet, de
Freitas & Gordon (2001); Chopin & Papaspiliopoulos (2020), "An Introduction to Sequential
Monte Carlo"; Andrieu, Doucet & Holenstein (2010) for conditional SMC (particle Gibbs).

The engine is pure: the proposal and the potential are callables, the particle system is an
immutable record, and every random draw comes from the generator passed in. It does no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import numpy as np

from samplescale.errors import ConfigError
from samplescale.smc.resampling import RESAMPLERS, effective_sample_size, normalise, resample

S = TypeVar("S")


@dataclass(frozen=True)
class Extension(Generic[S]):
    """One proposed extension of a particle.

    Attributes
    ----------
    state : S
        The extended partial (or complete) sequence.
    log_p : float
        Natural-log probability of the new unit under the target's base model ``p``.
    log_q : float
        Natural-log probability of the new unit under the proposal that drew it. Equal to
        ``log_p`` when the proposal is the base model itself.
    done : bool
        True when ``state`` is complete (it is not extended again).
    """

    state: S
    log_p: float
    log_q: float
    done: bool


Proposal = Callable[[np.random.Generator, Sequence[S]], Sequence[Extension[S]]]
"""Draw one extension for each of the given states (same order; a batch, so a backend can
serve them together)."""

Potential = Callable[[Sequence[S]], Sequence[float]]
"""Natural-log potential of each state: the twist ``log psi_t`` of a partial sequence, the
final ``log Phi`` of a complete one; ``-inf`` gives the particle weight zero, NaN and +inf are
errors."""


@dataclass(frozen=True)
class ParticleSystem(Generic[S]):
    """An immutable set of ``N`` weighted particles.

    Attributes
    ----------
    initial : S
        The state every particle started from.
    paths : tuple of tuple of Extension, length N
        Each particle's extensions so far, in order (its genealogy after resampling).
    log_weights : tuple of float, length N
        Natural-log weights accumulated since the last resampling (``-inf``: weight zero).
    log_potentials : tuple of float, length N
        Current log potential of each particle's state.
    log_z_base : float
        ``log psi_0`` plus the ``logsumexp(lw) - log N`` of every resampling so far.
    steps : int
        Number of steps taken.
    """

    initial: S
    paths: tuple[tuple[Extension[S], ...], ...]
    log_weights: tuple[float, ...]
    log_potentials: tuple[float, ...]
    log_z_base: float
    steps: int = 0

    @property
    def n(self) -> int:
        """Number of particles N."""
        return len(self.paths)

    @property
    def states(self) -> tuple[S, ...]:
        """Each particle's current state, length N."""
        return tuple(p[-1].state if p else self.initial for p in self.paths)

    @property
    def done(self) -> tuple[bool, ...]:
        """Whether each particle's sequence is complete, length N."""
        return tuple(bool(p) and p[-1].done for p in self.paths)

    @property
    def alive(self) -> tuple[bool, ...]:
        """Whether each particle has positive weight, length N."""
        return tuple(math.isfinite(lw) for lw in self.log_weights)

    @property
    def active(self) -> list[int]:
        """Indices of the particles the next step extends (alive and not complete)."""
        return [i for i, (d, a) in enumerate(zip(self.done, self.alive)) if a and not d]

    @property
    def finished(self) -> bool:
        """True when no particle can be extended (all complete or of weight zero)."""
        return not self.active

    @property
    def log_evidence(self) -> float:
        """Natural-log estimate of the normalising constant Z (``-inf`` if every weight is 0)."""
        lw = np.asarray(self.log_weights)
        top = lw.max()
        if not np.isfinite(top):
            return -math.inf
        lse = float(top + np.log(np.exp(lw - top).sum()))
        return self.log_z_base + lse - math.log(self.n)

    @property
    def ess(self) -> float:
        """Effective sample size of the current weights, in [1, N] (0.0 if all are zero)."""
        return effective_sample_size(np.asarray(self.log_weights))

    def weights(self) -> np.ndarray:
        """Normalised weights, shape (N,), float64.

        Raises
        ------
        ConfigError
            If every particle has weight zero.
        """
        return normalise(np.asarray(self.log_weights))


def start(initial: S, n: int, potential: Potential[S]) -> ParticleSystem[S]:
    """``n`` particles at ``initial`` with equal weights.

    Raises
    ------
    ConfigError
        If ``n < 1`` or the potential of ``initial`` is not finite.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"number of particles must be an integer >= 1, got {n!r}")
    (psi0,) = _potentials(potential, [initial])
    if not math.isfinite(psi0):
        raise ConfigError(f"the potential of the initial state must be finite, got {psi0}")
    return ParticleSystem(
        initial=initial,
        paths=((),) * n,
        log_weights=(0.0,) * n,
        log_potentials=(psi0,) * n,
        log_z_base=psi0,
    )


def check_threshold(ess_threshold: float) -> float:
    """``ess_threshold`` as a float in [0, 1], else ConfigError naming the range."""
    if isinstance(ess_threshold, bool) or not isinstance(ess_threshold, (int, float)):
        raise ConfigError(f"ess_threshold must be a number in [0, 1], got {ess_threshold!r}")
    if not 0.0 <= ess_threshold <= 1.0:
        raise ConfigError(f"ess_threshold must be in [0, 1], got {ess_threshold}")
    return float(ess_threshold)


def step(
    system: ParticleSystem[S],
    proposal: Proposal[S],
    potential: Potential[S],
    rng: np.random.Generator,
    *,
    resampling: str = "multinomial",
    ess_threshold: float = 0.5,
    reference: Sequence[Extension[S]] | None = None,
) -> tuple[ParticleSystem[S], dict[str, Any]]:
    """Extend every active particle by one unit, reweight, and resample if the ESS is low.

    Parameters
    ----------
    system : ParticleSystem
    proposal : callable (Generator, states) -> extensions
    potential : callable (states) -> log potentials
    rng : numpy.random.Generator
        Passed to the proposal, then used for resampling.
    resampling : str
        Registered scheme: multinomial, residual, stratified or systematic.
    ess_threshold : float in [0, 1]
        Resample when ``ESS <= ess_threshold * N`` and some particle is still active:
        1.0 resamples after every step, 0.0 never.
    reference : sequence of Extension, optional
        Conditional SMC (particle Gibbs): particle 0 follows this complete path (its
        ``t``-th extension at step ``t``) instead of the proposal, and keeps itself as
        ancestor at every resampling; the other ``N - 1`` ancestors are drawn by
        conditional multinomial resampling from all ``N`` weights (Andrieu, Doucet &
        Holenstein, 2010).

    Returns
    -------
    ParticleSystem
        The new system (``system`` is unchanged).
    dict
        Trace record: ``step``, ``extended`` (particles extended), ``ess`` (before
        resampling), ``resampled``, ``log_evidence`` (natural log, after the step).

    Raises
    ------
    ConfigError
        If the system is finished, the threshold or scheme is invalid, ``reference`` is not
        a complete path, the proposal returns the wrong number of extensions, or an
        extension's log-probabilities or potential are NaN or +inf.
    """
    threshold = check_threshold(ess_threshold)
    if resampling not in RESAMPLERS:
        RESAMPLERS.get(resampling)  # raises, listing the schemes
    if system.finished:
        raise ConfigError("the particle system is finished: no particle can be extended")
    if reference is not None and (not reference or not reference[-1].done):
        raise ConfigError("reference must be a complete path (its last extension done)")
    t = system.steps
    active = system.active
    ref_moves = reference is not None and 0 in active
    drawn = [i for i in active if not (ref_moves and i == 0)]
    exts = list(proposal(rng, [system.states[i] for i in drawn])) if drawn else []
    if len(exts) != len(drawn):
        raise ConfigError(f"the proposal returned {len(exts)} extensions for {len(drawn)} states")
    if ref_moves:
        assert reference is not None
        if t >= len(reference):
            raise ConfigError("the reference path ended before particle 0 was complete")
        drawn, exts = [0, *drawn], [reference[t], *exts]
    pots = _potentials(potential, [e.state for e in exts])
    paths = list(system.paths)
    lw = np.asarray(system.log_weights, dtype=np.float64).copy()
    psi = list(system.log_potentials)
    for i, e, pot in zip(drawn, exts, pots):
        lp, lq = _finite_logprob(e.log_p, "log_p"), _finite_logprob(e.log_q, "log_q")
        if lq == -math.inf:
            raise ConfigError("an extension has log_q = -inf: the proposal cannot have drawn it")
        lw[i] += lp - lq + pot - psi[i] if pot > -math.inf and lp > -math.inf else -math.inf
        paths[i] = (*paths[i], e)
        psi[i] = pot
    new = replace(
        system,
        paths=tuple(paths),
        log_weights=tuple(float(x) for x in lw),
        log_potentials=tuple(psi),
        steps=t + 1,
    )
    ess = new.ess
    resampled = (not new.finished) and ess <= threshold * new.n
    if resampled:
        new = _resample(new, resampling, rng, conditional=reference is not None)
    info = {
        "step": t,
        "extended": len(drawn),
        "ess": ess,
        "resampled": resampled,
        "log_evidence": new.log_evidence,
    }
    return new, info


def _resample(
    system: ParticleSystem[S], scheme: str, rng: np.random.Generator, conditional: bool
) -> ParticleSystem[S]:
    w = system.weights()
    if conditional:
        ancestors = np.concatenate([[0], rng.choice(system.n, size=system.n - 1, p=w)])
    else:
        ancestors = resample(scheme, w, rng)
    return replace(
        system,
        paths=tuple(system.paths[a] for a in ancestors),
        log_weights=(0.0,) * system.n,
        log_potentials=tuple(system.log_potentials[a] for a in ancestors),
        log_z_base=system.log_evidence,  # the estimate so far becomes the new base
    )


def run(
    initial: S,
    n: int,
    proposal: Proposal[S],
    potential: Potential[S],
    rng: np.random.Generator,
    *,
    resampling: str = "multinomial",
    ess_threshold: float = 0.5,
    max_steps: int = 10_000,
    reference: Sequence[Extension[S]] | None = None,
) -> tuple[ParticleSystem[S], list[dict[str, Any]]]:
    """Run SMC from ``n`` particles at ``initial`` until every particle is complete.

    Parameters are those of :func:`start` and :func:`step`; ``max_steps`` bounds the number
    of steps (a safety limit: a proposal whose sequences never end stops there).

    Returns
    -------
    ParticleSystem
        The final system: ``weights()``, ``log_evidence``, ``states``, ``paths``.
    list of dict
        One trace record per step.

    Raises
    ------
    ConfigError
        As :func:`start` and :func:`step`, or if ``max_steps < 1``.
    """
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    system = start(initial, n, potential)
    infos = []
    while not system.finished and system.steps < max_steps:
        system, info = step(
            system,
            proposal,
            potential,
            rng,
            resampling=resampling,
            ess_threshold=ess_threshold,
            reference=reference,
        )
        infos.append(info)
    return system, infos


def select(system: ParticleSystem[S], rng: np.random.Generator) -> int:
    """Draw one particle index with probability equal to its normalised weight.

    Raises
    ------
    ConfigError
        If every particle has weight zero.
    """
    return int(rng.choice(system.n, p=system.weights()))


def _potentials(potential: Potential[S], states: list[S]) -> list[float]:
    if not states:
        return []
    values = [float(v) for v in potential(states)]
    if len(values) != len(states):
        raise ConfigError(f"the potential returned {len(values)} values for {len(states)} states")
    for v in values:
        if math.isnan(v) or v == math.inf:
            raise ConfigError(f"a log potential must be finite or -inf, got {v}")
    return values


def _finite_logprob(value: float, name: str) -> float:
    v = float(value)
    if math.isnan(v) or v > 0.0:
        raise ConfigError(f"an extension's {name} must be a natural-log probability <= 0, got {v}")
    return v
