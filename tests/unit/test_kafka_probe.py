"""The launch probe's verdicts that need no broker: nothing listening, and a server that is
not Kafka (no diagnosis is made up; the real client decides). The others are checked
against the real secure broker in tests/integration/test_kafka_security.py."""

from __future__ import annotations

import socket
import threading

from transforms.kafka.probe import ProbeFailure, probe


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nothing_listening_is_unreachable_and_every_server_is_tried() -> None:
    first, second = _closed_port(), _closed_port()
    failure = probe({"bootstrap_servers": [f"127.0.0.1:{first}", f"127.0.0.1:{second}"]})
    assert failure == ProbeFailure(
        "unreachable", f"127.0.0.1:{second}", "PLAINTEXT", "connection refused"
    )


def test_a_server_that_is_not_kafka_gets_no_diagnosis() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer_garbage() -> None:
            for _ in range(2):  # the TLS look, then the SASL handshake
                conn, _ = server.accept()
                with conn:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        port = server.getsockname()[1]
        assert probe({"bootstrap_servers": f"127.0.0.1:{port}"}, timeout_s=2) is None
        thread.join(timeout=5)
