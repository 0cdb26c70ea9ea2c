"""Step-level search strategies on scripted trees with known scores: exact best paths,
best leaves within stated budgets, budgets never exceeded, hand-computed usage."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samplescale.backends.budget import TokenBudgetBackend
from samplescale.backends.fake import ScriptedBackend, ToyLM, prompt_text
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies import (
    ABMCTS,
    MCTS,
    BeamSearch,
    BestFirst,
    FirstStepSelection,
    get_strategy,
)
from samplescale.types import Prompt
from samplescale.verifiers.process import CallableScorer, LabelTokenScorer

PARAMS = SamplingParams(temperature=1.0, max_tokens=64, seed=0)
PROMPT = Prompt.user("Pick a number.")


def tree_backend(tree: dict[str, list[str]]) -> ScriptedBackend:
    """A deterministic tree: the j-th step drawn after prefix ``p`` is
    ``tree[p][j % len(tree[p])]`` (one character is one token)."""
    asked: dict[str, int] = defaultdict(int)

    def reply(prompt: Prompt, i: int) -> str:
        kids = tree[prompt.prefix]
        j = asked[prompt.prefix]
        asked[prompt.prefix] += 1
        return kids[j % len(kids)]

    return ScriptedBackend(reply)


def table_scorer(table: dict[str, float]) -> CallableScorer:
    """Probability-scale scores looked up by the partial solution's text (0 for text cut
    by a token budget)."""
    return CallableScorer(
        lambda prompt, steps: table.get("".join(steps), 0.0), "probability", "table"
    )


# A two-level tree with a trap: the better first step (A, .9) leads to worse leaves.
TRAP_TREE = {
    "": ["A\n\n", "B\n\n"],
    "A\n\n": ["A1 answer 1", "A2 answer 2"],
    "B\n\n": ["B1 answer 3", "B2 answer 4"],
}
TRAP_SCORES = {
    "A\n\n": 0.9,
    "B\n\n": 0.6,
    "A\n\nA1 answer 1": 0.3,
    "A\n\nA2 answer 2": 0.4,
    "B\n\nB1 answer 3": 0.95,
    "B\n\nB2 answer 4": 0.2,
}


def run(strategy, tree=TRAP_TREE, scores=TRAP_SCORES, params=PARAMS):
    scorer = table_scorer(scores)
    result = type(strategy)(**{**strategy.__dict__, "scorer": scorer}).run(
        tree_backend(tree), PROMPT, params
    )
    return result, scorer


def end_record(result):
    assert result.trace[-1]["event"] == "end"
    return result.trace[-1]


def test_beam_search_width_two_finds_the_exact_best_path():
    r, scorer = run(BeamSearch(beam_width=2, expansions=2))
    assert r.text == "B\n\nB1 answer 3" and r.answer == "3"
    # final beams, best first: B1 (.95) then A2 (.4)
    assert [s.text for s in r.samples] == ["B\n\nB1 answer 3", "A\n\nA2 answer 2"]
    assert r.scores == (0.95, 0.4) and r.score_scale == "probability"
    # hand count: 2 first steps (3 chars each) + 4 leaves (11 chars each) = 50 tokens;
    # 6 scorer calls; 3 policy calls (root, then A and B)
    end = end_record(r)
    assert (end["policy_tokens"], end["scorer_calls"], end["policy_calls"]) == (50, 6, 3)
    assert r.usage.completion_tokens == 50 and r.usage.model_calls == 3
    assert scorer.usage.calls == 6
    assert end["stop_reason"] == "done"


def test_beam_search_width_one_is_greedy_and_falls_into_the_trap():
    r, _ = run(BeamSearch(beam_width=1, expansions=2))
    assert r.text == "A\n\nA2 answer 2" and r.scores == (0.4,)
    assert end_record(r)["policy_tokens"] == 6 + 22


@pytest.mark.parametrize(
    ("how", "best", "value"),
    [
        ("last", "B\n\nB1 answer 3", 0.95),
        ("min", "B\n\nB1 answer 3", 0.6),
        ("mean", "B\n\nB1 answer 3", 0.775),
        ("product", "B\n\nB1 answer 3", 0.57),
    ],
)
def test_beam_search_aggregation_is_a_parameter(how, best, value):
    r, _ = run(BeamSearch(beam_width=2, expansions=2, how=how))
    assert r.text == best and r.scores[r.selected] == pytest.approx(value)


def test_c20_product_prefers_the_short_path_min_mean_last_the_long_one():
    # cases.md C20: step scores A=[.9,.9,.9,.9], B=[.8]; prod -> B, min/mean/last -> A
    tree = {
        "": ["a\n\n", "B answer 9"],
        "a\n\n": ["a\n\n"],
        "a\n\na\n\n": ["a\n\n"],
        "a\n\na\n\na\n\n": ["A answer 7"],
    }
    scores = {"a\n\n" * k: 0.9 for k in (1, 2, 3)}
    scores |= {"a\n\n" * 3 + "A answer 7": 0.9, "B answer 9": 0.8}
    picked = {}
    for how in ("product", "min", "mean", "last"):
        r, _ = run(BeamSearch(beam_width=4, expansions=2, how=how), tree, scores)
        picked[how] = (r.answer, r.scores[r.selected])
    assert picked["product"] == ("9", pytest.approx(0.8))
    assert picked["min"] == picked["mean"] == picked["last"] == ("7", pytest.approx(0.9))


def test_best_first_pops_the_best_solution_and_expands_in_value_order():
    r, _ = run(BestFirst(expansions=2, how="min"))
    # open list after the root: A(.9), B(.6). Pop A -> A1 (min .3), A2 (.4); pop B (.6)
    # -> B1 (.6), B2 (.2); pop B1 (.6, complete): the goal.
    assert r.text == "B\n\nB1 answer 3" and r.scores == (pytest.approx(0.6),)
    expanded = [rec["parent"] for rec in r.trace if rec["event"] == "expand"]
    assert expanded == [0, 1, 2]
    assert end_record(r)["stop_reason"] == "done"


def test_best_first_more_solutions_in_pop_order():
    r, _ = run(BestFirst(expansions=2, how="min", solutions=3))
    assert [s.text for s in r.samples] == [
        "B\n\nB1 answer 3",
        "A\n\nA2 answer 2",
        "A\n\nA1 answer 1",
    ]
    assert r.selected == 0


def test_first_step_selection_keeps_the_best_first_step_only():
    tree = {
        "": ["A\n\n", "B\n\n", "C\n\n"],
        "B\n\n": ["rest of B, answer 5"],
    }
    scores = {"A\n\n": 0.2, "B\n\n": 0.7, "C\n\n": 0.5, "B\n\nrest of B, answer 5": 0.9}
    r, scorer = run(FirstStepSelection(first_steps=3, keep=1, completions=1), tree, scores)
    assert r.text == "B\n\nrest of B, answer 5" and r.answer == "5"
    assert r.scores == (0.9,)  # how="last" over [.7, .9]
    assert scorer.usage.calls == 4  # 3 first steps + 1 complete solution
    assert end_record(r)["policy_tokens"] == 9 + 19


def test_first_step_selection_vote_over_completions():
    tree = {"": ["A\n\n", "B\n\n"], "A\n\n": ["so 4", "so 6", "so 4"]}
    scores = {"A\n\n": 0.8, "B\n\n": 0.1}
    r, scorer = run(FirstStepSelection(first_steps=2, completions=3, select="vote"), tree, scores)
    assert r.answers == ("4", "6", "4") and r.answer == "4"
    assert r.vote_shares == pytest.approx({"4": 2 / 3, "6": 1 / 3})
    assert scorer.usage.calls == 2  # the completions are not scored


# A depth-3, branching-3 tree: 27 leaves with known rewards; inner nodes score the mean
# of the leaves below them. The best leaf is under the second-best first step.
def _ternary_tree():
    tree, scores, leaves = {}, {}, {}
    rewards = [
        [[0.50, 0.55, 0.52], [0.60, 0.58, 0.61], [0.40, 0.45, 0.41]],
        [[0.20, 0.25, 0.21], [0.30, 0.98, 0.31], [0.44, 0.40, 0.42]],
        [[0.10, 0.12, 0.11], [0.15, 0.14, 0.13], [0.16, 0.19, 0.18]],
    ]
    for i, j, k in itertools.product(range(3), repeat=3):
        a, b = f"s{i}\n\n", f"t{i}{j}\n\n"
        leaf = f"answer {i}{j}{k}"
        tree.setdefault("", []).append(a) if j == k == 0 else None
        tree.setdefault(a, []).append(b) if k == 0 else None
        tree.setdefault(a + b, []).append(leaf)
        leaves[a + b + leaf] = rewards[i][j][k]
    for i in range(3):
        a = f"s{i}\n\n"
        scores[a] = sum(sum(row) for row in rewards[i]) / 9
        for j in range(3):
            scores[a + f"t{i}{j}\n\n"] = sum(rewards[i][j]) / 3
    scores |= leaves
    return tree, scores, leaves


TERNARY, TERNARY_SCORES, TERNARY_LEAVES = _ternary_tree()
BEST_LEAF = max(TERNARY_LEAVES, key=TERNARY_LEAVES.get)  # "s1 t11 answer 111", 0.98


def test_the_ternary_tree_best_leaf_is_not_under_the_best_first_step():
    assert BEST_LEAF == "s1\n\nt11\n\nanswer 111" and TERNARY_LEAVES[BEST_LEAF] == 0.98
    assert max(("s0\n\n", "s1\n\n", "s2\n\n"), key=TERNARY_SCORES.get) == "s0\n\n"


def test_mcts_finds_the_best_leaf_within_27_of_39_nodes():
    # The values lead towards s0 (s0 .513 > s1 .390; t01 .597 > t11 .530): UCT must
    # explore to find the 0.98 leaf. Stated budget: 27 iterations (the tree has 39 nodes);
    # it is found at iteration 27 exactly (deterministic: no randomness in UCT here).
    r, scorer = run(MCTS(iterations=27, branching=3), TERNARY, TERNARY_SCORES)
    assert r.text == BEST_LEAF and r.scores[r.selected] == 0.98
    assert scorer.usage.calls == 27 and len(r.samples) == 15  # 15 of the 27 leaves seen
    r, _ = run(MCTS(iterations=26, branching=3), TERNARY, TERNARY_SCORES)
    assert r.text != BEST_LEAF


def test_mcts_exhausts_a_small_tree_and_stops():
    r, _ = run(MCTS(iterations=100, branching=2))
    end = end_record(r)
    assert end["stop_reason"] == "exhausted" and end["nodes"] == 6
    assert r.text == "B\n\nB1 answer 3"


@pytest.mark.parametrize("seed", range(10))
def test_ab_mcts_finds_the_best_leaf_within_36_of_39_nodes(seed):
    # Stated budget: 36 iterations, for each of the seeds 0-9 (measured: found after
    # 20-35 iterations, median 27.5).
    params = PARAMS.replace(seed=seed)
    r, scorer = run(ABMCTS(iterations=36, max_children=3), TERNARY, TERNARY_SCORES, params)
    assert r.text == BEST_LEAF and r.scores[r.selected] == 0.98
    assert scorer.usage.calls <= 36


def test_ab_mcts_same_seed_same_result():
    a, _ = run(ABMCTS(iterations=15, max_children=3), TERNARY, TERNARY_SCORES)
    b, _ = run(ABMCTS(iterations=15, max_children=3), TERNARY, TERNARY_SCORES)
    assert a.trace == b.trace and a.samples == b.samples


def test_ab_mcts_goes_wider_where_children_score_well():
    # root children all score .9 (a good generator): GEN stays attractive at the root
    tree = {"": ["x\n\n"], "x\n\n": ["bad end"]}
    scores = {"x\n\n": 0.9, "x\n\nbad end": 0.05}
    r, _ = run(ABMCTS(iterations=12), tree, scores)
    widths = defaultdict(int)
    for rec in r.trace:
        if rec["event"] == "expand":
            widths[rec["parent"]] += 1
    assert widths[0] > 6  # most new steps hang under the root


SEARCHES = [
    BeamSearch(beam_width=2, expansions=2),
    BestFirst(expansions=2),
    FirstStepSelection(first_steps=3, keep=2, completions=2),
    MCTS(iterations=30, branching=3),
    ABMCTS(iterations=30),
]


@settings(max_examples=40, deadline=None)
@given(
    which=st.integers(0, len(SEARCHES) - 1),
    token_budget=st.one_of(st.none(), st.integers(1, 120)),
    scorer_budget=st.one_of(st.none(), st.integers(1, 15)),
)
def test_budgets_are_never_exceeded(which, token_budget, scorer_budget):
    base = SEARCHES[which]
    strategy = type(base)(
        **{**base.__dict__, "token_budget": token_budget, "scorer_budget": scorer_budget}
    )
    r, scorer = run(strategy, TERNARY, TERNARY_SCORES)
    end = end_record(r)
    assert scorer.usage.calls == end["scorer_calls"]
    assert r.usage.completion_tokens == end["policy_tokens"]
    if token_budget is not None:
        assert end["policy_tokens"] <= token_budget
    if scorer_budget is not None:
        assert scorer.usage.calls <= scorer_budget
    assert end["stop_reason"] is not None


def test_a_token_budget_is_shared_out_over_the_beams_of_a_round():
    r, _ = run(BeamSearch(beam_width=2, expansions=2, token_budget=20))
    end = end_record(r)
    # round 1: 2 steps of the root, 20 // 2 = 10 tokens each, 6 spent ("A\n\n", "B\n\n");
    # round 2 plans A's and B's calls together: (20 - 6) // 4 = 3 tokens per step, so all
    # four leaves are cut ("length") and every beam is done
    expands = [rec for rec in r.trace if rec["event"] == "expand"]
    assert [(rec["parent"], rec["max_tokens"]) for rec in expands] == [(0, 10), (1, 3), (2, 3)]
    assert [c["end"] for rec in expands[1:] for c in rec["children"]] == ["length"] * 4
    assert end["stop_reason"] == "done" and end["policy_tokens"] == 18


def test_a_token_budget_stops_the_search_and_says_so():
    r, _ = run(BeamSearch(beam_width=2, expansions=2, token_budget=7))
    end = end_record(r)
    # round 1: 7 // 2 = 3 tokens per step, 6 spent; round 2 cannot give one token to each
    # of 4 steps (1 // 4 = 0), nor to 2 steps of A alone (1 // 2 = 0)
    assert [rec["max_tokens"] for rec in r.trace if rec["event"] == "expand"] == [3]
    assert end["stop_reason"] == "token-budget" and end["policy_tokens"] == 6


def test_a_round_cut_by_the_scorer_budget_says_so_even_when_its_beams_are_done():
    """Scorer budget 4: round 2 has 2 scorer calls for 4 steps, so B is not expanded. A's
    two leaves (done) outrank B (.05), but the search stopped because the budget could not
    pay for B's steps, not because it was done (as one expand per beam reports it)."""
    scores = {**TRAP_SCORES, "B\n\n": 0.05}
    r, scorer = run(BeamSearch(beam_width=2, expansions=2, scorer_budget=4), TRAP_TREE, scores)
    expands = [rec for rec in r.trace if rec["event"] == "expand"]
    assert [(rec["parent"], rec["requested"]) for rec in expands] == [(0, 2), (1, 2)]
    assert end_record(r)["stop_reason"] == "scorer-budget" and scorer.usage.calls == 4


