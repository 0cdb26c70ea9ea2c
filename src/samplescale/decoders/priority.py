"""Priority sampling: unique samples in decreasing model probability.

Grubisic, Cummins, Seeker & Leather (2024), "Priority Sampling of Large Language Models for
Compilers", EuroMLSys.

Method
------
The search keeps an *augmented search tree*: every prefix of an already generated sequence
is a node, and every token with which no generated sequence continues a node yet is an
*unexpanded branch*. Its priority is the probability of the node's prefix followed by that
token under the processed next-token distributions of ``params``
(:func:`samplescale.sampling.pipeline.process`: penalties, truncations, temperature), i.e.
the product of the processed per-token probabilities. Each *expansion* takes the unexpanded
branch of highest priority and completes it greedily (the argmax of the processed
distribution at every step, ties to the lowest token id) until end-of-sequence, a stop string
or ``max_tokens``. Every expansion yields a sequence that differs from all earlier ones (it
leaves the tree at a branch never taken before). The first expansion is the greedy sequence.
Tokens that the truncations remove have probability 0 and are never expanded, so fewer than
``n`` sequences come back when the processed distribution has fewer (temperature 0: one).

A node holds its best :data:`CHUNK` unexpanded children; when they run out, the node's
next-token distribution is computed again (one more model call) for the next ones. Equal
priorities are broken by the lexicographically smaller token sequence.

Regular-expression constraint
-----------------------------
With ``pattern``, a token is a branch only if the generated text stays a possible prefix of a
full match (partial matching of the ``regex`` package), and a sequence is finished only if
its text (stop string cut off) fully matches; other branches are pruned. Priorities stay the
unconstrained processed probabilities, so the samples are the most probable *matching*
sequences.

Exact order (``exact=True``)
----------------------------
A completed sequence is returned only once its probability is >= the highest priority still
unexpanded; the output is then exactly the top-``n`` sequences (of the processed
distribution, matching ``pattern``), in decreasing probability.

*Proof.* Let ``B`` be the highest unexpanded priority. (i) Every sequence ``s`` of positive
probability not yet completed leaves the tree at some node ``v`` by a token ``t`` that is
an unexpanded branch of ``v`` (the root is a node; follow ``s`` until it leaves the
completed paths). Its probability is ``P(v) * p(t | v) * (further factors <= 1) <=
P(v) * p(t | v) <= B``. A node exposes only its best unexpanded child to the queue, but its
other unexpanded children have priorities no larger, so ``B`` is still the maximum over all
unexpanded branches. (ii) Hence a completed sequence with probability ``>= B`` is at least
as probable as every sequence not yet completed, and completed sequences are returned in
decreasing probability, so each returned sequence is at least as probable as every sequence
returned after it or never returned: the returned list is a top-``n`` list in order. Pruned
branches hold no matching sequence, so (i) holds among matching sequences. Sums of natural-
log probabilities keep this exactly in floating point (adding a value <= 0 never increases a
rounded sum). When ``max_expansions`` runs out, only the certified sequences are returned
(a top-``m`` list with ``m < n``).
"""

from __future__ import annotations

import codecs
import heapq
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from samplescale.backends.base import LogitsModel
from samplescale.backends.decoding import SequenceBuilder
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, MissingDependencyError
from samplescale.sampling import functional as F
from samplescale.sampling import pipeline
from samplescale.sampling.stop import find_stop
from samplescale.types import Generation, Prompt, Sample, Usage

CHUNK = 32
MAX_EXPANSIONS = 1_000_000


@dataclass
class _Node:
    """A prefix on a generated sequence; ``cands`` are its best unexpanded children as
    ``(processed logprob, raw logprob, token)``, best first."""

    tokens: tuple[int, ...]
    logp: float
    raw: tuple[float, ...]
    samp: tuple[float, ...]
    data: bytes
    cands: list[tuple[float, float, int]] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)
    complete: bool = False


