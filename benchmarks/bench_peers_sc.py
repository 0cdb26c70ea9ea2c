"""Self-consistency side by side: samplescale vs optillm vs its-hub, one upstream, one run.

Upstream: llama-cpp-python's OpenAI-compatible server with the embedded SmolLM2-135M
model, on loopback. Between the methods and the upstream sits a counting proxy that sums
the ``usage`` of every upstream reply, so each method's token count is measured the same
way (and compared with what the method itself reports). The methods run one after the
other on each problem, in an order rotated per problem, never at the same time.

- samplescale: ``samplescale serve --upstream`` (the openai_http backend), model
  ``self-consistency@8/smollm2``; N = 8.
- optillm 0.4.0: its proxy with ``--approach self_consistency``; N = 5 (hard-coded in
  optillm), temperature 1 (hard-coded), votes by difflib similarity of whole responses.
- its-hub 1.2.0: ``SelfConsistency`` with budget 8, voting on the last number
  (benchmarks/peer_its_hub_runner.py).

Every method gets the same system + user messages, temperature 1.0 and max_tokens; the
answer is extracted from the returned text by samplescale's extractor for all three.

Set-up: ``benchmarks/setup_peers.sh`` (peer venvs). Run:
``.venv/bin/python benchmarks/bench_peers_sc.py --problems 20``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _server_helpers import serve  # noqa: E402

from samplescale.backends.llamacpp import default_model_path  # noqa: E402
from samplescale.tasks.arithmetic import arithmetic  # noqa: E402
from samplescale.verifiers.math import extract_answer, is_equivalent  # noqa: E402

PEERS = ROOT / "benchmarks" / "peers"
SYSTEM = "You are a helpful assistant."
MODEL = "smollm2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen | None, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} during start-up")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up in {timeout_s} s")


class CountingProxy:
    """Forwards /v1/* to the upstream and sums the usage of every reply."""

    def __init__(self, upstream: str) -> None:
        self.lock = threading.Lock()
        self.prompt = self.completion = self.calls = 0
        app = FastAPI()
        client = httpx.AsyncClient(base_url=upstream, timeout=600)

        @app.api_route("/v1/{path:path}", methods=["GET", "POST"])
        async def forward(path: str, request: Request):
            r = await client.request(request.method, "/" + path, content=await request.body(),
                                     headers={"content-type": "application/json"})
            data = r.json()
            usage = data.get("usage") if isinstance(data, dict) else None
            if usage:
                with self.lock:
                    self.prompt += usage.get("prompt_tokens", 0)
                    self.completion += usage.get("completion_tokens", 0)
                    self.calls += 1
            return JSONResponse(data, status_code=r.status_code)

        self.app = app

    def snapshot(self) -> tuple[int, int, int]:
        with self.lock:
            return self.prompt, self.completion, self.calls


def start(cmd: list[str], env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """Stop a process this run started (and its process group), if it still runs."""
    try:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # it exited on its own meanwhile (the its-hub runner at EOF)
        pass


def _interrupt(*_: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the finally block stops the servers this run started."""
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=20)
    ap.add_argument("--level", type=int, default=1, help="arithmetic level (default 1)")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "peers-sc")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    task = arithmetic(level=args.level, limit=args.problems, seed=0)

    procs: list[subprocess.Popen] = []
    up_port, ss_port, opt_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    procs.append(start([sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()),
                        "--host", "127.0.0.1", "--port", str(up_port), "--n_ctx", "4096",
                        "--verbose", "False"], log=args.out / "llama_server.log"))
    results: dict[str, list[dict]] = {"samplescale": [], "optillm": [], "its-hub": []}
    try:
        wait_http(upstream + "/models", procs[-1])
        proxy = CountingProxy(upstream)
        with serve(proxy.app) as proxy_url:
            procs.append(start([str(ROOT / ".venv/bin/samplescale"), "serve", "--upstream", proxy_url,
                                "--upstream-model", MODEL, "--model-name", MODEL,
                                "--port", str(ss_port), "--log-level", "warning"],
                               log=args.out / "samplescale.log"))
            ss_url = f"http://127.0.0.1:{ss_port}/v1"
            wait_http(ss_url + "/models", procs[-1])
            optillm_bin = PEERS / "optillm/.venv/bin/optillm"
            opt_url = None
            if optillm_bin.exists():
                procs.append(start([str(optillm_bin), "--approach", "self_consistency",
                                    "--base-url", proxy_url, "--port", str(opt_port)],
                                   env={"OPENAI_API_KEY": "none"}, log=args.out / "optillm.log"))
                opt_url = f"http://127.0.0.1:{opt_port}/v1"
                wait_http(f"http://127.0.0.1:{opt_port}/health", procs[-1], timeout_s=600)
            its_py = PEERS / "its-hub/.venv/bin/python"
            its = None
            if its_py.exists():
                its = subprocess.Popen([str(its_py), str(ROOT / "benchmarks/peer_its_hub_runner.py")],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       stderr=open(args.out / "its_hub.log", "w"),  # noqa: SIM115
                                       start_new_session=True)
                procs.append(its)
            ss = openai.OpenAI(base_url=ss_url, api_key="none", timeout=900, max_retries=0)
            opt = openai.OpenAI(base_url=opt_url, api_key="none", timeout=900, max_retries=0) if opt_url else None

            def run_samplescale(user: str) -> tuple[str, dict]:
                r = ss.chat.completions.create(
                    model=f"self-consistency@8/{MODEL}", temperature=args.temperature,
                    max_tokens=args.max_tokens,
                    messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}])
                return r.choices[0].message.content or "", r.usage.model_dump(exclude_none=True)

            def run_optillm(user: str) -> tuple[str, dict]:
                r = opt.chat.completions.create(
                    model=MODEL, temperature=args.temperature, max_tokens=args.max_tokens,
                    messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}])
                usage = r.usage.model_dump(exclude_none=True) if r.usage else {}
                return r.choices[0].message.content or "", usage

            def run_its_hub(user: str) -> tuple[str, dict]:
                job = {"id": 0, "system": SYSTEM, "user": user, "budget": 8, "temperature": args.temperature,
                       "max_tokens": args.max_tokens, "endpoint": proxy_url, "model": MODEL}
                its.stdin.write(json.dumps(job) + "\n")
                its.stdin.flush()
                out = json.loads(its.stdout.readline())
                return out["text"], {k: out[k] for k in ("prompt_tokens", "completion_tokens")}

            methods = {"samplescale": run_samplescale}
            if opt is not None:
                methods["optillm"] = run_optillm
            if its is not None:
                methods["its-hub"] = run_its_hub
            names = list(methods)
            for i, problem in enumerate(task.problems):
                user = task.prompt(problem).messages[-1].content
                for name in names[i % len(names):] + names[: i % len(names)]:
                    p0, c0, k0 = proxy.snapshot()
                    t0 = time.perf_counter()
                    error = None
                    try:
                        text, reported = methods[name](user)
                    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                        text, reported, error = "", {}, f"{type(exc).__name__}: {exc}"
                    wall = time.perf_counter() - t0
                    p1, c1, k1 = proxy.snapshot()
                    answer = extract_answer(text) if text else None
                    row = {"problem": problem.id, "wall_s": wall, "upstream_prompt": p1 - p0,
                           "upstream_completion": c1 - c0, "upstream_calls": k1 - k0,
                           "reported_usage": reported, "answer": answer, "gold": problem.gold,
                           "correct": bool(answer is not None and is_equivalent(answer, problem.gold)),
                           "error": error}
                    results[name].append(row)
                    print(name, json.dumps(row), flush=True)
    finally:
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
        for p in reversed(procs):
            if p.stdin:
                p.stdin.close()
            stop(p)
    print(f"\n{len(task.problems)} arithmetic level-{args.level} problems, T={args.temperature}, "
          f"max_tokens={args.max_tokens}\n")
    print("| method | upstream calls / problem | accuracy | wall time (s) | upstream prompt + "
          "completion tokens | reported prompt + completion tokens | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    def reported(rows: list[dict], key: str) -> str:
        values = [r["reported_usage"].get(key) for r in rows]
        return "none" if all(v is None for v in values) else str(sum(v or 0 for v in values))

    for name, rows in results.items():
        if not rows:
            continue
        calls = sum(r["upstream_calls"] for r in rows)
        print(f"| {name} | {calls / len(rows):.1f} | {sum(r['correct'] for r in rows)}/{len(rows)} | "
              f"{sum(r['wall_s'] for r in rows):.1f} | "
              f"{sum(r['upstream_prompt'] for r in rows)} + "
              f"{sum(r['upstream_completion'] for r in rows)} | "
              f"{reported(rows, 'prompt_tokens')} + {reported(rows, 'completion_tokens')} | "
              f"{sum(r['error'] is not None for r in rows)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
