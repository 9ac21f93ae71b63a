"""The web UI's TLS material: a self-signed certificate made at ``doorbell init``.

``tls/key.pem`` (0600, ECDSA P-256, unencrypted PKCS#8 so the web server can start
unattended) and ``tls/cert.pem`` (0644). The owner checks the certificate's SHA-256
fingerprint, printed by ``doorbell init`` and ``doorbell keys show``, against what the
browser shows the first time, instead of trusting a certificate authority.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from doorbell.datadir import DataDir
from doorbell.errors import KeyFileError
from doorbell.fsutil import write_file_atomic

#: Validity of the self-signed certificate (the browser exception is per certificate).
VALIDITY_DAYS = 3650


def format_fingerprint(digest: bytes) -> str:
    """``AB:CD:...`` as browsers show certificate fingerprints."""
    return ":".join(f"{b:02X}" for b in digest)


def certificate_fingerprint(cert_path: Path) -> str:
    """SHA-256 fingerprint of the DER certificate in ``cert_path`` (PEM)."""
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{cert_path}: cannot read the TLS certificate: {exc}") from None
    der = cert.public_bytes(serialization.Encoding.DER)
    return format_fingerprint(hashlib.sha256(der).digest())


def create_self_signed_certificate(
    data_dir: Path, hostnames: list[str], *, clock: Callable[[], float]
) -> str:
    """Create ``tls/key.pem`` and ``tls/cert.pem`` under ``data_dir``; return the fingerprint.

    ``hostnames`` become DNS subject alternative names (the first also the common name);
    127.0.0.1 and ::1 are always included. Refuses to overwrite (:class:`KeyFileError`).
    """
    paths = DataDir(data_dir)
    directory = paths.tls
    directory.mkdir(mode=0o755, exist_ok=True)
    for path in (paths.tls_key, paths.tls_cert):
        if path.exists():
            raise KeyFileError(f"{path}: already exists; refusing to replace it")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.fromtimestamp(clock(), tz=datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in dict.fromkeys(hostnames)]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        write_file_atomic(paths.tls_key, key_pem, mode=0o600, overwrite=False)
        write_file_atomic(
            paths.tls_cert,
            cert.public_bytes(serialization.Encoding.PEM),
            mode=0o644,
            overwrite=False,
        )
    except FileExistsError as exc:
        raise KeyFileError(str(exc)) from None
    return certificate_fingerprint(paths.tls_cert)
