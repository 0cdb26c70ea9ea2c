"""Code verification: extract a program from a model reply and run its unit tests sandboxed.

Public API: :func:`extract_code`, :func:`run_tests` and :class:`CodeResult`; plus
:func:`build_program`, which builds the program that is tested from a prompt and a reply
the way the official HumanEval harness does (Chen et al., 2021, "Evaluating Large Language
Models Trained on Code", https://github.com/openai/human-eval, ``human_eval/execution.py``).

The program that is tested
--------------------------
The official harness executes ``prompt + completion + "\\n" + test + "\\n" +
f"check({entry_point})"`` as one string with ``exec`` in a fresh globals dict. Here:

* completion prompting: the program is ``prompt + completion``, exactly as there;
* chat prompting: the reply's code (:func:`extract_code`) is appended to the prompt
  (``prompt + "\\n" + code``): the prompt's imports and helper functions stay defined
  (HumanEval/32's tests use the prompt's ``poly``) and the reply's definition of the entry
  point replaces the prompt's stub. A reply that is only a function body is appended
  indented, as a completion;
* the tests, ``test + "\\n" + f"check({entry_point})"``, run after the program in the same
  globals, as there.

Differences from the official harness (all documented in benchmarks/RESULTS.md with the
measured agreement): program and tests are compiled and run as two parts, so the builtins
module is restored between them (a program cannot fake a pass by monkeypatching builtins);
``sys.exit()`` and ``os._exit()`` anywhere count as not passed in both, but here a run must
also deliver a nonce-tagged verdict after the tests; the default time limit is
``timeout=10.0`` s per run, interpreter start-up included (the official default is 3.0 s
of ``exec`` time); the official ``reliability_guard`` disables ``os.remove``, ``os.kill``,
``subprocess.Popen`` and more in-process, while here the OS limits of
:mod:`samplescale.verifiers.sandbox` contain such calls instead (a program that only uses
``os.remove`` inside its directory passes here and fails there).
"""

from __future__ import annotations

import ast
import math
import os
import re
import textwrap
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from samplescale.errors import ConfigError, SamplescaleError
from samplescale.verifiers._workers import CODE_SANDBOX, call_worker
from samplescale.verifiers.sandbox import SandboxLimits

__all__ = ["CodeResult", "SandboxLimits", "build_program", "extract_code", "run_tests"]

#: Extra seconds the pool waits for a supervisor's reply beyond a run's own ``timeout``
#: (starting the sandbox, killing it, cleaning its directory).
SUPERVISOR_GRACE_S = 30.0
MAX_TIMEOUT_S = 3600.0

Status = Literal["passed", "failed", "timeout", "error"]


class CodeResult(BaseModel):
    """The outcome of one sandboxed test run.

    Attributes
    ----------
    status : {"passed", "failed", "timeout", "error"}
        ``passed``: the tests ran to the end without an exception. ``failed``: the program
        or the tests raised (an assertion or any other exception). ``timeout``: the
        wall-clock ``timeout`` or the CPU-seconds limit ran out. ``error``: the program
        could not be tested (it does not compile, exited or was killed before the tests
        finished: ``sys.exit``, ``os._exit``, a memory, output or process limit), or the
        sandbox failed.
    detail : str
        One short line: the failing assertion or exception (``"<test>:3: assert
        candidate(2) == 4 -> AssertionError"``), the exit reason, or ``""`` when passed.
    stdout, stderr : str
        The start of the program's output (capped by ``SandboxLimits.output_kb``).
    wall_s : float
        Seconds the sandboxed process ran, interpreter start-up included.
    layers : dict
        Which isolation layers were on: ``namespaces`` (bool), ``landlock`` (ABI version,
        0 if none), ``pid_max`` (bool), ``seccomp`` (bool: no unix sockets).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    status: Status
    detail: str = ""
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0
    layers: dict[str, Any] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True if the tests ran to the end without an exception."""
        return self.status == "passed"


