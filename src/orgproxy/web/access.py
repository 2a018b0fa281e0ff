"""Who may call the proxy: source addresses, and optionally a shared client token.

orgproxy forwards the caller's own admin key and has no authentication of its own, so
by default it answers only loopback and private addresses.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_ALLOW_FROM = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
TOKEN_HEADER = b"x-orgproxy-token"


def parse_networks(text: str) -> tuple[Network, ...]:
    """``10.0.0.0/8,192.168.1.7`` -> networks; raises ValueError naming the bad entry."""
    networks = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an address or CIDR network") from None
    if not networks:
        raise ValueError("no networks given")
    return tuple(networks)


class AllowList:
    # Decisions remembered per client address: parsing an address costs more than the
    # rest of the check, and a deployment's callers come from a handful of them. Bounded,
    # so that a scan from many addresses cannot grow it.
    REMEMBERED = 4096

    def __init__(self, networks: Iterable[Network]):
        self.networks = tuple(networks)
        self.decided: dict[str, bool] = {}

    def allows(self, host: str) -> bool:
        decision = self.decided.get(host)
        if decision is None:
            decision = self._allows(host)
            if len(self.decided) < self.REMEMBERED:
                self.decided[host] = decision
        return decision

    def _allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        return any(address in network for network in self.networks)


def token_matches(expected: bytes, given: bytes | None) -> bool:
    """Constant-time comparison, so the token cannot be guessed byte by byte."""
    return given is not None and hmac.compare_digest(expected, given)


def bearer_token(authorization: bytes | None) -> bytes | None:
    """The credential of an ``Authorization: Bearer <credential>`` header, if that is one."""
    scheme, _, credential = (authorization or b"").partition(b" ")
    return credential.strip() or None if scheme.lower() == b"bearer" else None


def read_token(path: str) -> bytes:
    """The client token in ``path`` (surrounding whitespace ignored); raises OSError/ValueError."""
    with open(path, "rb") as f:
        token = f.read().strip()
    if not token:
        raise ValueError(f"{path}: the client token file is empty")
    return token


def is_loopback_only(port_description: str) -> bool:
    """Whether a listening endpoint description serves only this machine."""
    kind = port_description.split(":", 1)[0]
    if kind in ("unix", "systemd"):
        return kind == "unix"
    for option in port_description.split(":")[2:]:
        if option.startswith("interface="):
            try:
                return ipaddress.ip_address(option.removeprefix("interface=").replace("\\:", ":")).is_loopback
            except ValueError:
                return option.removeprefix("interface=") == "localhost"
    return False  # no interface: every address of the machine
