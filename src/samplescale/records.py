"""The schema of evaluation records: what one line of ``results.jsonl`` must hold.

:func:`samplescale.evaluate.evaluate` yields three kinds of record, told apart by
``status`` and the run's kind:

* a **pool record** (``status="ok"``, a run without a strategy): the greedy answer and
  one pool of ``n`` samples, with ``c`` correct ones and the answer-class label of each;
* a **strategy record** (``status="ok"``, a run with a strategy): the greedy answer and
  one run of the strategy, with its selected answer, whether it is correct and the
  strategy's ``trace`` (stopping decisions, rounds, switches, search steps); a code
  strategy's record (:func:`samplescale.evaluate_code.code_strategy_record`) is also a
  valid pool record of the same samples;
* an **error record** (``status="error"``): a problem that could not be run or graded
  (longer than the context, invalid text, a verifier that failed), with the reason.

Every record carries ``problem_digest`` (:func:`samplescale.evaluate.problem_digest`), so a
resumed run can tell that a record was made from the same problem it would run now.

Records are checked strictly (``"n": "4"`` is not the integer 4) and for consistency
(``c`` is the number of correct samples; ``labels`` has one class in ``[0, n)`` per sample
with an answer, and every correct sample is in ``correct_label``'s class); fields beyond
the schema are allowed and kept.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from samplescale.types import Usage

_STRICT = ConfigDict(strict=True, extra="allow", frozen=True)


class SampleRow(BaseModel):
    """One sample of a record: its text, extracted answer and whether that is correct."""

    model_config = _STRICT
    text: str
    answer: str | None
    correct: bool
    tokens: int = Field(ge=0)
    finish_reason: str | None
    status: Literal["ok", "error"]
    mean_logprob: float | None = None


class GreedyRow(BaseModel):
    """The greedy (temperature 0) answer that every record carries as a baseline."""

    model_config = _STRICT
    answer: str | None
    correct: bool
    text: str
    usage: Usage


class _Done(BaseModel):
    model_config = _STRICT
    status: Literal["ok"]
    id: str
    question: str
    gold: str
    problem_digest: str
    greedy: GreedyRow
    samples: list[SampleRow]
    usage: Usage


class PoolRecord(_Done):
    """A pool of ``n`` samples of one problem (pass@k and maj@k are computed from it).

    ``labels[i]`` is the answer class of sample ``i`` (None: no answer), ``correct_label``
    the class of the correct answers (None: no sample is correct).
    """

    n: int = Field(ge=1)
    c: int = Field(ge=0)
    labels: list[int | None]
    correct_label: int | None

    @model_validator(mode="after")
    def _consistent(self) -> PoolRecord:
        if len(self.samples) != self.n or len(self.labels) != self.n:
            raise ValueError(
                f"n is {self.n} but the record has {len(self.samples)} samples and "
                f"{len(self.labels)} labels"
            )
        if self.c != sum(s.correct for s in self.samples):
            raise ValueError(f"c is {self.c} but {sum(s.correct for s in self.samples)} "
                             "samples are marked correct")
        if (self.correct_label is None) != (self.c == 0):
            raise ValueError("correct_label must be set exactly when some sample is correct")
        for i, (label, s) in enumerate(zip(self.labels, self.samples)):
            if label is not None and not 0 <= label < self.n:
                raise ValueError(f"labels[{i}] is {label}, outside the classes [0, {self.n})")
            if (label is None) != (s.answer is None):
                raise ValueError(f"labels[{i}] must be None exactly when samples[{i}] has no "
                                 "answer")
            if s.correct and label != self.correct_label:
                raise ValueError(f"samples[{i}] is correct but its label {label} is not "
                                 f"correct_label {self.correct_label}")
        return self


class StrategyRecord(_Done):
    """One run of a strategy on one problem."""

    strategy: str
    answer: str | None
    correct: bool
    vote_shares: dict[str, float] | None = None


class ProblemFailure(BaseModel):
    """Why a problem could not be run: the error's class name and message."""

    model_config = _STRICT
    type: str
    message: str


class ErrorRecord(BaseModel):
    """A problem that could not be run or graded; it counts as wrong (see summary)."""

    model_config = _STRICT
    status: Literal["error"]
    id: str
    problem_digest: str
    error: ProblemFailure


def check_record(data: Any, kind: Literal["pool", "strategy"]) -> str | None:
    """Check one decoded line of ``results.jsonl`` against the schema of a run of ``kind``.

    Parameters
    ----------
    data : Any
        The decoded JSON value of the line.
    kind : {"pool", "strategy"}
        The run's kind: without a strategy (pool records) or with one.

    Returns
    -------
    str or None
        None if the record is valid, else the reason it is not, naming the first
        offending field (``"n: Input should be a valid integer (got '4')"``).
    """
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    status = data.get("status")
    if status not in ("ok", "error"):
        return f"status must be 'ok' or 'error', got {status!r}"
    schema: type[BaseModel] = (
        ErrorRecord if status == "error" else PoolRecord if kind == "pool" else StrategyRecord
    )
    try:
        schema.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        got = f" (got {err['input']!r:.60})" if where and "input" in err else ""
        return f"{where}: {msg}{got}" if where else msg
    return None
