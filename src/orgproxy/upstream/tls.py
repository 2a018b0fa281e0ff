"""The trust root for the upstream's TLS: the system's CAs, or those of --upstream-ca."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.internet.ssl import Certificate, trustRootFromCertificates


def upstream_trust(path: str) -> object:
    """The CAs of a PEM file (one or several certificates) as the upstream's trust root;
    ValueError/OSError when there is none to read."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{path}: no PEM certificate in it") from None
    return trustRootFromCertificates([
        Certificate.loadPEM(c.public_bytes(serialization.Encoding.PEM)) for c in certificates])


