"""Selecting one of N programs by their behaviour on the prompt's PUBLIC examples.

The hidden tests are never used here. A problem's public examples are the doctest-style
examples of its prompt (``>>> f(2)`` followed by ``4``) whose call names the entry point
(:func:`samplescale.verifiers.code_examples.public_examples`). Every program is run ONCE
in the sandbox on all of them (:meth:`PublicTests.run_programs`), which gives two signals
(:class:`ExampleRun`):

* how many examples it passes (its value ``==`` the expected one);
* its **behaviour**: its outputs on the examples' inputs, one line per call (the value's
  ``repr``, or ``raised <ExceptionType>``), whether or not they are the expected ones.

Three selection rules use them (the strategies of
:mod:`samplescale.strategies.code_selection` apply them to N samples):

* :func:`select_best_public` -- best-of-N by public tests: the program that passes the most
  examples (ties: the earliest). AlphaCode's filtering step (Li et al., 2022,
  "Competition-Level Code Generation with AlphaCode", section 4.5), used as a score.
* :func:`select_by_behaviour` -- self-consistency over behaviour: programs with identical
  outputs on the public inputs form a class; the first program of the largest class wins.
  This is MBR-exec with the 0/1 execution-match loss (Shi et al., 2022, "Natural Language
  to Code Translation with Execution"): the program that agrees with the most others. It
  uses the inputs only, never the expected outputs.
* :func:`select_filter_and_cluster` -- AlphaCode's filtering then clustering: keep the
  programs that pass the most examples, cluster them by behaviour, take the largest
  class. AlphaCode clusters on NEW inputs from a trained test-input generator; here the
  inputs are the public ones, so programs that pass every example share one behaviour
  and the clustering only separates programs that pass some but not all of them. It
  differs from best-of-N only then.

A prompt without usable examples gives every program the same score and no behaviour:
every rule then takes the first sample that holds a program, and says so.

What this does not protect against: the program runs in the sandbox, but its outputs are
read from its own process, so a hostile program can fake its public-example results (for
example by replacing ``repr`` or printing a forged result line). That can only get it
selected; whether it is correct is decided by the hidden tests in a separate run.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

from samplescale.errors import ConfigError
from samplescale.verifiers._workers import CODE_SANDBOX
from samplescale.verifiers.code import check_timeout, extract_code, run_tests
from samplescale.verifiers.code_examples import Example, called_function, public_examples

#: Longest ``repr`` of an output kept as it is; longer ones are cut and keep a digest of
#: the whole ``repr`` (so two different long outputs stay different classes).
MAX_OUTPUT_CHARS = 200


class ExampleRun(NamedTuple):
    """One program run on the public examples.

    Attributes
    ----------
    program : str or None
        The program (None: the sample holds no code; it is never selected).
    outputs : tuple of str or None
        One line per example: the value's ``repr`` (cut at :data:`MAX_OUTPUT_CHARS`, with
        a SHA-256 digest of the rest) or ``raised <ExceptionType>``; None when there is no
        program, no example, or the run did not finish (the program raised at import,
        timed out, exited).
    passed : int
        Examples whose value ``==`` the expected value (0 when ``outputs`` is None).
    """

    program: str | None
    outputs: tuple[str, ...] | None
    passed: int

    @property
    def behaviour(self) -> str | None:
        """The outputs as one string (the behaviour class key), or None."""
        return None if not self.outputs else "\n".join(self.outputs)


def _harness(examples: Sequence[Example], marker: str) -> str:
    """Test code that evaluates every example call and prints one marked JSON line."""
    lines = [
        "import hashlib as _h, json as _j",
        "_o = []",
        "def _key(_v):",
        "    _r = repr(_v)",
        f"    if len(_r) <= {MAX_OUTPUT_CHARS}:",
        "        return _r",
        f"    return _r[:{MAX_OUTPUT_CHARS}] + '...sha256:' + _h.sha256(_r.encode()).hexdigest()",
    ]
    for call, want in examples:
        lines += [
            "try:",
            f"    _v = ({call})",
            "except Exception as _e:",
            "    _o.append(['raised ' + type(_e).__name__, False])",
            "else:",
            "    try:",
            f"        _ok = bool(_v == ({want}))",
            "    except Exception:",
            "        _ok = False",
            "    _o.append([_key(_v), _ok])",
        ]
    lines.append(f"print({marker!r} + _j.dumps(_o))")
    return "\n".join(lines) + "\n"


def run_examples(program: str | None, examples: Sequence[Example], timeout: float) -> ExampleRun:
    """Run ``program`` once on every example (one sandboxed process); see :class:`ExampleRun`."""
    if program is None or not examples:
        return ExampleRun(program, None, 0)
    marker = f"@@examples-{secrets.token_hex(8)}@@"
    result = run_tests(program, _harness(examples, marker), None, timeout)
    line = next((x for x in reversed(result.stdout.splitlines()) if x.startswith(marker)), None)
    if result.status != "passed" or line is None:
        return ExampleRun(program, None, 0)
    try:
        pairs = json.loads(line[len(marker) :])
        outputs = tuple(str(o) for o, _ in pairs)
        passed = sum(bool(ok) for _, ok in pairs)
    except (ValueError, TypeError):  # a line cut by the output cap
        return ExampleRun(program, None, 0)
    if len(outputs) != len(examples):
        return ExampleRun(program, None, 0)
    return ExampleRun(program, outputs, passed)


@dataclass(frozen=True)
class PublicTests:
    """A problem's public examples and how a model reply becomes the program to run.

    Attributes
    ----------
    examples : tuple of (str, str)
        ``(call, expected)`` sources (:func:`public_examples`).
    program_of : callable str -> str or None
        The program a reply gives (e.g. :meth:`samplescale.tasks.code.CodeTask.program`
        bound to the problem); None when the reply holds no code.
    timeout : float
        Wall-clock seconds per sandboxed run, in (0, 3600].

    Raises
    ------
    ConfigError
        If ``program_of`` is not callable or ``timeout`` is out of range.
    """

    examples: tuple[Example, ...]
    program_of: Callable[[str], str | None]
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not callable(self.program_of):
            raise ConfigError(
                f"program_of must be a callable str -> str or None, got "
                f"{type(self.program_of).__name__}"
            )
        object.__setattr__(self, "timeout", check_timeout(self.timeout))
        object.__setattr__(self, "examples", tuple(tuple(e) for e in self.examples))

    @classmethod
    def from_prompt(
        cls, text: str, entry_point: str | None = None, timeout: float = 10.0
    ) -> PublicTests:
        """The public tests of a free-form prompt: its doctest examples that call
        ``entry_point`` (default: the function its first example calls); a reply's program
        is its code block that defines the entry point (:func:`extract_code`; a reply that
        is only a function body has no signature to continue and gives no program)."""
        entry = entry_point or called_function(text)

        def program_of(reply: str) -> str | None:
            code = extract_code(reply, entry)
            return None if code is None or code.startswith("    ") else code

        return cls(tuple(public_examples(text, entry)), program_of, timeout)

    def run_programs(self, programs: Sequence[str | None]) -> list[ExampleRun]:
        """Run every program on the examples, in parallel through the sandbox pool."""
        with ThreadPoolExecutor(max_workers=CODE_SANDBOX.size) as pool:
            return list(
                pool.map(lambda p: run_examples(p, self.examples, self.timeout), programs)
            )

    def run(self, replies: Sequence[str | None]) -> list[ExampleRun]:
        """:meth:`run_programs` on the programs of ``replies`` (None: a failed sample)."""
        return self.run_programs([None if r is None else self.program_of(r) for r in replies])


class Selection(NamedTuple):
    """A rule's choice: the ``selected`` sample's index (None: no sample holds a program),
    the reason in one sentence, and each sample's behaviour class (the index of the first
    sample with the same outputs; None without outputs)."""

    selected: int | None
    reason: str
    classes: list[int | None]


def behaviour_classes(runs: Sequence[ExampleRun]) -> list[int | None]:
    """Each run's behaviour class: the index of the first run with identical outputs."""
    first: dict[str, int] = {}
    return [
        None if r.behaviour is None else first.setdefault(r.behaviour, i)
        for i, r in enumerate(runs)
    ]


