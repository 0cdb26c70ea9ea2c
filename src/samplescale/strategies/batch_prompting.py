"""Batch prompting: several problems in one prompt, the answers split back per problem.

Cheng et al. 2023 ("Batch Prompting: Efficient Inference with Large Language Model APIs")
put ``b`` questions in one prompt (``Q[1]: ... Q[2]: ...``) and ask for labelled answers
(``A[1]: ... A[2]: ...``): the instruction (and any exemplars) is sent once per batch
instead of once per question, which cuts prompt tokens and calls by about ``b`` times, at
some cost in accuracy as ``b`` grows. Here the ``N`` samples of the batch prompt are each
split into the ``b`` answers, and each problem's answer is the majority vote over its ``N``
split answers (self-consistency per problem).

Where the batch comes from: :meth:`BatchPrompting.run_batch` takes the questions (the
library entry point); ``samplescale eval --strategy batch-prompting`` groups the task's
problems in task order into batches of ``batch_size`` (see
:mod:`samplescale.evaluate_batch`); :meth:`~BatchPrompting.run` (``generate`` and the
server, one prompt) is a batch of one, which saves nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.aggregate import vote
from samplescale.backends.base import Backend, prefix_session
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies.base import State, Strategy, check_int, check_run_args
from samplescale.strategies.prompting import question_of, with_question
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Prompt, Result, Sample, Usage

MAX_BATCH = 32
MAX_SAMPLES = 1024

BATCH_TEMPLATE = (
    "{instruction}Answer each of the {count} questions below. Write the answers in order, "
    "each starting on a new line with its label: A[1]:, A[2]: and so on.\n\n{questions}"
)
"""The batch prompt: ``{instruction}`` (the shared instruction and a blank line, or empty),
``{count}`` and ``{questions}`` (``Q[i]: question`` lines)."""

_QUESTION = re.compile(r"^[ \t*#>-]*Q\s*(?:\[\s*\d+\s*\])?\s*:", re.MULTILINE)
_BARE = re.compile(r"^[ \t*#>-]*A\s*:\**", re.MULTILINE)
_LABEL = re.compile(r"^[ \t*#>-]*A\s*\[\s*(\d+)\s*\]\s*[:.)]?\**", re.MULTILINE)


def split_answers(text: str, count: int) -> list[str | None]:
    """The part of ``text`` answering each of ``count`` questions: the text after the label
    ``A[i]:`` (at a line start; markdown bullets, ``#`` and ``*`` before it and a ``.`` or
    ``)`` instead of the colon are accepted) up to the next label line or a line that
    repeats a question (``Q:`` or ``Q[j]:``), whichever comes first; None for a label
    that is missing. A label given twice counts at its first place; labels outside
    ``1..count`` end the part before them and are otherwise ignored. A reply without any
    ``A[i]`` label whose lines start with a bare ``A:`` exactly ``count`` times (the
    ``Q: ... A: ...`` format small models fall back to) has those parts in order; with one
    question, a reply without any label is its answer as a whole."""
    marks = [(m.start(), m.end(), int(m.group(1))) for m in _LABEL.finditer(text)]
    if not marks:
        bare = [(m.start(), m.end(), k) for k, m in enumerate(_BARE.finditer(text), start=1)]
        if len(bare) == count:
            marks = bare
        elif count == 1:
            return [text.strip()]
    parts: list[str | None] = [None] * count
    for j, (_, end, label) in enumerate(marks):
        stop = marks[j + 1][0] if j + 1 < len(marks) else len(text)
        if 1 <= label <= count and parts[label - 1] is None:
            part = text[end:stop]
            echo = _QUESTION.search(part)  # a repeated question line ends the answer
            parts[label - 1] = (part[: echo.start()] if echo else part).strip()
    return parts


def part_sample(reply: Sample, part: str | None) -> Sample:
    """A problem's own part of one batch ``reply`` as a sample: ``text`` is ``part`` (``""``
    when its label is missing), ``finish_reason`` the reply's; it has no per-token data
    (the reply's tokens are shared out in usage, :func:`share_usage`). An error reply is
    returned as it is."""
    if reply.status != "ok":
        return reply
    return Sample(text=part or "", finish_reason=reply.finish_reason)


def _share(total: int, count: int, j: int) -> int:
    """Problem ``j``'s integer share of ``total`` over ``count`` problems (the first
    ``total % count`` get one more), so the shares sum to ``total``."""
    return total // count + (j < total % count)


def share_usage(usage: Usage, count: int, j: int) -> Usage:
    """Problem ``j``'s share of a batch's ``usage``, by the rule tokens are shared out by:
    evenly over the ``count`` problems, whatever their parts' lengths. Every count is
    split by :func:`_share` (the first ``total % count`` problems get one more),
    ``cached_prompt_tokens`` capped at the problem's ``prompt_tokens``, and
    ``wall_time_s`` (seconds) is ``usage.wall_time_s / count``. The shares of
    ``j = 0 .. count - 1`` sum to ``usage`` (wall time up to float rounding)."""
    return Usage(
        prompt_tokens=_share(usage.prompt_tokens, count, j),
        cached_prompt_tokens=min(_share(usage.cached_prompt_tokens, count, j),
                                 _share(usage.prompt_tokens, count, j)),
        completion_tokens=_share(usage.completion_tokens, count, j),
        model_calls=_share(usage.model_calls, count, j),
        scorer_calls=_share(usage.scorer_calls, count, j),
        wall_time_s=usage.wall_time_s / count,
    )


@STRATEGIES.register("batch-prompting")
@dataclass(frozen=True)
class BatchPrompting(Strategy):
    """Batch prompting (Cheng et al. 2023), with a majority vote per problem over N samples.

    Attributes
    ----------
    batch_size : int
        Problems per prompt when an evaluation groups them, in [1, 32] (default 4);
        :meth:`run_batch` takes up to 32 questions whatever it is.
    template : str
        The batch prompt (:data:`BATCH_TEMPLATE`; ``{instruction}``, ``{count}``,
        ``{questions}``).

    Result
    ------
    One per problem: ``samples`` are this problem's parts of the N replies to the batch
    prompt (:func:`split_answers`, :func:`part_sample`; ``""`` where its label is
    missing; from :meth:`~BatchPrompting.run`, a batch of one that shares nothing, the
    replies themselves, with their tokens), ``answers`` the answer extracted from each
    part (None where its label is missing), ``answer`` / ``selected`` / ``vote_shares``
    the vote over them. ``usage`` is this problem's share of the batch call
    (:func:`share_usage`: even shares of every count and of the wall time; the shares of a
    batch sum to its usage). The trace has one ``batch`` record: ``position`` (1-based), ``size``, ``found`` (replies whose part
    for this problem was found), ``replies`` (the N whole replies, shared by the batch's
    problems), ``batch_usage`` (without wall time), ``prompt_tokens_alone`` (the
    problem's own prompt, tokenized by the backend; None on a backend that cannot
    tokenize) and ``saved_prompt_tokens`` (``prompt_tokens_alone`` minus this problem's
    share of the batch's prompt tokens, per call; None likewise).

    Raises
    ------
    ConfigError
        If an option is out of its range or of the wrong type (the message names it); at
        run time, if ``params.n`` is not in [1, 1024] or the questions are not 1 to 32
        strings.
    """

    name = "batch-prompting"
    batch_size: int = 4
    template: str = BATCH_TEMPLATE

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("batch_size", self.batch_size, 1, MAX_BATCH)
        if not isinstance(self.template, str):
            raise ConfigError(f"template must be a str, got {type(self.template).__name__}")
        try:
            self.template.format(instruction="", count=1, questions="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"template may use only {{instruction}}, {{count}} and "
                              f"{{questions}}: {exc!r}") from exc

    def batch_prompt(self, questions: Sequence[str], instruction: str = "",
                     base: Prompt | None = None) -> Prompt:
        """The prompt asking ``questions`` at once: :attr:`template` filled in, as the
        question of ``base`` (its other messages kept) or as one user message."""
        body = self.template.format(
            instruction=f"{instruction.strip()}\n\n" if instruction.strip() else "",
            count=len(questions),
            questions="\n".join(f"Q[{i}]: {q.strip()}" for i, q in enumerate(questions, 1)),
        )
        return with_question(base, body) if base is not None else Prompt.user(body)

    def init(self, prompt: Prompt, params: SamplingParams) -> State:
        """A batch of one: the prompt's question asked through the batch template."""
        p = self.sampling_params(params)
        check_int("n (params.n)", p.n, 1, MAX_SAMPLES)
        return State(prompt=self.batch_prompt([question_of(prompt)], base=prompt), params=p)

    def finalize(self, state: State) -> Result:
        return self.problem_result(state, 0, 1, None, split=False)

    def problem_result(self, state: State, j: int, count: int,
                       alone: int | None, split: bool = True) -> Result:
        """Problem ``j``'s Result of the batch run ``state`` (of ``count`` problems);
        ``alone``: its own prompt's token count, or None; ``split``: whether its samples
        are its parts of the replies (:func:`part_sample`) or the replies themselves."""
        parts = [split_answers(s.text, count)[j] if s.status == "ok" else None
                 for s in state.samples]
        answers = tuple(None if part is None else self.extract(part) for part in parts)
        v = vote(answers, None, self.equivalent)
        usage = share_usage(state.usage, count, j)
        calls = max(state.usage.model_calls, 1)
        share_per_call = usage.prompt_tokens / calls
        record: dict[str, Any] = {
            "event": "batch", "position": j + 1, "size": count,
            "found": sum(part is not None for part in parts),
            "replies": [s.text for s in state.samples],
            "batch_usage": state.usage.model_dump(exclude={"wall_time_s"}),
            "prompt_tokens_alone": alone,
            "saved_prompt_tokens": None if alone is None else alone - share_per_call,
        }
        samples = (tuple(part_sample(s, part) for s, part in zip(state.samples, parts))
                   if split else state.samples)
        return Result(strategy=self.name, samples=samples, answers=answers,
                      selected=v.winner, answer=v.answer, vote_shares=v.shares,
                      trace=(record,), usage=usage)

    def run_batch(
        self,
        backend: Backend,
        questions: Sequence[str],
        params: SamplingParams | None = None,
        rng: np.random.Generator | None = None,
        instruction: str = "",
    ) -> tuple[Result, ...]:
        """Ask ``questions`` in one prompt (N samples, one call) and vote per question.

        Parameters
        ----------
        backend : Backend
        questions : sequence of str
            1 to 32 questions, asked as ``Q[1]``, ``Q[2]``, ...
        params : SamplingParams, optional
            ``params.n`` samples of the batch prompt (default ``SamplingParams()``).
        rng : numpy.random.Generator, optional
        instruction : str
            Said once before the questions (e.g. a task's answer-format instruction); each
            question's own prompt, for ``prompt_tokens_alone``, is ``instruction``, a blank
            line and the question, as one user message.

        Returns
        -------
        tuple of Result
            One per question, in order (see the class docstring). ``usage.wall_time_s`` of
            each is its share of the whole call: the call's seconds over the number of
            questions (:func:`share_usage`).

        Raises
        ------
        ConfigError
            If ``questions`` is not a sequence of 1 to 32 strings, or an argument has the
            wrong type.
        """
        if isinstance(questions, str) or not isinstance(questions, Sequence) \
                or not 1 <= len(questions) <= MAX_BATCH \
                or not all(isinstance(q, str) for q in questions):
            raise ConfigError(f"questions must be a list of 1 to {MAX_BATCH} strings, got "
                              f"{questions!r:.60}")
        if not isinstance(instruction, str):
            raise ConfigError(f"instruction must be a str, got {type(instruction).__name__}")
        check_run_args(backend, "", params, rng)
        self.check_backend(backend)
        p = params or SamplingParams()
        state = self.init(Prompt.user(""), p)
        state = state.model_copy(update={"prompt": self.batch_prompt(questions, instruction)})
        with prefix_session(backend):
            state, _ = self.draw(rng, state, backend, state.params.n)
        tokenize = getattr(backend, "tokenize_prompt", None)
        results = []
        for j, q in enumerate(questions):
            alone = None
            if callable(tokenize):
                text = f"{instruction.strip()}\n\n{q}" if instruction.strip() else q
                alone = len(tokenize(Prompt.user(text)))
            results.append(self.problem_result(state, j, len(questions), alone))
        return tuple(results)

