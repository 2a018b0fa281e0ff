"""Errors the proxy answers itself, in the shape of the provider whose path was asked for
(OpenAI's, or Anthropic's under /v1/organizations/), so that SDKs raise the right thing."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from orgproxy.plural import counted


@dataclass(frozen=True)
class ProxyError(Exception):
    """An answer of the proxy's own: ``{"error": {"message", "type", "param", "code"}}``."""

    status: int
    code: str
    message: str
    type: str = "proxy_error"
    param: str | None = None
    # Whether an SDK should try again (sent as ``x-should-retry``, which the official SDKs
    # honour); None leaves it to the SDK's own rules for the status.
    retry: bool | None = None
    retry_after: int | None = None  # seconds, sent as Retry-After

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self) -> bytes:
        """OpenAI's error shape."""
        return orjson.dumps({"error": {
            "message": self.message, "type": self.type, "param": self.param, "code": self.code,
        }})

    def anthropic_body(self) -> bytes:
        """Anthropic's error shape, ``{"type": "error", "error": {"type", "message"}}``, its
        type chosen by the status as Anthropic's own errors are."""
        return orjson.dumps({"type": "error", "error": {"type": anthropic_type(self.status),
                                                        "message": self.message}})


# Anthropic's error types by HTTP status (its "Errors" page), for the proxy's own answers;
# 414 and 431, which Anthropic does not list, are requests it would refuse as invalid; a
# request that did not arrive in time (408) is its timeout_error.
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 408: "timeout_error", 409: "conflict_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 502: "api_error",
    503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error",
}


def anthropic_type(status: int) -> str:
    return ANTHROPIC_ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")


def not_found() -> ProxyError:
    return ProxyError(404, "not_found", "orgproxy forwards only the Admin APIs' paths (OpenAI's under"
                      " /v1/organization/ and its project role paths under /v1/projects/, Anthropic's under"
                      " /v1/organizations/); this one is not one of them, or would leave them once decoded.",
                      type="invalid_request_error", retry=False)


def internal_error() -> ProxyError:
    return ProxyError(500, "proxy_internal_error", "The proxy failed while handling this request;"
                      " its log has the details.")


def request_too_large(limit: int) -> ProxyError:
    return ProxyError(413, "request_too_large", f"The request body is larger than {limit} bytes.",
                      type="invalid_request_error", retry=False)


_WHAT = {"api_key_names": "API key", "project_names": "project", "user_names": "user",
         "workspace_names": "workspace", "account_names": "user", "service_account_names": "service account"}


def unknown_name(param: str, name: str) -> ProxyError:
    return ProxyError(400, "unknown_name",
                      f"No {_WHAT.get(param, 'id')} is known by the name {name!r} ({param}). The request was not sent:"
                      " without this filter it would return everyone's data.",
                      type="invalid_request_error", param=param, retry=False)


def bad_client_token() -> ProxyError:
    return ProxyError(401, "invalid_orgproxy_token",
                      "orgproxy needs the right X-Orgproxy-Token header from its callers.",
                      type="invalid_request_error", retry=False)


def too_many_requests(limit: int) -> ProxyError:
    return ProxyError(503, "too_many_requests",
                      f"orgproxy already has {counted(limit, 'request')} in flight upstream (--max-concurrency);"
                      " try again shortly.", retry_after=1)


def request_bodies_full(limit: int) -> ProxyError:
    return ProxyError(503, "too_many_request_bytes",
                      f"orgproxy already holds {limit} bytes of request bodies (--max-buffered-request-bytes);"
                      " try again shortly.", retry_after=1)


def too_many_connections() -> ProxyError:
    return ProxyError(503, "too_many_connections",
                      "orgproxy has as many connections open as it may (--max-connections), and closed this one,"
                      " which had not sent a whole request, to make room for a newer one; try again.",
                      retry_after=1)


def bad_request() -> ProxyError:
    return ProxyError(400, "bad_request", "The request is not valid HTTP.",
                      type="invalid_request_error", retry=False)


def duplicate_authorization(header: str = "Authorization") -> ProxyError:
    """Two credentials of one kind (``Authorization``, or Anthropic's ``x-api-key``): which
    one the upstream would read is not ours to guess, nor which the cache should key on."""
    return ProxyError(400, "duplicate_authorization",
                      f"The request has more than one {header} header; send exactly one.",
                      type="invalid_request_error", retry=False)


def uri_too_long(limit: int) -> ProxyError:
    return ProxyError(414, "uri_too_long", f"The request line is longer than {limit} bytes.",
                      type="invalid_request_error", retry=False)


def headers_too_large(limit: int) -> ProxyError:
    return ProxyError(431, "headers_too_large", f"The request's headers are larger than {limit} bytes.",
                      type="invalid_request_error", retry=False)


def too_many_headers(limit: int) -> ProxyError:
    return ProxyError(431, "headers_too_large", f"The request has more than {limit} headers.",
                      type="invalid_request_error", retry=False)


def request_timeout(seconds: float) -> ProxyError:
    return ProxyError(408, "request_timeout",
                      f"The request did not arrive whole within {seconds:g} seconds (--header-timeout).",
                      type="invalid_request_error")


def method_not_allowed(allowed: tuple[bytes, ...]) -> ProxyError:
    return ProxyError(405, "method_not_allowed",
                      f"This path answers only {', '.join(m.decode() for m in allowed)}.",
                      type="invalid_request_error", retry=False)


def unknown_format(wanted: str, known: tuple[str, ...]) -> ProxyError:
    return ProxyError(400, "unknown_format", f"There is no format {wanted!r}; ask for {' or '.join(known)}.",
                      type="invalid_request_error", param="format", retry=False)