def test_one_beam_whose_call_failed_does_not_stop_a_round_that_grew():
    """B's first call fails (both samples errors) while A grows: the round made progress,
    so the search goes on, and B's next call finds the best leaf."""
    tree = {**TRAP_TREE, "B\n\n": [RuntimeError("down"), RuntimeError("down"), "B1 answer 3"]}
    r, _ = run(BeamSearch(beam_width=2, expansions=2), tree)
    expands = [rec for rec in r.trace if rec["event"] == "expand"]
    assert [(rec["parent"], len(rec["children"])) for rec in expands] == [
        (0, 2), (1, 2), (2, 0), (2, 1)
    ]
    assert r.text == "B\n\nB1 answer 3" and end_record(r)["stop_reason"] == "done"


def test_failed_steps_and_scorer_errors_are_traced_never_scored():
    tree = {"": ["A\n\n", RuntimeError("boom")], "A\n\n": ["A1 answer 1"]}
    backend_calls = defaultdict(int)

    def reply(prompt, i):
        kids = tree[prompt.prefix]
        j = backend_calls[prompt.prefix]
        backend_calls[prompt.prefix] += 1
        return kids[j % len(kids)]

    def score(prompt, steps):
        text = "".join(steps)
        return {"A\n\n": 0.5, "A\n\nA1 answer 1": 1.5}[text]  # 1.5 is not a probability

    r = BeamSearch(beam_width=2, expansions=2, scorer=score, scorer_scale="probability").run(
        ScriptedBackend(reply), PROMPT, PARAMS
    )
    first = r.trace[0]
    assert [c["text"] for c in first["children"]] == ["A\n\n"]
    assert first["errors"] == ["RuntimeError: boom"]
    second = r.trace[1]
    assert second["children"] == [] and "outside its probability range" in second["errors"][0]
    assert r.text == "A\n\n" and end_record(r)["stop_reason"] == "no-progress"


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (BeamSearch, "expansions", 0),
        (BeamSearch, "beam_width", -1),
        (BestFirst, "solutions", 0),
        (MCTS, "branching", 0),
        (MCTS, "exploration", -1.0),
        (ABMCTS, "prior", (0.0, 1.0)),
        (ABMCTS, "max_children", 0),
        (FirstStepSelection, "select", "best"),
        (BeamSearch, "how", "median"),
        (BeamSearch, "token_budget", 0),
        (BeamSearch, "delimiter", ""),
    ],
)
def test_bad_options_name_the_field(cls, field, value):
    with pytest.raises(ConfigError, match=field if field != "how" else "how must be"):
        cls(**{field: value})


