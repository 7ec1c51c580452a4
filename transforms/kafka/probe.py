"""Why a broker cannot be used with the task's connection settings, found in a few seconds.

Given a wrong password, CA file or protocol, kafka-python retries until its bootstrap
timeout (30 s), logs every attempt and then says only "Unable to bootstrap". This probe
talks to the bootstrap servers itself, one step at a time, each with a short timeout:

1. TCP: does anything answer?
2. TLS: does the listener speak TLS (a handshake that verifies nothing), and is that what
   ``security_protocol`` says? Then, with TLS, the handshake that verifies the certificate.
3. SASL: a ``SaslHandshake`` request. A SASL listener answers with its mechanisms; any other
   answers ``ILLEGAL_SASL_STATE``. Then, with SASL, the login itself (``SaslAuthenticate``,
   through kafka-python's own mechanisms: PLAIN, SCRAM-SHA-256/512).

The first step that fails is the answer, as data (``ProbeFailure``); the launch checks
(``pipelines.preflight``) word it. Anything the probe does not understand (a server that is
not Kafka, an unexpected reply) is not a diagnosis: it returns None and lets the real client
decide.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka.errors import KafkaError
from kafka.net.sasl import get_sasl_mechanism
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

__all__ = ["STEPS", "ProbeFailure", "probe"]

STEPS = (  # where the login failed
    "unreachable",  # detail: connection refused / unknown host / no answer within N s
    "tls_expected",  # the listener speaks TLS; security_protocol has none
    "tls_unexpected",  # security_protocol says TLS; the listener does not speak it
    "tls_verify",  # detail: why the certificate was refused
    "tls_failed",  # detail: the handshake's error
    "tls_files",  # detail: why ssl_cafile / ssl_certfile could not be loaded
    "sasl_expected",  # detail: the listener's mechanisms; security_protocol has no SASL
    "sasl_unexpected",  # security_protocol says SASL; the listener has none
    "sasl_mechanism",  # detail: the mechanisms the listener offers
    "auth_failed",  # detail: the broker's message
)
_LOGINS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")  # the mechanisms whose login is tried
_ILLEGAL_SASL_STATE = 34
_UNSUPPORTED_SASL_MECHANISM = 33


@dataclass(frozen=True)
class ProbeFailure:
    step: str  # one of STEPS
    server: str  # host:port
    protocol: str  # the configured security_protocol
    detail: str = ""


class _NotKafka(Exception):
    """The server answered something the probe does not understand."""


def probe(settings: Mapping[str, Any], timeout_s: float = 3.0) -> ProbeFailure | None:
    """The first step that fails with these kafka-python settings (``bootstrap_servers``,
    ``security_protocol``, ``ssl_*``, ``sasl_*``), or None: the login works (or the probe
    cannot tell). Unreachable only when no bootstrap server answers."""
    servers = settings["bootstrap_servers"]
    failure = None
    for server in [servers] if isinstance(servers, str) else servers:
        host, _, port = str(server).strip().rpartition(":")
        try:
            failure = _probe_server(host.strip("[]"), int(port), settings, timeout_s)
        except (_NotKafka, OSError, ValueError, struct.error, KafkaError):
            return None
        if failure is None or failure.step != "unreachable":
            return failure
    return failure


def _probe_server(
    host: str, port: int, settings: Mapping[str, Any], timeout_s: float
) -> ProbeFailure | None:
    server = f"{host}:{port}"
    protocol = str(settings.get("security_protocol", "PLAINTEXT")).upper()

    def failed(step: str, detail: str = "") -> ProbeFailure:
        return ProbeFailure(step, server, protocol, detail)

    wants_tls, wants_sasl = protocol in ("SSL", "SASL_SSL"), protocol.startswith("SASL_")
    try:
        speaks_tls = _speaks_tls(_connect(host, port, timeout_s), host)
    except ConnectionRefusedError:
        return failed("unreachable", "connection refused")
    except socket.gaierror:
        return failed("unreachable", "unknown host")
    except TimeoutError:
        return failed("unreachable", f"no answer within {timeout_s:g} s")
    if speaks_tls and not wants_tls:
        return failed("tls_expected")
    if wants_tls and not speaks_tls:
        return failed("tls_unexpected")

    sock = _connect(host, port, timeout_s)
    if wants_tls:
        try:
            context = _tls_context(settings)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            files = [settings.get(f"ssl_{name}file") for name in ("ca", "cert", "key")]
            missing = [str(f) for f in files if f and not os.path.isfile(f)]
            return failed(
                "tls_files", f"no such file: {', '.join(missing)}" if missing else str(exc)
            )
        try:
            sock = context.wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            return failed("tls_verify", str(exc.verify_message))
        except ssl.SSLError as exc:
            return failed("tls_failed", str(exc.reason or exc))
    with sock:
        mechanism = str(settings.get("sasl_mechanism") or "PLAIN")
        handshake = _request(sock, SaslHandshakeRequest, SaslHandshakeResponse, 1, mechanism)
        offered = ", ".join(handshake.mechanisms)
        if handshake.error_code == _ILLEGAL_SASL_STATE:  # a listener without SASL
            return failed("sasl_unexpected") if wants_sasl else None
        if not wants_sasl:
            return failed("sasl_expected", offered)
        if handshake.error_code == _UNSUPPORTED_SASL_MECHANISM:
            return failed("sasl_mechanism", offered)
        if handshake.error_code != 0:
            raise _NotKafka(f"SaslHandshake error {handshake.error_code}")
        if mechanism not in _LOGINS:  # GSSAPI, OAUTHBEARER, ...: the client will tell
            return None
        refused = _login(sock, mechanism, host, settings)
        return None if refused is None else failed("auth_failed", refused)


def _connect(host: str, port: int, timeout_s: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout_s)
    sock.settimeout(timeout_s)
    return sock


def _speaks_tls(sock: socket.socket, host: str) -> bool:
    """A TLS handshake that verifies nothing succeeds, or the server answers it with a TLS
    alert (it wants a client certificate, say). A plaintext Kafka listener reads the
    ClientHello as an absurd request size and closes the connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with context.wrap_socket(sock, server_hostname=host):
            return True
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError, TimeoutError):
        return False
    except ssl.SSLError as exc:  # an alert is TLS; bytes that are not TLS are not
        return "ALERT" in str(exc.reason)
    finally:
        sock.close()


