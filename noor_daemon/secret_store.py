"""Secrets: provider keys, the SMTP password and the admin token; never in the config file.

The config names secrets (`keyring:openai`, `env:OPENAI_API_KEY`) and never holds them.
A `keyring:NAME` reference is looked up in the secrets backend the config chooses:

- `[secrets] backend = "keyring"` (the default): the OS keyring (macOS Keychain, Windows
  Credential Locker, Secret Service/KWallet on Linux). Where none exists (a headless
  server), nothing is written anywhere: `noor secret set` and the daemon say so.
- `[secrets] backend = "file"`: a JSON file, mode 0600, in the data dir (or `[secrets] file`).
  Plain text on disk, protected by file permissions only: an explicit choice for headless
  machines, documented in SECURITY.md, never a silent fallback. A file readable by group
  or others is refused.

The keyring has no way to list entries, so the names stored through `noor secret set` are
kept in an index entry beside them (`noor secret list` shows names, never values).

The admin token: the daemon keeps only its SHA-256 (`AdminVerifier`). A client (the CLI, the
dashboard) finds the token itself in NOOR_ADMIN_TOKEN, the keyring, or the data dir's 0600
`admin_token` file. After `noor admin rotate-token` the daemon trusts the hash it wrote to
`admin_token.sha256` and nothing else (NOOR_ADMIN_TOKEN still overrides).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import keyring
import keyring.errors
from keyring.backends import fail

from noor_daemon import paths, redaction
from noor_daemon.config import ConfigError, load

SERVICE = "noorapi"
ADMIN_TOKEN_NAME = "admin-token"
INDEX_NAME = ".noor-secret-names"
"""The keyring entry listing the names stored through `noor secret set` (keyring cannot list)."""
SECRETS_FILE = "secrets.json"
ADMIN_TOKEN_HASH_FILE = "admin_token.sha256"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
RESERVED_NAMES = {ADMIN_TOKEN_NAME, INDEX_NAME}


class SecretError(Exception):
    """A secret that cannot be found, stored or trusted; the message is meant for a person."""


def keyring_usable() -> bool:
    """False on headless machines where keyring has no real backend."""
    try:
        backend = keyring.get_keyring()
    except Exception:
        return False
    return not isinstance(backend, fail.Keyring)


def keyring_backend_name() -> str:
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a broken keyring config must not break `noor doctor`
        return f"unavailable ({type(exc).__name__})"
    return f"{type(backend).__module__}.{type(backend).__name__}"


def _keyring_get(name: str) -> str | None:
    if not keyring_usable():
        return None
    try:
        return keyring.get_password(SERVICE, name)
    except keyring.errors.KeyringError:
        return None


def check_name(name: str) -> str:
    """A secret name as config references allow it (`keyring:NAME`); reserved names refused."""
    if not _NAME.fullmatch(name or ""):
        raise SecretError(f"{name!r} is not a secret name: letters, digits, '_', '.', '-' (not leading), at most 128")
    if name in RESERVED_NAMES:
        raise SecretError(f"{name!r} is reserved (the admin token is changed with `noor admin rotate-token`)")
    return name


# -- backends ------------------------------------------------------------------------


class SecretBackend(Protocol):
    kind: str

    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> bool: ...

    def names(self) -> list[str]: ...

    def describe(self) -> str: ...


NO_KEYRING_HINT = (
    "no OS keyring backend is available on this machine; on a headless server choose the file "
    'backend explicitly: [secrets] backend = "file" in the config (a 0600 file in the data dir, see SECURITY.md)'
)


class KeyringBackend:
    """The OS keyring, with an index entry of the names, since keyring cannot list."""

    kind = "keyring"

    def usable(self) -> bool:
        return keyring_usable()

    def _require(self) -> None:
        if not self.usable():
            raise SecretError(NO_KEYRING_HINT)

    def get(self, name: str) -> str | None:
        return _keyring_get(name)

    def set(self, name: str, value: str) -> None:
        self._require()
        try:
            keyring.set_password(SERVICE, name, value)
            self._write_index(sorted(set(self.names()) | {name}))
        except keyring.errors.KeyringError as exc:
            raise SecretError(f"the keyring refused to store {name!r} ({type(exc).__name__})") from None

    def delete(self, name: str) -> bool:
        self._require()
        found = True
        try:
            keyring.delete_password(SERVICE, name)
        except keyring.errors.PasswordDeleteError:
            found = False
        except keyring.errors.KeyringError as exc:
            raise SecretError(f"the keyring refused to delete {name!r} ({type(exc).__name__})") from None
        listed = self.names()
        if name in listed:
            self._write_index([n for n in listed if n != name])
            found = True
        return found

    def names(self) -> list[str]:
        self._require()
        raw = _keyring_get(INDEX_NAME)
        if not raw:
            return []
        try:
            listed = json.loads(raw)
        except ValueError:
            return []
        return sorted(n for n in listed if isinstance(n, str)) if isinstance(listed, list) else []

    def _write_index(self, names: list[str]) -> None:
        if names:
            keyring.set_password(SERVICE, INDEX_NAME, json.dumps(names))
        else:
            try:
                keyring.delete_password(SERVICE, INDEX_NAME)
            except keyring.errors.PasswordDeleteError:
                pass

    def describe(self) -> str:
        return f"keyring ({keyring_backend_name()}{'' if self.usable() else ': NOT usable'})"


class FileBackend:
    """A JSON object of name → secret in a 0600 file. Refused if group or others can read it."""

    kind = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, str]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return {}
        if info.st_mode & 0o077:
            raise SecretError(
                f"{self.path} is readable or writable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"refusing to use it: chmod 600 {self.path}"
            )
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SecretError(f"{self.path}: unreadable secrets file ({type(exc).__name__})") from None
        secrets_ = data.get("secrets") if isinstance(data, dict) else None
        if not isinstance(secrets_, dict):
            raise SecretError(f'{self.path}: not a NoorAPI secrets file (expected {{"secrets": {{…}}}})')
        return {str(k): str(v) for k, v in secrets_.items()}

    def _save(self, values: dict[str, str]) -> None:
        paths.ensure_private_dir(self.path.parent)
        write_private(self.path, json.dumps({"version": 1, "secrets": values}, indent=2, sort_keys=True) + "\n")

    def get(self, name: str) -> str | None:
        return self._load().get(name)

    def set(self, name: str, value: str) -> None:
        values = self._load()
        values[name] = value
        self._save(values)

    def delete(self, name: str) -> bool:
        values = self._load()
        if name not in values:
            return False
        del values[name]
        self._save(values)
        return True

    def names(self) -> list[str]:
        return sorted(self._load())

    def describe(self) -> str:
        return f"file {self.path} (0600, plain text protected by file permissions)"


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, the new file created 0600 (never readable by others)."""
    temporary = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def open_backend(secrets_config: object | None, data_dir: Path) -> SecretBackend:
    """The backend a `[secrets]` section chooses (None: the OS keyring)."""
    backend = getattr(secrets_config, "backend", "keyring")
    if backend == "file":
        chosen = getattr(secrets_config, "file", None)
        return FileBackend(Path(chosen).expanduser() if chosen else data_dir / SECRETS_FILE)
    return KeyringBackend()


