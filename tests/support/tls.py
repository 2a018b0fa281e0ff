"""Certificates for TLS tests, made fresh in a temporary directory, and a fake upstream
that speaks HTTPS.

``make_ca`` writes a self-signed CA; ``make_server_cert`` a certificate it signs for
some DNS names and IP addresses. ``TlsFakeUpstream`` is ``FakeUpstream`` behind TLS.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.tcp_upstream import FakeUpstream


@dataclass(frozen=True)
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_path: Path  # the CA certificate, PEM: what a client is told to trust
    key_path: Path


@dataclass(frozen=True)
class ServerCert:
    cert_path: Path  # the server certificate, PEM
    key_path: Path  # its private key, PEM
    combined_path: Path  # key then certificate in one PEM file


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(
        now + datetime.timedelta(days=2))


def make_ca(directory: Path, name: str = "orgproxy test CA") -> CA:
    """A self-signed CA: ``<directory>/ca.pem`` and ``ca.key``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _validity(x509.CertificateBuilder())
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_key_pem(key))
    return CA(key, cert, cert_path, key_path)


def make_server_cert(ca: CA, directory: Path, dns_names: Sequence[str] = ("localhost",),
                     ips: Sequence[str] = ("127.0.0.1",), stem: str = "server") -> ServerCert:
    """A server certificate signed by ``ca`` for the given names (SubjectAlternativeName):
    ``<stem>.pem``, ``<stem>.key`` and ``<stem>-combined.pem``."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    common_name = dns_names[0] if dns_names else ips[0]
    cert = (
        _validity(x509.CertificateBuilder())
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)
    paths = ServerCert(directory / f"{stem}.pem", directory / f"{stem}.key",
                       directory / f"{stem}-combined.pem")
    paths.cert_path.write_bytes(cert_pem)
    paths.key_path.write_bytes(key_pem)
    paths.combined_path.write_bytes(key_pem + cert_pem)
    return paths


def client_context(ca: CA) -> ssl.SSLContext:
    """A client context that trusts only ``ca`` and checks host names."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca.cert_path))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    return context


class TlsFakeUpstream(FakeUpstream):
    """``FakeUpstream`` serving HTTPS with the given certificate; ``.url`` names ``host``.

    The handshake runs in each connection's own thread (not in the accepting loop), and a
    failed handshake simply drops the connection: nothing is recorded as received.
    """

    def __init__(self, server: ServerCert, host: str = "localhost") -> None:
        super().__init__()
        self.host = host
        self.handshake_errors: list[Exception] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(server.cert_path, server.key_path)
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.server_address[1]}"

    def finish_request(self, request: socket.socket, client_address: object) -> None:
        assert isinstance(request, ssl.SSLSocket)
        request.settimeout(10)
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError) as e:
            self.handshake_errors.append(e)
            return
        request.settimeout(None)
        super().finish_request(request, client_address)
