"""Benchmark: memory and lag when the CPU is short. A follow run under a steady producer,
with the stage (launcher, LOOPBACK workers and Prism) on two CPUs and then on one
(``taskset -c 0``), at each rate; the peak resident memory of the launcher and of Prism,
the most records produced but not yet written, and the worst commit lag, each contended
run as a ratio of the uncontended one in the same invocation.

    .venv/bin/python -m tests.bench.contended --rates 20 60 --seconds 60
"""

from __future__ import annotations

import argparse

from tests.integration.conftest import CLI, KAFKA, reviews
from tests.soak.commit_chain import FollowRun, follow_run
from tests.soak.tasks import follow_job


def _figures(run: FollowRun) -> dict[str, float]:
    memory = run.memory or [(0.0, 0, 0, 0, 0)]
    return {
        "stage_mib": max(m[3] for m in memory) / 1024,
        "prism_mib": max(m[4] for m in memory) / 1024,
        "backlog": max(m[1] - m[2] for m in memory),
        "ok": float(run.ok),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[20, 60])
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    print("rate  cpus  stage MiB  Prism MiB  max backlog  exit/committed ok")
    with follow_job() as make:
        for rate in args.rates:
            rows = {}
            for cpus in ("0,1", "0"):
                wrap = ["taskset", "-c", cpus]
                run = follow_run(
                    make(), CLI, KAFKA, reviews(50), rate=rate, seconds=args.seconds, wrap=wrap
                )
                rows[cpus] = figures = _figures(run)
                print(
                    f"{rate:4.0f}  {len(cpus.split(',')):4d}  {figures['stage_mib']:9.1f}"
                    f"  {figures['prism_mib']:9.1f}  {figures['backlog']:11.0f}"
                    f"  {bool(figures['ok'])}",
                    flush=True,
                )
            base, short = rows["0,1"], rows["0"]
            print(
                f"      one CPU / two: stage {short['stage_mib'] / base['stage_mib']:.2f}x,"
                f" Prism {short['prism_mib'] / max(base['prism_mib'], 1e-9):.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
