"""The Ray executor on a real local Ray cluster: the same records as the local executor
(seeded fake model and the embedded SmolLM2), a killed worker's problem run again exactly
once, errors raised as in the worker, and ``eval --executor ray`` end to end."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from samplescale.backends.fake import ToyLM, prompt_text
from samplescale.cli import main
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, MissingDependencyError, PromptError
from samplescale.evaluate import evaluate
from samplescale.executors import LocalExecutor, RayExecutor
from samplescale.tasks.base import Problem, Task

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed (scripts/setup.sh --dev)")

TASK = Task(
    name="toy",
    problems=tuple(
        Problem(id=f"p{i}", question=f"What is {i} + 1?", gold=str(i + 1)) for i in range(8)
    ),
)
PARAMS = SamplingParams(n=4, max_tokens=8)


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """A real local Ray cluster of 2 CPUs; this module's helpers travel by value (the
    workers cannot import a test module)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


def samples_only(rec):
    """A record without its wall times (the only fields that differ between runs)."""
    rec = {k: v for k, v in rec.items() if k != "usage"}
    if "greedy" in rec:
        rec["greedy"] = {k: v for k, v in rec["greedy"].items() if k != "usage"}
    return rec


def by_id(records):
    records = list(records)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), f"a problem was yielded twice: {ids}"
    return {r["id"]: samples_only(r) for r in records}


class StallOnce(ToyLM):
    """ToyLM that, on the first call for ``question`` anywhere (a marker file records it),
    writes its process id to ``marker`` and hangs (until the test kills it)."""

    def __init__(self, marker: str, question: str) -> None:
        super().__init__()
        self.marker, self.question = marker, question

    def generate(self, prompt, params, rng=None):
        if self.question in prompt_text(prompt) and not os.path.exists(self.marker):
            tmp = self.marker + ".tmp"
            Path(tmp).write_text(str(os.getpid()))
            os.replace(tmp, self.marker)
            time.sleep(120)
        return super().generate(prompt, params, rng)


def test_two_workers_give_the_local_records_in_any_order():
    local = list(evaluate(TASK, ToyLM(), PARAMS, seed=3))
    spread = list(
        evaluate(TASK, functools.partial(ToyLM), PARAMS, seed=3, executor=RayExecutor(workers=2))
    )
    assert by_id(spread) == by_id(local)
    assert len(local) == 8 and {r["status"] for r in local} == {"ok"}
    # a strategy, and skip (resume): only the problems not done run
    sc = dict(strategy=None, seed=5, skip={"p0", "p1", "p2"})
    rest = by_id(evaluate(TASK, ToyLM(), PARAMS, executor=LocalExecutor(), **sc))
    assert sorted(rest) == [f"p{i}" for i in range(3, 8)]
    assert by_id(evaluate(
        TASK, functools.partial(ToyLM), PARAMS, executor=RayExecutor(workers=2), **sc
    )) == rest


