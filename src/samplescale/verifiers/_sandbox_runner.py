"""The first code that runs inside the sandbox: limits itself, then runs program and tests.

This file is trusted code run by a fresh interpreter (``python -I -B _sandbox_runner.py``)
in the sandbox's temporary directory, started by :mod:`samplescale.verifiers.sandbox`. It
imports only the standard library (the sandbox may not be able to read samplescale).

Protocol
--------
* fd 0 carries one JSON object, read to its end before any untrusted code runs:
  ``{"nonce": str, "program": str, "test": str, "limits": {...}, "landlock": bool,
  "result_fd": int}``;
  fd 0 is then pointed to ``/dev/null`` (the program has no stdin).
* fd ``result_fd`` (given in the JSON) is the verdict channel. After the tests returned, this runner writes
  ``"<nonce> passed\\n"``; when the program or the tests raised, ``"<nonce> failed <detail>"``.
  The nonce is known only to this runner and the supervisor, so a program that prints or
  writes "passed" anywhere, or exits early (``sys.exit(0)``, ``os._exit(0)``, an
  ``atexit`` hook) does not produce a pass: no verdict line means "did not finish".
* The runner then ends with ``os._exit`` (no ``atexit`` hook of the program runs).

Harness integrity
-----------------
The program runs first (``exec`` in a fresh globals dict, as the official human-eval
harness does); then the builtins module is restored from a snapshot taken before the
program ran and globals that shadow a builtin name are removed, so a program that
monkeypatches ``builtins.abs`` / ``builtins.isinstance`` or defines a global ``all`` cannot
fake a pass of the tests that follow. The tests run in the program's globals (they may
use helpers the prompt defined, e.g. HumanEval/32 uses ``poly``).
"""

import builtins
import ctypes
import json
import os
import resource
import signal
import sys
import traceback

_MB = 1024 * 1024

# Landlock (Linux >= 5.13): uapi/linux/landlock.h
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_PR_SET_NO_NEW_PRIVS = 38
_FS_WRITE_V1 = (
    (1 << 1)  # WRITE_FILE
    | (1 << 4)  # REMOVE_DIR
    | (1 << 5)  # REMOVE_FILE
    | (1 << 6)  # MAKE_CHAR
    | (1 << 7)  # MAKE_DIR
    | (1 << 8)  # MAKE_REG
    | (1 << 9)  # MAKE_SOCK
    | (1 << 10)  # MAKE_FIFO
    | (1 << 11)  # MAKE_BLOCK
    | (1 << 12)  # MAKE_SYM
)
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
_NET_TCP = (1 << 0) | (1 << 1)  # ABI 4: BIND_TCP, CONNECT_TCP
_SCOPE = (1 << 0) | (1 << 1)  # ABI 6: ABSTRACT_UNIX_SOCKET, SIGNAL


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _landlock(writable_dir):
    """Allow writes only beneath ``writable_dir`` (and to /dev/null); deny TCP, scope
    signals and abstract unix sockets to the sandbox. Returns the ABI used, 0 if none."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return 0
    fs = _FS_WRITE_V1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(fs, _NET_TCP if abi >= 4 else 0, _SCOPE if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(
        _SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    if ruleset < 0:
        return 0
    file_rights = (1 << 1) | (_FS_TRUNCATE if abi >= 3 else 0)
    for path, allowed in ((writable_dir, fs), (os.devnull, file_rights)):
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        rule = _PathBeneath(allowed, fd)
        rc = libc.syscall(
            _SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule), 0
        )
        os.close(fd)
        if rc != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule({path})")
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)
    return int(abi)


# seccomp: refuse socket(AF_UNIX, ...) (a pathname unix socket is a file-system object
# that neither the network namespace nor Landlock ABI <= 7 covers: a program could talk to
# any unix socket server the user can reach). socketpair() stays allowed.
_SECCOMP_ARCH = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _seccomp_no_unix_sockets():
    """Install the filter; returns True if installed (Linux x86_64 or aarch64)."""
    arch = _SECCOMP_ARCH.get(os.uname().machine)
    if arch is None:
        return False
    audit_arch, nr_socket = arch
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    deny, allow = 0x00050000 | 13, 0x7FFF0000  # SECCOMP_RET_ERRNO(EACCES), RET_ALLOW
    program = [
        (ld, 0, 0, 4),  # arch
        (jeq, 0, 5, audit_arch),  # another ABI (i386, x32 via int 0x80): deny
        (ld, 0, 0, 0),  # syscall number
        (jge, 3, 0, 0x40000000),  # x32 syscall numbers: deny
        (jeq, 0, 3, nr_socket),
        (ld, 0, 0, 16),  # args[0] (low 32 bits): the address family
        (jeq, 0, 1, 1),  # AF_UNIX
        (ret, 0, 0, deny),
        (ret, 0, 0, allow),
    ]
    filters = (_SockFilter * len(program))(*[_SockFilter(*x) for x in program])
    prog = _SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    return libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) == 0


_PR_CAPBSET_DROP, _CAP_VERSION_3 = 24, 0x20080522


def _cap_pid_max_and_drop_root(processes):
    """In a pid namespace where we are root (``unshare --map-root-user``): cap the
    namespace's ``pid_max`` (Linux >= 6.14 keeps it per pid namespace; the floor is 301),
    then drop every capability, also from the bounding set, so neither the program nor
    anything it executes can raise it again. Returns True if ``pid_max`` was capped."""
    capped = False
    if os.getpid() == 1:
        try:
            with open("/proc/sys/kernel/pid_max", "w") as fh:
                fh.write(str(max(301, processes + 1)))
            capped = True
        except OSError:
            pass
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    return capped


def _limit(name, value):
    soft, hard = resource.getrlimit(name)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(name, (value, value))


def _apply_limits(limits):
    cpu = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL
    _limit(resource.RLIMIT_AS, int(limits["memory_mb"]) * _MB)
    _limit(resource.RLIMIT_FSIZE, int(limits["file_size_mb"]) * _MB)
    _limit(resource.RLIMIT_NPROC, int(limits["processes"]))
    _limit(resource.RLIMIT_NOFILE, int(limits["open_files"]))
    _limit(resource.RLIMIT_CORE, 0)


def _detail(exc, sources):
    """The failing statement (all its lines) in the deepest frame of the program or the
    tests, and the exception."""
    line = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        text = sources.get(frame.filename)
        if text is not None and frame.lineno:
            lines = text.splitlines()
            if 0 < frame.lineno <= len(lines):
                end = max(frame.lineno, getattr(frame, "end_lineno", None) or frame.lineno)
                statement = " ".join(x.strip() for x in lines[frame.lineno - 1 : end])
                line = f"{frame.filename}:{frame.lineno}: {statement}"
                break
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    if isinstance(exc, SyntaxError):
        return message.replace("\n", " ")[:500]
    return (f"{line} -> {message}" if line else message).replace("\n", " ")[:500]


def _restore(snapshot, namespace, module=builtins, table=builtins.__dict__):
    """Undo the program's changes to builtins and drop globals shadowing a builtin."""
    table.clear()
    table.update(snapshot)
    for name in [n for n in namespace if n in snapshot and n != "__builtins__"]:
        del namespace[name]
    namespace["__builtins__"] = module