# --------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.M | re.S)
_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_PY_TAGS = {"", "python", "py", "python3", "py3"}


def _defines(tree: ast.Module, name: str) -> bool:
    return any(
        isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in tree.body
    )


def _top_level_definitions(code: str, tree: ast.Module) -> str:
    """Imports, functions, classes and assignments of ``code``; example calls, prints,
    asserts and ``if __name__ == "__main__":`` blocks dropped."""
    lines = code.splitlines()
    kept = []
    for node in tree.body:
        if isinstance(node, _KEEP) or isinstance(node, (ast.Assign, ast.AnnAssign)):
            decorators = getattr(node, "decorator_list", [])
            start = min([node.lineno, *(d.lineno for d in decorators)])
            end = node.end_lineno or node.lineno
            kept.append("\n".join(lines[start - 1 : end]))
    return "\n\n".join(kept) + "\n"


def _parse(code: str) -> ast.Module | None:
    """The syntax tree of ``code`` if it compiles (``return`` outside a function does not)."""
    try:
        compile(code, "<reply>", "exec", dont_inherit=True)
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _as_body(code: str) -> str | None:
    """``code`` indented by four spaces if it parses as a function body, else None."""
    body = textwrap.indent(textwrap.dedent(code).strip("\n"), "    ") + "\n"
    return body if _parse("def _f():\n" + body) is not None else None


def extract_code(text: str, entry_point: str | None = None) -> str | None:
    """The program in a chat model's reply.

    Rules, in order:

    1. Fenced blocks (```` ```python ````, ```` ```py ````, or untagged; a last block cut
       off by ``max_tokens`` without its closing fence counts): the first block that
       parses and defines ``entry_point`` (any parsing block when ``entry_point`` is
       None, preferring one that defines a function); blocks tagged with another language
       are skipped.
    2. No such block: the whole reply, if it parses and defines ``entry_point`` (or any
       function when ``entry_point`` is None).
    3. Otherwise the first Python block (or the reply) that parses as a function body is
       returned indented by four spaces, to be appended to the prompt like a completion.

    From a block that defines functions only its imports, functions, classes and
    assignments are kept: example calls, prints, asserts and ``__main__`` blocks the
    model added are dropped (they are not the answer, and a wrong example would fail it).

    Parameters
    ----------
    text : str
        The reply.
    entry_point : str or None
        The name of the function the tests call.

    Returns
    -------
    str or None
        The code, or None if the reply holds no usable Python.
    """
    if not isinstance(text, str):
        raise ConfigError(f"text must be a string, got {type(text).__name__}")
    blocks = [m.group(2) for m in _FENCE.finditer(text) if m.group(1).lower() in _PY_TAGS]
    candidates = blocks + [text]
    for code in candidates:
        tree = _parse(code)
        if tree is None:
            continue
        if entry_point is not None and _defines(tree, entry_point):
            return _top_level_definitions(code, tree)
        if entry_point is None and any(isinstance(n, _KEEP[2:4]) for n in tree.body):
            return _top_level_definitions(code, tree)
    if entry_point is None:
        for code in blocks:
            if _parse(code) is not None and code.strip():
                return code if code.endswith("\n") else code + "\n"
    for code in blocks or [text]:
        body = _as_body(code) if code.strip() else None
        if body is not None:
            return body
    return None


