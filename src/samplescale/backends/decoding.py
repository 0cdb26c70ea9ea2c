"""Per-sequence bookkeeping while decoding: text, stop strings, finish reason."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Generator, Sequence

import numpy as np

from samplescale.backends.base import Capabilities, TextDelta
from samplescale.config import SamplingParams
from samplescale.constraints.matcher import RowMatchers
from samplescale.errors import ConfigError
from samplescale.sampling import pipeline
from samplescale.sampling.arithmetic import ArithmeticCodes
from samplescale.sampling.stop import find_stop
from samplescale.types import FinishReason, Sample

# step(active, tokens, k): feed ``tokens[j]`` (the k-th generated token, 0-based) of each
# active row ``active[j]`` to the model; return the next-token logits, shape (len(active), V)
Step = Callable[[list[int], list[int], int], np.ndarray]


class SequenceBuilder:
    """Accumulates one sequence's tokens and decides when it is finished.

    Parameters
    ----------
    piece : callable int -> bytes
        The byte string of a token (UTF-8 may split across tokens; decoding is incremental).
    is_end : callable int -> bool
        True for end-of-generation tokens (their text is not added).
    stops : sequence of str
        Stop strings (searched in the decoded text, also across token boundaries).
    max_tokens : int
        Generated-token limit; reaching it finishes with ``"length"``.
    """

    def __init__(
        self,
        piece: Callable[[int], bytes],
        is_end: Callable[[int], bool],
        stops: Sequence[str],
        max_tokens: int,
    ) -> None:
        self._piece = piece
        self._is_end = is_end
        self._stops = tuple(stops)
        self._max_tokens = max_tokens
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.token_ids: list[int] = []
        self.logprobs: list[float] = []
        self.sampling_logprobs: list[float] = []
        self.finish_reason: FinishReason | None = None
        self._sent = 0  # length of the text handed out by take_delta

    @property
    def done(self) -> bool:
        """True once the sequence has finished."""
        return self.finish_reason is not None

    def push(self, token: int, logprob: float, sampling_logprob: float) -> bool:
        """Append a generated token; return True when the sequence is now finished."""
        self.token_ids.append(int(token))
        self.logprobs.append(float(logprob))
        self.sampling_logprobs.append(float(sampling_logprob))
        if self._is_end(token):
            self.text += self._decoder.decode(b"", final=True)
            self.finish_reason = "stop"
            return True
        before = len(self.text)
        self.text += self._decoder.decode(self._piece(token))
        if self._stops:
            cut = find_stop(self.text, self._stops, before)
            if cut is not None:
                self.text = self.text[:cut]
                self.finish_reason = "stop"
                return True
        if len(self.token_ids) >= self._max_tokens:
            self.text += self._decoder.decode(b"", final=True)
            self.finish_reason = "length"
            return True
        return False

    def end(self) -> None:
        """Finish with ``"stop"`` because the source ran out (e.g. a scripted reply ended)."""
        if not self.done:
            self.text += self._decoder.decode(b"", final=True)
            self.finish_reason = "stop"

    def cancel(self) -> None:
        """Finish unfinished with ``"cancelled"`` (enough other rows of the call finished)."""
        if not self.done:
            self.text += self._decoder.decode(b"", final=True)
            self.finish_reason = "cancelled"

    def take_delta(self) -> str:
        """The text decoded since the last call that is final (possibly empty).

        Until the sequence is done, a tail of the text that is a proper prefix of a stop
        string is held back (the next tokens may complete the stop string, which is then
        cut); bytes of an incomplete UTF-8 character are held back by the decoder. Joined,
        the returned pieces equal the final ``text``.
        """
        end = len(self.text)
        if not self.done:
            end -= _stop_prefix(self.text, self._stops)
        if end <= self._sent:
            return ""
        delta, self._sent = self.text[self._sent : end], end
        return delta

    def to_sample(self) -> Sample:
        """The finished sample."""
        return Sample(
            text=self.text,
            token_ids=tuple(self.token_ids),
            logprobs=tuple(self.logprobs),
            sampling_logprobs=tuple(self.sampling_logprobs),
            finish_reason=self.finish_reason or "length",
        )


def _stop_prefix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
    for k in range(min(len(text), max(map(len, stops), default=1) - 1), 0, -1):
        if any(s.startswith(text[-k:]) for s in stops if len(s) > k):
            return k
    return 0


class FinishQuota:
    """Early exit for one call: once ``m`` of its rows have finished with ``"stop"``, its
    unfinished rows are cancelled (short-m@k, Hassid et al. 2025).

    Shared by the rounds of a call (:func:`decode_rows`); a row cut by ``max_tokens``
    (``"length"``) is not a finished chain and does not count.

    Parameters
    ----------
    m : int
        Rows that must finish, in ``[1, k]``.
    k : int
        Rows of the call (``params.n``).

    Attributes
    ----------
    finished : int
        Rows finished with ``"stop"`` so far (may exceed ``m`` when several finish in the
        step that reaches it).

    Raises
    ------
    ConfigError
        If ``m`` is not an integer in ``[1, k]`` (the message names ``m`` and the range).
    """

    def __init__(self, m: int, k: int) -> None:
        self.m = check_m(m, k)
        self.finished = 0

    @property
    def reached(self) -> bool:
        """True once ``m`` rows have finished."""
        return self.finished >= self.m


def check_m(m: object, k: int) -> int:
    """``m`` (finished chains to wait for) as an int in ``[1, k]``, else
    :class:`ConfigError` naming ``m``, ``k`` and the range (a bool or float refused)."""
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m <= k:
        raise ConfigError(
            f"m must be an integer in [1, k] = [1, {k}] (k = n, the chains decoded "
            f"together), got {m!r}"
        )
    return int(m)


def check_decoding(params: SamplingParams) -> None:
    """Raise if ``params.decoding`` is not one a backend's own ``generate`` runs.

    Priority sampling (a search over prefixes) and KL-guided temperature (two contexts per
    token) run through :func:`samplescale.decoders.generate`, which the strategies use.

    Raises
    ------
    ConfigError
        If ``params.decoding == "priority"`` or ``params.kl_sigma`` is set.
    """
    what = "decoding='priority'" if params.decoding == "priority" else None
    what = "kl_sigma" if params.kl_sigma is not None else what
    if what is not None:
        raise ConfigError(
            f"{what} runs through samplescale.decoders.generate(backend, prompt, params), "
            "not backend.generate"
        )


def check_constraint(params: SamplingParams, capabilities: Capabilities, backend: str) -> None:
    """Raise if ``params.constraint`` is set and the backend cannot honour it.

    Raises
    ------
    ConfigError
        Naming the backend, when ``capabilities.constraints`` is False.
    """
    if params.constraint is not None and not capabilities.constraints:
        raise ConfigError(
            f"the {backend} backend cannot constrain generation (constraint "
            f"{params.constraint.kind!r}); use a backend with logits (llama.cpp, transformers)"
        )


def decode_rows(
    first_logits: np.ndarray,
    params: SamplingParams,
    gens: Sequence[np.random.Generator],
    rows: Sequence[int],
    codes: ArithmeticCodes | None,
    piece: Callable[[int], bytes],
    is_end: Callable[[int], bool],
    step: Step,
    row_params: Sequence[SamplingParams] | None = None,
    quota: FinishQuota | None = None,
) -> Generator[TextDelta, None, list[Sample]]:
    """The decode loop of a backend with logits: samples ``rows`` decoded together, one
    token of every unfinished sample per step, drawn by :func:`samplescale.sampling.pipeline.sample`.

    With ``params.constraint`` each row has its own matcher
    (:class:`samplescale.constraints.matcher.RowMatchers`) whose allowed tokens mask the
    draw; a row whose text is complete may draw only end-of-generation tokens, so it ends.

    Parameters
    ----------
    first_logits : ndarray, shape (vocab,), float
        Next-token logits after the prompt (shared by every row).
    params : SamplingParams
    gens : sequence of numpy.random.Generator
        One stream per sample of the request, indexed by the values of ``rows``.
    rows : sequence of int
        The request's sample indices decoded here (``TextDelta.index`` values).
    codes : ArithmeticCodes or None
        Arithmetic-sampling codes of the whole request, or None.
    piece, is_end : callable
        The model's token bytes and end-of-generation test.
    step : callable (active, tokens, k) -> ndarray
        Feeds the ``k``-th generated token (``tokens[j]``) of each unfinished row
        ``active[j]`` (0-based positions in ``rows``) and returns the next logits, shape
        (len(active), vocab). Rows missing from ``active`` have finished for good.
    row_params : sequence of SamplingParams, optional
        Per-row parameters, indexed like ``gens`` (by the values of ``rows``): rows of
        each distinct parameter object are drawn by their own pipeline call in every step
        (per-row parameters, e.g. a greedy row beside a pool; each row is drawn exactly as
        in a call of its own). Default: ``params`` for every row. Not with a constraint
        or arithmetic codes.
    quota : FinishQuota, optional
        Early exit: after the step in which the quota is reached, the rows still
        unfinished are cancelled (``finish_reason="cancelled"``, the tokens they drew so
        far kept) and no further step is run.

    Yields
    ------
    TextDelta
        New final text of a sample, with its request index.

    Returns
    -------
    list of Sample
        The samples of ``rows``, in order.

    Raises
    ------
    ConfigError
        If ``params.constraint`` is invalid or impossible.
    MissingDependencyError
        With a constraint, when llguidance (extra ``constraints``) is missing.
    """
    m = len(rows)
    matchers = None
    if params.constraint is not None:
        matchers = RowMatchers(params.constraint, piece, is_end, first_logits.shape[-1], m)
    per_row = [params] * m if row_params is None else [row_params[r] for r in rows]
    seqs = [SequenceBuilder(piece, is_end, p.stop, p.max_tokens) for p in per_row]
    logits = np.broadcast_to(first_logits, (m, first_logits.shape[-1]))
    active = list(range(m))
    k = 0
    while True:
        picked = [rows[i] for i in active]
        if row_params is None:
            draw = pipeline.sample(
                logits,
                params,
                [gens[r] for r in picked],
                history=[seqs[i].token_ids for i in active],
                position=k,
                codes=None if codes is None else codes.take(picked),
                allowed=None if matchers is None else matchers.allowed(active),
            )
        else:
            draw = _draw_groups(logits, [per_row[i] for i in active], [gens[r] for r in picked],
                                [seqs[i].token_ids for i in active], k)
        if codes is not None:
            assert draw.next_codes is not None  # drawn with codes
            codes.advance(picked, draw.next_codes, draw.sampling_logprobs)
        if matchers is not None:
            matchers.advance(active, draw.token_ids.tolist())
        still = []
        for j, i in enumerate(active):
            if not seqs[i].push(draw.token_ids[j], draw.logprobs[j], draw.sampling_logprobs[j]):
                still.append(i)
            elif quota is not None and seqs[i].finish_reason == "stop":
                quota.finished += 1
            if delta := seqs[i].take_delta():
                yield TextDelta(index=rows[i], text=delta)
        if quota is not None and quota.reached:
            for i in still:
                seqs[i].cancel()
                if delta := seqs[i].take_delta():
                    yield TextDelta(index=rows[i], text=delta)
            still = []
        active = still
        if not active:
            break
        logits = step(active, [seqs[i].token_ids[-1] for i in active], k)
        k += 1
    return [s.to_sample() for s in seqs]


def _draw_groups(
    logits: np.ndarray,
    params: list[SamplingParams],
    gens: list[np.random.Generator],
    history: list[list[int]],
    position: int,
) -> pipeline.Draw:
    """One pipeline draw per distinct parameter object among the rows, merged in row order."""
    n = len(params)
    out = pipeline.Draw(np.zeros(n, np.int64), np.zeros(n), np.zeros(n))
    for p in {id(p): p for p in params}.values():
        idx = [j for j in range(n) if params[j] is p]
        d = pipeline.sample(
            logits[idx], p, [gens[j] for j in idx], history=[history[j] for j in idx],
            position=position,
        )
        out.token_ids[idx], out.logprobs[idx] = d.token_ids, d.logprobs
        out.sampling_logprobs[idx] = d.sampling_logprobs
    return out


def check_logits_request(
    tokens: Sequence[int], last: int, vocab_size: int, context: int, what: str
) -> list[int]:
    """``tokens`` as a list of ids, checked for a ``logits_at(tokens, last)`` call.

    Raises
    ------
    ConfigError
        If an id is invalid (:func:`check_token_ids`), ``tokens`` is empty or longer than
        ``context`` (``what`` names that limit), or ``last`` is outside ``[1, len(tokens)]``.
    """
    toks = check_token_ids(tokens, vocab_size, "logits_at")
    if not toks:
        raise ConfigError("logits_at needs at least one token")
    if not 1 <= last <= len(toks):
        raise ConfigError(f"last must be in [1, {len(toks)}], got {last}")
    if len(toks) > context:
        raise ConfigError(f"{len(toks)} tokens exceed the context ({what})")
    return toks


def check_token_ids(tokens: Sequence[int], vocab_size: int, what: str) -> list[int]:
    """``tokens`` as a list of ints, each an id in ``[0, vocab_size)``.

    Raises
    ------
    ConfigError
        Naming ``what`` (``"logits_at"``, ``"prefix"``) and the first bad ids, if any id
        is not an integer (bools refused) or is outside the vocabulary.
    """
    bad = [
        t
        for t in tokens
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < vocab_size
    ]
    if bad:
        raise ConfigError(
            f"{what} token ids must be integers in [0, {vocab_size - 1}], got {bad[:3]}"
        )
    return [int(t) for t in tokens]