def _count(n: int, noun: str) -> str:
    """``3 programs``, ``1 program``, ``2 behaviour classes``."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun}es" if noun.endswith("s") else f"{n} {noun}s"


def _first_program(runs: Sequence[ExampleRun], classes: list[int | None], why: str) -> Selection:
    index = next((i for i, r in enumerate(runs) if r.program is not None), None)
    if index is None:
        return Selection(None, "no sample holds a program", classes)
    return Selection(index, f"{why}: the first program (sample {index})", classes)


def _most_passed(runs: Sequence[ExampleRun]) -> tuple[int, list[int], list[int]]:
    """(most examples passed, the programs that pass that many, all programs); (0, [], [])
    when no sample holds a program."""
    programs = [i for i, r in enumerate(runs) if r.program is not None]
    best = max((runs[i].passed for i in programs), default=0)
    return best, [i for i in programs if runs[i].passed == best], programs


def select_best_public(runs: Sequence[ExampleRun], examples: int) -> Selection:
    """Best-of-N by public tests: the program passing the most of the ``examples`` public
    examples (ties: the earliest); see the module docstring."""
    classes = behaviour_classes(runs)
    best, tied, programs = _most_passed(runs)
    if not examples or not programs:
        return _first_program(runs, classes, "no public example calls the entry point")
    return Selection(
        tied[0],
        f"passes {best} of {_count(examples, 'public example')}, the most of "
        f"{_count(len(programs), 'program')} ({len(tied)} tied; the earliest is taken)",
        classes,
    )


def _largest_class(
    candidates: list[int], classes: list[int | None]
) -> tuple[int, int, int] | None:
    """(first sample of the largest class among ``candidates``, its size, classes)."""
    counts = Counter(classes[i] for i in candidates if classes[i] is not None)
    if not counts:
        return None
    size = max(counts.values())
    winner = next(i for i in candidates if classes[i] is not None and counts[classes[i]] == size)
    return winner, size, len(counts)


def select_by_behaviour(runs: Sequence[ExampleRun], examples: int) -> Selection:
    """Self-consistency over behaviour (MBR-exec): the first program of the largest class
    of identical outputs on the public inputs (ties: the class seen first)."""
    classes = behaviour_classes(runs)
    top = _largest_class(list(range(len(runs))), classes)
    if not examples or top is None:
        why = "no public example calls the entry point" if not examples else (
            "no program finished the public inputs")
        return _first_program(runs, classes, why)
    winner, size, count = top
    voters = sum(c is not None for c in classes)
    return Selection(
        winner,
        f"its outputs on {_count(examples, 'public input')} are shared by {size} of the "
        f"{_count(voters, 'program')} that ran them ({_count(count, 'behaviour class')}); "
        "the largest class wins",
        classes,
    )


def select_filter_and_cluster(runs: Sequence[ExampleRun], examples: int) -> Selection:
    """AlphaCode-style filtering then clustering: among the programs passing the most
    public examples, the first of the largest behaviour class (module docstring)."""
    classes = behaviour_classes(runs)
    best, kept, programs = _most_passed(runs)
    if not examples or not programs:
        return _first_program(runs, classes, "no public example calls the entry point")
    top = _largest_class(kept, classes)
    if top is None:  # none of them finished the examples
        return Selection(
            kept[0],
            f"no program finished the public inputs: the first program (sample {kept[0]})",
            classes,
        )
    winner, size, count = top
    return Selection(
        winner,
        f"{_count(len(kept), 'program')} pass {best} of "
        f"{_count(examples, 'public example')} (the most); they form "
        f"{_count(count, 'behaviour class')}, and the largest ({size}) wins",
        classes,
    )


RULES: dict[str, Callable[[Sequence[ExampleRun], int], Selection]] = {
    "best-of-n-public-tests": select_best_public,
    "mbr-exec": select_by_behaviour,
    "filter-and-cluster": select_filter_and_cluster,
}
"""The selection rules by the registry name of the strategy that applies them."""