def build_program(
    prompt: str, reply: str, mode: Literal["completion", "chat"], *, entry_point: str | None = None
) -> str | None:
    """The program to test, built as the official HumanEval harness builds it.

    Parameters
    ----------
    prompt : str
        The code prompt (HumanEval's ``prompt``: imports, signature and docstring).
    reply : str
        The model's output: a completion of ``prompt`` (``mode="completion"``) or a chat
        reply (``mode="chat"``).
    mode : {"completion", "chat"}
    entry_point : str or None
        The function the tests call (used to pick the code block of a chat reply).

    Returns
    -------
    str or None
        ``prompt + reply`` for completions; for chat, ``prompt + "\\n" + code`` when the
        extracted code defines functions, ``prompt + code`` when it is a bare body (so
        every program starts with ``prompt``, and ``program[len(prompt):]`` is the
        completion the official harness would be given); None when a chat reply holds no
        usable code.
    """
    if mode == "completion":
        return prompt + reply
    if mode != "chat":
        raise ConfigError(f"mode must be 'completion' or 'chat', got {mode!r}")
    code = extract_code(reply, entry_point)
    if code is None:
        return None
    if code.startswith("    "):  # a bare body continues the prompt's signature
        return prompt + code
    return prompt + "\n" + code


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


def check_timeout(timeout: object) -> float:
    """``timeout`` as a float; ConfigError unless it is a number of seconds in (0, 3600]."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or not 0 < timeout <= MAX_TIMEOUT_S
    ):
        raise ConfigError(
            f"timeout must be a number of seconds in (0, {MAX_TIMEOUT_S:g}], got {timeout!r}"
        )
    return float(timeout)


def run_tests(
    program: str,
    test: str,
    entry_point: str | None = None,
    timeout: float = 10.0,
    limits: SandboxLimits | None = None,
) -> CodeResult:
    """Run ``test`` against ``program`` in the sandbox (safe to call from any thread).

    The program runs first, then ``test`` in the program's globals, then
    ``check(entry_point)`` when ``entry_point`` is given (HumanEval's convention: ``test``
    defines ``check(candidate)``). Runs go through a pool of supervisor processes
    (:mod:`samplescale.verifiers._workers`), so up to ``min(4, cpu_count)`` run in
    parallel across threads; a call waits for a free supervisor (not counted against
    ``timeout``). See :mod:`samplescale.verifiers.sandbox` for what is and is not
    contained.

    Parameters
    ----------
    program : str
        Python source of the program (e.g. from :func:`build_program`).
    test : str
        Python source of the tests: asserts (MBPP) or a ``check`` function (HumanEval).
    entry_point : str or None
        A Python identifier; when given, ``check(<entry_point>)`` is called after ``test``.
    timeout : float
        Wall-clock seconds for the run, interpreter start-up included; in (0, 3600].
    limits : SandboxLimits or None
        OS limits of the run; None uses the defaults (10 CPU s, 1 GiB address space,
        16 MiB files, 64 processes, 256 open files).

    Returns
    -------
    CodeResult

    Raises
    ------
    ConfigError
        If ``program`` or ``test`` is not a string, ``entry_point`` is not an identifier,
        or ``timeout`` is out of range.
    SamplescaleError
        If no supervisor process can be started, or the system is not POSIX.
    """
    if os.name != "posix":
        raise SamplescaleError("the code sandbox needs a POSIX system (Linux or macOS)")
    for label, value in (("program", program), ("test", test)):
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be a string, got {type(value).__name__}")
    if entry_point is not None and (
        not isinstance(entry_point, str) or not entry_point.isidentifier()
    ):
        raise ConfigError(f"entry_point must be a Python identifier or None, got {entry_point!r}")
    seconds = check_timeout(timeout)
    if limits is not None and not isinstance(limits, SandboxLimits):
        raise ConfigError(f"limits must be a SandboxLimits or None, got {type(limits).__name__}")
    tests = test if entry_point is None else f"{test}\n\ncheck({entry_point})\n"
    payload = {
        "program": program,
        "test": tests,
        "timeout": seconds,
        "limits": (limits or SandboxLimits()).model_dump(),
    }
    reply = call_worker(CODE_SANDBOX, payload, seconds + SUPERVISOR_GRACE_S)
    if reply is None:
        return CodeResult(status="error", detail="the sandbox supervisor did not answer; replaced")
    if "error" in reply:
        return CodeResult(status="error", detail=f"sandbox error: {reply['error']}"[:500])
    return CodeResult(**reply["result"])
