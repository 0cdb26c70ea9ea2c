"""The server under attack with continuous batching (issue 16): disconnect storms, 64
concurrent clients, mixed long and short requests, against a real ``samplescale serve``
process on loopback (the embedded SmolLM2).

Scenarios (each starts its own server process, logs to ``benchmarks/out/attack_*.log``):

- ``storm``: ``--clients`` clients send plain / ``n>1`` / streamed / self-consistency@4
  requests (chat and completions) and disconnect at random times; then the server must be
  idle within seconds (``/health``: nothing admitted or running), answer a follow-up burst as
  fast as a burst before the storm (no leaked sequences), and have logged no 5xx and no
  traceback.
- ``cross``: ``--clients`` concurrent clients each ask to repeat a distinct word (greedy,
  seeded); every response is a 200 with the client's own word (or a clean 429/503), none
  hangs, ids are unique and the client's ``X-Request-ID`` comes back; the exact answers are
  compared with lone runs recorded first.
- ``mixed``: a few ``max_tokens=256`` requests, then many ``max_tokens=8`` ones beside them;
  the short ones' latency with batching on and with ``--no-batching``.

Usage: ``.venv/bin/python benchmarks/attack_server_batching.py storm cross mixed``
(prints one JSON line per scenario and appends it to
``benchmarks/results/attack_server_batching.jsonl``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out"
RESULTS = ROOT / "results" / "attack_server_batching.jsonl"
WORDS = ("apple banana cherry dragon eagle falcon garden harbor island jungle kettle lemon "
         "mango needle orange pepper quartz river silver tiger umbrella violet walnut yellow "
         "zebra anchor bridge candle desert ember forest glacier hammer igloo jacket kingdom "
         "ladder marble nectar oyster pillow quiver rocket saddle tunnel velvet window "
         "basket cactus donkey engine feather goblet helmet insect jigsaw koala lantern "
         "meadow nutmeg").split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(name: str, *args: str) -> Iterator[tuple[str, Path]]:
    """``samplescale serve`` on a free loopback port; yields (base URL, log path)."""
    OUT.mkdir(exist_ok=True)
    port = _free_port()
    logp = OUT / f"attack_{name}.log"
    exe = Path(sys.executable).parent / "samplescale"
    cmd = [str(exe), "serve", "--port", str(port), "--threads", "2", *args]
    with open(logp, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {logp}")
            time.sleep(0.5)
        yield url, logp
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_problems(logp: Path) -> dict[str, int]:
    text = logp.read_text(errors="replace")
    return {
        "tracebacks": text.count("Traceback"),
        "status_5xx": len(re.findall(r'" 5\d\d ', text)) + len(re.findall(r" 5\d\d (?:internal|backend)", text)),
        "errors": len(re.findall(r"\bERROR\b", text)),
    }


async def idle_after(url: str, http: httpx.AsyncClient, limit_s: float = 60) -> float:
    """Seconds until /health shows nothing admitted or running (``limit_s`` if never)."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        h = (await http.get(url + "/health")).json()
        if h["admitted"] == 0 and h["running"] == 0:
            return time.perf_counter() - start
        await asyncio.sleep(0.05)
    return limit_s


def chat(q: str, max_tokens: int, **kw) -> dict:
    return {"model": kw.pop("model", "smollm2"), "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": q}], **kw}


async def burst(url: str, http: httpx.AsyncClient, k: int) -> tuple[float, list[int]]:
    """``k`` concurrent 16-token requests: wall seconds and statuses."""
    start = time.perf_counter()
    rs = await asyncio.gather(*(
        http.post(url + "/v1/chat/completions",
                  json=chat(f"Count to ten, take {i}.", 16, temperature=1.0, seed=i))
        for i in range(k)))
    return time.perf_counter() - start, [r.status_code for r in rs]


# ---------------------------------------------------------------------------- storm
def storm_body(rng: random.Random, i: int) -> tuple[str, dict]:
    kind = rng.choice(["plain", "n3", "stream", "sc4", "sc4-stream", "completion",
                       "completion-stream", "completion-list"])
    q = f"Write a long story about the number {i}."
    if kind == "plain":
        return kind, ("/v1/chat/completions", chat(q, 200, temperature=1.0, seed=i))
    if kind == "n3":
        return kind, ("/v1/chat/completions", chat(q, 200, temperature=1.0, seed=i, n=3))
    if kind == "stream":
        return kind, ("/v1/chat/completions", chat(q, 200, temperature=1.0, seed=i, n=2,
                                                     stream=True))
    if kind.startswith("sc4"):
        return kind, ("/v1/chat/completions", chat(
            f"What is {i} + 7? End with 'The answer is' and the number.", 96,
            model="self-consistency@4/smollm2", temperature=0.8, seed=i,
            stream=kind.endswith("stream")))
    body = {"model": "smollm2", "prompt": f"{i}, {i + 1}, {i + 2},", "max_tokens": 200,
            "temperature": 1.0, "seed": i, "stream": kind.endswith("stream")}
    if kind == "completion-list":
        body["prompt"] = [body["prompt"], f"Once upon a time {i}"]
    return kind, ("/v1/completions", body)


