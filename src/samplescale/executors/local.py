"""The local executor: every problem in this process, one after another, in task order."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from samplescale.backends.base import Backend
from samplescale.executors.base import (
    BackendSpec,
    ProblemRunner,
    Record,
    build_backend,
    is_backend_spec,
)
from samplescale.tasks.base import Problem


@dataclass(frozen=True)
class LocalExecutor:
    """Run the problems in this process, in order (the default executor).

    A backend spec is built once, when the first problem starts (so a resumed run with
    nothing left to do loads no model).
    """

    name: ClassVar[str] = "local"

    def run(
        self,
        runner: ProblemRunner,
        backend: Backend | BackendSpec,
        problems: Sequence[Problem],
        on_start: Callable[[Problem], None] | None = None,
    ) -> Iterator[Record]:
        """Yield ``runner(backend, p)`` for each problem, in order (see
        :class:`~samplescale.executors.base.Executor`)."""
        built: Backend | None = None if is_backend_spec(backend) else backend  # type: ignore[assignment]
        for problem in problems:
            if on_start is not None:
                on_start(problem)
            if built is None:
                built = build_backend(backend)  # type: ignore[arg-type]
            yield runner(built, problem)
