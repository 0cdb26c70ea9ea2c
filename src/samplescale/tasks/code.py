"""Code generation tasks: HumanEval, MBPP and a generic code jsonl, graded by unit tests.

A :class:`CodeTask` is a :class:`~samplescale.tasks.base.Task` whose problems are graded by
running their tests in the sandbox (:func:`samplescale.verifiers.code.run_tests`), not by
answer equivalence: :meth:`CodeTask.grade` is the task-level grader that the evaluator
calls. Each problem's ``metadata`` holds ``code_prompt`` (the code the program starts
with: HumanEval's ``prompt``; MBPP's ``test_setup_code``), ``test``, ``entry_point`` and
``call_check`` (HumanEval: call ``check(entry_point)`` after the tests; MBPP: the tests
are asserts). ``gold`` is the reference solution (the program it gives passes the tests).

Prompting (``mode``):

* ``"chat"`` (instruct models), as EvalPlus (Liu et al., 2023) prompts them: one user
  message asking for a self-contained script in a markdown code block, and the reply
  starts with :data:`CHAT_PREFIX` (which opens a ```` ```python ```` block), so the
  model writes code at once; generation stops at the closing fence or at top-level
  example code (:data:`CHAT_STOP`) unless the caller set its own stop sequences. The reply's code is extracted
  (:func:`~samplescale.verifiers.code.extract_code`).
* ``"completion"`` (base models): the raw code prompt is continued; the program is
  ``prompt + completion`` (Chen et al., 2021), and generation stops at the stop sequences
  of the Codex paper (``"\\nclass"``, ``"\\ndef"``, ``"\\n#"``, ``"\\nif"``,
  ``"\\nprint"``) unless the caller set its own.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Literal

from pydantic import Field

from samplescale.errors import ConfigError, DataError
from samplescale.tasks._records import Record, read_records
from samplescale.tasks.base import Problem, Task
from samplescale.types import Prompt
from samplescale.verifiers.code import CodeResult, build_program, check_timeout, run_tests
from samplescale.verifiers.code_examples import public_examples
from samplescale.verifiers.code_select import PublicTests

Mode = Literal["chat", "completion"]

CHAT_INSTRUCTION = (
    "Please provide a self-contained Python script that solves the following problem "
    "in a markdown code block:"
)
"""The chat instruction of EvalPlus (Liu et al., 2023), which the Qwen2.5-Coder report uses."""
CHAT_PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and "
    "passes corresponding tests:\n```python\n"
)
"""The start of the reply that chat prompting continues (EvalPlus's response prefix)."""
#: Stop sequences of chat prompting: the end of the code block the prefix opened, and the
#: top-level example code small models append after the function (``print(...)``, asserts,
#: a ``__main__`` block, "# Test" comments). :func:`~samplescale.verifiers.code.extract_code`
#: drops such top-level code anyway, so stopping there changes no verdict, only saves tokens.
CHAT_STOP = ("\n```", "\nprint(", "\nassert ", "\nif __name__", "\n# Test", "\n# Example")
MBPP_INSTRUCTION = (
    "You are an expert Python programmer. Write a Python function for this task. Reply "
    "with the function in a markdown code block:"
)
#: Stop sequences of completion prompting (Chen et al., 2021, section 3.1).
COMPLETION_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


class CodeTask(Task):
    """A task whose problems are graded by running unit tests in the sandbox.

    Attributes
    ----------
    mode : {"chat", "completion"}
        How problems are put to the model (see the module docstring).
    timeout : float
        Wall-clock seconds per test run, in (0, 3600].
    """

    mode: Mode = "chat"
    timeout: float = Field(10.0, gt=0.0, le=3600.0, allow_inf_nan=False)

    def prompt(self, problem: Problem) -> Prompt:
        """The prompt of ``problem``: a chat message, or the raw code prompt to continue."""
        if self.mode == "completion":
            return Prompt(text=problem.metadata["completion_prompt"])
        return Prompt.user(f"{self.instruction}\n{problem.question}").continued(CHAT_PREFIX)

    def program(self, problem: Problem, text: str) -> str | None:
        """The program that is tested for the model output ``text`` (None: no code)."""
        return build_program(
            problem.metadata["code_prompt"],
            text,
            self.mode,
            entry_point=problem.metadata.get("entry_point"),
        )

    def public_tests(self, problem: Problem) -> PublicTests:
        """The public examples of ``problem`` for the code strategies: the doctest examples
        of its code prompt that call the entry point (HumanEval's docstrings; none for
        MBPP, whose prompt shows the hidden tests themselves), with :meth:`program` as the
        reply -> program mapping and the task's ``timeout``."""
        entry = problem.metadata.get("entry_point")
        return PublicTests(
            tuple(public_examples(problem.metadata["code_prompt"], entry)),
            functools.partial(self.program, problem),
            self.timeout,
        )

    def grade(self, problem: Problem, program: str | None) -> CodeResult:
        """Run ``problem``'s tests against ``program`` (a missing program is an error)."""
        if program is None:
            return CodeResult(status="error", detail="no Python code found in the reply")
        entry = problem.metadata.get("entry_point")
        return run_tests(
            program,
            problem.metadata["test"],
            entry if problem.metadata.get("call_check") else None,
            timeout=self.timeout,
        )


def _check_mode(mode: object) -> Mode:
    if mode not in ("chat", "completion"):
        raise ConfigError(f"mode must be 'chat' or 'completion', got {mode!r}")
    return mode  # type: ignore[return-value]


def _fenced(code: str) -> str:
    return f"```\n{code.rstrip()}\n```"


def humaneval(
    path: str | Path, mode: Mode = "chat", limit: int | None = None, timeout: float = 10.0
) -> CodeTask:
    """Load HumanEval (``HumanEval.jsonl.gz`` or ``.jsonl``; Chen et al., 2021).

    Parameters
    ----------
    path : str or Path
        The file, with ``task_id``, ``prompt``, ``test``, ``entry_point`` and (optional)
        ``canonical_solution`` per line.
    mode : {"chat", "completion"}
    limit : int or None
        Keep the first ``limit`` problems (>= 1); None keeps all 164.
    timeout : float
        Seconds per test run, in (0, 3600].

    Raises
    ------
    ConfigError
        If ``mode``, ``limit`` or ``timeout`` is out of range.
    DataError
        If the file is missing or malformed, or a line lacks a field.
    """
    mode = _check_mode(mode)
    problems = []
    for rec in read_records(path, limit):
        entry = _identifier(rec, "entry_point")
        prompt = rec.text("prompt")
        problems.append(
            Problem(
                id=rec.text("task_id"),
                question=_fenced(prompt),
                gold=prompt + str(rec.data.get("canonical_solution") or ""),
                source=rec.where,
                metadata={
                    "code_prompt": prompt,
                    "completion_prompt": prompt,
                    "test": rec.text("test"),
                    "entry_point": entry,
                    "call_check": True,
                },
            )
        )
    return _task("humaneval", problems, mode, timeout, CHAT_INSTRUCTION)


def _identifier(rec: Record, field: str) -> str:
    value = rec.text(field).strip()
    if not value.isidentifier():
        raise DataError(f"{rec.where}: field {field!r} must be a Python identifier, got {value!r}")
    return value


def _called_function(test: str) -> str | None:
    """The name of the first function called in an MBPP assert (its entry point)."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id not in {"set", "sorted", "list", "tuple", "abs", "math", "isclose"}:
                return node.func.id
    return None


def mbpp(
    path: str | Path, mode: Mode = "chat", limit: int | None = None, timeout: float = 10.0
) -> CodeTask:
    """Load MBPP (Austin et al., 2021, "Program Synthesis with Large Language Models").

    Each line has ``text`` (or ``prompt``, the sanitized split), ``code`` (the reference
    solution), ``test_list`` (assert lines) and optionally ``test_setup_code`` and
    ``test_imports``; ids are ``task_id``. The prompt shows the task and its test
    asserts, as in the paper; the tests are the same asserts.

    Raises
    ------
    ConfigError
        If ``mode``, ``limit`` or ``timeout`` is out of range.
    DataError
        If the file is missing or malformed, or a line lacks a field.
    """
    mode = _check_mode(mode)
    problems = []
    for rec in read_records(path, limit):
        text_field = "text" if "text" in rec.data else "prompt"
        tests = rec.data.get("test_list")
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
            raise DataError(f"{rec.where}: field 'test_list' must be a non-empty list of strings")
        imports = rec.data.get("test_imports") or []
        setup = str(rec.data.get("test_setup_code") or "")
        test = "\n".join([*map(str, imports), *tests]) + "\n"
        shown = "\n".join(tests)
        description = rec.text(text_field)
        problems.append(
            Problem(
                id=f"mbpp/{rec.text('task_id')}",
                question=f"{description}\nYour code should pass these tests:\n\n{shown}",
                gold=setup + rec.text("code"),
                source=rec.where,
                metadata={
                    "code_prompt": setup,
                    "completion_prompt": f'"""\n{description}\n{shown}\n"""\n{setup}',
                    "test": test,
                    "entry_point": _called_function(tests[0]),
                    "call_check": False,
                },
            )
        )
    return _task("mbpp", problems, mode, timeout, MBPP_INSTRUCTION)


def code_jsonl(
    path: str | Path,
    prompt_field: str = "prompt",
    test_field: str = "test",
    entry_point_field: str = "entry_point",
    id_field: str | None = "task_id",
    mode: Mode = "chat",
    limit: int | None = None,
    timeout: float = 10.0,
) -> CodeTask:
    """Load a code task from a jsonl file with a field mapping (HumanEval-like).

    ``prompt_field`` holds the code prompt, ``test_field`` the tests; when a line has
    ``entry_point_field``, ``check(<entry point>)`` is called after the tests (HumanEval
    convention), else the tests are plain asserts. Without ``id_field`` in a line the
    problems are numbered ``code-0000``, ...

    Raises
    ------
    ConfigError
        If ``mode``, ``limit`` or ``timeout`` is out of range or a field name is empty.
    DataError
        If the file is missing or malformed, or a line lacks a mapped field.
    """
    mode = _check_mode(mode)
    for label, value in (("prompt_field", prompt_field), ("test_field", test_field)):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{label} must be a non-empty string, got {value!r}")
    problems = []
    for index, rec in enumerate(read_records(path, limit)):
        has_entry = entry_point_field in rec.data
        entry = _identifier(rec, entry_point_field) if has_entry else None
        pid = rec.text(id_field) if id_field and id_field in rec.data else f"code-{index:04d}"
        prompt = rec.text(prompt_field)
        problems.append(
            Problem(
                id=pid,
                question=_fenced(prompt),
                gold=prompt,
                source=rec.where,
                metadata={
                    "code_prompt": prompt,
                    "completion_prompt": prompt,
                    "test": rec.text(test_field),
                    "entry_point": entry,
                    "call_check": has_entry,
                },
            )
        )
    return _task("code-jsonl", problems, mode, timeout, CHAT_INSTRUCTION)


def _task(
    name: str, problems: list[Problem], mode: Mode, timeout: float, instruction: str
) -> CodeTask:
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"{name}: duplicate problem id {dup!r}; ids must be unique")
    return CodeTask(
        name=name if mode == "chat" else f"{name}-completion",
        problems=tuple(problems),
        instruction=instruction,
        mode=mode,
        timeout=check_timeout(timeout),
    )