def main():
    config = json.loads(os.fdopen(os.dup(0), "rb").read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    restore, detail, exit_now = _restore, _detail, os._exit  # the program cannot swap these
    fd = int(config["result_fd"])
    out = os.fdopen(fd, "w", encoding="utf-8", errors="replace")
    os.set_inheritable(fd, False)
    nonce = config["nonce"]
    capped = _cap_pid_max_and_drop_root(int(config["limits"]["processes"]))
    abi = _landlock(os.getcwd()) if config.get("landlock") else 0
    filtered = _seccomp_no_unix_sockets() if config.get("landlock") else False
    _apply_limits(config["limits"])
    out.write(f"layers landlock={abi} pid_max={int(capped)} seccomp={int(filtered)}\n")
    out.flush()

    def cpu_exceeded(signum, frame):  # SIGXCPU at the soft CPU limit
        out.write(f"{nonce} cpu\n")
        out.flush()
        exit_now(1)

    signal.signal(signal.SIGXCPU, cpu_exceeded)
    sources = {"<program>": config["program"], "<test>": config["test"]}
    snapshot = dict(vars(builtins))
    namespace = {}
    sys.modules["__main__"] = type(sys)("__main__")  # nor reach this module by import
    try:
        part = "<program>"
        code = compile(config["program"], part, "exec")
        part = "<test>"
        tests = compile(config["test"], part, "exec")
        part = "<program>"
        exec(code, namespace)
        restore(snapshot, namespace)
        part = "<test>"
        exec(tests, namespace)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt included
        restore(snapshot, namespace)
        if isinstance(exc, SystemExit):
            verdict = f"exit called sys.exit({exc.code!r}) in {part} before the tests finished"
        elif isinstance(exc, SyntaxError):
            verdict = f"syntax {part}: {detail(exc, sources)}"
        else:
            verdict = f"failed {detail(exc, sources)}"
        out.write(f"{nonce} {verdict}\n")
    else:
        out.write(f"{nonce} passed\n")
    try:
        out.flush()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        exit_now(0)


if __name__ == "__main__":
    main()
