"""A problem's greedy answer decoded in the same batch as its pool, where the backend can.

Every pool record of :func:`samplescale.evaluate.evaluate` holds a greedy answer
(temperature 0, one sample) beside the pool of ``params.n`` samples. Drawn one after the
other, the greedy answer costs its own prompt prefill and a whole sequential decode of a
single row before the pool starts. On a backend with per-row parameters
(``capabilities.groups``: llama.cpp, :class:`~samplescale.backends.base.GroupGenerating`),
:func:`greedy_and_pool` asks for both in ONE call: the prompt is prefilled once and the
greedy row rides in the pool's batch steps, drawn with its own parameters. Elsewhere
(HTTP, vLLM, transformers, the fake backends, a recording or replayed backend), and for
pools drawn by a decoder (``decoding`` ``arithmetic`` or ``priority``, ``kl_sigma``) or
under a constraint, the two calls run one after the other, greedy first, as before.

Reproducibility: the one call is deterministic given its settings (one thread, one
sequence of llama.cpp batches; measured: the same records twice on SmolLM2, 5 GSM8K
problems), so a run is reproducible and resumable. Each row is drawn exactly as in a call
of its own (its own parameters and seeded stream), but the model's arithmetic can differ:
llama.cpp computes a batch of n + 1 rows with other float sums than a batch of n and a
lone row (kernels chosen by batch size; cells placed beside other rows'), so logits differ
in their last digits and a sampled token at a near-tie can flip, after which that sample
continues differently. Measured against the sequential layout: SmolLM2-135M Q4_1, 5 GSM8K
problems x (4 samples + greedy), 160 tokens: all identical; Qwen2.5-Coder-0.5B Q4_K_M,
GSM8K problems 0-3 x (4 samples + greedy), 320 tokens: 5 of 16 pool samples and 2 of 4
greedy answers differ (benchmarks/RESULTS.md (e3)). So the layout is part
of a run's identity: ``samplescale eval`` records it in run.json (``"greedy"``), and a run
written before resumes in the sequential layout (``in_pool=False``) so that its samples
stay what they would have been.
Usage: the pool's usage is the call's prompt prefill and its own completion tokens (as
before); the greedy part reports its prompt as cached (served by the pool's prefill) and
its own completion tokens; both report the call's wall time.
"""

from __future__ import annotations

from samplescale.backends.base import Backend, GroupGenerating
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.strategies import Greedy
from samplescale.types import Generation, Prompt, Result
from samplescale.verifiers.extract import sample_answer


def batches_greedy(backend: Backend, pool: SamplingParams) -> bool:
    """True when :func:`greedy_and_pool` decodes the greedy row in the pool's call on
    ``backend`` for a pool drawn with ``pool``."""
    return (
        backend.capabilities.groups
        # the class's own method: a wrapper that forwards attributes (the token budget)
        # must not route around its own generate
        and callable(getattr(type(backend), "generate_groups", None))
        and pool.decoding == "independent"
        and pool.kl_sigma is None
        and pool.constraint is None
    )


def greedy_and_pool(
    backend: Backend,
    prompt: Prompt,
    params: SamplingParams,
    pool: SamplingParams,
    in_pool: bool = True,
) -> tuple[Result, Generation]:
    """The greedy run of ``prompt`` (:class:`~samplescale.strategies.Greedy` with
    ``params``) and the pool drawn with ``pool`` (``params`` with the problem's seed).

    With ``in_pool`` and :func:`batches_greedy`, one ``generate_groups`` call decodes
    both; otherwise ``Greedy().run`` first, then :func:`samplescale.decoders.generate`
    (``in_pool=False``: the sequential layout, for resuming a run written with it).

    Returns
    -------
    greedy : Result
        Strategy ``"greedy"``: its one sample, its extracted answer, selected when ok.
    pool : Generation
        ``pool.n`` samples.

    Raises
    ------
    ConfigError, PromptError, BackendError
        As the backend's calls raise them.
    """
    if not (in_pool and batches_greedy(backend, pool)):
        greedy = Greedy().run(backend, prompt, params)
        return greedy, generate(backend, prompt, pool)
    assert isinstance(backend, GroupGenerating)
    strategy = Greedy()
    gen, g = backend.generate_groups(prompt, [pool, strategy.sampling_params(params)])
    answer = sample_answer(g.samples[0], strategy.extract)  # as Greedy().run extracts it
    greedy = Result(
        strategy=Greedy.name,
        samples=g.samples,
        answers=(answer,),
        selected=0 if g.samples[0].status == "ok" else None,
        answer=answer,
        usage=g.usage,
    )
    return greedy, gen
