"""Why the agent cannot reach its broker, in words, and what to check: from the client's error."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnosis:
    """The cause of a connection failure and where to look, for the log line and status."""

    cause: str
    check: str


_REFUSED_CERT = (
    "the broker closed the connection during TLS: it does not accept this device's certificate",
    "whether the certificate was revoked or deactivated (chantier provision show {thing}), that "
    "cert and key come from this device's bundle, that the broker trusts their CA, the clock",
)
_DNS = (
    "the endpoint {host} does not resolve",
    "the endpoint's spelling (the bundle's endpoint.txt), DNS and the network",
)
_UNTRUSTED_BROKER = (
    "TLS negotiation with {host}:{port} failed: the broker's certificate is not trusted, "
    "is not valid now, or does not name {host}",
    "ca (the root CA of the bundle), endpoint (the name in the broker's certificate), the clock",
)
# The same error when either side refuses the other's certificate: TLS does not say which.
_NEGOTIATION_FAILED = (
    "TLS negotiation with {host}:{port} failed: the broker's certificate is not trusted here, "
    "or the broker does not accept this device's certificate",
    "ca (the root CA of the bundle) and endpoint; whether the certificate was revoked or "
    "deactivated (chantier provision show {thing}); that cert and key come from this device's "
    "bundle; the clock",
)
_NO_ROUTE = (
    "no network route to {host}",
    "the network link (ip addr, Wi-Fi or 4G signal) and the gateway",
)

# awscrt error names (and the broker's CONNACK refusals) -> (cause, what to check)
_KNOWN: dict[str, tuple[str, str]] = {
    "AWS_IO_SOCKET_CONNECTION_REFUSED": (
        "connection refused: nothing accepts connections on {host}:{port}",
        "port (8883 for MQTT over TLS) and endpoint",
    ),
    "AWS_IO_SOCKET_TIMEOUT": (
        "no answer from {host}:{port} within the connect timeout",
        "the network, a firewall blocking outbound TCP {port}, endpoint and port",
    ),
    "AWS_IO_SOCKET_NO_ROUTE_TO_HOST": _NO_ROUTE,
    "AWS_IO_SOCKET_NETWORK_DOWN": _NO_ROUTE,
    "AWS_IO_DNS_INVALID_NAME": _DNS,
    "AWS_IO_DNS_QUERY_FAILED": _DNS,
    "AWS_IO_DNS_NO_ADDRESS_FOR_HOST": _DNS,
    "AWS_IO_DNS_QUERY_AGAIN": _DNS,
    "AWS_IO_TLS_NEGOTIATION_TIMEOUT": (
        "{host}:{port} accepted the connection but never completed TLS",
        "port (is it the broker's MQTT over TLS port, 8883?) and any proxy or firewall between",
    ),
    "AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE": _NEGOTIATION_FAILED,
    "AWS_IO_TLS_UNKNOWN_ROOT_CERTIFICATE": _UNTRUSTED_BROKER,
    "AWS_IO_TLS_INVALID_CERTIFICATE_CHAIN": _UNTRUSTED_BROKER,
    "AWS_IO_TLS_HOST_NAME_MISMATCH": _UNTRUSTED_BROKER,
    "AWS_IO_TLS_PEER_CERTIFICATE_EXPIRED": _UNTRUSTED_BROKER,
    "AWS_IO_TLS_ERROR_READ_FAILURE": _REFUSED_CERT,
    "AWS_IO_TLS_ERROR_WRITE_FAILURE": _REFUSED_CERT,
    "AWS_IO_TLS_ERROR_ALERT_RECEIVED": _REFUSED_CERT,
    "AWS_IO_TLS_CERTIFICATE_EXPIRED": _REFUSED_CERT,
    "AWS_IO_TLS_CERTIFICATE_NOT_YET_VALID": _REFUSED_CERT,
    "AWS_IO_TLS_BAD_CERTIFICATE": _REFUSED_CERT,
    "AWS_IO_TLS_PEER_CERTIFICATE_REVOKED": _REFUSED_CERT,
    "AWS_IO_TLS_CTX_ERROR": (
        "the TLS client cannot be built from cert, key and ca",
        "that key matches cert and all three are PEM files: chantier agent check-config",
    ),
    "AWS_IO_SOCKET_CLOSED": (
        "the connection was closed",
        "the network; if it keeps happening right after connecting, whether the certificate "
        "was revoked (chantier provision show {thing})",
    ),
    "AWS_ERROR_MQTT_UNEXPECTED_HANGUP": (
        "the broker hung up",
        "the network; if it keeps happening, whether the certificate was revoked "
        "(chantier provision show {thing})",
    ),
    "AWS_ERROR_MQTT5_CONNACK_TIMEOUT": (
        "{host}:{port} completed TLS but never answered the MQTT CONNECT",
        "that endpoint and port are the MQTT broker's, not another TLS service",
    ),
    "AWS_ERROR_MQTT5_PING_RESPONSE_TIMEOUT": (
        "the broker stopped answering keep-alives",
        "the network (a link that drops silently, a NAT timeout)",
    ),
    "AWS_ERROR_MQTT5_DISCONNECT_RECEIVED": (
        "the broker ended the session",
        "that no other device runs with thing {thing} (same client id), and the broker's logs",
    ),
    "CONNACK NOT_AUTHORIZED": (
        "the broker refused client id {thing} for this certificate",
        "that thing in agent.toml is the name the certificate was issued for, and the device "
        "policy (AWS IoT) or ACL (local broker)",
    ),
    "CONNACK BAD_USER_NAME_OR_PASSWORD": (
        "the broker refused this device's identity",
        "that the certificate is registered with this broker (chantier provision show {thing})",
    ),
    "CONNACK CLIENT_IDENTIFIER_NOT_VALID": (
        "the broker refused client id {thing}",
        "thing in agent.toml (lowercase letters, digits and dashes)",
    ),
    "CONNACK BANNED": (
        "the broker banned this client",
        "with the fleet admin: the device may have been disabled",
    ),
    "CONNACK SERVER_UNAVAILABLE": (
        "the broker is unavailable",
        "nothing on the device: the agent keeps retrying; tell the operator if it lasts",
    ),
    "CONNACK SERVER_BUSY": (
        "the broker is busy",
        "nothing on the device: the agent keeps retrying; tell the operator if it lasts",
    ),
    "CONNACK QUOTA_EXCEEDED": (
        "the account's connection quota is exceeded",
        "with the operator (AWS IoT limits)",
    ),
}
GENERIC_CHECK = (
    "endpoint and port, ca, that cert and key are this device's and not revoked, the clock"
)


def diagnose(
    error: str | None, detail: str, *, host: str, port: int, thing: str, clock_synced: bool
) -> Diagnosis:
    """Cause and checks for a failed connection; an unsynchronised clock is named first when
    the failure is one it can cause."""
    known = _KNOWN.get(error or "")
    if known is None:
        cause = f"{error}: {detail}" if error and detail else (error or detail or "no reason")
        check = GENERIC_CHECK
    else:
        cause, check = (text.format(host=host, port=port, thing=thing) for text in known)
    # certificates are checked against the clock: wrong by years, every TLS handshake fails
    if not clock_synced and (known is None or (error or "").startswith("AWS_IO_TLS")):
        check = "the clock first (not synchronised: certificates may look invalid), then " + check
    return Diagnosis(cause, check)


def known_errors() -> tuple[str, ...]:
    """The client errors explained in words (for the docs and their test)."""
    return tuple(_KNOWN)