async def storm_client(url: str, http: httpx.AsyncClient, rng: random.Random, i: int,
                       out: list) -> None:
    kind, (path, body) = storm_body(rng, i)
    leave = rng.uniform(0.2, 6.0)
    rec = {"kind": kind, "leave_s": round(leave, 2)}

    async def go() -> None:
        if body.get("stream"):
            async with http.stream("POST", url + path, json=body) as r:
                rec["status"] = r.status_code
                async for _ in r.aiter_lines():
                    pass
        else:
            r = await http.post(url + path, json=body)
            rec["status"] = r.status_code

    try:
        await asyncio.wait_for(go(), leave)
        rec["finished"] = True
    except (asyncio.TimeoutError, TimeoutError):
        rec["finished"] = False
    out.append(rec)


async def storm(args) -> dict:
    rng = random.Random(args.seed)
    res: dict = {"scenario": "storm", "clients": args.clients,
                 "max_concurrency": args.max_concurrency}
    with server("storm", "--max-concurrency", str(args.max_concurrency),
                "--n-seq-max", str(args.n_seq_max)) as (url, logp):
        limits = httpx.Limits(max_connections=args.clients + 8)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            res["burst_before_s"], st0 = await burst(url, http, args.burst)
            for rnd in range(args.rounds):
                out: list = []
                t0 = time.perf_counter()
                await asyncio.gather(*(storm_client(url, http, rng, rnd * 1000 + i, out)
                                       for i in range(args.clients)))
                res[f"round{rnd}_storm_s"] = round(time.perf_counter() - t0, 2)
                res[f"round{rnd}_idle_after_s"] = round(await idle_after(url, http), 2)
                res[f"round{rnd}_kinds"] = dict(Counter(r["kind"] for r in out))
                res[f"round{rnd}_finished"] = Counter(
                    str(r.get("status")) for r in out if r["finished"])
            res["burst_after_s"], st1 = await burst(url, http, args.burst)
            res["burst_statuses"] = dict(Counter(st0 + st1))
            health = (await http.get(url + "/health")).json()
        res["health_end"] = {k: health[k] for k in ("admitted", "running")}
    res.update(log_problems(logp))
    text = logp.read_text(errors="replace")
    res["log_client_left"] = text.count("client left") + text.count("client disconnected")
    return res


# ---------------------------------------------------------------------------- cross
def cross_body(i: int) -> dict:
    w = WORDS[i % len(WORDS)]
    return chat(f"Repeat the word '{w}' three times, separated by spaces.", 12,
                temperature=0.0, seed=i)


def foreign_words(i: int, text: str) -> set[str]:
    """Words of other clients (``WORDS``) in ``text``, the reply to client ``i``."""
    mine = WORDS[i % len(WORDS)]
    return {w for w in WORDS if w != mine and re.search(rf"\b{w}\b", text.lower())}


