"""Legacy completions ``logprobs`` with ``echo`` and top alternatives, scored by the model.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from samplescale.backends.base import LogitsModel
from samplescale.sampling.functional import log_softmax
from samplescale.server.responses import text_token_ids
from samplescale.types import Prompt, Sample


def _text(model: LogitsModel, token: int) -> str:
    """A token's text; a control token (empty text) by its name (``token_name``, where the
    backend has one, e.g. ``"<|im_end|>"``)."""
    raw = model.piece(token)
    if raw:
        return raw.decode("utf-8", errors="replace")
    name = getattr(model, "token_name", None)
    return name(token) if name is not None else f"<token {token}>"


def choice_logprobs(
    model: LogitsModel, prompt: Prompt, sample: Sample, top: int, echo: bool
) -> dict[str, Any]:
    """The legacy ``logprobs`` object of one choice (see the module docstring).

    Parameters
    ----------
    model : LogitsModel
        The backend that drew ``sample``.
    prompt : Prompt
        The request's prompt (raw text).
    sample : Sample
        The choice; must carry token ids.
    top : int
        Alternatives per position, in [0, 5] (0: ``top_logprobs`` is None).
    echo : bool
        List the prompt's tokens before the choice's.

    Returns
    -------
    dict
        ``{"tokens", "token_logprobs", "top_logprobs", "text_offset"}``, lists of one
        length.
    """
    context = model.tokenize_prompt(prompt)
    skip, text = 0, prompt.text or ""
    while skip < len(context) and model.piece(context[skip]) == b"":
        name = _text(model, context[skip])
        if text.startswith(name):  # a special token written in the prompt: listed
            break
        skip += 1  # a BOS the backend added: context, not text
    text_ids, end = text_token_ids(sample, model.piece)
    tokens = context + text_ids + ([] if end is None else [end])
    first = skip if echo else len(context)
    listed = tokens[first:]
    scored = max(first, 1)  # the first position with a context before it
    rows = np.empty((0, model.vocab_size))
    if len(tokens) > scored:  # row r: the distribution after tokens[: scored + r]
        raw = model.logits_at(tokens[:-1], last=len(tokens) - scored)
        rows = log_softmax(np.asarray(raw, dtype=np.float64))
    logprobs: list[float | None] = []
    tops: list[dict[str, float] | None] = []
    for position, tok in enumerate(listed, start=first):
        if position == 0:  # no context at all
            logprobs.append(None)
            tops.append(None)
            continue
        row = rows[position - scored]
        logprobs.append(float(row[tok]))
        tops.append(_top(model, row, tok, top) if top else None)
    texts = [_text(model, t) for t in listed]
    offsets, at = [], 0
    for t in texts:
        offsets.append(at)
        at += len(t)
    return {
        "tokens": texts,
        "token_logprobs": logprobs,
        "top_logprobs": tops if top else None,
        "text_offset": offsets,
    }


def _top(model: LogitsModel, row: np.ndarray, token: int, k: int) -> dict[str, float]:
    """The ``k`` most likely tokens of ``row`` (and ``token``) as ``{text: logprob}``."""
    best = np.argsort(-row, kind="stable")[:k]
    out = {_text(model, int(t)): float(row[t]) for t in best}
    out.setdefault(_text(model, token), float(row[token]))
    return out


def score_choices(
    model: LogitsModel, prompt: Prompt, choices: Sequence[Sample], top: int, echo: bool
) -> list[dict[str, Any]]:
    """:func:`choice_logprobs` of every choice (blocking: the app runs it in a thread)."""
    return [choice_logprobs(model, prompt, s, top, echo) for s in choices]