_active: SecretBackend | None = None


def use_backend(backend: SecretBackend | None) -> None:
    """Make `backend` the one `resolve` reads (the daemon calls this once, from its config)."""
    global _active
    _active = backend


def active_backend() -> SecretBackend:
    return _active if _active is not None else KeyringBackend()


def resolve(reference: str | None, *, what: str, backend: SecretBackend | None = None) -> str | None:
    """The secret a `keyring:NAME` or `env:VAR` reference points to; from now on no log line shows it."""
    if reference is None:
        return None
    scheme, _, name = reference.partition(":")
    if scheme == "env":
        value = os.environ.get(name)
        if not value:
            raise SecretError(f"{what}: environment variable {name} is not set")
        redaction.add_secret(value)
        return value
    store = backend or active_backend()
    value = store.get(name)
    if not value:
        if isinstance(store, KeyringBackend) and not store.usable():
            raise SecretError(f"{what}: cannot read {name!r}: {NO_KEYRING_HINT}")
        raise SecretError(f"{what}: no secret named {name!r} in the {store.describe()}; store it with `noor secret set {name}`")
    redaction.add_secret(value)
    return value


# -- the admin token -------------------------------------------------------------------


@dataclass(frozen=True)
class AdminToken:
    value: str
    source: str
    """Where it came from, for `noor doctor`: env, keyring, or the file path."""


def find_admin_token(data_dir: Path) -> AdminToken | None:
    """The admin token as a client finds it: env, then keyring, then the token file."""
    env = os.environ.get("NOOR_ADMIN_TOKEN")
    if env:
        return AdminToken(env, "env:NOOR_ADMIN_TOKEN")
    stored = _keyring_get(ADMIN_TOKEN_NAME)
    if stored:
        return AdminToken(stored, f"keyring:{ADMIN_TOKEN_NAME}")
    file = paths.admin_token_file(data_dir)
    if file.exists():
        return AdminToken(file.read_text(encoding="ascii").strip(), str(file))
    return None