def test_callable_scorer_needs_its_scale():
    with pytest.raises(ConfigError, match="scorer_scale"):
        BeamSearch(scorer=lambda p, s: 0.5)


@pytest.mark.parametrize(
    "name", ["beam-search", "best-first", "first-step-selection", "mcts", "ab-mcts"]
)
def test_registered_defaults_need_a_scorer_on_a_backend_without_logits(name):
    strategy = get_strategy(name)
    with pytest.raises(ConfigError, match="pass scorer="):
        strategy.run(tree_backend(TRAP_TREE), PROMPT, PARAMS.replace(n=2))


def test_unbounded_rewards_are_refused_by_tree_search():
    scorer = CallableScorer(lambda p, s: 3.0, "reward")
    with pytest.raises(ConfigError, match="finite bounds"):
        MCTS(iterations=3, scorer=scorer).run(tree_backend(TRAP_TREE), PROMPT, PARAMS)


def test_bounded_rewards_are_scaled_to_the_unit_interval():
    scorer = CallableScorer(lambda p, s: 10 * TRAP_SCORES["".join(s)], "reward", bounds=(0.0, 10.0))
    r = MCTS(iterations=6, branching=2, scorer=scorer).run(tree_backend(TRAP_TREE), PROMPT, PARAMS)
    assert r.answer == "3" and r.scores[r.selected] == pytest.approx(9.5)


