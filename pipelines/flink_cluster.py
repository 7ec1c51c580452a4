"""The local Flink cluster (``deploy/flink.sh``) as the launcher sees it, beyond Beam's job
service: what a failed job says about the cluster, and the cluster's REST API for finding a
run's job by its name and cancelling it when the job server is gone.

Faults of the cluster stop a run as systemic faults (exit 3): the job failed because a
TaskManager was lost or too few slots are free, or the launcher lost Beam's job server
(the job keeps running on Flink then: ``flink_workers`` cancels it through REST). Nothing is
lost either way: records not committed are read again by the next run, once
``deploy/flink.sh start`` has started what is missing.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from typing import Any

import grpc

__all__ = ["cancel_jobs_named", "cluster_fault", "jobs_named", "rest_url"]

TERMINAL = frozenset({"FINISHED", "FAILED", "CANCELED"})

# What Flink says in a job's failure when the cluster, not the pipeline, failed: the text
# to look for, and what it means.
_CLUSTER_FAULTS = (
    ("remote task manager", "a Flink TaskManager was lost"),
    ("is no longer reachable", "a Flink TaskManager was lost"),
    ("heartbeat of TaskManager", "a Flink TaskManager was lost"),
    ("NativeIoException: recvAddress(..) failed", "a Flink TaskManager was lost"),
    ("NoResourceAvailableException", "the Flink cluster has too few free task slots"),
)


def rest_url() -> str:
    """Flink's REST API started by ``deploy/flink.sh start`` (same port variable)."""
    return f"http://127.0.0.1:{os.environ.get('LLM_ENRICH_FLINK_REST_PORT', '18091')}"


def cluster_fault(exc: BaseException, job_endpoint: str) -> str | None:
    """The cluster fault ``exc`` (raised while waiting for a job) reports, in one line; None
    when it is not one (a pipeline's own failure stays an internal error)."""
    if isinstance(exc, grpc.RpcError):  # the job service's stream broke
        code, details = exc.code(), exc.details()
        name = getattr(code, "name", code)
        return f"lost Beam's job server at {job_endpoint} ({name}: {details})"
    text = str(exc)
    for marker, meaning in _CLUSTER_FAULTS:
        if marker.lower() in text.lower():
            detail = text.split(" failed in state FAILED: ", 1)[-1].strip().splitlines()[0]
            return f"the Flink job failed: {meaning} ({detail[:300]})"
    return None


def _get(url: str, timeout_s: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.load(response)


def jobs_named(name: str, url: str | None = None, timeout_s: float = 5.0) -> dict[str, str]:
    """The cluster's jobs called ``name``: id -> state (RUNNING, CANCELLING, FINISHED...)."""
    overview = _get(f"{url or rest_url()}/jobs/overview", timeout_s)
    return {job["jid"]: job["state"] for job in overview.get("jobs", []) if job["name"] == name}


def cancel_jobs_named(name: str, url: str | None = None, timeout_s: float = 30.0) -> list[str]:
    """Cancel every job called ``name`` that has not ended, and wait up to ``timeout_s`` for
    them to end; the ids it cancelled. Raises OSError when the REST API does not answer
    (or a job does not end in time)."""
    base = url or rest_url()
    live = [jid for jid, state in jobs_named(name, base).items() if state not in TERMINAL]
    for jid in live:
        request = urllib.request.Request(f"{base}/jobs/{jid}?mode=cancel", method="PATCH")
        urllib.request.urlopen(request, timeout=5).close()
    deadline = time.monotonic() + timeout_s
    while live:
        states = jobs_named(name, base)
        if all(states.get(jid) in TERMINAL for jid in live):
            break
        if time.monotonic() > deadline:
            raise OSError(f"Flink job {name} did not end within {timeout_s:.0f} s of its cancel")
        time.sleep(0.5)
    return live
