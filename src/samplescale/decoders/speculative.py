"""Speculative sampling: a cheap draft model proposes tokens, the target model verifies them,
and the output is distributed exactly as the target's processed distribution.

Leviathan, Kalman & Matias (2023), "Fast Inference from Transformers via Speculative
Decoding", ICML; Chen, Borgeaud, Irving, Lespiau, Sifre & Jumper (2023), "Accelerating Large
Language Model Decoding with Speculative Sampling". Multi-draft selection: Khisti, Ebrahimi,
Dbouk, Behboodi, Memisevic & Louizos (2024), "Multi-Draft Speculative Sampling: Canonical
Architectures and Theoretical Limits" (importance-weighted selection, then single-draft
verification; here with the sampling-importance-resampling weights ``p / q``).

Both models' next-token distributions are processed with the same ``params``, history and
position (:func:`samplescale.sampling.pipeline.process`): ``q`` is the draft's, ``p`` the
target's. A drafted token ``x ~ q`` is accepted with probability ``min(1, p(x) / q(x))``;
on rejection a token is drawn from the residual ``norm(max(p - q, 0))``. The result is an
exact draw from ``p``. When ``p == q`` every token is accepted (probability 1), so the
residual (all zero) is never normalised; if rounding rejects a token whose residual is all
zero, the token is drawn from ``p``. At temperature 0 both are one-hot: the draft's argmax
is accepted only if it is the target's, otherwise the residual is one-hot on the target's
argmax.

Multi-draft (``drafts = m > 1``): at each block, ``m`` draft sequences are drawn i.i.d.
from the draft model. At each position the drafts that still agree with the accepted
prefix (``m' <= m`` of them, i.i.d. from ``q`` given that prefix) propose their tokens;
importance resampling picks one with probability proportional to ``w = p / q`` (uniformly
if all weights are 0), and single-draft verification runs against the exact law ``q~`` of
the picked token (:func:`samplescale.decoders.acceptance.selection_distribution`), so the
output is again exactly ``p``, and ``q~`` is closer to ``p`` than ``q`` is (a higher
acceptance rate). Computing ``q~``
enumerates the multisets of ``m' - 1`` draft tokens over the draft support of ``s``
tokens: ``s * C(s + m' - 2, m' - 1)`` operations, at most :data:`MAX_SELECTION_WORK`
(checked before generating, with ``s = top_k``, or the vocabulary when top-k is off;
``ConfigError`` beyond it). The target scores each distinct draft sequence that the
accepted prefix follows (one call each, at most ``m`` per block).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from samplescale.backends.base import Capabilities, LogitsModel
from samplescale.backends.decoding import SequenceBuilder
from samplescale.config import SamplingParams
from samplescale.decoders.acceptance import (
    accept_or_resample,
    draw,
    selection_cost,
    selection_distribution,
)
from samplescale.errors import ConfigError
from samplescale.rng import sample_generators
from samplescale.sampling import functional as F
from samplescale.sampling import pipeline
from samplescale.types import Generation, Prompt, Sample, Usage

MAX_SELECTION_WORK = 4_000_000
MAX_K = 32
MAX_DRAFTS = 16
TOKENIZER_PROBES = 256


@dataclass(frozen=True)
class SpeculativeStats:
    """Counters of speculative sampling.

    Attributes
    ----------
    drafted : int
        Draft tokens proposed (all drafts, also those never verified).
    verified : int
        Positions at which a proposed token was checked against the target.
    accepted : int
        Proposed tokens the target accepted.
    tokens : int
        Tokens generated (accepted, resampled and bonus tokens).
    target_calls, draft_calls : int
        Model calls (``logits_at``); a target call scores a whole draft sequence.
    """

    drafted: int = 0
    verified: int = 0
    accepted: int = 0
    tokens: int = 0
    target_calls: int = 0
    draft_calls: int = 0

    @property
    def acceptance_rate(self) -> float | None:
        """``accepted / verified`` in [0, 1]; None before any verification."""
        return self.accepted / self.verified if self.verified else None

    @property
    def tokens_per_target_call(self) -> float | None:
        """``tokens / target_calls``; None before any target call."""
        return self.tokens / self.target_calls if self.target_calls else None

    def __add__(self, other: SpeculativeStats) -> SpeculativeStats:
        return SpeculativeStats(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


def _check_tokenizers(target: LogitsModel, draft: LogitsModel) -> None:
    v = target.vocab_size
    if draft.vocab_size != v:
        raise ConfigError(
            f"target and draft must share a tokenizer: vocab_size {v} (target) != "
            f"{draft.vocab_size} (draft)"
        )
    for t in np.unique(np.linspace(0, v - 1, TOKENIZER_PROBES).astype(int)).tolist():
        a, b = (target.piece(t), target.is_end(t)), (draft.piece(t), draft.is_end(t))
        if a != b:
            raise ConfigError(
                f"target and draft must share a tokenizer: token {t} is {a[0]!r} "
                f"(end={a[1]}) for the target and {b[0]!r} (end={b[1]}) for the draft"
            )


def _int_in(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


class SpeculativeBackend:
    """A backend that samples the target model by speculative sampling with a draft model.

    Parameters
    ----------
    target, draft : LogitsModel
        Must share a tokenizer (same ``vocab_size``, and the same pieces and end tokens on
        :data:`TOKENIZER_PROBES` evenly spaced ids). May be the same object. The prompt is
        tokenised by the target and given to both.
    k : int
        Draft tokens per block (per draft sequence), in [1, 32].
    drafts : int
        Draft sequences per block, in [1, 16]; > 1 is multi-draft selection (module
        docstring).

    Attributes
    ----------
    capabilities : Capabilities
        ``logits=False`` (the wrapper exposes no next-token logits of its own, so
        logits-based decoders use the target directly), ``seeds=True``,
        ``parallel_n=False`` (samples are drawn one after another), ``chat`` as the target.
    stats : SpeculativeStats
        Counters over every call so far (:meth:`generate_with_stats` gives one call's).

    Raises
    ------
    ConfigError
        If ``k`` or ``drafts`` is out of range, or the tokenizers differ.
    """

    name = "speculative"

    def __init__(
        self, target: LogitsModel, draft: LogitsModel, k: int = 4, drafts: int = 1
    ) -> None:
        self.k = _int_in("k", k, 1, MAX_K)
        self.drafts = _int_in("drafts", drafts, 1, MAX_DRAFTS)
        _check_tokenizers(target, draft)
        self.target, self.draft = target, draft
        caps = getattr(target, "capabilities", None)
        # samples go through samplescale's pipeline, but this wrapper has no logits_at of its own
        self.capabilities = Capabilities(
            logits=False, seeds=True, parallel_n=False, chat=bool(getattr(caps, "chat", False))
        )
        self.stats = SpeculativeStats()
        self._lock = threading.Lock()

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """Draw ``params.n`` samples, each exactly from the target's processed distribution.

        See :meth:`generate_with_stats`.
        """
        return self.generate_with_stats(prompt, params, rng)[0]

    def generate_with_stats(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> tuple[Generation, SpeculativeStats]:
        """Draw ``params.n`` samples and return this call's counters.

        Returns
        -------
        (Generation, SpeculativeStats)
            Samples (``logprobs`` raw target, ``sampling_logprobs`` processed target, natural
            log); usage with ``model_calls = 1`` and ``completion_tokens`` the generated
            tokens; the counters (acceptance rate, tokens per target call).

        Raises
        ------
        ConfigError
            If ``params.decoding`` is not ``"independent"``, ``params.kl_sigma`` is set, or
            multi-draft selection would exceed :data:`MAX_SELECTION_WORK` (lower ``drafts`` or
            set ``top_k``).
        """
        start = time.perf_counter()
        if params.decoding != "independent" or params.kl_sigma is not None:
            what = "kl_sigma" if params.kl_sigma is not None else f"decoding={params.decoding!r}"
            raise ConfigError(
                f"speculative sampling draws independent samples at the params' temperature; "
                f"{what} is not supported (use decoding='independent' and no kl_sigma)"
            )
        if self.drafts > 1 and not params.greedy:
            v = self.target.vocab_size
            s = min(params.top_k, v) if params.top_k > 0 else v
            cost = selection_cost(s, self.drafts)
            if cost > MAX_SELECTION_WORK:
                raise ConfigError(
                    f"drafts={self.drafts} needs the exact selection law over a draft support "
                    f"of up to {s} tokens: {cost:,} operations > {MAX_SELECTION_WORK:,}; lower "
                    "drafts or set top_k (support size)"
                )
        ctx = self.target.tokenize_prompt(prompt)
        limits = [
            getattr(m, a, None) for m in (self.target, self.draft) for a in ("n_ctx", "n_ctx_train")
        ]
        room = min([x for x in limits if isinstance(x, int)], default=None)
        if room is not None and len(ctx) + params.max_tokens + self.k > room:
            raise ConfigError(
                f"prompt ({len(ctx)} tokens) + max_tokens ({params.max_tokens}) + k ({self.k}) "
                f"exceeds the models' context of {room} tokens; shorten the prompt or lower "
                "max_tokens"
            )
        samples, total = [], SpeculativeStats()
        for gen in sample_generators(params.seed, rng, params.n):
            sample, stats = self._one(ctx, params, gen)
            samples.append(sample)
            total = total + stats
        with self._lock:
            self.stats = self.stats + total
        usage = Usage(
            prompt_tokens=len(ctx),
            completion_tokens=sum(s.num_tokens for s in samples),
            model_calls=1,
            wall_time_s=time.perf_counter() - start,
        )
        return Generation(samples=tuple(samples), usage=usage), total

    # ------------------------------------------------------------------ one sample
    def _one(
        self, ctx: list[int], params: SamplingParams, gen: np.random.Generator
    ) -> tuple[Sample, SpeculativeStats]:
        seq = SequenceBuilder(self.target.piece, self.target.is_end, params.stop, params.max_tokens)
        c = {"drafted": 0, "verified": 0, "accepted": 0, "target_calls": 0, "draft_calls": 0}
        while not seq.done:
            hist = list(seq.token_ids)
            depth = min(self.k, params.max_tokens - len(hist))
            qcache: dict[tuple[int, ...], np.ndarray] = {}
            drafts = [
                self._draft(ctx, hist, depth, params, gen, qcache, c) for _ in range(self.drafts)
            ]
            c["drafted"] += sum(len(d) for d in drafts)
            self._verify(ctx, hist, drafts, qcache, params, gen, seq, c)
        return seq.to_sample(), SpeculativeStats(tokens=len(seq.token_ids), **c)

    def _processed(
        self, logits: np.ndarray, params: SamplingParams, history: list[int]
    ) -> np.ndarray:
        """Processed natural-log probabilities, shape (V,), float64."""
        proc = pipeline.process(logits, params, [history], len(history))
        return F.log_softmax(proc.astype(np.float64))[0]

    def _draft(
        self,
        ctx: list[int],
        hist: list[int],
        depth: int,
        params: SamplingParams,
        gen: np.random.Generator,
        qcache: dict[tuple[int, ...], np.ndarray],
        c: dict[str, int],
    ) -> list[int]:
        """One draft sequence of at most ``depth`` tokens (ends early at an end token); the
        draft's processed probabilities are cached per prefix in ``qcache``."""
        toks: list[int] = []
        while len(toks) < depth:
            key = tuple(toks)
            if key not in qcache:
                logits = self.draft.logits_at([*ctx, *hist, *toks], 1)
                c["draft_calls"] += 1
                qcache[key] = np.exp(self._processed(logits, params, hist + toks))
            t = draw(qcache[key], gen)
            toks.append(t)
            if self.draft.is_end(t):
                break
        return toks

    def _verify(
        self,
        ctx: list[int],
        hist: list[int],
        drafts: Sequence[list[int]],
        qcache: dict[tuple[int, ...], np.ndarray],
        params: SamplingParams,
        gen: np.random.Generator,
        seq: SequenceBuilder,
        c: dict[str, int],
    ) -> None:
        """Verify one block position by position, pushing the output tokens into ``seq``."""
        scored: dict[tuple[int, ...], np.ndarray] = {}
        match = list(range(len(drafts)))  # drafts that agree with the accepted prefix
        acc: list[int] = []
        while True:
            i = len(acc)
            owner = tuple(drafts[match[0]])
            if owner not in scored:
                scored[owner] = self.target.logits_at([*ctx, *hist, *owner], len(owner) + 1)
                c["target_calls"] += 1
            row = scored[owner][i : i + 1]
            logp = self._processed(row, params, hist + acc)
            p = np.exp(logp)
            raw = F.log_softmax(row)[0]
            alive = [j for j in match if len(drafts[j]) > i]
            if not alive:  # every proposal accepted: one more token from the target
                t = draw(p, gen)
                seq.push(t, float(raw[t]), float(logp[t]))
                return
            q = qcache[tuple(acc)]
            cands = [drafts[j][i] for j in alive]
            if len(alive) == 1:
                pick, qt = cands[0], q
            else:
                w = p[cands] / q[cands]
                pick = cands[draw(w if w.sum() > 0 else np.ones(len(w)), gen)]
                qt = selection_distribution(p, q, len(alive))
            t, ok = accept_or_resample(p, qt, pick, gen)
            c["verified"] += 1
            c["accepted"] += ok
            if seq.push(t, float(raw[t]), float(logp[t])) or not ok:
                return
            acc.append(t)
            match = [j for j in alive if drafts[j][i] == t]
