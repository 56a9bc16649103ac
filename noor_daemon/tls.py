"""TLS: the daemon's HTTPS context, per-provider trust, and a self-signed CA for a team's LAN.

Serving: `[server] tls_cert` / `tls_key` (PEM) give an `ssl.SSLContext` for aiohttp's site,
TLS 1.2 at least. Calling upstreams: aiohttp verifies against the system trust store by
default; a provider's `ca_bundle` replaces that with its own CA file (a vLLM box on the LAN).

`make_self_signed` writes a CA certificate and a server certificate + key signed by it. The
CA's private key signs once and is thrown away, so a stolen copy of the directory can never
mint a certificate for another name: to add a host name, make a new pair and trust the new CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from noor_daemon.config import ConfigError, LoadedConfig, ProviderConfig

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_FILE = "ca.pem"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"


def server_ssl_context(loaded: LoadedConfig) -> ssl.SSLContext | None:
    """The HTTPS context for `[server] tls_cert`/`tls_key`, or None for plain HTTP. Raises ConfigError."""
    server = loaded.config.server
    if server.tls_cert is None or server.tls_key is None:
        return None
    cert, key = _path(server.tls_cert, loaded), _path(server.tls_key, loaded)
    for label, file in (("tls_cert", cert), ("tls_key", key)):
        if not file.is_file():
            raise ConfigError(f"[server] {label}: no such file {file}")
    mode = stat.S_IMODE(key.stat().st_mode)
    if mode & 0o004:
        raise ConfigError(f"[server] tls_key: {key} is readable by every user (mode {mode:04o}); chmod 600 {key}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"[server] tls_cert/tls_key: cannot load {cert} with {key}: {exc}") from None
    return context


def _path(value: str, loaded: LoadedConfig) -> Path:
    """`~` expanded; a relative path is relative to the config file's directory."""
    path = Path(value).expanduser()
    if not path.is_absolute() and loaded.path is not None:
        path = loaded.path.parent / path
    return path


def provider_ssl_context(provider: ProviderConfig) -> ssl.SSLContext | bool:
    """What to pass as aiohttp's `ssl=` for this provider: its own CA file, or True (the system's store)."""
    if provider.ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=os.path.expanduser(provider.ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"provider {provider.name!r} ca_bundle {provider.ca_bundle}: {exc}") from None


# -- a self-signed CA and server certificate -----------------------------------------------


@dataclass(frozen=True)
class SelfSigned:
    ca: Path
    cert: Path
    key: Path
    hosts: tuple[str, ...]
    not_after: datetime.datetime


def make_self_signed(out: Path, hosts: list[str] | tuple[str, ...] = DEFAULT_HOSTS, *, days: int = 825,
                     force: bool = False) -> SelfSigned:
    """Write `ca.pem` (to trust), `cert.pem` and `key.pem` (0600) for `hosts` into `out`.

    Raises FileExistsError unless `force`, and ValueError for an empty host list.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = [h.strip() for h in hosts if h.strip()]
    if not names:
        raise ValueError("at least one host name or address is needed")
    files = SelfSigned(out / CA_FILE, out / CERT_FILE, out / KEY_FILE, tuple(names),
                       datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days))
    existing = [f for f in (files.ca, files.cert, files.key) if f.exists()]
    if existing and not force:
        raise FileExistsError(", ".join(str(f) for f in existing))

    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NoorAPI local CA"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"NoorAPI local CA {os.urandom(4).hex()}"),
    ])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(files.not_after + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                          key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    server_key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(files.not_after)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                          key_agreement=True, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    del ca_key  # never written: nothing can sign another certificate under this CA

    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(files.key, key_pem, 0o600)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return files


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data`, created with `mode` from the start (a key is never briefly readable)."""
    temporary = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)  # the umask may have taken bits off a public certificate
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def is_loopback(remote: str | None) -> bool:
    """Whether a peer address is this machine: what the admin API and /metrics answer without more."""
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False
