"""OSCA: allocation of a sample budget over configurations, learned from pools
(analysis.allocation), the ``allocate`` command, and the ``osca`` strategy."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from samplescale.analysis.allocation import (
    VotePools,
    learn_allocation,
    miss_probability,
    mixed_coverage,
    mixed_majority,
    uniform_allocation,
)
from samplescale.backends.fake import ScriptedBackend
from samplescale.cli import build_parser, main
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.metrics import maj_at_k
from samplescale.strategies import OSCA, osca

# --- estimators against brute-force enumeration ---------------------------------------------


def brute_coverage(pools: list[list[bool]], alloc: tuple[int, ...]) -> Fraction:
    """Share of the joint draws (one k-subset per pool) with a correct sample."""
    hits = total = 0
    for subsets in itertools.product(*(itertools.combinations(p, k) for p, k in
                                       zip(pools, alloc, strict=True))):
        total += 1
        hits += any(x for s in subsets for x in s)
    return Fraction(hits, total)


def test_miss_probability_table():
    assert miss_probability(5, 2, 0) == 1.0
    assert miss_probability(5, 2, 1) == pytest.approx(3 / 5)
    assert miss_probability(5, 2, 2) == pytest.approx(3 / 10)  # C(3,2)/C(5,2)
    assert miss_probability(5, 2, 4) == 0.0  # only 3 wrong samples
    assert miss_probability(4, 0, 4) == 1.0


def test_mixed_coverage_equals_enumeration_on_random_pools():
    rng = np.random.default_rng(7)
    for _ in range(40):
        sizes = rng.integers(1, 5, size=3)
        pools = [list(rng.random(s) < 0.3) for s in sizes]
        alloc = tuple(int(rng.integers(0, s + 1)) for s in sizes)
        n = np.array([sizes])
        c = np.array([[sum(p) for p in pools]])
        got = mixed_coverage(n, c, alloc)[0]
        assert got == pytest.approx(float(brute_coverage(pools, alloc)), abs=1e-12)


def brute_majority(labels: list[list[int | None]], correct: int, alloc: tuple[int, ...]) -> float:
    total, credit = 0, 0.0
    for subsets in itertools.product(*(itertools.combinations(p, k) for p, k in
                                       zip(labels, alloc, strict=True))):
        votes = Counter(x for s in subsets for x in s if x is not None)
        total += 1
        if votes:
            top = max(votes.values())
            leaders = [c for c, v in votes.items() if v == top]
            credit += (correct in leaders) / len(leaders)
    return credit / total


def test_mixed_majority_converges_to_enumeration():
    labels = [[0, 1, 1, None, 2], [0, 0, 1, 2]]
    alloc = (3, 2)
    exact = brute_majority(labels, 0, alloc)
    pools = VotePools.with_orderings([labels], [0], 4000, np.random.default_rng(1))
    mean, se = mixed_majority(pools, alloc)
    assert 0 < se[0] < 0.01
    assert abs(mean[0] - exact) < 4 * se[0]  # seeded: |error| = 0.3 se here


def test_one_configuration_is_maj_at_k():
    labels = [1, 1, 0, 2, 0, None, 1]
    pools = VotePools.with_orderings([[labels]], [0], 3000, np.random.default_rng(2))
    mean, se = mixed_majority(pools, (4,))
    assert abs(mean[0] - maj_at_k(labels, 0, 4)) < 4 * se[0]


def test_common_orderings_nest_allocations():
    """The first k of one ordering are the samples drawn: more samples of a pool that is
    all correct can only help, on every ordering."""
    labels = [[[0, 0, 0, 0], [1, 1, 2, 2]]]
    pools = VotePools.with_orderings(labels, [0], 50, np.random.default_rng(3))
    values = [mixed_majority(pools, (k, 2))[0][0] for k in range(5)]
    assert values == sorted(values) and values[0] == 0.0 and values[4] == 1.0


# --- the search ------------------------------------------------------------------------------


def test_uniform_allocation():
    assert uniform_allocation(7, [8, 8, 8]) == (3, 2, 2)
    assert uniform_allocation(5, [1, 8]) == (1, 4)
    with pytest.raises(ConfigError, match="budget 10 exceeds the 9 samples"):
        uniform_allocation(10, [1, 8])


def test_learned_allocation_covers_what_each_configuration_solves():
    # configuration A solves problems 0-1 always, B solves problem 2 always, C nothing
    n = np.full((4, 3), 4)
    c = np.array([[4, 0, 0], [4, 0, 0], [0, 4, 0], [0, 0, 0]])

    def mean(alloc):
        return float(mixed_coverage(n, c, alloc).mean())

    alloc, value = learn_allocation(mean, [4, 4, 4], 2)
    assert alloc == (1, 1, 0) and value == 0.75
    best = max(itertools.product(range(5), repeat=3), key=lambda a: (sum(a) == 2, mean(a)))
    assert mean(best) == value
    with pytest.raises(ConfigError, match=r"budget must be an integer in \[1, 12\]"):
        learn_allocation(mean, [4, 4, 4], 13)


def test_hill_climbing_leaves_a_greedy_start_that_is_not_best():
    """Set cover: A hits problems 1-4, B hits 0-2, C hits 3-5 (one sample each). Greedy
    takes A first and then B (5 of 6); moving A's sample to C covers all 6."""
    n = np.ones((6, 3), dtype=int)
    c = np.array([[0, 1, 0], [1, 1, 0], [1, 1, 0], [1, 0, 1], [1, 0, 1], [0, 0, 1]])

    def mean(alloc):
        return float(mixed_coverage(n, c, alloc).mean())

    assert learn_allocation(mean, [1, 1, 1], 1) == ((1, 0, 0), pytest.approx(4 / 6))
    assert mean((1, 1, 0)) == pytest.approx(5 / 6)  # where greedy stops
    assert learn_allocation(mean, [1, 1, 1], 2) == ((0, 1, 1), 1.0)


