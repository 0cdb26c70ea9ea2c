#!/usr/bin/env bash
# The Ray executor (issue 13, RESULTS.md section (i)): the same eval (arithmetic, the
# embedded SmolLM2, self-consistency N=8, 20 problems, --threads 1 per process) run
#   local          --executor local
#   ray-w1         --executor ray --workers 1
#   ray-w2         --executor ray --workers 2
#   ray-w2-killed  --executor ray --workers 2, one worker process killed (SIGKILL) once
#                  a few problems are done
# then the per-problem samples of every run compared with the local run's (all fields but
# wall times) and the wall times printed side by side. Each Ray run starts its own local
# Ray instance (its start-up is in the wall time). Resumable: a finished run is kept.
# The 1-minute load average at the end of each run is printed beside its wall time (the
# machine is shared: with a load above the core count the workers wait for CPU), and the
# problem-seconds: the sum over problems of the time spent sampling them (greedy and the
# strategy), so problem-s / wall is the number of problems in progress on average (the
# concurrency the workers reached; below 1 for one process: loading, start-up, grading).
#   benchmarks/bench_ray.sh [OUT_DIR]        (LIMIT=20 N=8 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/out/ray}
limit=${LIMIT:-20}
n=${N:-8}
py=.venv/bin/python
mkdir -p "$out"
common=(eval --task arithmetic --limit "$limit" --n "$n" --max-tokens 48
        --strategy self-consistency --threads 1)
job() { local name=$1; shift
  if [ -f "$out/$name/summary.json" ]; then echo "$name: done before, kept"; return; fi
  local t0; t0=$(date +%s.%N)
  .venv/bin/samplescale "${common[@]}" "$@" --output "$out/$name" > "$out/$name.txt" 2>&1
  echo "$name $(echo "$(date +%s.%N) - $t0" | bc)" >> "$out/times.txt"
  echo "$name $(cut -d' ' -f1 /proc/loadavg)" >> "$out/load.txt"; }

job local
job ray-w1 --executor ray --workers 1
job ray-w2 --executor ray --workers 2

if [ ! -f "$out/ray-w2-killed/summary.json" ]; then
  rm -rf "$out/ray-w2-killed"
  t0=$(date +%s.%N)
  .venv/bin/samplescale "${common[@]}" --executor ray --workers 2 \
    --output "$out/ray-w2-killed" > "$out/ray-w2-killed.txt" 2>&1 &
  driver=$!
  # once 4 problems are done, SIGKILL one Ray actor process (a ray::Worker under this
  # driver's own Ray instance: its descendants only, found through /proc)
  "$py" - "$driver" "$out/ray-w2-killed/results.jsonl" <<'PY' | tee "$out/killed.txt"
import os, signal, sys, time
driver, results = int(sys.argv[1]), sys.argv[2]
def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d))
        except OSError:
            pass
    return kids
def descendants(pid):
    todo, seen = [pid], []
    while todo:
        for k in children(todo.pop()):
            seen.append(k); todo.append(k)
    return seen
deadline = time.time() + 600
while time.time() < deadline:
    done = sum(1 for _ in open(results)) if os.path.exists(results) else 0
    if done >= 4:
        break
    time.sleep(0.1)
for pid in descendants(driver):
    try:
        title = open(f"/proc/{pid}/cmdline").read()
    except OSError:
        continue
    if title.startswith("ray::Worker.run"):  # an actor in the middle of a problem
        os.kill(pid, signal.SIGKILL)
        print(f"killed ray::Worker pid {pid} after {done} problems were written")
        break
else:
    print("no busy worker found to kill")
PY
  wait "$driver"
  echo "ray-w2-killed $(echo "$(date +%s.%N) - $t0" | bc)" >> "$out/times.txt"
  echo "ray-w2-killed $(cut -d' ' -f1 /proc/loadavg)" >> "$out/load.txt"
fi

"$py" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def strip(r):
    r = {k: v for k, v in r.items() if k != "usage"}
    r["greedy"] = {k: v for k, v in r["greedy"].items() if k != "usage"}
    return r
def load(name):
    lines = (out / name / "results.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    ids = [r["id"] for r in recs]
    busy = sum(r["usage"]["wall_time_s"] + r["greedy"]["usage"]["wall_time_s"] for r in recs)
    return {r["id"]: strip(r) for r in recs}, ids, busy
base, _, _ = load("local")
times = dict(line.split() for line in (out / "times.txt").read_text().splitlines())
loads = dict(line.split() for line in (out / "load.txt").read_text().splitlines()) \
    if (out / "load.txt").exists() else {}
print(f"{'run':<15}{'problems':>9}{'duplicates':>11}{'same samples as local':>23}"
      f"{'accuracy':>10}{'wall (s)':>10}{'problem-s':>11}{'problem-s/wall':>16}"
      f"{'load 1-min':>12}")
for name in ("local", "ray-w1", "ray-w2", "ray-w2-killed"):
    recs, ids, busy = load(name)
    same = sum(recs.get(i) == r for i, r in base.items())
    acc = json.loads((out / name / "summary.json").read_text())["accuracy"]["mean"]
    print(f"{name:<15}{len(recs):>9}{len(ids) - len(set(ids)):>11}{f'{same}/{len(base)}':>23}"
          f"{acc:>10.3f}{float(times[name]):>10.1f}{busy:>11.1f}"
          f"{busy / float(times[name]):>16.2f}{loads.get(name, '?'):>12}")
PY