async def cross(args) -> dict:
    n = args.clients
    res: dict = {"scenario": "cross", "clients": n, "max_concurrency": args.max_concurrency,
                 "max_queue": args.max_queue, "stream": args.stream}
    with server("cross", "--max-concurrency", str(args.max_concurrency),
                "--max-queue", str(args.max_queue),
                "--n-seq-max", str(args.n_seq_max)) as (url, logp):
        limits = httpx.Limits(max_connections=n + 8)
        async with httpx.AsyncClient(timeout=args.timeout, limits=limits) as http:
            lone = {}
            for i in range(min(n, args.lone)):  # lone answers of the first few
                r = await http.post(url + "/v1/chat/completions", json=cross_body(i))
                lone[i] = r.json()["choices"][0]["message"]["content"]

            async def one(i: int) -> tuple[int, int, float, dict | None, str]:
                t = time.perf_counter()
                hdr = {"X-Request-ID": f"attack-{i % 3}"}
                try:
                    if not args.stream:
                        r = await http.post(url + "/v1/chat/completions", json=cross_body(i),
                                            headers=hdr)
                        return (i, r.status_code, time.perf_counter() - t, r.json(),
                                r.headers.get("x-request-id", ""))
                    body = {**cross_body(i), "stream": True}
                    async with http.stream("POST", url + "/v1/chat/completions", json=body,
                                           headers=hdr) as r:
                        if r.status_code != 200:
                            await r.aread()
                            return (i, r.status_code, time.perf_counter() - t, r.json(),
                                    r.headers.get("x-request-id", ""))
                        text, ids = "", set()
                        async for line in r.aiter_lines():
                            if line.startswith("data: {"):
                                chunk = json.loads(line[6:])
                                ids.add(chunk["id"])
                                for c in chunk["choices"]:
                                    text += c["delta"].get("content") or ""
                        assert len(ids) == 1, ids  # one id for every chunk of a stream
                        return (i, 200, time.perf_counter() - t,
                                {"id": ids.pop(), "choices": [{"message": {"content": text}}]},
                                r.headers.get("x-request-id", ""))
                except httpx.TimeoutException:
                    return i, -1, time.perf_counter() - t, None, ""

            t0 = time.perf_counter()
            rs = await asyncio.gather(*(one(i) for i in range(n)))
            res["wall_s"] = round(time.perf_counter() - t0, 2)
            res["idle_after_s"] = round(await idle_after(url, http), 2)
            ok = [r for r in rs if r[1] == 200]
            texts = {r[0]: r[3]["choices"][0]["message"]["content"] for r in ok if r[3]}
            missing = [i for i, t in texts.items() if WORDS[i % len(WORDS)] not in t.lower()]
            suspect = [i for i, t in texts.items() if foreign_words(i, t)]
            for i in suspect + missing:  # compare with this request alone
                if i not in lone:
                    r = await http.post(url + "/v1/chat/completions", json=cross_body(i))
                    lone[i] = r.json()["choices"][0]["message"]["content"]
    statuses = Counter(r[1] for r in rs)
    res["statuses"] = {str(k): v for k, v in statuses.items()}
    # crossed: a word of another client that the same request alone does not say
    crossed = [{"i": i, "batched": texts[i], "alone": lone[i]} for i in suspect
               if foreign_words(i, texts[i]) - foreign_words(i, lone[i])]
    res["foreign_word_also_alone"] = [
        {"i": i, "text": texts[i]} for i in suspect if i not in {c["i"] for c in crossed}]
    res["crossed"] = crossed
    res["own_word_missing"] = [  # fine when the request alone says the same
        {"i": i, "batched": texts[i], "alone": lone[i]} for i in missing]
    same = sum(texts[i] == lone[i] for i in texts if i in lone)
    ids = {r[3]["id"] for r in ok if r[3]}
    for i, _, _, _, hdr in ok:
        assert hdr == f"attack-{i % 3}", hdr  # the client's own X-Request-ID came back
    res["same_as_alone"] = f"{same}/{sum(i in lone for i in texts)}"
    res["unique_ids"] = len(ids) == len(ok)
    refused = [r for r in rs if r[1] in (429, 503)]
    res["refusals_clean"] = all(r[3] and "error" in r[3] for r in refused)
    lat = sorted(r[2] for r in ok)
    if lat:
        res["p50_s"], res["max_s"] = round(lat[len(lat) // 2], 2), round(lat[-1], 2)
    res.update(log_problems(logp))
    return res


# ---------------------------------------------------------------------------- mixed
async def mixed_once(args, batching: bool) -> dict:
    extra = [] if batching else ["--no-batching"]
    name = "mixed-on" if batching else "mixed-off"
    with server(name, "--max-concurrency", str(args.max_concurrency),
                "--n-seq-max", str(args.n_seq_max), *extra) as (url, logp):
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=600, limits=limits) as http:
            async def one(body: dict) -> tuple[int, float, int]:
                t = time.perf_counter()
                path = "/v1/completions" if "prompt" in body else "/v1/chat/completions"
                r = await http.post(url + path, json=body)
                toks = r.json()["usage"]["completion_tokens"] if r.status_code == 200 else 0
                return r.status_code, time.perf_counter() - t, toks

            longs = [asyncio.ensure_future(one({  # counting on: no early end of sequence
                "model": "smollm2", "prompt": f"{i + 1}, {i + 2}, {i + 3}, {i + 4},",
                "max_tokens": 256, "temperature": 0.0})) for i in range(args.long)]
            await asyncio.sleep(1.0)
            shorts = await asyncio.gather(*(one(chat(
                f"Say a color, {i}.", 8, temperature=1.0, seed=100 + i))
                for i in range(args.short)))
            longs_r = await asyncio.gather(*longs)
    lat = sorted(s[1] for s in shorts)
    return {"batching": batching, "long": args.long, "short": args.short,
            "short_p50_s": round(lat[len(lat) // 2], 2), "short_max_s": round(lat[-1], 2),
            "long_max_s": round(max(r[1] for r in longs_r), 2),
            "long_tokens": [r[2] for r in longs_r],
            "statuses": dict(Counter(str(s[0]) for s in shorts + longs_r)),
            **log_problems(logp)}


async def mixed(args) -> dict:
    return {"scenario": "mixed", "max_concurrency": args.max_concurrency,
            "runs": [await mixed_once(args, True), await mixed_once(args, False)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="+", choices=["storm", "cross", "mixed"])
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--max-concurrency", type=int, default=32)
    ap.add_argument("--max-queue", type=int, default=64)
    ap.add_argument("--n-seq-max", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2, help="storm rounds")
    ap.add_argument("--burst", type=int, default=8, help="requests in the follow-up burst")
    ap.add_argument("--timeout", type=float, default=300, help="client timeout (cross), s")
    ap.add_argument("--stream", action="store_true", help="cross: streamed requests")
    ap.add_argument("--lone", type=int, default=12, help="cross: lone runs recorded first")
    ap.add_argument("--long", type=int, default=3)
    ap.add_argument("--short", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    RESULTS.parent.mkdir(exist_ok=True)
    for s in args.scenarios:
        res = asyncio.run({"storm": storm, "cross": cross, "mixed": mixed}[s](args))
        res["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        res["argv"] = " ".join(sys.argv[1:])
        line = json.dumps(res, default=str)
        print(line, flush=True)
        with open(RESULTS, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
