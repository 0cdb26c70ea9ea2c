"""A problem's greedy answer decoded beside its pool, where the backend batches calls.

Every pool record of :func:`samplescale.evaluate.evaluate` holds a greedy answer
(temperature 0, one sample) beside the pool of ``params.n`` samples. Drawn one after the
other, the greedy answer is a whole sequential decode of a single row before the pool
starts. On a backend whose :class:`~samplescale.backends.base.Capabilities` say
``batching`` (llama.cpp's continuous batching, :mod:`samplescale.backends.llama_sched`),
:func:`greedy_and` runs the greedy call in a second thread while the caller's thread draws
the pool: the backend merges their decode steps, so the greedy row rides in the pool's
batches with its own parameters (per-row parameters as in Orca's iteration-level
batching, Yu et al., OSDI 2022). Elsewhere (HTTP, vLLM, transformers, the fake backends,
a recording or replayed backend) the two calls run one after the other, greedy first, as
before.

The greedy row is batched only when (:func:`batches_greedy`) the backend has
``capabilities.batching``, the pool is drawn by the backend's own ``generate``
(``params.decoding`` ``independent`` or ``arithmetic``, no ``kl_sigma``: the decoders that
score prefixes with ``logits_at`` between steps keep their cache to themselves), and the
pool's rows and the greedy row fit in one batch (``params.n + 1 <= backend.n_seq_max``;
otherwise the pool would be split into rounds and take longer).

Reproducibility: each call gives what it gives alone. On llama.cpp the rows of a batch
step are computed independently (bit-identical logits whatever shares the step, as long
as no sequence is freed under a running one, :mod:`samplescale.backends.llama_sched`), so
the pool's samples and the greedy sample are the same as the sequential order's, token
for token (tests/test_evaluate_greedy.py; measured on GSM8K in benchmarks/RESULTS.md
(e3)). Usage: the greedy part and the pool each report their own call's usage (tokens
exact); their ``wall_time_s`` overlap, so their sum overstates the problem's wall time.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.strategies import Greedy
from samplescale.types import Prompt, Result

T = TypeVar("T")


def batches_greedy(backend: Backend, params: SamplingParams) -> bool:
    """True when :func:`greedy_and` decodes the greedy row beside a pool drawn with
    ``params`` on ``backend`` (the conditions in the module docstring)."""
    rows = getattr(backend, "n_seq_max", None)
    return (
        backend.capabilities.batching
        and params.decoding != "priority"
        and params.kl_sigma is None
        and isinstance(rows, int)
        and params.n + 1 <= rows
    )


def greedy_and(
    backend: Backend, prompt: Prompt, params: SamplingParams, draw: Callable[[], T]
) -> tuple[Result, T]:
    """The greedy run of ``prompt`` (:class:`~samplescale.strategies.Greedy` with
    ``params``) and ``draw()``, the pool drawn with ``params`` (its seed set).

    With :func:`batches_greedy` the greedy run decodes in a second thread while ``draw``
    runs in this one (their steps share the backend's batches); otherwise greedy first,
    then ``draw``.

    Raises
    ------
    Exception
        The greedy run's error if it failed (as the sequential order raises it first),
        else ``draw``'s; both calls have ended when it is raised.
    """
    if not batches_greedy(backend, params):
        greedy = Greedy().run(backend, prompt, params)
        return greedy, draw()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="greedy-row") as ex:
        future = ex.submit(Greedy().run, backend, prompt, params)
        try:
            pool = draw()
        except BaseException:
            future.result()  # waits for the greedy call; its error, if any, wins
            raise
        greedy = future.result()
    return greedy, pool
