"""The TLS context of the upstream connection, built once from the config.

Verification is never optional: the certificate must chain to the configured CA file (or, with
none, to the system's CAs) and be valid for the configured host NAME, which connect.py passes as
the server name even when dialling an address (a remembered one, or a listed IP).
"""

from __future__ import annotations

import ssl

from pitill.config import UpstreamConfig
from pitill.errors import ConfigError


def client_context(config: UpstreamConfig) -> ssl.SSLContext | None:
    """The context for upstream connections, or None when upstream.tls is off."""
    if not config.tls:
        return None
    cafile = config.tls_ca_file or None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except OSError as exc:  # missing or unreadable, or no PEM certificate in it (ssl.SSLError)
        raise ConfigError(
            f"upstream.tls_ca_file: cannot load CA certificates from {cafile!r} ({exc}); give "
            "the PEM file of the acquirer's CA, or leave it empty to trust the system's CAs"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.tls_cert_file:
        try:
            context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"upstream.tls_cert_file/tls_key_file: cannot load {config.tls_cert_file!r} with "
                f"{config.tls_key_file!r} ({exc}); give the PEM files `pitill host terminal add` "
                "wrote for this terminal"
            ) from None
    return context
