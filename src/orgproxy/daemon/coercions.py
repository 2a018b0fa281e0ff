"""How an option's text becomes its value, one function per kind, for flags and ``ORGPROXY_*``
variables alike: each takes the option's name and its text, and returns the value or
raises ``usage.UsageError`` with the one line a person is shown."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

from twisted.internet.endpoints import serverFromString
from twisted.python import usage

from orgproxy.web.access import parse_networks

# (option, its text) -> its value
Coercion = Callable[[str, str], Any]


def text(option: str, given: str) -> str:
    """The text as it is."""
    return given


def absolute_path(option: str, given: str) -> str:
    """A file or directory, named absolutely: twistd changes to --rundir after making the
    service, and reloads and --workers' other processes must find the same files."""
    return os.path.abspath(given)


def positive(kind: type[int] | type[float]) -> Coercion:
    """A number above 0, of ``kind``."""
    def coerce(option: str, given: str) -> int | float:
        try:
            value = kind(given)
        except ValueError:
            value = 0
        if value <= 0:
            raise usage.UsageError(f"--{option} must be a positive {kind.__name__}, not {given!r}")
        return value
    return coerce


def seconds_or_off(option: str, given: str) -> float:
    """Seconds, 0 meaning off."""
    try:
        value = float(given)
    except ValueError:
        value = -1.0
    if not value >= 0:  # NaN too
        raise usage.UsageError(f"--{option} must be 0 (off) or more seconds, not {given!r}")
    return value


def whole_number(option: str, given: str) -> int:
    """0 or more."""
    if not given.isdigit():
        raise usage.UsageError(f"--{option} must be 0 or more, not {given!r}")
    return int(given)


def one_of(choices: Sequence[str]) -> Coercion:
    """One of ``choices``, as written."""
    def coerce(option: str, given: str) -> str:
        if given not in choices:
            raise usage.UsageError(f"--{option} must be one of {', '.join(choices)}, not {given!r}")
        return given
    return coerce


def networks(option: str, given: str) -> Any:
    """Addresses and CIDR networks, comma-separated."""
    try:
        return parse_networks(given)
    except ValueError as e:
        raise usage.UsageError(f"--{option}: {e}") from None


def base_url(option: str, given: str) -> str:
    """An http:// or https:// URL to forward to, with nothing a base URL may not carry."""
    parts = urlsplit(given)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise usage.UsageError(f"--{option} must be an http:// or https:// URL, not {given!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise usage.UsageError(f"--{option} takes a base URL with no credentials, query or fragment")
    return given


def endpoint(option: str, given: str) -> str:
    """A Twisted server endpoint description, checked by parsing it (which needs no
    reactor: none may be installed yet while options are parsed; ``ssl:`` reads its files)."""
    try:
        serverFromString(cast(Any, None), given)
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise usage.UsageError(f"--{option} {given!r} is not an endpoint description: {e}") from None
    return given
