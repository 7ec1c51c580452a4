"""What a failed Flink job says about the cluster (``pipelines.flink_faults``)."""

from __future__ import annotations

import socket

import grpc
import pytest

from pipelines.flink_faults import cluster_fault

ENDPOINT = "127.0.0.1:18099"


def _unavailable() -> grpc.RpcError:
    """The error a gRPC call to a job service that is not there raises."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/org.apache.beam.model.job_management.v1.JobService/GetState")
        try:
            call(b"", timeout=5)
        except grpc.RpcError as exc:
            return exc
    raise AssertionError("a call to a closed port succeeded")


def _failed(message: str) -> RuntimeError:  # as Beam's PortableRunner raises it
    return RuntimeError(f"Pipeline BeamApp-x_1 failed in state FAILED: {message}\n\tat ...")


def test_losing_the_job_server_is_a_cluster_fault() -> None:
    fault = cluster_fault(_unavailable(), ENDPOINT)
    assert fault is not None
    assert fault.startswith("lost Beam's job server at 127.0.0.1:18099 (UNAVAILABLE: ")


@pytest.mark.parametrize(
    ("message", "meaning"),
    [
        (
            "org.apache.flink.runtime.io.network.netty.exception.RemoteTransportException: "
            "Connection unexpectedly closed by remote task manager '127.0.0.1/127.0.0.1:39965 "
            "[ taskmanager2 ] '. This might indicate that the remote task manager was lost.",
            "a Flink TaskManager was lost",
        ),
        (
            "java.util.concurrent.TimeoutException: Heartbeat of TaskManager with id "
            "taskmanager2 timed out.",
            "a Flink TaskManager was lost",
        ),
        (
            "org.apache.flink.shaded.netty4.io.netty.channel.unix.Errors$NativeIoException: "
            "recvAddress(..) failed: Connection reset by peer",
            "a Flink TaskManager was lost",
        ),
        (
            "org.apache.flink.runtime.jobmanager.scheduler.NoResourceAvailableException: Could "
            "not acquire the minimum required resources.",
            "the Flink cluster has too few free task slots",
        ),
    ],
)
def test_a_lost_taskmanager_or_missing_slots_are_cluster_faults(message: str, meaning: str) -> None:
    fault = cluster_fault(_failed(message), ENDPOINT)
    assert fault is not None
    assert fault.startswith(f"the Flink job failed: {meaning} (")
    assert "\n" not in fault and "\tat" not in fault


def test_a_pipelines_own_failure_is_not_a_cluster_fault() -> None:
    defect = _failed("Error received from SDK harness: Traceback ... KeyError: 'text'")
    assert cluster_fault(defect, ENDPOINT) is None
    assert cluster_fault(ValueError("bad"), ENDPOINT) is None