def test_params_n_sets_the_default_widths():
    r, _ = run(BeamSearch(expansions=2), params=PARAMS.replace(n=4))  # width 4 // 2 = 2
    assert r.answer == "3"
    r, _ = run(BeamSearch(expansions=2), params=PARAMS.replace(n=2))  # width 1
    assert r.answer == "2"


def test_toy_lm_label_scorer_values_and_seeds_reproduce():
    # ToyLM is a LogitsModel; its next-token distribution does not depend on the judging
    # prompt, so P(True) is the same for every partial solution: P("1") / (P("1") + P("2"))
    # after BOS = 0.5 / 0.8 with labels "1" (yes) and "2" (no).
    toy = ToyLM()
    scorer = LabelTokenScorer(toy, "{question}{solution}", "1", "2", chat=False)
    s = BeamSearch(beam_width=2, expansions=2, delimiter="3", max_steps=3, scorer=scorer)
    params = SamplingParams(max_tokens=4, seed=7)
    a = s.run(toy, Prompt(text="x"), params)
    b = s.run(toy, Prompt(text="x"), params)
    assert a.samples == b.samples and a.trace == b.trace
    assert all(v == pytest.approx(0.625) for v in a.scores)
    assert math.isclose(scorer.usage.calls, end_record(a)["scorer_calls"] * 2)


