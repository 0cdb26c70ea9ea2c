"""The Ray executor: problems spread over Ray actors, on one machine or a cluster.

Each worker is a Ray actor that builds its backend once, from a picklable backend spec
(never a live model), and then runs one problem per call. The driver hands each problem
to a free actor, yields each record as its problem finishes (so only the driver writes
results), and, when an actor dies mid-problem (its process killed, its machine lost),
starts a fresh actor in its place and runs that problem again; a problem is yielded
exactly once. A problem whose workers die ``max_attempts`` times stops the run.

Ray is an extra: ``pip install 'samplescale[ray]'`` (``scripts/setup.sh --ray``).
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import socket
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from samplescale.backends.base import Backend
from samplescale.errors import BackendError, ConfigError, MissingDependencyError
from samplescale.executors.base import (
    BackendSpec,
    ProblemRunner,
    Record,
    build_backend,
    is_backend_spec,
)
from samplescale.tasks.base import Problem

#: Seconds one wait for a finished problem blocks (the driver handles signals between waits).
WAIT_S = 0.25
RAY_HINT = "install the 'ray' extra: pip install 'samplescale[ray]' (or scripts/setup.sh --ray)"
#: Seconds the TCP check of ``address`` waits before ``ray.init`` (which retries for minutes).
CONNECT_TIMEOUT_S = 10.0
ADDRESS_FORMS = "'auto', HOST:PORT (the head's GCS port, e.g. 10.0.0.1:6379) or ray://HOST:PORT"
_HOST_PORT = re.compile(r"^(?:ray://)?(\[[0-9A-Fa-f:.]+\]|[^:/\s]+):(\d{1,5})$")


def check_address(address: object, flag: str = "address") -> None:
    """Refuse a Ray address that is not one of :data:`ADDRESS_FORMS` (``None`` passes).

    Raises
    ------
    ConfigError
        If ``address`` is empty or malformed (the message names ``flag``), or is a
        ``ray://`` (Ray Client) address while Ray Client's packages (``ray[client]``,
        not part of samplescale's ``ray`` extra) are not installed.
    """
    if address is None or address == "auto":
        return
    m = _HOST_PORT.match(address) if isinstance(address, str) else None
    if m is None or not isinstance(address, str) or not 1 <= int(m.group(2)) <= 65535:
        raise ConfigError(f"{flag} must be {ADDRESS_FORMS}, got {address!r}")
    if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise ConfigError(
            f"{flag} {address}: a ray:// address uses Ray Client, which needs "
            "pip install \"ray[client]\" (not in samplescale's ray extra); or run samplescale "
            "on a machine of the cluster with the head's HOST:6379"
        )


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse a ``HOST:PORT`` (or ``ray://HOST:PORT``) where nothing accepts a TCP
    connection within ``timeout`` seconds (``ray.init`` would retry for many minutes).

    Raises
    ------
    ConfigError
        If the connection is refused, times out or the host is unknown.
    """
    m = _HOST_PORT.match(address)
    if m is None:  # "auto": Ray finds the address itself
        return
    host = m.group(1).strip("[]")
    try:
        socket.create_connection((host, int(m.group(2))), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"could not join the Ray cluster at {address}: nothing answers there "
            f"({exc.strerror or exc}); is it running (ray start --head --port PORT), and is "
            "the port open from this machine?"
        ) from exc


def import_ray() -> Any:
    """The ``ray`` module.

    Raises
    ------
    MissingDependencyError
        If Ray is not installed (the message names the ``ray`` extra).
    """
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(f"the ray executor needs Ray; {RAY_HINT}") from exc
    return ray


class Worker:
    """The body of one Ray actor: a backend built once, then one problem per call."""

    def __init__(self, spec: BackendSpec, runner: ProblemRunner) -> None:
        self._spec, self._runner = spec, runner
        self._backend: Backend | None = None

    def ready(self) -> int:
        """Build the backend (once); returns the worker's process id."""
        if self._backend is None:
            self._backend = build_backend(self._spec)
        return os.getpid()

    def run(self, problem: Problem) -> Record:
        """The record of one problem (:meth:`ready` has built the backend)."""
        assert self._backend is not None, "ready() builds the backend first"
        return self._runner(self._backend, problem)


