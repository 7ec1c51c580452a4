"""Benchmark: is memory flat? Peak RSS of a 100k-record drain against a 10k-record one.

Each drain runs in its own process (``tests.bench.concurrency --json``: no baseline, so
the peak is the pipeline's), against an instant fault server; the peak resident memory of
that process (the launcher and Prism's LOOPBACK Beam workers) and of Prism's own process
are compared.

    .venv/bin/python -m tests.bench.memory --small 10000 --large 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from tests.conftest import REPO


def drain(records: int, in_flight: int) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench.concurrency",
            "--json",
            "--latency",
            "0",
            "--records",
            str(records),
            "--in-flight",
            str(in_flight),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args()
    small, large = drain(args.small, args.in_flight), drain(args.large, args.in_flight)
    for name, run in (("small", small), ("large", large)):
        print(
            f"{name:5s} {run['written']:7d} written in {run['wall_s']:6.1f}s: peak RSS "
            f"{run['peak_rss_mb']:6.1f} MiB (launcher + Beam workers), "
            f"Prism {run['prism_peak_rss_mb']:6.1f} MiB"
        )
    print(
        f"ratio large / small: {large['peak_rss_mb'] / small['peak_rss_mb']:.2f} (process), "
        f"{large['prism_peak_rss_mb'] / max(small['prism_peak_rss_mb'], 1):.2f} (Prism)"
    )


if __name__ == "__main__":
    main()