def _tls_context(settings: Mapping[str, Any]) -> ssl.SSLContext:
    """What kafka-python builds from the same settings (verify; check the host name unless
    ``ssl_check_hostname`` is false)."""
    context = ssl.create_default_context(cafile=settings.get("ssl_cafile"))
    context.check_hostname = bool(settings.get("ssl_check_hostname", True))
    if settings.get("ssl_certfile"):
        context.load_cert_chain(settings["ssl_certfile"], settings.get("ssl_keyfile"))
    return context


def _login(
    sock: socket.socket, mechanism: str, host: str, settings: Mapping[str, Any]
) -> str | None:
    """None when the broker accepts the login, else its message."""
    client = get_sasl_mechanism(mechanism)(host=host, **settings)
    for _ in range(4):  # SCRAM: two round trips; PLAIN: one
        if client.is_done():
            break
        response = _request(
            sock, SaslAuthenticateRequest, SaslAuthenticateResponse, 0, client.auth_bytes()
        )
        if response.error_code != 0:
            return str(response.error_message or f"error {response.error_code}")
        client.receive(response.auth_bytes)
    return None


def _request(
    sock: socket.socket, request_type: Any, response_type: Any, version: int, arg: Any
) -> Any:
    """Send one request, read its response (kafka-python's protocol classes encode both)."""
    if request_type is SaslHandshakeRequest:
        request = request_type(mechanism=arg, version=version)
    else:
        request = request_type(auth_bytes=arg, version=version)
    request.with_header(correlation_id=1, client_id="llm-enrich-preflight")
    sock.sendall(request.encode(header=True, framed=True))
    (size,) = struct.unpack(">i", _read(sock, 4))
    if not 0 < size < 1 << 20:
        raise _NotKafka(f"response size {size}")
    return response_type.decode(_read(sock, size), version=version, header=True)


def _read(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise _NotKafka("connection closed")
        data += chunk
    return data
