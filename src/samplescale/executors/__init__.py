"""Executors: where the problems of an evaluation run (in this process, or on Ray actors).

See :mod:`samplescale.executors.base` for the contract; :func:`samplescale.evaluate.evaluate`
takes one as ``executor=``.
"""

from samplescale.executors.base import BackendSpec, Executor, ProblemRunner
from samplescale.executors.local import LocalExecutor
from samplescale.executors.ray_executor import RayExecutor

__all__ = ["BackendSpec", "Executor", "LocalExecutor", "ProblemRunner", "RayExecutor"]
