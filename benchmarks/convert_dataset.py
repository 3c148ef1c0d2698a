"""Throughput and peak memory of ``aot-cli convert-dataset`` on a generated file of N pairs.

    .venv/bin/python benchmarks/convert_dataset.py --pairs 1000000

Generates prompt/chosen/rejected JSON Lines (about 100 bytes a pair), converts them with the
installed ``aot-cli`` in a child process, and prints pairs per second and the child's peak
RSS (``getrusage``), once plain and once with ``--dedupe --seed`` (the memory-hungry path).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(path: Path, pairs: int) -> None:
    with path.open("w", encoding="utf-8") as file:
        for i in range(pairs):
            row = {
                "prompt": f"Is {i} even or odd?",
                "chosen": f"{i} is {'odd' if i % 2 else 'even'}.",
                "rejected": f"{i} is {'even' if i % 2 else 'odd'}.",
            }
            file.write(json.dumps(row) + "\n")


def run(src: Path, dst: Path, *extra: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one conversion in a fresh child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "aot-cli"),
            "convert-dataset",
            str(src),
            str(dst),
            "--overwrite",
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(done.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert json.loads(done.stdout)["pairs_converted"] > 0
    return seconds, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        src = Path(folder) / "paired.jsonl"
        generate(src, args.pairs)
        size = src.stat().st_size / 2**20
        print(f"input: {args.pairs:,} pairs, {size:.0f} MiB")
        for label, extra in (("plain", ()), ("--dedupe --seed 0", ("--dedupe", "--seed", "0"))):
            seconds, peak = run(src, Path(folder) / "unpaired.jsonl", *extra)
            rate = args.pairs / seconds
            print(f"{label:>18}: {seconds:6.1f} s  {rate:9,.0f} pairs/s  peak RSS {peak:6.0f} MiB")


if __name__ == "__main__":
    main()