def test_a_killed_worker_has_its_problem_run_again_exactly_once(tmp_path):
    marker = tmp_path / "pid"
    spec = functools.partial(StallOnce, str(marker), "What is 5 + 1?")
    killed = []

    def killer():
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(marker.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    started = []
    records = list(
        evaluate(TASK, spec, PARAMS, seed=3, executor=RayExecutor(workers=2),
                 on_start=lambda p: started.append(p.id))
    )
    thread.join(5)
    assert killed and killed[0] != os.getpid()
    assert by_id(records) == by_id(evaluate(TASK, ToyLM(), PARAMS, seed=3))
    assert started.count("p5") == 2 and len(started) == 9  # dispatched twice, yielded once


def test_errors_come_back_as_raised_in_the_worker():
    bad = Task(name="toy", problems=(*TASK.problems[:2], Problem(id="bad", question="x \ud800", gold="1")))
    recs = list(evaluate(bad, functools.partial(ToyLM), PARAMS, executor=RayExecutor(workers=1)))
    assert [r["status"] for r in recs] == ["ok", "ok", "error"]
    assert recs[2]["error"]["type"] == "PromptError"
    with pytest.raises(PromptError, match="^problem bad: the prompt is not valid Unicode"):
        list(evaluate(bad, functools.partial(ToyLM), PARAMS, on_error="stop",
                      executor=RayExecutor(workers=2)))
    with pytest.raises(ConfigError, match="must be a square|table must be square"):
        list(evaluate(TASK, functools.partial(ToyLM, [[1.0]]), PARAMS,
                      executor=RayExecutor(workers=2)))


def test_bad_arguments_are_refused(monkeypatch, capsys, tmp_path):
    with pytest.raises(ConfigError, match="pass a backend spec"):
        list(evaluate(TASK, ToyLM(), PARAMS, executor=RayExecutor(workers=2)))
    for kwargs, field in ((dict(workers=0), "workers"), (dict(num_cpus=0), "num_cpus"),
                          (dict(num_gpus=-1), "num_gpus"), (dict(max_attempts=0), "max_attempts"),
                          (dict(address=""), "address"), (dict(address="localhost"), "address"),
                          (dict(address="h:99999"), "address")):
        with pytest.raises(ConfigError, match=field):
            RayExecutor(**kwargs)
    with pytest.raises(ConfigError, match="executor must be"):
        evaluate(TASK, ToyLM(), PARAMS, executor="ray")
    for argv, message in ((["--workers", "2"], "--workers is for --executor ray"),
                          (["--address", "auto"], "--address is for --executor ray"),
                          (["--executor", "ray", "--record", "x.jsonl"], "--record writes one file"),
                          (["--executor", "ray", "--workers", "0"], "--workers must be"),
                          (["--executor", "ray", "--threads", "0"], "--threads must be"),
                          (["--executor", "ray", "--address", ""], "--address must be 'auto', HOST:PORT"),
                          (["--executor", "ray", "--address", "localhost"], "got 'localhost'")):
        assert main(["eval", "--limit", "1", *argv]) != 0
        assert message in capsys.readouterr().err
    def refuse(**kwargs):
        raise ConnectionError(f"Failed to connect to Ray cluster at {kwargs['address']}")

    with monkeypatch.context() as m, socket.create_server(("127.0.0.1", 0)) as server:
        m.setattr(ray, "is_initialized", lambda: False)
        m.setattr(ray, "init", refuse)
        addr = f"127.0.0.1:{server.getsockname()[1]}"  # listening: ray.init is reached
        with pytest.raises(ConfigError, match=rf"could not join the Ray cluster at {addr} \(Failed to connect.*RAY_AUTH_MODE=token"):
            list(evaluate(TASK, functools.partial(ToyLM), PARAMS, executor=RayExecutor(address=addr)))
    # --threads with Ray is checked against the cluster's nodes (2 CPUs here), not this machine
    assert main(["eval", "--limit", "1", "--executor", "ray", "--threads", "3",
                 "--output", str(tmp_path / "t3")]) != 0
    assert "one ray worker reserves 3 CPUs (num_cpus: --threads in the CLI) but no node" \
        in capsys.readouterr().err
    seen = []

    def capture(**kwargs):
        seen.append(kwargs["address"])
        raise ConnectionError("stop here")

    with monkeypatch.context() as m:  # no address: a fresh local instance, never a running cluster
        m.setattr(ray, "is_initialized", lambda: False)
        m.setattr(ray, "init", capture)
        with pytest.raises(ConfigError):
            list(evaluate(TASK, functools.partial(ToyLM), PARAMS, executor=RayExecutor()))
        assert seen == ["local"]
    if importlib.util.find_spec("grpc") is None:  # Ray Client is not in the ray extra
        with pytest.raises(ConfigError, match=r'address ray://h:10001: .*pip install "ray\[client\]"'):
            RayExecutor(address="ray://h:10001")
    with monkeypatch.context() as m:  # nothing listens: refused at once, before ray.init
        m.setattr(ray, "is_initialized", lambda: False)
        m.setattr(ray, "init", refuse)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # bound, not listening
            t = time.monotonic()
            with pytest.raises(ConfigError, match=f"could not join the Ray cluster at 127.0.0.1:{port}: nothing answers"):
                list(evaluate(TASK, functools.partial(ToyLM), PARAMS,
                              executor=RayExecutor(address=f"127.0.0.1:{port}")))
            assert time.monotonic() - t < 5
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r"samplescale\[ray\]"):
        list(evaluate(TASK, functools.partial(ToyLM), PARAMS, executor=RayExecutor()))


@ray.remote(num_cpus=1)
class Hog:
    """An actor that holds one CPU of the cluster (another job's worker)."""

    def ping(self):
        return 1


def test_workers_that_do_not_fit_are_refused_and_a_run_never_waits_for_unplaced_ones():
    # the cluster has 2 CPUs: 3 workers of 1 CPU, or 1 worker of 3, would wait forever
    for kwargs, message in (
        (dict(workers=3), r"workers=3 \(--workers\) x 1 CPUs each .* \(2 CPUs on 1 node\(s\): "
                          r"room for 2\); lower --workers or --threads"),
        (dict(num_cpus=3), r"reserves 3 CPUs \(num_cpus: --threads in the CLI\) but no node"),
    ):
        with pytest.raises(ConfigError, match=message):
            list(evaluate(TASK, functools.partial(ToyLM), PARAMS, executor=RayExecutor(**kwargs)))
    # another job holds a CPU: the second worker stays unplaced; the run still ends when
    # its problems are done, on the one worker placed
    hog = Hog.remote()
    try:
        assert ray.get(hog.ping.remote(), timeout=30) == 1
        t = time.monotonic()
        recs = list(evaluate(TASK, functools.partial(ToyLM), PARAMS, seed=3,
                             executor=RayExecutor(workers=2)))
        assert by_id(recs) == by_id(evaluate(TASK, ToyLM(), PARAMS, seed=3))
        assert time.monotonic() - t < 30
    finally:
        ray.kill(hog)


@pytest.mark.slow
@pytest.mark.llama
def test_eval_cli_on_smollm2_gives_the_local_samples_and_resumes(tmp_path, capsys, llama_backend):
    common = ["eval", "--limit", "4", "--n", "3", "--max-tokens", "24", "--threads", "1",
              "--model", str(llama_backend.model_path)]
    assert main([*common, "--output", str(tmp_path / "local")]) == 0
    # the Ray run resumes a directory holding the local run's first two problems
    (tmp_path / "ray").mkdir()
    shutil.copy(tmp_path / "local" / "run.json", tmp_path / "ray" / "run.json")
    lines = (tmp_path / "local" / "results.jsonl").read_text().splitlines()
    (tmp_path / "ray" / "results.jsonl").write_text("\n".join(lines[:2]) + "\n")
    capsys.readouterr()
    code = main([*common, "--output", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2"])
    out = capsys.readouterr().out
    assert code == 0 and "resuming" in out and "2 of 4 problems already done" in out
    def read(d):
        return [json.loads(x) for x in (tmp_path / d / "results.jsonl").read_text().splitlines()]
    assert by_id(read("ray")) == by_id(read("local")) and len(read("ray")) == 4
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("local", "ray")]
    assert [c["pass"] for c in summaries[0]["curve"]] == [c["pass"] for c in summaries[1]["curve"]]
