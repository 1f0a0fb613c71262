"""The program's own certificate authority: how terminals are enrolled and the host is known.

`pitill host` keeps a small CA in its data directory (an EC P-256 key, 0600, and a self-signed
certificate). It issues the host's server certificate (for the names terminals dial) and one
client certificate per enrolled terminal, whose common name is the terminal's id. With mutual TLS
a terminal without such a certificate is refused in the handshake, and an enrolled one can only
speak as itself (the server checks field 41 against the certificate).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pitill.errors import ConfigError, StorageError

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"
CA_YEARS = 10
LEAF_DAYS = 825  # what browsers accept; a terminal is re-enrolled long before


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes
    fingerprint: str  # SHA-256 of the certificate, hex


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    with path.open("wb") as out:
        path.chmod(0o600)
        out.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class ProgramCA:
    """The CA in `data_dir`, created on first use."""

    def __init__(self, data_dir: Path, name: str = "pitill program") -> None:
        self.data_dir = data_dir
        cert_path, key_path = data_dir / CA_CERT, data_dir / CA_KEY
        try:
            if not cert_path.exists():
                data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                key = ec.generate_private_key(ec.SECP256R1())
                subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
                cert = (
                    x509.CertificateBuilder()
                    .subject_name(subject)
                    .issuer_name(subject)
                    .public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(_now() - dt.timedelta(minutes=5))
                    .not_valid_after(_now() + dt.timedelta(days=365 * CA_YEARS))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .add_extension(
                        x509.KeyUsage(
                            digital_signature=False,
                            content_commitment=False,
                            key_encipherment=False,
                            data_encipherment=False,
                            key_agreement=False,
                            key_cert_sign=True,
                            crl_sign=True,
                            encipher_only=False,
                            decipher_only=False,
                        ),
                        critical=True,
                    )
                    .sign(key, hashes.SHA256())
                )
                _write_private(key_path, _key_pem(key))
                cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            self.cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except OSError as exc:
            raise StorageError(f"the program CA in {data_dir}: {exc.strerror}") from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise StorageError(f"{key_path}: not the program CA's EC key")
        self.key = loaded

    @property
    def cert_path(self) -> Path:
        return self.data_dir / CA_CERT

    def _issue(
        self, common_name: str, usage: x509.ObjectIdentifier, names: list[x509.GeneralName]
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(
            cert.public_bytes(serialization.Encoding.PEM),
            _key_pem(key),
            cert.fingerprint(hashes.SHA256()).hex(),
        )

    def issue_terminal(self, terminal_id: str) -> Issued:
        """A client certificate whose common name is the terminal's id (ISO 8583 field 41)."""
        return self._issue(terminal_id, ExtendedKeyUsageOID.CLIENT_AUTH, [])

    def server_files(self, names: list[str]) -> tuple[Path, Path]:
        """The host's certificate for `names` (DNS names or IP addresses), issued when missing
        or when it does not cover them all; (cert path, key path)."""
        cert_path, key_path = self.data_dir / SERVER_CERT, self.data_dir / SERVER_KEY
        wanted = sorted(set(names))
        if cert_path.exists() and key_path.exists():
            current = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if sorted(_names_of(current)) == wanted:
                return cert_path, key_path
        general: list[x509.GeneralName] = []
        for name in wanted:
            try:
                general.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                if not name or any(c.isspace() or c in "/:@" for c in name):
                    raise ConfigError(f"--tls-name {name!r}: not a host name or address") from None
                general.append(x509.DNSName(name))
        issued = self._issue(wanted[0], ExtendedKeyUsageOID.SERVER_AUTH, general)
        _write_private(key_path, issued.key_pem)
        cert_path.write_bytes(issued.cert_pem)
        return cert_path, key_path


def _names_of(cert: x509.Certificate) -> list[str]:
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in alt.get_values_for_type(x509.IPAddress)] + list(
        alt.get_values_for_type(x509.DNSName)
    )


def peer_terminal_id(der: bytes | None) -> str | None:
    """The common name of a peer's client certificate (already verified by TLS)."""
    if der is None:
        return None
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return None
    value = names[0].value
    return value if isinstance(value, str) else value.decode()


def fingerprint_of(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex()