CONTRACT = {
    "beam-search": {"beam_width": 2, "expansions": 2},
    "best-first": {"expansions": 2},
    "first-step-selection": {"first_steps": 3, "keep": 2},
    "mcts": {"iterations": 6, "branching": 2},
    "ab-mcts": {"iterations": 6},
}


@pytest.mark.parametrize("name", list(CONTRACT))
@pytest.mark.parametrize("backend_kind", ["scripted", "toy"])
def test_contract_every_search_strategy_every_fake_backend(name, backend_kind):
    """Result shape, usage accounting and seed reproducibility for every search strategy."""

    def make():
        if backend_kind == "toy":  # steps end on "3"; P(True) read as P("1") vs P("2")
            toy = ToyLM()
            scorer = LabelTokenScorer(toy, "{question}{solution}", "1", "2", chat=False)
            return toy, {"scorer": scorer, "delimiter": "3"}
        return tree_backend(TRAP_TREE), {"scorer": table_scorer(TRAP_SCORES)}

    params = SamplingParams(n=4, seed=5, max_tokens=6)
    backend, options = make()
    r = get_strategy(name, max_steps=3, **CONTRACT[name], **options).run(
        backend, Prompt(text="q"), params
    )
    end = end_record(r)
    assert r.strategy == name and r.samples
    assert len(r.samples) == len(r.answers) == len(r.scores)
    assert r.usage.completion_tokens == end["policy_tokens"]
    calls_per_score = 1 if backend_kind == "toy" else 0  # the label scorer reads logits
    assert r.usage.model_calls == end["policy_calls"] + calls_per_score * end["scorer_calls"]
    assert r.selected is not None and r.answer == r.answers[r.selected]
    assert r.samples[r.selected].status == "ok"
    backend, options = make()
    again = get_strategy(name, max_steps=3, **CONTRACT[name], **options).run(
        backend, Prompt(text="q"), params
    )
    assert again.samples == r.samples and again.trace == r.trace


