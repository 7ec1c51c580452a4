"""What a failed Flink job says about the local cluster (``deploy/flink.sh``).

Faults of the cluster stop a run as systemic faults (exit 3): the job failed because a
TaskManager was lost or too few slots are free, or the launcher lost Beam's job server
(the job keeps running on Flink then: ``flink_workers`` cancels it through REST,
``pipelines.flink_jobs``). Nothing is lost either way: records not committed are read
again by the next run, once ``deploy/flink.sh start`` has started what is missing.
"""

from __future__ import annotations

import grpc

__all__ = ["cluster_fault"]

# What Flink says in a job's failure when the cluster, not the pipeline, failed: the text
# to look for, and what it means.
_CLUSTER_FAULTS = (
    ("remote task manager", "a Flink TaskManager was lost"),
    ("is no longer reachable", "a Flink TaskManager was lost"),
    ("heartbeat of TaskManager", "a Flink TaskManager was lost"),
    ("NativeIoException: recvAddress(..) failed", "a Flink TaskManager was lost"),
    ("NoResourceAvailableException", "the Flink cluster has too few free task slots"),
)


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
