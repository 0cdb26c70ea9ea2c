"""Code strategies: draw N programs, run each once on the prompt's PUBLIC examples, select one.

Three strategies, one per rule of :mod:`samplescale.verifiers.code_select` (where the rules
and their papers are described):

* ``best-of-n-public-tests`` -- the program that passes the most public examples
  (AlphaCode's filtering, Li et al., 2022, as a best-of-N score);
* ``mbr-exec`` -- self-consistency over behaviour: the largest class of programs with
  identical outputs on the public inputs (Shi et al., 2022, MBR-exec);
* ``filter-and-cluster`` -- AlphaCode's filtering then clustering (Li et al., 2022).

The hidden tests are never used. In ``samplescale eval`` on a code task the evaluator
binds each problem's public tests (:meth:`CodeSelection.for_problem` with
:meth:`samplescale.tasks.code.CodeTask.public_tests`), then grades every sample with the
hidden tests, so a record holds the selected program's verdict and the coverage of the
pool. Unbound (``samplescale generate``, the library), the public tests are read from the
prompt: its doctest examples (``>>> f(2)`` then ``4``) calling ``entry_point`` (default:
the function its first example calls), the program being the reply's code block.

The Result: ``answers`` are the samples' programs (None: no code), ``scores`` the fraction
of public examples each passes (probability scale; 1.0 for every program when there is no
example; None for a sample without a program), ``selected`` the chosen sample, and the last
``trace`` record (``"event": "code-selection"``) says why: the rule, the number of public
examples, each sample's examples passed and behaviour class, and the reason in one
sentence. ``usage.scorer_calls`` counts the sandboxed runs (one per program).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from samplescale.errors import ConfigError
from samplescale.strategies.base import State, Strategy
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Prompt, Result
from samplescale.verifiers.code import check_timeout
from samplescale.verifiers.code_select import RULES, ExampleRun, PublicTests

EVENT = "code-selection"
"""The ``event`` of the trace record that explains a code strategy's choice."""


def _prompt_text(prompt: Prompt) -> str:
    if prompt.messages is not None:
        users = [m.content for m in prompt.messages if m.role == "user"]
        return users[-1] if users else ""
    return prompt.text or ""


@dataclass(frozen=True)
class CodeSelection(Strategy):
    """Base of the code strategies: N samples, one sandboxed run each, a selection rule.

    Attributes
    ----------
    public_tests : PublicTests or None
        The problem's public examples and reply -> program mapping; None reads them from
        the prompt (module docstring).
    entry_point : str or None
        With ``public_tests=None``: the function the prompt's examples call (default: the
        one its first example calls).
    timeout : float
        With ``public_tests=None``: seconds per sandboxed run, in (0, 3600].

    Raises
    ------
    ConfigError
        If ``public_tests`` is not a PublicTests, ``entry_point`` not an identifier, or
        ``timeout`` out of range.
    """

    public_tests: PublicTests | None = None
    entry_point: str | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.public_tests is not None and not isinstance(self.public_tests, PublicTests):
            raise ConfigError(
                f"public_tests must be a PublicTests or None, got "
                f"{type(self.public_tests).__name__}"
            )
        if self.entry_point is not None and (
            not isinstance(self.entry_point, str) or not self.entry_point.isidentifier()
        ):
            raise ConfigError(
                f"entry_point must be a Python identifier or None, got {self.entry_point!r}"
            )
        object.__setattr__(self, "timeout", check_timeout(self.timeout))

    def for_problem(self, public_tests: PublicTests) -> CodeSelection:
        """This strategy bound to one problem's public tests."""
        return dataclasses.replace(self, public_tests=public_tests)

    def tests(self, prompt: Prompt) -> PublicTests:
        """The bound public tests, or those read from ``prompt``."""
        if self.public_tests is not None:
            return self.public_tests
        return PublicTests.from_prompt(_prompt_text(prompt), self.entry_point, self.timeout)

    def finalize(self, state: State) -> Result:
        tests = self.tests(state.prompt)
        runs = tests.run([s.text if s.status == "ok" else None for s in state.samples])
        examples = len(tests.examples)
        choice = RULES[self.name](runs, examples)
        event: dict[str, Any] = {
            "event": EVENT,
            "rule": self.name,
            "examples": examples,
            "passed": [r.passed if r.program is not None else None for r in runs],
            "behaviour_classes": choice.classes,
            "reason": choice.reason,
        }
        runs_made = sum(r.program is not None for r in runs) if examples else 0
        usage = state.usage.model_copy(
            update={"scorer_calls": state.usage.scorer_calls + runs_made}
        )
        done = state.model_copy(update={"trace": state.trace + (event,), "usage": usage})
        answers = tuple(r.program for r in runs)
        return self.result(
            done,
            answers,
            scores=tuple(_score(r, examples) for r in runs),
            score_scale="probability",
            selected=choice.selected,
            answer=None if choice.selected is None else answers[choice.selected],
        )


def _score(run: ExampleRun, examples: int) -> float | None:
    if run.program is None:
        return None
    return run.passed / examples if examples else 1.0


@STRATEGIES.register("best-of-n-public-tests")
@dataclass(frozen=True)
class BestOfNPublicTests(CodeSelection):
    """Best-of-N by public tests: the program passing the most public examples (ties: the
    earliest). AlphaCode's filtering (Li et al., 2022), as a score; see
    :func:`samplescale.verifiers.code_select.select_best_public`."""

    name = "best-of-n-public-tests"


@STRATEGIES.register("mbr-exec")
@dataclass(frozen=True)
class MBRExec(CodeSelection):
    """Self-consistency over behaviour: the largest class of programs with identical outputs
    on the public inputs. MBR-exec (Shi et al., 2022, "Natural Language to Code Translation
    with Execution") with the 0/1 execution-match loss; see
    :func:`samplescale.verifiers.code_select.select_by_behaviour`."""

    name = "mbr-exec"


@STRATEGIES.register("filter-and-cluster")
@dataclass(frozen=True)
class FilterAndCluster(CodeSelection):
    """AlphaCode's filtering then clustering (Li et al., 2022, "Competition-Level Code
    Generation with AlphaCode", sections 4.5-4.6), on the public inputs; see
    :func:`samplescale.verifiers.code_select.select_filter_and_cluster` for how that
    differs from clustering on generated inputs."""

    name = "filter-and-cluster"