def new_admin_token() -> str:
    return "noor-admin-" + secrets.token_urlsafe(32)


def ensure_admin_token(data_dir: Path) -> AdminToken:
    """The daemon's admin token, generated at first start if none exists yet.

    A new token goes to the keyring when there is one, else to a 0600 file in the data dir.
    """
    found = find_admin_token(data_dir)
    if found:
        return found
    token = new_admin_token()
    if keyring_usable():
        try:
            keyring.set_password(SERVICE, ADMIN_TOKEN_NAME, token)
            return AdminToken(token, f"keyring:{ADMIN_TOKEN_NAME}")
        except keyring.errors.KeyringError:
            pass
    file = paths.admin_token_file(data_dir)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    return AdminToken(token, str(file))


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.strip().encode()).digest()


def admin_token_hash_file(data_dir: Path) -> Path:
    return data_dir / ADMIN_TOKEN_HASH_FILE


@dataclass(frozen=True)
class DaemonAdminToken:
    """What the daemon knows of its admin token at start: a digest and where it came from."""

    digest: bytes
    source: str
    value: str = ""
    """The token itself when this start generated or read it, "" when only its hash is known."""


def daemon_admin_token(data_dir: Path) -> DaemonAdminToken:
    """NOOR_ADMIN_TOKEN; else the hash the last rotation left; else the client's copy (made at first start)."""
    env = os.environ.get("NOOR_ADMIN_TOKEN")
    if env:
        return DaemonAdminToken(token_digest(env), "env:NOOR_ADMIN_TOKEN", env)
    hash_file = admin_token_hash_file(data_dir)
    if hash_file.exists():
        return DaemonAdminToken(_read_digest(hash_file), f"{hash_file} (hash of the rotated token)")
    token = ensure_admin_token(data_dir)
    return DaemonAdminToken(token_digest(token.value), token.source, token.value)


def _read_digest(file: Path) -> bytes:
    info = file.stat()
    if info.st_mode & 0o022:
        raise SecretError(f"{file} is writable by others (mode {stat.S_IMODE(info.st_mode):04o}); refusing it: chmod 600 {file}")
    text = file.read_text(encoding="ascii").strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise SecretError(f"{file}: not a SHA-256 hex digest; delete it to fall back to the stored admin token")
    return bytes.fromhex(text)


class AdminVerifier:
    """The daemon's side of the admin token: its SHA-256 only, compared in constant time, rotatable."""

    def __init__(self, digest: bytes, source: str, data_dir: Path | None = None) -> None:
        self._digest = digest
        self.source = source
        self.data_dir = data_dir

    @classmethod
    def for_token(cls, token: str, source: str = "given", data_dir: Path | None = None) -> AdminVerifier:
        return cls(token_digest(token), source, data_dir)

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(token_digest(presented), self._digest)

    @property
    def rotatable(self) -> bool:
        """False when NOOR_ADMIN_TOKEN set it: a restart would bring the old token back."""
        return not self.source.startswith("env:")

    def rotate(self) -> str:
        """A new token: its hash is written (0600) and in force at once; the token is returned, never stored."""
        if not self.rotatable:
            raise SecretError("the admin token comes from NOOR_ADMIN_TOKEN: change it there and restart the daemon")
        token = new_admin_token()
        digest = token_digest(token)
        if self.data_dir is not None:
            file = admin_token_hash_file(self.data_dir)
            write_private(file, digest.hex() + "\n")
            self.source = f"{file} (hash of the rotated token)"
        self._digest = digest  # the old token stops working with this assignment
        return token


def save_client_token(found_source: str, token: str, data_dir: Path) -> str | None:
    """Store a rotated token where the client found the old one (keyring or token file); returns where, or None."""
    if found_source == f"keyring:{ADMIN_TOKEN_NAME}":
        keyring.set_password(SERVICE, ADMIN_TOKEN_NAME, token)
        return found_source
    file = paths.admin_token_file(data_dir)
    if found_source == str(file):
        write_private(file, token + "\n")
        return str(file)
    return None


def secrets_report(config_path: str | None, data_dir: Path) -> dict:
    """For `noor doctor`: which backend `keyring:` references use, and whether it works here."""
    try:
        chosen = load(config_path).config.secrets
    except (ConfigError, OSError):
        chosen = None
    backend = open_backend(chosen, data_dir)
    usable = backend.usable() if isinstance(backend, KeyringBackend) else True
    advice = None
    if not usable:
        advice = 'no OS keyring backend on this machine: set [secrets] backend = "file" (see SECURITY.md), or use env: references'
    return {"backend": backend.kind, "where": backend.describe(), "usable": usable, "advice": advice}
