"""samplescale compare and report on synthetic run directories with known outcomes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from samplescale.analysis.paired import compare_paired
from samplescale.cli import main
from samplescale.comparison import pareto_front, run_points

USAGE = {"prompt_tokens": 20, "completion_tokens": 80, "model_calls": 1, "scorer_calls": 0,
         "wall_time_s": 1.0}


def pool_record(i: int, c: int, n: int = 8) -> dict:
    """Problem i with c of n samples correct (answer "1"), the rest answer "2"."""
    samples = [{"text": f"t{j}", "answer": "1" if j < c else "2", "correct": j < c,
                "tokens": 10, "finish_reason": "stop", "status": "ok"} for j in range(n)]
    return {"status": "ok", "id": f"p{i}", "question": f"What is {i}?", "gold": "1",
            "problem_digest": "d", "n": n, "c": c, "labels": [0] * c + [1] * (n - c),
            "correct_label": 0 if c else None, "samples": samples, "usage": USAGE,
            "greedy": {"answer": "1", "correct": c >= n // 2, "text": "g", "usage": USAGE}}


def strategy_record(i: int, correct: bool) -> dict:
    rec = pool_record(i, COUNTS[i])  # the same greedy answers as the pool run
    for key in ("n", "c", "labels", "correct_label"):
        del rec[key]
    usage = {**USAGE, "completion_tokens": 400, "scorer_calls": 8}
    return {**rec, "strategy": "best-of-n", "answer": "1" if correct else "2",
            "correct": correct, "usage": usage}


def write_run(path: Path, records: list[dict], gz: bool = False) -> Path:
    path.mkdir(parents=True)
    text = "".join(json.dumps(r) + "\n" for r in records)
    if gz:
        (path / "results.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    else:
        (path / "results.jsonl").write_text(text)
    (path / "run.json").write_text(json.dumps({"task": "arithmetic", "params": {"n": 8}}))
    return path


COUNTS = [8, 6, 5, 4, 2, 1, 0, 0, 7, 3]  # correct samples of 8 per problem
STRATEGY = [True, True, True, False, False, True, False, False, True, True]


@pytest.fixture()
def runs(tmp_path: Path) -> tuple[Path, Path]:
    pool = write_run(tmp_path / "pool", [pool_record(i, c) for i, c in enumerate(COUNTS)])
    strat = write_run(tmp_path / "bon", [strategy_record(i, ok) for i, ok in
                                         enumerate(STRATEGY)], gz=True)
    return pool, strat


def test_compare_table_front_and_paired_test(runs, tmp_path: Path, capsys) -> None:
    pool, strat = runs
    out = tmp_path / "cmp"
    assert main(["compare", str(pool), str(strat), "--params", "1e9", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "maj@8" in text and "best-of-n" in text and "exact McNemar" in text
    data = json.loads((out / "compare.json").read_text())
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    pts = {(p["run"], p["method"]): p for p in data["points"]}
    # maj@8 of a pool: the majority class wins; ties (4 of 8) are a coin flip
    maj8 = np.mean([1.0 if c > 4 else 0.5 if c == 4 else 0.0 for c in COUNTS])
    assert pts[("pool", "maj@8")]["accuracy"] == pytest.approx(maj8)
    assert pts[("pool", "maj@8")]["cost"]["completion_tokens"] == 80
    assert pts[("pool", "maj@1")]["cost"]["completion_tokens"] == 10
    assert pts[("pool", "maj@1")]["cost"]["flops"] == pytest.approx(2e9 * 30)
    assert pts[("bon", "best-of-n")]["accuracy"] == 0.6
    # the strategy (0.6 at 400 tokens) is the most accurate point: on the front
    assert ["bon", "best-of-n"] in data["pareto_front"]
    assert ["pool", "maj@1"] in data["pareto_front"]  # 10 tokens, the cheapest
    assert ["pool", "maj@8"] not in data["pareto_front"]  # greedy (0.5 > 0.45, 80 tokens)
    paired = data["paired"][0]
    a = [1.0 if c > 4 else 0.5 if c == 4 else 0.0 for c in COUNTS]
    direct = compare_paired(a, [float(x) for x in STRATEGY], rng=np.random.default_rng(0))
    assert paired["p_value"] == pytest.approx(direct.p_value)
    assert paired["difference"] == pytest.approx(0.6 - maj8)


def test_pareto_front_by_hand() -> None:
    recs = [pool_record(i, c) for i, c in enumerate(COUNTS)]
    pts = run_points("r", recs, "pool")
    front = pareto_front(pts)
    accs = [(p.method, round(p.accuracy, 4)) for p in pts]
    # greedy: c >= 4 correct -> 5 of 10 = 0.5 at 80 tokens
    assert accs[0] == ("greedy", 0.5)
    costs = [p.x("tokens") for p in front]
    assert costs == sorted(costs)
    assert all(q.accuracy < p.accuracy for q, p in zip(front, front[1:]))


def test_compare_refuses_a_directory_without_results(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty")]) == 2
    assert "holds no results.jsonl" in capsys.readouterr().err


HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="alert(1)">'


def _report(tmp_path: Path, runs: tuple[Path, Path]) -> Path:
    pool, strat = runs
    # a hostile question and answer: the report must show them as text
    recs = [json.loads(line) for line in (pool / "results.jsonl").read_text().splitlines()]
    recs[3]["question"] = HOSTILE
    recs[3]["samples"][7]["answer"] = HOSTILE  # a wrong sample: a class of its own
    recs[3]["labels"][7] = 2
    (pool / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "report.html"
    assert main(["report", str(pool), str(strat), "-o", str(out)]) == 0
    return out


class _Page(__import__("html.parser").parser.HTMLParser):
    """What a person sees: visible problem rows, the shown count, scripts, images, title."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.scripts = 0
        self.images: list[str] = []
        self.title = ""
        self.shown: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "problem":
            self.rows.append({"hidden": "hidden" in a, "text": ""})
            self._in = "row"
        elif tag == "script":
            self.scripts += 1
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "title":
            self._in = "title"
        elif tag == "span" and a.get("class") == "shown":
            self._in = "shown"

    def handle_endtag(self, tag):
        if tag in ("tr", "title", "span"):
            self._in = None

    def handle_data(self, data):
        if self._in == "row":
            self.rows[-1]["text"] += data
        elif self._in == "title":
            self.title += data
        elif self._in == "shown":
            self.shown.append(data)