# --- the command -----------------------------------------------------------------------------


def write_pool(tmp_path: Path, name: str, temperature: float, solves: set[int]) -> Path:
    """A pool run of 8 problems at ``temperature`` whose samples are right on ``solves``."""
    from samplescale.cli_eval import run_eval
    from samplescale.cli_sampling import sampling_params

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"Say {q}?", "answer": str(q)}) + "\n"
                            for q in range(8)))

    def reply(prompt, i):
        q = int(prompt.messages[-1].content.split()[-1].strip("?"))
        return f"The answer is {q if q in solves else q + 100}."

    model = tmp_path / "m.gguf"
    model.write_bytes(b"scripted")
    out = tmp_path / name
    args = build_parser().parse_args(
        ["eval", "--task", "jsonl", "--data", str(data), "-n", "4", "--model", str(model),
         "--temperature", str(temperature), "--output", str(out)])
    assert run_eval(args, sampling_params(args), lambda _a=None: ScriptedBackend(reply),
                    None) == 0
    return out


def test_allocate_learns_on_train_and_reports_held_out(tmp_path, capsys):
    low = write_pool(tmp_path, "low", 0.3, {0, 1, 2, 3})
    high = write_pool(tmp_path, "high", 1.0, {4, 5, 6, 7})
    out = tmp_path / "alloc.json"
    code = main(["allocate", str(low), str(high), "--budget", "4", "--objective", "coverage",
                 "--seed", "1", "-o", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    body = json.loads(out.read_text())
    assert body["problems"] == {"train": 4, "held_out": 4}
    # one sample of each covers every problem; further samples tie, to the first run
    assert body["learned"] == {"low": 3, "high": 1} and body["train_value"] == 1.0
    rows = {r["allocation"]: r["held_out"]["mean"] for r in body["rows"]}
    assert rows["learned (OSCA)"] == 1.0 and rows["uniform"] == 1.0
    assert rows["only low"] + rows["only high"] == pytest.approx(1.0)  # each solves its half
    assert body["option"] == 'allocation={"0.3":3,"1.0":1}'
    assert "apply it: --strategy osca --option 'allocation={\"0.3\":3,\"1.0\":1}'" in text
    code = main(["allocate", str(low), str(high), "--budget", "4", "--seed", "1", "--draws",
                 "20", "-o", str(out)])
    body = json.loads(out.read_text())
    assert code == 0 and body["objective"] == "majority" and body["draws"] == 20
    # 2 + 2 splits every vote 2-2 between the right class and one wrong class: credit 1/2
    rows = {r["allocation"]: r["held_out"]["mean"] for r in body["rows"]}
    assert rows["uniform"] == 0.5 and rows["only low"] + rows["only high"] == 1.0


def test_allocate_refuses_bad_input(tmp_path, capsys):
    low = write_pool(tmp_path, "low", 0.3, {0})
    code = main(["allocate", str(low), "--budget", "2"])
    assert code == 2 and "at least 2 runs" in capsys.readouterr().err
    high = write_pool(tmp_path, "high", 1.0, {1})
    code = main(["allocate", str(low), str(high), "--budget", "9"])
    assert code == 2 and "budget must be an integer in [1, 8]" in capsys.readouterr().err
    code = main(["allocate", str(low), str(high), "--budget", "2", "--train-fraction", "1"])
    assert code == 2 and "--train-fraction must be in (0, 1)" in capsys.readouterr().err
    lines = (high / "results.jsonl").read_text().splitlines()
    (high / "results.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    code = main(["allocate", str(low), str(high), "--budget", "2"])
    assert code == 2 and "do not hold the same problems" in capsys.readouterr().err


# --- the strategy ----------------------------------------------------------------------------


def test_osca_draws_each_temperature_its_share_and_votes():
    backend = ScriptedBackend(["so \\boxed{4}", "so \\boxed{5}", "so \\boxed{4}"])
    r = osca(backend, "q", SamplingParams(n=3, seed=9), allocation={"1.0": 2, "0.3": 1})
    assert [(p.temperature, p.n) for _, p in backend.calls] == [(0.3, 1), (1.0, 2)]
    assert [p.seed for _, p in backend.calls][0] == 9  # the first draw keeps the run seed
    assert backend.calls[1][1].seed != 9  # later draws their own stream
    assert r.answer == "4" and r.vote_shares == {"4": 2 / 3, "5": 1 / 3}
    assert [(t["temperature"], t["samples"]) for t in r.trace] == [(0.3, 1), (1.0, 2)]
    assert r.usage.model_calls == 2


@pytest.mark.parametrize(
    ("allocation", "message"),
    [
        (None, "allocation must be a non-empty mapping"),
        ({}, "allocation must be a non-empty mapping"),
        ({"hot": 2}, "allocation key 'hot' must be a temperature in [0, 100]"),
        ({"101": 2}, "must be a temperature in [0, 100]"),
        ({"0.5": -1}, "allocation['0.5'] must be an integer >= 0"),
        ({"0.5": 1.5}, "must be an integer >= 0"),
        ({"0.5": 0}, "at least one temperature >= 1 sample"),
        ({"0.5": 1, "0.50": 1}, "names one temperature twice"),
        ('{"0.5": 2', "allocation is not valid JSON"),
        ("[1, 2]", "allocation must be a non-empty mapping"),
    ],
)
def test_osca_refuses_bad_allocations(allocation, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        OSCA(allocation=allocation)


def test_osca_takes_the_allocation_as_json_text():
    assert OSCA(allocation='{"1.0": 2, "0.3": 6}').allocation == {0.3: 6, 1.0: 2}


def test_osca_budget_must_match_n(capsys):
    with pytest.raises(ConfigError, match="the allocation spends 3 samples but n is 4"):
        osca(ScriptedBackend(["x"]), "q", SamplingParams(n=4), allocation={"0.3": 3})
