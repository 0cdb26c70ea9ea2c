"""What an executor is: it runs the problems of an evaluation and gives their records.

:func:`samplescale.evaluate.evaluate` hands an executor a *runner* (a picklable callable
``runner(backend, problem) -> record`` that does everything for one problem: prompt,
sampling, grading), the backend, or a *backend spec* (a picklable zero-argument callable
that builds one, e.g. ``functools.partial(LlamaCppBackend, "model.gguf")``), and the
problems still to run. The executor yields one record per problem as each finishes; it
never writes files (the caller appends the records, see ``samplescale eval``).

Every problem is sampled with a seed derived from the run seed and its id
(:func:`samplescale.evaluate_records.problem_seed`), so on a deterministic backend the records do
not depend on the executor, the number of workers or the order problems finish in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from samplescale.backends.base import Backend
from samplescale.errors import check_instance
from samplescale.strategies.base import check_run_args
from samplescale.tasks.base import Problem

Record = dict[str, Any]
#: A picklable zero-argument callable that builds a backend (in each worker process).
BackendSpec = Callable[[], Backend]
#: Everything done for one problem, given a backend: ``runner(backend, problem) -> record``.
ProblemRunner = Callable[[Backend, Problem], Record]


@runtime_checkable
class Executor(Protocol):
    """Runs problems and yields their records (see the module docstring)."""

    @property
    def name(self) -> str:
        """``"local"`` or ``"ray"``."""
        ...

    def run(
        self,
        runner: ProblemRunner,
        backend: Backend | BackendSpec,
        problems: Sequence[Problem],
        on_start: Callable[[Problem], None] | None = None,
    ) -> Iterator[Record]:
        """Yield ``runner(backend, p)`` for every ``p`` in ``problems``, each as it
        finishes (``on_start(p)`` is called when ``p`` starts)."""
        ...


def is_backend_spec(backend: object) -> bool:
    """True when ``backend`` is a backend spec: a callable that is neither a backend nor a
    class (a class is refused, as by the strategies: ``functools.partial(cls)`` is a spec)."""
    return callable(backend) and not isinstance(backend, (Backend, type))


def check_backend_arg(backend: object) -> None:
    """ConfigError unless ``backend`` is a backend instance or a backend spec."""
    if is_backend_spec(backend):
        return
    check_run_args(backend, "", None, None)


def build_backend(spec: BackendSpec) -> Backend:
    """``spec()``, checked to be a backend.

    Raises
    ------
    ConfigError
        If the spec builds something that is not a samplescale backend.
    """
    backend = spec()
    check_instance(
        "the backend spec's result", backend, Backend,
        "a samplescale backend (with generate(prompt, params, rng))",
    )
    return backend
