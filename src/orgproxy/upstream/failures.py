"""What went wrong with an upstream exchange, as the error the proxy answers with."""

from __future__ import annotations

from urllib.parse import urlsplit

from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from twisted.internet.defer import TimeoutError
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.python.failure import Failure

from orgproxy.errors import ProxyError
from orgproxy.plural import counted
from orgproxy.upstream.inflate import CorruptEncoding
from orgproxy.upstream.parse import MalformedResponse, ResponseTooLarge

__all__ = ["MalformedResponse", "ResponseTooLarge", "describe_failure", "upstream_address"]


def upstream_address(base_url: str) -> str:
    """``host:port`` of the upstream, for messages that must say which one failed."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe_failure(failure: Failure, timeout: float, max_response_bytes: int, where: str,
                     upstream: str = "OpenAI") -> ProxyError:
    """The error for a failed exchange with ``upstream`` (its title: "OpenAI",
    "Anthropic") at ``where`` (``host:port``), with the reason; never the exception's
    text when it might carry request details."""
    if failure.check(TimeoutError):
        return ProxyError(504, "upstream_timeout",
                          f"{upstream} ({where}) did not answer within {counted(timeout, 'second')}.")
    if failure.check(ResponseTooLarge):
        return ProxyError(502, "upstream_response_too_large",
                          f"{upstream}'s response ({where}) is larger than the proxy's limit of "
                          f"{max_response_bytes} bytes (--max-response-bytes).", retry=False)
    if failure.check(CorruptEncoding):
        return ProxyError(502, "upstream_bad_encoding",
                          f"{upstream}'s compressed response ({where}) is corrupt or was cut short; "
                          "it was not passed on.")
    if failure.check(MalformedResponse):
        return ProxyError(502, "upstream_bad_response",
                          f"{upstream}'s answer ({where}) is not valid HTTP: {failure.value}; it was not passed on.")
    if failure.check(DNSLookupError):
        return ProxyError(502, "upstream_unreachable",
                          f"{upstream}'s host name does not resolve ({where}): {_reason(failure)}")
    if failure.check(ConnectError):
        # Twisted's connection errors say what happened and the OS's errno, never the request.
        return ProxyError(502, "upstream_unreachable",
                          f"The proxy could not connect to {upstream} at {where}: {_reason(failure)}")
    tls = _tls_error(failure)
    if tls is not None:
        return ProxyError(502, "upstream_tls_error",
                          f"TLS with {upstream} at {where} failed: {tls}", retry=False)
    return ProxyError(502, "upstream_connection_lost",
                      f"The connection to {upstream} at {where} was lost before its answer was complete.")


def _reason(failure: Failure) -> str:
    """A connection error's own words: 'Connection was refused by other side: 111: ...'."""
    return str(failure.value).strip() or type(failure.value).__name__


def _tls_error(failure: Failure) -> str | None:
    """A short reason when the failure is a TLS handshake or verification error."""
    reasons = getattr(failure.value, "reasons", None) or [failure]
    for reason in reasons:
        if not isinstance(reason, Failure):
            continue
        if reason.check(VerificationError, CertificateError):
            return "the upstream's certificate is not valid for its host name"
        if reason.check(SSL.Error):
            if "certificate" in str(reason.value):
                return "the upstream's certificate could not be verified (see --upstream-ca)"
            return "the TLS handshake with the upstream failed"
    return None
