"""Prompt edits shared by the strategies that change what is sampled (aggregate, div-sampling,
progressive-hint, batch-prompting, reprompting), and the per-call seeding they and refine / fractured share.

The *question* of a prompt is its last user message (a chat prompt) or its raw ``text``.
Every edit keeps ``prefix`` and ``grounding`` and returns a new Prompt; none changes the
caller's prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

from samplescale.config import SamplingParams
from samplescale.rng import derived_seed
from samplescale.types import Message, Prompt


def _last_user(prompt: Prompt) -> int | None:
    msgs = prompt.messages or ()
    users = [i for i, m in enumerate(msgs) if m.role == "user"]
    return users[-1] if users else None


def question_of(prompt: Prompt) -> str:
    """The question of ``prompt``: its last user message's content, or its raw text (an
    empty string for a chat prompt without a user message)."""
    if prompt.messages is None:
        return prompt.text or ""
    i = _last_user(prompt)
    return prompt.messages[i].content if i is not None else ""


def with_question(prompt: Prompt, question: str) -> Prompt:
    """``prompt`` with its question replaced by ``question``: the last user message (a user
    message is appended when there is none, earlier messages kept), or the raw text (which
    is then ``question`` as given)."""
    if prompt.messages is None:
        return prompt.model_copy(update={"text": question})
    msgs = list(prompt.messages)
    i = _last_user(prompt)
    if i is None:
        msgs.append(Message(role="user", content=question))
    else:
        msgs[i] = Message(role="user", content=question)
    return prompt.model_copy(update={"messages": tuple(msgs)})


def with_system(prompt: Prompt, line: str) -> Prompt:
    """``prompt`` with ``line`` said first: a chat prompt's system message starts with it
    (``line``, a blank line, then the old system text; a new first system message when
    there is none); a raw text prompt starts with ``line`` and a blank line."""
    if prompt.messages is None:
        return prompt.model_copy(update={"text": f"{line}\n\n{prompt.text}"})
    msgs = list(prompt.messages)
    if msgs[0].role == "system":
        msgs[0] = Message(role="system", content=f"{line}\n\n{msgs[0].content}")
    else:
        msgs.insert(0, Message(role="system", content=line))
    return prompt.model_copy(update={"messages": tuple(msgs)})


def with_note(prompt: Prompt, note: str) -> Prompt:
    """``prompt`` with ``note`` added to its question: after the last user message's content
    and a blank line; a raw text prompt gets it *before* its text (raw text usually ends in
    an answer cue such as ``"A:"``, which must stay last), followed by a blank line."""
    if prompt.messages is None:
        return prompt.model_copy(update={"text": f"{note}\n\n{prompt.text}"})
    return with_question(prompt, f"{question_of(prompt)}\n\n{note}")


def with_examples(prompt: Prompt, examples: Sequence[tuple[str, str]]) -> Prompt:
    """``prompt`` with few-shot ``examples`` (``(question, solution)`` pairs, in order) put
    before its question. A chat prompt gets each as a user message (the question) and an
    assistant message (the solution), inserted just before its last user message (a system
    message stays first; a grounding document, which goes with the first user message,
    then comes before the first example). A raw text prompt starts with
    ``question\nsolution\n\n`` per example. No examples: ``prompt`` unchanged."""
    if not examples:
        return prompt
    if prompt.messages is None:
        text = "".join(f"{q}\n{z}\n\n" for q, z in examples)
        return prompt.model_copy(update={"text": text + (prompt.text or "")})
    msgs = list(prompt.messages)
    i = _last_user(prompt)
    at = len(msgs) if i is None else i
    shots = [m for q, z in examples
             for m in (Message(role="user", content=q), Message(role="assistant", content=z))]
    return prompt.model_copy(update={"messages": tuple(msgs[:at] + shots + msgs[at:])})


def call_params(params: SamplingParams, n: int, *key: int, **fields: object) -> SamplingParams:
    """``params`` for one backend call of ``n`` samples (and any other ``fields``), with
    its own seed stream ``derived_seed(params.seed, *key)`` when the run is seeded, so calls
    of one run draw independently and reproducibly."""
    p = params.replace(n=n, **fields)
    if p.seed is not None:
        p = p.replace(seed=derived_seed(p.seed, *key))
    return p