def test_default_p_true_on_a_model_that_cannot_spell_the_labels_says_so():
    with pytest.raises(ConfigError, match="label 'Yes' cannot be tokenised"):
        get_strategy("beam-search").run(ToyLM(), Prompt(text="q"), SamplingParams(n=4))


LLAMA_SEARCHES = {  # one per family: level-by-level search, and tree search
    "beam-search": {"beam_width": 2, "expansions": 2},
    "ab-mcts": {"iterations": 3},
}


@pytest.mark.llama
@pytest.mark.parametrize("name", list(LLAMA_SEARCHES))
def test_llama_search_with_default_p_true_respects_budgets(llama_backend, name):
    """End to end on the embedded model with the default scorer (P(True) on the same
    model): small budgets, every one respected, the trace matches the usage."""
    strategy = get_strategy(
        name, max_steps=3, token_budget=48, scorer_budget=4, **LLAMA_SEARCHES[name]
    )
    params = SamplingParams(temperature=0.8, max_tokens=16, seed=1)
    r = strategy.run(llama_backend, "What is 12 + 30? Think step by step.", params)
    end = end_record(r)
    assert end["policy_tokens"] <= 48 and end["scorer_calls"] <= 4
    assert r.score_scale == "probability" and r.samples
    assert all(s is not None and 0.0 <= s <= 1.0 for s in r.scores)
    assert r.selected is not None and r.text == r.samples[r.selected].text
    generated = sum(c["tokens"] for rec in r.trace[:-1] for c in rec["children"])
    assert generated <= end["policy_tokens"]  # failed steps are not children
    assert r.usage.model_calls == end["policy_calls"] + end["scorer_calls"]
    assert r.usage.completion_tokens == end["policy_tokens"]  # P(True) generates nothing


