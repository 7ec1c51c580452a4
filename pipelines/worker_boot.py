"""Boot one Python SDK worker process for the local worker pool (``llm-enrich run
--workers N``); the pool runs it as its ``--container_executable`` with the Fn API
endpoints of the worker Prism asked for.

Why not the pool's own command (``python -c 'SdkHarness(...).run()'``): Prism 2.77 keeps
one table of metric short ids per job, while each Python process numbers its short ids
from 1 (``apache_beam.runners.worker.sdk_worker.SHORT_ID_CACHE``). Two worker processes
then send the same short id for different metrics, and Prism fails the job decoding one
as the other ("error decoding metrics beam:metric:sampled_byte_size:v1 ... EOF",
``jobservices/metrics.go``). Here each process prefixes its short ids with its worker id.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

STATE_CACHE_BYTES = 100 << 20


def _prefixed_short_ids(prefix: str) -> None:
    from apache_beam.metrics import monitoring_infos
    from apache_beam.portability.api import metrics_pb2
    from apache_beam.runners.worker import sdk_worker

    class PrefixedShortIdCache(sdk_worker.ShortIdCache):
        def get_short_id(self, monitoring_info: Any) -> str:
            key = monitoring_infos.to_key(monitoring_info)
            with self._lock:
                known: str | None = self._info_key_to_short_id.get(key)
                if known is not None:
                    return known
                self._last_short_id += 1
                short_id = f"{prefix}-{self._last_short_id:x}"
                cleared = metrics_pb2.MonitoringInfo()
                cleared.CopyFrom(monitoring_info)
                cleared.ClearField("payload")
                self._info_key_to_short_id[key] = short_id
                self._short_id_to_info[short_id] = cleared
                return short_id

    sdk_worker.SHORT_ID_CACHE = PrefixedShortIdCache()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pipelines.worker_boot")
    parser.add_argument("--id", required=True)
    parser.add_argument("--control_endpoint", required=True)
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    os.dup2(2, 1)  # the pool pipes stdout and never reads it: a chatty worker would block
    _prefixed_short_ids(known.id)
    from apache_beam.runners.worker.sdk_worker import SdkHarness

    SdkHarness(  # as Prism's LOOPBACK workers: Beam's default state cache (100 MB)
        known.control_endpoint, worker_id=known.id, state_cache_size=STATE_CACHE_BYTES
    ).run()


if __name__ == "__main__":
    main()
