"""Secrets: provider keys and the admin token, from the OS keyring or the environment.

The config names secrets (`keyring:openai`, `env:OPENAI_API_KEY`) and never holds them.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.errors
from keyring.backends import fail

from noor_daemon import paths

SERVICE = "noorapi"
ADMIN_TOKEN_NAME = "admin-token"


class SecretError(Exception):
    pass


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


def resolve(reference: str | None, *, what: str) -> str | None:
    """The secret a `keyring:NAME` or `env:VAR` reference points to."""
    if reference is None:
        return None
    scheme, _, name = reference.partition(":")
    if scheme == "env":
        value = os.environ.get(name)
        if not value:
            raise SecretError(f"{what}: environment variable {name} is not set")
        return value
    value = _keyring_get(name)
    if not value:
        hint = "" if keyring_usable() else " (no OS keyring backend is available on this machine)"
        raise SecretError(f"{what}: no secret named {name!r} in the keyring{hint}; store it with `noor secret set {name}`")
    return value


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


def ensure_admin_token(data_dir: Path) -> AdminToken:
    """The daemon's admin token, generated at first start if none exists yet.

    A new token goes to the keyring when there is one, else to a 0600 file in the data dir.
    """
    found = find_admin_token(data_dir)
    if found:
        return found
    token = "noor-admin-" + secrets.token_urlsafe(32)
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