@dataclass(frozen=True)
class RayExecutor:
    """Run problems on Ray actors (see the module docstring).

    Parameters
    ----------
    workers : int or None
        Number of actors (each loads the model once). None: as many as the cluster's CPUs
        (GPUs when ``num_gpus > 0``) allow, given the per-actor reservation. Never more
        than there are problems.
    address : str or None
        Ray cluster to join when Ray is not initialized yet (``"auto"``, ``"HOST:6379"``,
        or ``"ray://HOST:10001"`` with ``ray[client]`` installed); None starts a fresh
        local Ray instance (``ray.init(address="local")``: a cluster that ``ray start``
        runs on this machine, or ``RAY_ADDRESS``, is not joined). When this process has
        already called ``ray.init``, that cluster is used.
    num_cpus : float
        CPUs Ray reserves for each actor (> 0); set it to the backend's thread count.
        Workers must fit the cluster: each on one node, so ``workers`` times ``num_cpus``
        is checked against the nodes' CPUs (a ConfigError at the start of :meth:`run`).
    num_gpus : float
        GPUs Ray reserves for each actor (>= 0); 1 for a vLLM backend per GPU.
    max_attempts : int
        Times one problem may be started on a worker that dies before the run stops (>= 1).

    Raises
    ------
    ConfigError
        If a parameter is out of range.
    """

    workers: int | None = None
    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_attempts: int = 3
    name: ClassVar[str] = "ray"

    def __post_init__(self) -> None:
        w = self.workers
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise ConfigError(f"workers must be an integer >= 1 or None, got {w!r}")
        if not isinstance(self.num_cpus, (int, float)) or not self.num_cpus > 0:
            raise ConfigError(f"num_cpus must be a number > 0, got {self.num_cpus!r}")
        if not isinstance(self.num_gpus, (int, float)) or not self.num_gpus >= 0:
            raise ConfigError(f"num_gpus must be a number >= 0, got {self.num_gpus!r}")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) \
                or self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        check_address(self.address)

    def capacity(self, ray: Any) -> int:
        """How many actors the connected cluster's alive nodes hold at once (each actor on
        one node, reserving ``num_cpus`` CPUs and ``num_gpus`` GPUs there)."""
        fit = 0
        for node in ray.nodes():
            if node.get("Alive"):
                res = node.get("Resources", {})
                n = math.floor(res.get("CPU", 0) / self.num_cpus + 1e-9)
                if self.num_gpus:
                    n = min(n, math.floor(res.get("GPU", 0) / self.num_gpus + 1e-9))
                fit += n
        return fit

    def worker_count(self, ray: Any, problems: int) -> int:
        """Actors to start for ``problems`` problems on the connected cluster.

        Raises
        ------
        ConfigError
            If not one actor fits on any node, or ``workers`` actors do not fit the
            cluster (they would wait for CPUs forever).
        """
        fit = self.capacity(ray)
        res = ray.cluster_resources()
        need = f"{self.num_cpus:g} CPUs" + (f" and {self.num_gpus:g} GPUs" if self.num_gpus else "")
        have = (f"{res.get('CPU', 0):g} CPUs" + (f", {res.get('GPU', 0):g} GPUs" if self.num_gpus
                else "") + f" on {sum(1 for n in ray.nodes() if n.get('Alive'))} node(s)")
        if fit < 1:
            raise ConfigError(
                f"one ray worker reserves {need} (num_cpus: --threads in the CLI) but no node "
                f"of the Ray cluster has that many ({have}); lower --threads"
            )
        if self.workers is not None and self.workers > fit:
            raise ConfigError(
                f"workers={self.workers} (--workers) x {need} each (num_cpus: --threads) do not "
                f"fit the Ray cluster ({have}: room for {fit}); lower --workers or --threads"
            )
        return max(1, min(self.workers or fit, problems))

    def run(
        self,
        runner: ProblemRunner,
        backend: Backend | BackendSpec,
        problems: Sequence[Problem],
        on_start: Callable[[Problem], None] | None = None,
    ) -> Iterator[Record]:
        """Yield ``runner(built backend, p)`` for each problem as it finishes, in finishing
        order (see :class:`~samplescale.executors.base.Executor`).

        Raises
        ------
        ConfigError
            If ``backend`` is a live backend (each worker builds its own from a spec).
        MissingDependencyError
            If Ray is not installed.
        BackendError
            If one problem's workers died ``max_attempts`` times.
        ConfigError
            If the Ray cluster at ``address`` cannot be joined: nothing accepts a TCP
            connection there within :data:`CONNECT_TIMEOUT_S` seconds, or ``ray.init``
            fails (the message names the token that Ray's token authentication needs).
        ConfigError
            If ``workers`` actors of ``num_cpus`` CPUs (and ``num_gpus`` GPUs) do not fit
            the cluster's alive nodes, or not one fits on any node (see :meth:`worker_count`).
        Exception
            An error raised by the runner or the spec in a worker, as it was raised there.
        """
        if not is_backend_spec(backend):
            raise ConfigError(
                "the ray executor builds a backend in every worker: pass a backend spec (a "
                "picklable zero-argument callable, e.g. functools.partial(LlamaCppBackend, "
                f"path)), not a live {type(backend).__name__}"
            )
        ray = import_ray()
        return self._run(ray, runner, backend, list(problems), on_start)  # type: ignore[arg-type]

    def _run(
        self,
        ray: Any,
        runner: ProblemRunner,
        spec: BackendSpec,
        problems: list[Problem],
        on_start: Callable[[Problem], None] | None,
    ) -> Iterator[Record]:
        if not problems:
            return
        if not ray.is_initialized():
            if self.address is not None:
                check_reachable(self.address)
            try:
                ray.init(address=self.address or "local", include_dashboard=False)
            except (ConnectionError, RuntimeError) as exc:
                raise ConfigError(
                    f"could not join the Ray cluster at {self.address} "
                    f"({(str(exc) or type(exc).__name__).splitlines()[0]}): is it running "
                    "(ray start --head), and does this shell send its token (Ray >= 2.52 with "
                    "token authentication: RAY_AUTH_MODE=token and the cluster's token in "
                    "~/.ray/auth_token or RAY_AUTH_TOKEN)?"
                ) from exc
        actor_cls = ray.remote(Worker).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0
        )
        shared = ray.put(runner)
        pending: deque[Problem] = deque(problems)
        attempts: Counter[str] = Counter()
        free: deque[Any] = deque()
        inflight: dict[Any, tuple[Any, Problem | None]] = {}
        actors: list[Any] = []
        deaths = 0

        def start_actor() -> None:
            actor = actor_cls.remote(spec, shared)
            actors.append(actor)
            inflight[actor.ready.remote()] = (actor, None)

        try:
            n = self.worker_count(ray, len(problems))
            for _ in range(n):
                start_actor()
            while True:
                while free and pending:  # hand the next problems to free workers
                    worker, nxt = free.popleft(), pending.popleft()
                    if on_start is not None:
                        on_start(nxt)
                    inflight[worker.run.remote(nxt)] = (worker, nxt)
                if not pending and all(p is None for _, p in inflight.values()):
                    return  # every problem done: never wait for workers still loading
                done, _ = ray.wait(list(inflight), num_returns=1, timeout=WAIT_S)
                if not done:  # back in Python often, so Ctrl-C (SIGINT) stops the run
                    continue
                ref = done[0]
                actor, problem = inflight.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    deaths += 1
                    if problem is not None:
                        attempts[problem.id] += 1
                        if attempts[problem.id] >= self.max_attempts:
                            raise BackendError(
                                f"problem {problem.id}: its worker died {attempts[problem.id]} "
                                f"times (last: {str(exc).splitlines()[0]})"
                            ) from exc
                        pending.appendleft(problem)
                    elif deaths >= self.max_attempts * n:
                        raise BackendError(
                            f"{deaths} ray workers died while loading the backend (last: "
                            f"{str(exc).splitlines()[0]})"
                        ) from exc
                    start_actor()
                    continue
                except ray.exceptions.RayTaskError as exc:  # raised by the runner or spec
                    cause = getattr(exc, "cause", None)
                    raise (cause if isinstance(cause, BaseException) else exc) from None
                if problem is not None:
                    yield record
                free.append(actor)
        finally:
            for actor in actors:
                try:
                    ray.kill(actor)
                except Exception:  # already gone
                    pass
