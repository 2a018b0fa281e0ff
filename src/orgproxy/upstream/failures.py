"""What went wrong with an upstream exchange, as the error the proxy answers with."""

from __future__ import annotations

from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from twisted.internet.defer import TimeoutError
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.python.failure import Failure

from orgproxy.errors import ProxyError
from orgproxy.upstream.gunzip import CorruptEncoding


class ResponseTooLarge(Exception):
    """The upstream's body passed the size cap."""


def describe_failure(failure: Failure, timeout: float, max_response_bytes: int) -> ProxyError:
    """The OpenAI-shaped error for a failed upstream exchange; never the exception's text
    when it might carry request details."""
    if failure.check(TimeoutError):
        return ProxyError(504, "upstream_timeout",
                          f"OpenAI did not answer within {timeout:g} seconds.")
    if failure.check(ResponseTooLarge):
        return ProxyError(502, "upstream_response_too_large",
                          f"OpenAI's response is larger than the proxy's limit of "
                          f"{max_response_bytes} bytes (--max-response-bytes).", retry=False)
    if failure.check(CorruptEncoding):
        return ProxyError(502, "upstream_bad_encoding",
                          "OpenAI's compressed response is corrupt or was cut short; it was not passed on.")
    if failure.check(DNSLookupError):
        return ProxyError(502, "upstream_unreachable", "The upstream's host name does not resolve.")
    if failure.check(ConnectError):
        return ProxyError(502, "upstream_unreachable", "The proxy could not connect to OpenAI.")
    tls = _tls_error(failure)
    if tls is not None:
        return ProxyError(502, "upstream_tls_error",
                          f"TLS with the upstream failed: {tls}", retry=False)
    return ProxyError(502, "upstream_connection_lost",
                      "The connection to OpenAI was lost before its answer was complete.")


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