@pytest.mark.slow
def test_report_is_self_contained_and_escaped(runs, tmp_path: Path) -> None:
    """The static file, read with a real HTML parser."""
    page = _Page()
    page.feed(_report(tmp_path, runs).read_text())
    assert page.scripts == 1  # only the search box's filter
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert len(page.rows) == 20  # 10 problems in each of the two runs
    assert any(HOSTILE in r["text"] for r in page.rows)  # shown as text, not markup
    assert page.title == "samplescale report: pool, bon"


CHROMIUM = next((b for b in ("chromium", "chromium-browser", "google-chrome")
                 if __import__("shutil").which(b)), None)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None and not __import__("os").environ.get("CI"),
                    reason="no chromium here (scripts/setup.sh --dev installs it as root)")
def test_report_in_a_headless_browser(runs, tmp_path: Path) -> None:
    """Chromium loads the report with ?q=p3: the search script hides every problem row but
    p3's (in both runs), the count reads 1, the hostile text did not run (the title is
    unchanged) and a screenshot renders."""
    import subprocess

    assert CHROMIUM is not None, "CI must have chromium (scripts/setup.sh --dev)"
    out = _report(tmp_path, runs)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", f"{out.as_uri()}?q=p3"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    page = _Page()
    page.feed(dom)
    visible = [r["text"] for r in page.rows if not r["hidden"]]
    assert len(page.rows) == 20 and len(visible) == 2
    assert all(t.startswith("p3") for t in visible)
    assert page.shown == ["1", "1"]
    assert page.title == "samplescale report: pool, bon"
    assert HOSTILE in visible[0]
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, "--window-size=1200,3000", f"--screenshot={shot}", out.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 50_000
