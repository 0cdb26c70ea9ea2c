"""ThinkSum: parallel yes/no sub-queries about a set of items, summed outside the model.

Ozturkler et al. 2023, "ThinkSum: Probabilistic reasoning over sets using large language
models" (ACL 2023). Two stages:

- **Think**: the model is asked one sub-query per item of a set, in parallel; here each is a
  yes/no question (``template`` with ``{question}`` and ``{item}``, by default "Is the
  proposed answer the correct answer to this question?"), and its answer is the probability
  of the ``positive`` label, ``p_yes(i)``. It is read by the existing label-token machinery
  (:class:`~samplescale.verifiers.model_scorers.LabelTokenScorer`, as P(True)): from the
  next-token logits normalised over the two labels on a backend that exposes logits, else
  from the logprob of a 1-token greedy reply (the trace says which: ``reads``). On a
  backend with neither, every sub-query fails (recorded) and there is no answer; a
  frequency estimate from sampled yes/no replies is not implemented.
- **Sum**: the answers are combined by probabilistic inference outside the model,

      posterior(i) = prior(i)^alpha * L(i) / sum_j prior(j)^alpha * L(j),
      L(i) = p_yes(i)  (select="max"),   L(i) = 1 - p_yes(i)  (select="min"),

  and the answer is the item of highest posterior (ties: the earlier item). ``select="min"``
  is the odd-one-out form (the paper's "which item does not belong"): the posterior of an
  item being the one that is *not* a "Yes"; with a uniform prior it selects the item of
  lowest ``p_yes``.

Where the set comes from (``items``), the choices made here:

- a list of strings: the items as given (e.g. a multiple-choice question's options); the
  prior is uniform, no sample is drawn;
- ``"samples"`` (default, for open-ended tasks such as GSM8K or arithmetic): N samples of the
  prompt are drawn and the items are their distinct answers (classes of the strategy's
  ``equivalent``, as self-consistency's vote forms them); the prior is each class's vote
  share, so ThinkSum reweighs the self-consistency vote by the model's own yes/no check
  (``alpha=0``: the check alone; a large ``alpha``: the vote);
- ``"extract"``: one greedy call asks the model to list candidate answers, one per line
  (``extract_template``); lines are cleaned of bullets and numbering, read with ``extract``
  where it finds an answer, deduplicated by ``equivalent``; the prior is uniform.

At most ``max_items`` items are scored (a given list must fit; ``"samples"`` keeps the most
voted classes, ``"extract"`` the first lines, and the trace counts what was dropped). The
paper's other sub-query kinds (e.g. word-by-word likelihoods) need task-specific templates;
the yes/no form covers its question-answering and odd-one-out uses with one template.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.aggregate import Vote, cluster, vote
from samplescale.backends.base import Backend
from samplescale.decoders import generate
from samplescale.errors import ConfigError
from samplescale.stopping import vote_counts
from samplescale.strategies.base import State, Strategy, check_int, check_number
from samplescale.strategies.prompting import call_params, question_of, with_question
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Result, Usage
from samplescale.verifiers.model_scorers import LabelTokenScorer
from samplescale.verifiers.scorers import ScorerError

MAX_ITEMS = 32
MAX_ALPHA = 10.0
SOURCES = ("samples", "extract")
SELECT = ("max", "min")

THINKSUM_TEMPLATE = (
    "Question: {question}\n\n"
    "Proposed answer: {item}\n\n"
    "Is the proposed answer the correct answer to this question? Answer Yes or No."
)
"""The sub-query: ``{question}`` (the last user message, or the raw text prompt) and
``{item}``; the reply read is the first token, ``positive`` or ``negative``."""

EXTRACT_TEMPLATE = (
    "{question}\n\n"
    "List up to {max_items} different candidate answers to this question, one per line. "
    "Write only the answers, with no explanation."
)
"""The listing prompt of ``items="extract"``: ``{question}`` and ``{max_items}``."""

_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\(?\d{1,2}[.)]|\(?[A-Za-z][.)])\s+")


def sum_posterior(
    items: Sequence[str], priors: Sequence[float], p_yes: Sequence[float | None],
    alpha: float = 1.0, select: str = "max",
) -> Vote:
    """ThinkSum's Sum stage: the posterior over ``items`` (see the module docstring).

    Parameters
    ----------
    items : sequence of str, length K
        Distinct items.
    priors : sequence of float, length K
        Prior weights >= 0 (need not sum to 1: the posterior is normalised).
    p_yes : sequence of (float or None), length K
        Probability of the positive label per item, in [0, 1]; None: the sub-query failed,
        the item gets no posterior mass.
    alpha : float
        Prior exponent (``0 ** 0 == 1``: ``alpha=0`` ignores the prior).
    select : {"max", "min"}
        Likelihood ``p_yes`` or ``1 - p_yes``.

    Returns
    -------
    Vote
        ``winner``: index of the selected item (ties: the earlier); ``shares``: item ->
        posterior, summing to 1 over the items with a ``p_yes`` (uniform over them when
        every likelihood is 0); empty, with ``winner`` None, when no item has one.
    """
    weights = [0.0 if p is None else prior ** alpha * (p if select == "max" else 1.0 - p)
               for prior, p in zip(priors, p_yes, strict=True)]
    answers = [None if p is None else item for item, p in zip(items, p_yes, strict=True)]
    return vote(answers, weights)  # items are distinct: each is its own class


def parse_items(text: str, extract: Any, equivalent: Any) -> list[str]:
    """Candidate items from a listing reply: one per non-empty line, bullets and numbering
    (``-``, ``*``, ``1.``, ``(b)``) removed, read with ``extract`` where it finds an answer
    (else the line), the first of each ``equivalent`` class kept, in order."""
    lines = [_BULLET.sub("", line).strip() for line in text.splitlines()]
    found = [extract(line) or line for line in lines if line]
    labels = cluster(found, equivalent)
    return [a for k, a in enumerate(found) if labels[k] not in labels[:k]]


@STRATEGIES.register("thinksum")
@dataclass(frozen=True)
class ThinkSum(Strategy):
    """ThinkSum over a set of items (see the module docstring).

    Attributes
    ----------
    items : "samples", "extract" or sequence of str
        Where the set comes from: N sampled answers' classes (default), the model's own
        list, or 1 to 32 distinct non-empty strings (``--option 'items=["A", "B"]'``).
    template : str
        The sub-query (:data:`THINKSUM_TEMPLATE`), with ``{question}`` and ``{item}``.
    positive, negative : str, str or None
        The labels read after the sub-query (default "Yes" / "No"); each must be one token
        for the model. Without ``negative``, ``p_yes`` is the positive label's probability.
    alpha : float
        Prior exponent, in [0, 10] (default 1).
    select : {"max", "min"}
        ``"min"``: the odd-one-out form, likelihood ``1 - p_yes``.
    max_items : int
        Items scored at most, in [1, 32] (default 32).
    extract_template : str
        The listing prompt of ``items="extract"`` (:data:`EXTRACT_TEMPLATE`).

    Result
    ------
    ``samples``: the N samples (``"samples"``), the listing reply (``"extract"``; its
    ``answers`` entry is None: it lists, it does not answer) or none (a given list).
    ``vote_shares``: the posterior, item -> probability, summing to 1. ``answer``: the
    selected item; ``selected``: the first sample of its class with ``"samples"``, else None
    (the item is not a sample's answer, as with a given list). The trace has an ``items``
    record (``source``, ``items``, ``dropped``; with ``"samples"`` also ``counts`` of
    votes and ``first``: each item's first sample) and a ``thinksum`` record (``reads``:
    "logits" or "greedy-token"; ``rows``: per item ``item``, ``prior`` (the vote share among
    the items kept), ``p_yes``, ``posterior``, the sub-query's ``prompt_tokens`` and
    ``completion_tokens``, ``error``; ``winner``: the selected item's index). ``usage`` counts every call,
    each sub-query also as a scorer call. A failed sub-query gives its item no posterior;
    when all fail (or there is no item) the answer is None.

    Raises
    ------
    ConfigError
        If an option is out of its range or of the wrong type (the message names it and the
        range); at run time, if a label is not one token for the model.
    """

    name = "thinksum"
    items: str | Sequence[str] = "samples"
    template: str = THINKSUM_TEMPLATE
    positive: str = "Yes"
    negative: str | None = "No"
    alpha: float = 1.0
    select: str = "max"
    max_items: int = MAX_ITEMS
    extract_template: str = EXTRACT_TEMPLATE

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("max_items", self.max_items, 1, MAX_ITEMS)
        given = self.items
        if not isinstance(given, str) and isinstance(given, Sequence):
            given = tuple(given)
            if not 1 <= len(given) <= self.max_items or any(
                    not isinstance(x, str) or not x.strip() for x in given) \
                    or len(set(given)) != len(given):
                raise ConfigError(
                    f"items must be 'samples', 'extract' or a list of 1 to max_items "
                    f"({self.max_items}) distinct non-empty strings, got {self.items!r:.80}")
            object.__setattr__(self, "items", given)
        elif given not in SOURCES:
            raise ConfigError(f"items must be 'samples', 'extract' or a list of 1 to "
                              f"{MAX_ITEMS} strings, got {given!r:.80}")
        LabelTokenScorer.check_options(self.template, self.positive, self.negative, "item")
        _check_format("template", self.template, question="", item="")
        check_number("alpha", self.alpha, lambda v: 0 <= v <= MAX_ALPHA, f"[0, {MAX_ALPHA:g}]")
        if self.select not in SELECT:
            raise ConfigError(f"select must be 'max' or 'min', got {self.select!r:.40}")
        if not isinstance(self.extract_template, str) or "{question}" not in self.extract_template:
            raise ConfigError("extract_template must be a str with the field {question}")
        _check_format("extract_template", self.extract_template, question="", max_items=1)

    def done(self, state: State) -> bool:
        return any(t.get("event") == "thinksum" for t in state.trace) or (
            bool(state.trace) and not state.trace[0]["items"])

    def step(
        self, rng: np.random.Generator | None, state: State, backend: Backend
    ) -> tuple[State, dict[str, Any]]:
        """Step 1 gathers the items (N samples, one listing call, or none); step 2 asks
        every sub-query and sums."""
        if state.trace:
            return self._think_sum(state, backend)
        if self.items == "samples":
            new, info = self.draw(rng, state, backend, state.params.n)
            answers = self.answers(new)
            labels = cluster(answers, self.equivalent)
            counts, _ = vote_counts(labels)
            firsts = [labels.index(k) for k in range(len(counts))]
            keep = sorted(sorted(range(len(counts)), key=lambda k: -counts[k])[: self.max_items])
            record = {**info, "event": "items", "source": "samples",
                      "items": [answers[firsts[k]] for k in keep],
                      "counts": [counts[k] for k in keep], "first": [firsts[k] for k in keep],
                      "dropped": len(counts) - len(keep)}
            return new.model_copy(update={"trace": (record,)}), record
        if self.items == "extract":
            listing = with_question(state.prompt, self.extract_template.format(
                question=question_of(state.prompt), max_items=self.max_items))
            gen = generate(backend, listing, call_params(state.params, 1, 1, temperature=0.0),
                           rng)
            sample = gen.samples[0]
            found = parse_items(sample.text, self.extract, self.equivalent) \
                if sample.status == "ok" else []
            record = {"event": "items", "source": "extract", "items": found[: self.max_items],
                      "dropped": max(0, len(found) - self.max_items), "status": sample.status,
                      "completion_tokens": gen.usage.completion_tokens}
            return state.model_copy(update={
                "samples": gen.samples, "usage": state.usage + gen.usage, "trace": (record,),
            }), record
        record = {"event": "items", "source": "given", "items": list(self.items), "dropped": 0}
        return state.model_copy(update={"trace": (record,)}), record

    def _think_sum(self, state: State, backend: Backend) -> tuple[State, dict[str, Any]]:
        gathered = state.trace[0]
        items: list[str] = gathered["items"]
        counts = gathered.get("counts") or [1] * len(items)
        priors = [c / sum(counts) for c in counts]
        scorer = LabelTokenScorer(backend, self.template, self.positive, self.negative,
                                  name="thinksum", field="item")
        usage = Usage()
        p_yes: list[float | None] = []
        rows: list[dict[str, Any]] = []
        for item in items:  # the Think stage: one sub-query per item
            usage = usage + Usage(scorer_calls=1)
            try:
                value, cost = scorer.measure(state.prompt, (item,))
                error = None
            except ScorerError as exc:
                value, cost, error = None, exc.usage, str(exc)
            usage = usage + cost
            p_yes.append(value)
            rows.append({"item": item, "p_yes": value, "prompt_tokens": cost.prompt_tokens,
                         "completion_tokens": cost.completion_tokens, "error": error})
        v = sum_posterior(items, priors, p_yes, self.alpha, self.select)  # the Sum stage
        for row, prior in zip(rows, priors, strict=True):
            row["prior"] = prior
            row["posterior"] = v.shares.get(row["item"], 0.0)
        record = {"event": "thinksum", "reads": scorer.reads, "alpha": self.alpha,
                  "select": self.select, "rows": rows, "winner": v.winner,
                  "scorer_errors": [r["error"] for r in rows if r["error"]]}
        new = state.model_copy(update={"usage": state.usage + usage,
                                       "trace": state.trace + (record,)})
        return new, record

    def finalize(self, state: State) -> Result:
        gathered = state.trace[0] if state.trace else {"source": "given", "items": []}
        source = gathered["source"]
        answers = self.answers(state) if source == "samples" else (None,) * len(state.samples)
        last = state.trace[-1]
        if last.get("event") != "thinksum" or last["winner"] is None:
            return self.result(state, answers)
        winner = last["winner"]
        shares = {r["item"]: r["posterior"] for r in last["rows"] if r["p_yes"] is not None}
        selected = gathered["first"][winner] if source == "samples" else None
        return self.result(state, answers, selected=selected,
                           answer=gathered["items"][winner], vote_shares=shares)


def _check_format(name: str, template: str, **fields: object) -> None:
    """Raise ConfigError naming ``name`` unless ``template`` formats with ``fields`` only."""
    try:
        template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"{name} may use only the fields {', '.join('{' + f + '}' for f in fields)} "
            f"(double other braces): {exc!r}"
        ) from exc
