"""Constrained generation: masks in the pipeline, masked sampling's bias, constrained SMC.

The toy LM's constraint ``1|22|333`` is enumerable: the model's probabilities of the three
strings (each followed by <eos>) are, from DEFAULT_TOY_TABLE,

    "1"   : 0.5 * 0.2             = 0.1
    "22"  : 0.3 * 0.1 * 0.3       = 0.009
    "333" : 0.1 * 0.2 * 0.2 * 0.6 = 0.0024      Z = P(constraint) = 0.1114

so the exact conditional is (0.1, 0.009, 0.0024) / 0.1114. Masked sampling instead draws
the first token from (0.5, 0.3, 0.1) renormalised over {1, 2, 3} and then the only allowed
continuation: (5/9, 3/9, 1/9).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("llguidance")

from samplescale.backends.fake import ScriptedBackend, ToyLM  # noqa: E402
from samplescale.config import Constraint, SamplingParams  # noqa: E402
from samplescale.constraints import mask  # noqa: E402
from samplescale.constraints.compiler import compile_matcher  # noqa: E402
from samplescale.constraints.vocabulary import build_tokenizer  # noqa: E402
from samplescale.errors import ConfigError  # noqa: E402
from samplescale.sampling import pipeline  # noqa: E402
from samplescale.smc.constrained import constrained_smc  # noqa: E402
from samplescale.strategies import constrained_smc as constrained_smc_strategy  # noqa: E402
from samplescale.types import Prompt  # noqa: E402

TOY = Constraint(kind="regex", source="1|22|333")
Z = 0.5 * 0.2 + 0.3 * 0.1 * 0.3 + 0.1 * 0.2 * 0.2 * 0.6
EXACT = {"1": 0.1 / Z, "22": 0.009 / Z, "333": 0.0024 / Z}
MASKED = {"1": 5 / 9, "22": 3 / 9, "333": 1 / 9}
PROMPT = Prompt(text="q")


def tv(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def byte_tokenizer():
    """A byte-level vocabulary: token t < 256 is byte t, token 256 ends."""
    return build_tokenizer(lambda t: bytes([t]) if t < 256 else b"", lambda t: t == 256, 257)


# ----------------------------------------------------------------------- the mask itself
def test_bitmask_rows_as_booleans_by_hand():
    bits = np.array([[0b101, 0], [-1, 1]], dtype=np.int32)  # words of 32 tokens
    rows = mask.as_bool(bits, 33)
    assert rows.shape == (2, 33) and rows.dtype == bool
    assert np.flatnonzero(rows[0]).tolist() == [0, 2]
    assert rows[1].all()


def test_mask_is_applied_first_and_logprobs_are_before_and_after_it():
    """On [0.5, 0.3, 0.2] with token 1 removed: raw logprob log 0.5, sampled log(0.5/0.7);
    top-p 0.6 then acts on the renormalised (5/7, 2/7) and keeps only token 0."""
    x = np.log([[0.5, 0.3, 0.2]])
    allowed = np.array([[True, False, True]])
    d = pipeline.sample(x, SamplingParams(), np.random.default_rng(0), allowed=allowed)
    tok = int(d.token_ids[0])
    assert tok in (0, 2)
    assert d.logprobs[0] == pytest.approx(math.log([0.5, 0.3, 0.2][tok]))
    assert d.sampling_logprobs[0] == pytest.approx(math.log([0.5, 0.3, 0.2][tok] / 0.7))
    kept = pipeline.process(x, SamplingParams(top_p=0.6), allowed=allowed)
    assert np.isfinite(kept).tolist() == [[True, False, False]]
    greedy = pipeline.sample(x, SamplingParams(temperature=0.0), None, allowed=~allowed)
    assert int(greedy.token_ids[0]) == 1 and greedy.logprobs[0] == pytest.approx(math.log(0.3))
    with pytest.raises(ConfigError, match="allows no token of positive probability"):
        pipeline.sample(np.array([[0.0, -np.inf, 0.0]]), SamplingParams(), np.random.default_rng(0),
                        allowed=np.array([[False, True, False]]))


# ------------------------------------------------------------- masked sampling on the toy LM
def test_masked_sampling_follows_its_exact_law_and_ends_completed_strings():
    params = SamplingParams(max_tokens=6, constraint=TOY, n=3000, seed=11)
    law = ToyLM().exact_distribution(params)
    assert {k: round(v, 12) for k, v in law.items()} == {
        (1, 0): round(5 / 9, 12), (2, 2, 0): round(3 / 9, 12), (3, 3, 3, 0): round(1 / 9, 12)}
    gen = ToyLM().generate(PROMPT, params)
    assert all(s.finish_reason == "stop" and s.text in MASKED for s in gen.samples)
    counts = Counter(s.text for s in gen.samples)
    freq = {k: c / params.n for k, c in counts.items()}
    assert tv(freq, MASKED) < 0.025  # 3000 draws: TV's sd is about 0.008
    one = next(s for s in gen.samples if s.text == "1")
    assert one.logprobs == pytest.approx((math.log(0.5), math.log(0.2)))  # before the mask
    assert one.sampling_logprobs == pytest.approx((math.log(5 / 9), 0.0))  # after it


def test_masked_sampling_is_biased_against_the_exact_conditional():
    """The bias of masking, with a fixed seed: TV(masked, exact) = 5/9 + ... by hand 0.342."""
    assert tv(MASKED, EXACT) == pytest.approx(abs(5 / 9 - EXACT["1"]), abs=1e-12)
    assert tv(MASKED, EXACT) == pytest.approx(0.3421, abs=1e-4)
    gen = ToyLM().generate(PROMPT, SamplingParams(max_tokens=6, constraint=TOY, n=2000, seed=4))
    freq = {k: c / 2000 for k, c in Counter(s.text for s in gen.samples).items()}
    assert tv(freq, EXACT) > 0.3


def test_constrained_smc_matches_the_exact_conditional_and_estimates_z():
    """Seeded: 40 independent runs of 100 particles; pooled weights within TV 0.02 of the
    exact conditional, and the mean of the Z estimates (unbiased) within 5% of 0.1114."""
    pooled: Counter[str] = Counter()
    zs = []
    for run in range(40):
        params = SamplingParams(max_tokens=6, constraint=TOY, seed=1000 + run)
        r = constrained_smc(ToyLM(), PROMPT, params, 100)
        assert r.strategy == "constrained-smc" and math.fsum(r.weights) == pytest.approx(1.0)
        for s, w in zip(r.samples, r.weights):
            pooled[s.text] += w / 40
        zs.append(math.exp(r.log_evidence))
    assert tv(dict(pooled), EXACT) < 0.02
    assert np.mean(zs) == pytest.approx(Z, rel=0.05)


def test_constrained_smc_strategy_votes_by_weight_and_gives_zero_evidence_when_impossible():
    r = constrained_smc_strategy(ToyLM(), PROMPT, SamplingParams(n=64, seed=3, max_tokens=6),
                                 constraint=TOY, extract=lambda t: t)
    assert r.answer == "1" and r.vote_shares["1"] > 0.7
    assert r.log_evidence is not None and abs(r.log_evidence - math.log(Z)) < 0.5
    cut = constrained_smc(ToyLM(), PROMPT, SamplingParams(max_tokens=2, constraint=Constraint(
        kind="regex", source="333"), seed=1), 8)  # "333" + <eos> needs 4 tokens
    assert cut.weights == () and cut.log_evidence == -math.inf and cut.selected is None
    with pytest.raises(ConfigError, match="needs params.constraint"):
        constrained_smc(ToyLM(), PROMPT, SamplingParams(), 4)


# --------------------------------------------------------------- errors, hostile constraints
@pytest.mark.parametrize(("constraint", "message"), [
    (Constraint(kind="regex", source="(ab"), "constraint regex: .*invalid regex"),
    (Constraint(kind="json_schema", source="{not json"), "schema is not valid JSON"),
    (Constraint(kind="json_schema", source="[1]"), "a schema is a JSON object or boolean"),
    (Constraint(kind="grammar", source="start: foo"), 'constraint grammar: .*unknown name: "foo"'),
    (Constraint(kind="json_schema", source='{"type": "integer", "minimum": 5, "maximum": 3}'),
     "Unsatisfiable schema: minimum"),
    (Constraint(kind="json_schema", source='{"allOf": [{"type": "string"}, {"type": "integer"}]}'),
     "Unsatisfiable schema"),
    (Constraint(kind="json_schema", source='{"type": "string", "format": "no-such"}'),
     "Unknown format"),
    (Constraint(kind="json_schema", source='{"type":"array","items":' * 2000 + "{}" + "}" * 2000),
     "nested too deeply"),
    (Constraint(kind="json_schema", source=json.dumps({"enum": [f"v{i}" for i in range(100_000)]})),
     "too big"),
    (Constraint(kind="regex", source="[a]&&[b]|(?!x)"), "constraint regex"),
])
def test_bad_and_hostile_constraints_get_clear_errors_quickly(constraint, message):
    tok = byte_tokenizer()
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=message):
        compile_matcher(constraint, tok)
    assert time.perf_counter() - start < 5.0


def test_constraint_records_refuse_bad_fields_and_lenient_json_ignores_unknown_keywords():
    with pytest.raises(ValueError, match="source must be non-empty"):
        Constraint(kind="regex")
    with pytest.raises(ValueError, match="source must be empty"):
        Constraint(kind="json_object", source="{}")
    with pytest.raises(ValueError, match="at most 1000000 characters"):
        Constraint(kind="regex", source="a" * 1_000_001)
    with pytest.raises(ValueError, match="constraint does not work with decoding='priority'"):
        SamplingParams(constraint=TOY, decoding="priority")
    lenient = Constraint(kind="json_schema", source='{"type": "string", "format": "no-such"}',
                         strict=False)
    assert compile_matcher(lenient, byte_tokenizer()).is_accepting() is False


def test_recursive_schema_compiles_and_an_impossible_toy_constraint_is_refused():
    tree = {"type": "object", "properties": {"v": {"type": "integer"}, "kids": {
        "type": "array", "items": {"$ref": "#"}, "maxItems": 2}}, "required": ["v"]}
    assert not compile_matcher(Constraint(kind="json_schema", source=json.dumps(tree)),
                               byte_tokenizer()).is_error()
    with pytest.raises(ConfigError, match="no text satisfies it"):  # "{" is no toy token
        ToyLM().generate(PROMPT, SamplingParams(constraint=Constraint(kind="json_object")))


def test_a_backend_without_a_mask_refuses_a_constraint():
    with pytest.raises(ConfigError, match="the fake backend cannot constrain generation"):
        ScriptedBackend(["x"]).generate(PROMPT, SamplingParams(constraint=TOY))