def test_scorer_calls_are_reported_in_usage():
    """Result.usage.scorer_calls equals the scorer's own call counter, for every step-level
    search and SMC strategy."""
    from samplescale.strategies import get_strategy
    from samplescale.verifiers.process import CallableScorer

    for name in (
        "beam-search",
        "best-first",
        "first-step-selection",
        "mcts",
        "ab-mcts",
        "particle-filtering",
        "particle-gibbs",
    ):
        scorer = CallableScorer(lambda prompt, steps: 0.5, "probability")
        r = get_strategy(name, scorer=scorer).run(
            ToyLM(), Prompt(text="q"), SamplingParams(n=4, seed=0, max_tokens=6)
        )
        assert r.usage.scorer_calls == scorer.usage.calls > 0, name


def _judge_reply(prompt, i):
    if "Rate how likely" in prompt_text(prompt):
        return "Score: 7"
    return f"Step {i}.\n\nThe answer is {i % 3}."


@pytest.mark.parametrize(
    "name, options",
    [("mcts", {"iterations": 100_000}), ("ab-mcts", {"iterations": 100_000}),
     ("best-first", {}), ("beam-search", {"max_steps": 1000})],
)
def test_searches_stop_once_the_token_budget_refuses_a_call(name, options):
    backend = TokenBudgetBackend(ScriptedBackend(_judge_reply), 3000)
    strategy = get_strategy(name, scorer="judge", **options)
    r = strategy.run(backend, "What is 1+1?", SamplingParams(n=4, max_tokens=16, seed=0))
    end = end_record(r)
    assert backend.exhausted and backend.spent <= 3000
    assert end["stop_reason"] == "max-total-tokens"
    assert end["policy_calls"] < 30  # not one refused call per remaining iteration
    assert len(r.samples) >= 1 and r.selected is not None  # the best partial solution


def test_a_search_whose_calls_all_fail_stops_with_no_progress():
    backend = ScriptedBackend([RuntimeError("down")])
    r = get_strategy("mcts", scorer="judge", iterations=100_000).run(
        backend, "q", SamplingParams(n=4, max_tokens=16, seed=0)
    )
    assert end_record(r)["stop_reason"] == "no-progress" and end_record(r)["policy_calls"] == 1


@pytest.mark.parametrize(
    "name, options, fragment",
    [("mcts", {"scorer": 5}, "scorer must be a ProcessScorer"),
     ("best-first", {"scorer_scale": "bogus"}, "scorer_scale must be one of"),
     ("particle-filtering", {"scorer": 5}, "scorer must be a ProcessScorer"),
     ("best-of-n", {"scorer": 5}, "scorer must be a Scorer"),
     ("best-of-n", {"scorer": None}, "scorer must be a Scorer"),
     ("repeated-sampling", {"oracle": "12"}, "oracle must be a callable"),
     ("self-consistency", {"extract": "x"}, "extract must be a callable"),
     ("weighted-vote", {"equivalent": 5}, "equivalent must be a callable"),
     ("beam-search", {"extract": None}, "extract must be a callable")],
)
def test_non_callable_and_unknown_options_fail_at_construction(name, options, fragment):
    with pytest.raises(ConfigError, match=fragment):
        get_strategy(name, **options)
