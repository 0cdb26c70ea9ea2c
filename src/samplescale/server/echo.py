"""Token log-probabilities scored by the model: ``echo``, prompt tokens and top alternatives.

``POST /v1/completions`` with ``echo: true`` returns the prompt before each choice's text,
and with ``logprobs: k`` the ``k`` most likely tokens at every position. Both need the
model's next-token distribution at every position of the prompt and the choice, so they
are computed here from one ``logits_at`` pass over ``prompt tokens + choice tokens`` on a
backend that exposes logits (:class:`~samplescale.backends.base.LogitsModel`).
Harnesses that score multiple-choice answers by log-likelihood (lm-evaluation-harness's
``loglikelihood`` requests: ``echo``, ``max_tokens: 1``, ``logprobs: 1``) read the
prompt's token log-probabilities and check whether each was the most likely token.

Conventions (as OpenAI's legacy format and vLLM):

* ``tokens`` are the prompt's tokens (leading control tokens such as BOS, which are not
  part of the prompt text, are scored as context but not listed) then the choice's tokens
  (not those of a stop string); joined, they give ``prompt + text``, followed by the name
  of a final end-of-sequence token (``"<|im_end|>"``) when the choice ended on one:
  harnesses such as lm-evaluation-harness drop the last entry as the generated one.
* ``token_logprobs[i]`` is the natural-log probability of token ``i`` given everything
  before it (softmax of the raw logits over the whole vocabulary); ``None`` for a first
  token that has no context at all.
* ``top_logprobs[i]`` maps the ``k`` most likely token strings at that position to their
  log-probabilities (``None`` where ``token_logprobs`` is ``None``); the token actually
  there is added when it is not among them, as OpenAI does.
* ``text_offset[i]`` is the character offset of token ``i`` in ``prompt + text`` (echo)
  or in ``text``.
* token strings are those of :func:`samplescale.server.logprobs.token_string` (a partial
  UTF-8 character as ``"bytes:\\xNN"``).

Chat requests with ``top_logprobs: k`` (1-20) get the same scores in the chat format
(:func:`chat_scored`): each generated token's log-probability and its ``k`` most likely
alternatives (not adding the token itself, as OpenAI's chat format does not).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.backends.base import LogitsModel
from samplescale.sampling.functional import log_softmax
from samplescale.server.logprobs import Row, chat_entry, text_offsets, text_token_ids, token_string
from samplescale.types import Prompt, Sample


def _row(model: LogitsModel, token: int, logprob: float) -> Row:
    """A token as listed: its string (a control token, whose text is empty, by its name
    ``token_name`` where the backend has one, e.g. ``"<|im_end|>"``) and the bytes it
    stands for in the text."""
    raw = model.piece(token)
    if raw:
        return Row(token_string(raw), raw, logprob)
    name = getattr(model, "token_name", None)
    text = name(token) if name is not None else f"<token {token}>"
    return Row(text, text.encode("utf-8"), logprob)


@dataclass(frozen=True)
class Scored:
    """One listed position: the token there (``logprob`` None: no context before it) and
    the ``k`` most likely tokens at that position, most likely first."""

    token: Row
    logprob: float | None
    top: list[Row]


def score(model: LogitsModel, prompt: Prompt, sample: Sample, top: int, echo: bool) -> list[Scored]:
    """Score the listed tokens of one choice with one ``logits_at`` pass.

    Parameters
    ----------
    model : LogitsModel
        The backend that drew ``sample``.
    prompt : Prompt
        The request's prompt (raw text or chat messages, as the backend renders it).
    sample : Sample
        The choice; must carry token ids.
    top : int
        Alternatives per position, >= 0.
    echo : bool
        List the prompt's tokens before the choice's.

    Returns
    -------
    list of Scored
        The prompt's tokens (``echo``; a leading BOS the backend added is context, not
        listed), then the choice's text tokens and a final end-of-sequence token.
        Log-probabilities are natural logs of the softmax over the whole vocabulary.
    """
    context = model.tokenize_prompt(prompt)
    skip, text = 0, prompt.text or ""
    while echo and skip < len(context) and model.piece(context[skip]) == b"":
        if text.startswith(_row(model, context[skip], 0.0).token):  # written in the prompt
            break
        skip += 1  # a BOS the backend added: context, not text
    text_ids, end = text_token_ids(sample, model.piece)
    tokens = context + text_ids + ([] if end is None else [end])
    first = skip if echo else len(context)
    scored = max(first, 1)  # the first position with a context before it
    rows = np.empty((0, model.vocab_size))
    if len(tokens) > scored:  # row r: the distribution after tokens[: scored + r]
        raw = model.logits_at(tokens[:-1], last=len(tokens) - scored)
        rows = log_softmax(np.asarray(raw, dtype=np.float64))
    out = []
    for position, tok in enumerate(tokens[first:], start=first):
        if position == 0:  # no context at all
            out.append(Scored(_row(model, tok, float("nan")), None, []))
            continue
        row = rows[position - scored]
        best = np.argsort(-row, kind="stable")[:top]
        out.append(Scored(_row(model, tok, float(row[tok])), float(row[tok]),
                          [_row(model, int(t), float(row[t])) for t in best]))
    return out


def choice_logprobs(
    model: LogitsModel, prompt: Prompt, sample: Sample, top: int, echo: bool
) -> dict[str, Any]:
    """The legacy ``logprobs`` object of one choice (see the module docstring).

    Parameters are those of :func:`score` (``top`` in [0, 5]: 0 makes ``top_logprobs``
    None). Returns ``{"tokens", "token_logprobs", "top_logprobs", "text_offset"}``, lists
    of one length.
    """
    listed = score(model, prompt, sample, top, echo)
    tops: list[dict[str, float] | None] = []
    for s in listed:
        if s.logprob is None:
            tops.append(None)
            continue
        alternatives = {r.token: r.logprob for r in s.top}
        alternatives.setdefault(s.token.token, s.logprob)  # the token there, as OpenAI does
        tops.append(alternatives)
    return {
        "tokens": [s.token.token for s in listed],
        "token_logprobs": [s.logprob for s in listed],
        "top_logprobs": tops if top else None,
        "text_offset": text_offsets([s.token.raw or b"" for s in listed]),
    }


def chat_scored(model: LogitsModel, prompt: Prompt, sample: Sample, top: int) -> dict[str, Any] | None:
    """A chat choice's ``logprobs`` object with ``top`` (1-20) alternatives per token,
    scored by the model; the final end-of-sequence token is not listed (OpenAI's chat
    format). None when the choice generated no text token."""
    listed = score(model, prompt, sample, top, echo=False)
    _, end = text_token_ids(sample, model.piece)
    if end is not None:
        listed = listed[:-1]
    if not listed:
        return None
    return {"content": [chat_entry(s.token, False, s.top) for s in listed]}


def score_choices(
    model: LogitsModel, prompt: Prompt, choices: Sequence[Sample], top: int, echo: bool,
    chat: bool = False,
) -> list[dict[str, Any] | None]:
    """Each choice's ``logprobs`` object, legacy (:func:`choice_logprobs`) or chat
    (:func:`chat_scored`); blocking: the app runs it in a thread."""
    if chat:
        return [chat_scored(model, prompt, s, top) for s in choices]
    return [choice_logprobs(model, prompt, s, top, echo) for s in choices]