def _text(data: bytes, final: bool) -> str:
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=final)


def _compile(pattern: str | None) -> Any:
    if pattern is None:
        return None
    try:
        import regex
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "priority sampling with a pattern needs the 'regex' package (pip install regex)"
        ) from exc
    try:
        return regex.compile(pattern)
    except regex.error as exc:
        raise ConfigError(f"pattern is not a valid regular expression: {exc}") from exc


class _Search:
    def __init__(
        self, model: LogitsModel, ctx: list[int], params: SamplingParams, pattern: Any
    ) -> None:
        self.model, self.ctx, self.params, self.pattern = model, ctx, params, pattern
        self.calls = 0

    # ------------------------------------------------------------ one node's children
    def _scores(self, tokens: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        logits = self.model.logits_at([*self.ctx, *tokens], 1)
        self.calls += 1
        raw = F.log_softmax(logits)[0].astype(np.float64)
        proc = pipeline.process(logits, self.params, [list(tokens)], len(tokens))
        return F.log_softmax(proc)[0].astype(np.float64), raw

    def _ends(self, node: _Node, t: int) -> bool:
        if self.model.is_end(t) or len(node.tokens) + 1 >= self.params.max_tokens:
            return True
        stops = self.params.stop
        return (
            bool(stops)
            and find_stop(_text(node.data + self.model.piece(t), False), stops) is not None
        )

    def _viable(self, node: _Node, t: int) -> bool:
        if self.pattern is None:
            return True
        end = self.model.is_end(t)
        final = end or len(node.tokens) + 1 >= self.params.max_tokens
        text = _text(node.data if end else node.data + self.model.piece(t), final)
        stops = self.params.stop
        cut = find_stop(text, stops) if stops else None
        if cut is not None:
            text, final = text[:cut], True
        if final:
            return self.pattern.fullmatch(text) is not None
        if self.pattern.fullmatch(text, partial=True) is not None:
            return True
        # a stop string that has begun may still cut the text back to a full match
        return any(
            text.endswith(s[:j]) and self.pattern.fullmatch(text[: len(text) - j]) is not None
            for s in stops
            for j in range(1, len(s))
        )

    def _fill(self, node: _Node) -> None:
        proc, raw = self._scores(node.tokens)
        finite = np.flatnonzero(np.isfinite(proc))
        order = finite[np.argsort(-proc[finite], kind="stable")]  # ties: lower id first
        node.cands, node.complete = [], True
        for t in order.tolist():
            if t in node.taken or not self._viable(node, t):
                continue
            if len(node.cands) == CHUNK:
                node.complete = False
                break
            node.cands.append((float(proc[t]), float(raw[t]), t))

    def _take(self, node: _Node) -> tuple[float, float, int]:
        best = node.cands.pop(0)
        node.taken.add(best[2])
        if not node.cands and not node.complete:
            self._fill(node)
        return best

    # ------------------------------------------------------------ the search
    def _push(self, heap: list, node: _Node) -> None:
        if node.cands:
            lp, _, t = node.cands[0]
            heapq.heappush(heap, (-(node.logp + lp), (*node.tokens, t), node))

    def _descend(self, node: _Node, heap: list) -> tuple[float, tuple[int, ...], Sample] | None:
        """Complete ``node``'s best unexpanded branch greedily; None at a pruned dead end."""
        while True:
            lp, raw, t = self._take(node)
            self._push(heap, node)
            tokens, logp = (*node.tokens, t), node.logp + lp
            if self._ends(node, t):
                return logp, tokens, self._sample(tokens, (*node.raw, raw), (*node.samp, lp))
            child = _Node(
                tokens, logp, (*node.raw, raw), (*node.samp, lp), node.data + self.model.piece(t)
            )
            self._fill(child)
            if not child.cands:
                return None
            node = child

    def _sample(
        self, tokens: tuple[int, ...], raw: tuple[float, ...], samp: tuple[float, ...]
    ) -> Sample:
        seq = SequenceBuilder(
            self.model.piece, self.model.is_end, self.params.stop, self.params.max_tokens
        )
        for t, r, s in zip(tokens, raw, samp):
            seq.push(t, r, s)
        return seq.to_sample()

    def run(self, n: int, exact: bool, max_expansions: int) -> list[Sample]:
        root = _Node((), 0.0, (), (), b"")
        self._fill(root)
        heap: list = []
        self._push(heap, root)
        found: list = []
        out: list[Sample] = []
        expansions = 0
        while len(out) < n and heap and expansions < max_expansions:
            expansions += 1
            done = self._descend(heapq.heappop(heap)[2], heap)
            if done is not None:
                heapq.heappush(found, (-done[0], done[1], done[2]))
            while found and len(out) < n and (not exact or not heap or -found[0][0] >= -heap[0][0]):
                out.append(heapq.heappop(found)[2])
        return out


def priority_generate(
    model: LogitsModel,
    prompt: Prompt,
    params: SamplingParams,
    rng: np.random.Generator | None = None,
    *,
    pattern: str | None = None,
    exact: bool = False,
    max_expansions: int = 1024,
) -> Generation:
    """Up to ``params.n`` distinct sequences by priority sampling (Grubisic et al., 2024).

    See the module docstring for the method, the pattern constraint and the proof of the
    exact order.

    Parameters
    ----------
    model : LogitsModel
        Scores next tokens (``ToyLM``, ``LlamaCppBackend``).
    prompt : Prompt
    params : SamplingParams
        ``n`` (samples wanted), the token-level transforms that define the processed
        distribution, ``max_tokens`` and ``stop``. ``seed`` and ``decoding`` are not used.
    rng : numpy.random.Generator, optional
        Not used: priority sampling is deterministic (accepted for the decoders' common
        signature).
    pattern : str, optional
        Regular expression (``regex`` syntax) that every returned text must fully match.
    exact : bool
        Certify the order: return exactly the top-``n`` sequences in decreasing processed
        probability. Without it (the paper's method), sequences come back in the order the
        expansions find them: distinct, the first greedy, but not necessarily the top ``n``.
    max_expansions : int
        Most expansions (popped branches), in [1, 1_000_000]; each costs at most
        ``max_tokens`` model calls (plus one per node whose :data:`CHUNK` children ran out).

    Returns
    -------
    Generation
        At most ``n`` samples, distinct as token sequences (fewer when the processed
        distribution, the pattern or ``max_expansions`` allow fewer). ``logprobs`` are the
        raw model's natural-log token probabilities, ``sampling_logprobs`` the processed
        ones (their sum is the sequence's priority, natural log). Usage: ``prompt_tokens``
        the prompt's tokens; ``completion_tokens`` every generated token the model scored
        (one per model call after the first: the tree shares prefixes, so this can be less
        than the samples' total length, and it includes pruned and uncertified branches);
        ``model_calls`` the number of next-token computations.

    Raises
    ------
    ConfigError
        If ``max_expansions`` is out of range or ``pattern`` does not compile.
    MissingDependencyError
        If ``pattern`` is given and the ``regex`` package is missing.
    """
    start = time.perf_counter()
    if (
        isinstance(max_expansions, bool)
        or not isinstance(max_expansions, int)
        or not 1 <= max_expansions <= MAX_EXPANSIONS
    ):
        raise ConfigError(
            f"max_expansions must be an integer in [1, {MAX_EXPANSIONS}], got {max_expansions!r}"
        )
    ctx = model.tokenize_prompt(prompt)
    search = _Search(model, ctx, params, _compile(pattern))
    samples = search.run(params.n, exact, max_expansions)
    usage = Usage(
        prompt_tokens=len(ctx),
        completion_tokens=search.calls - 1,
        model_calls=search.calls,
        wall_time_s=time.perf_counter() - start,
    )
    return Generation(samples=tuple(samples), usage=usage)
